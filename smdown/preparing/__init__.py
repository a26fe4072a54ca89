"""The preparing stage: the demo world, every variable on the nested scales, and the training examples."""
