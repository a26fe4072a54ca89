"""The learning stage: the members, their tuning and training, their weights and the sensitivity analysis."""
