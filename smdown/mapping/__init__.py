"""The mapping stage: the 30 m maps block by block, fast inference, the coarse correction, the stations' refinement and the calibrated uncertainty."""
