"""The root zone's detail inside the coarse cells, partly borrowed from the surface's.

Both layers' within-cell patterns come from the same soils, vegetation, terrain and rain, but the members learn the
surface's better: its coarse values follow the predictors more closely than the root zone's. `borrow_detail` gives a
field (the root zone's ensemble) a share of another's (the surface ensemble's) within-cell pattern: per cell and day,
its anomaly from the cell mean becomes (1 - weight) x its own + weight x the donor's standardised anomaly rescaled
to the field's own within-cell spread. Every cell-day mean is kept, so the coarse correction's work stands.
"""

from __future__ import annotations

import numpy as np

from smdown.grid import block_expand, block_mean


def borrow_detail(field: np.ndarray, donor: np.ndarray, factor: int, weight: float) -> np.ndarray:
    """`field` (days x rows x cols, whole cells of `factor` x `factor` pixels) with `weight` of its within-cell
    anomaly taken from `donor` (the same shape and grid), as described above; a new float32 array. Pixels NaN in the
    field stay NaN; where the donor is NaN a pixel keeps its own anomaly. Each cell-day mean of the field is kept
    (to float32 rounding)."""
    if field.shape != donor.shape:
        raise ValueError(f"the donor's shape {donor.shape} is not the field's {field.shape}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the borrowed share must lie in [0, 1], got {weight}")
    field = field.astype(np.float64)
    means = block_expand(block_mean(field, factor), factor)
    own = field - means
    spread = block_expand(np.sqrt(block_mean(own**2, factor)), factor)
    both = np.isfinite(field) & np.isfinite(donor)
    donor = np.where(both, donor, np.nan).astype(np.float64)
    theirs = donor - block_expand(block_mean(donor, factor), factor)
    theirs_spread = block_expand(np.sqrt(block_mean(theirs**2, factor)), factor)
    with np.errstate(invalid="ignore", divide="ignore"):
        borrowed = np.where(both & (theirs_spread > 0), spread * theirs / theirs_spread, own)
    anomaly = (1.0 - weight) * own + weight * borrowed
    anomaly -= block_expand(block_mean(anomaly, factor), factor)  # the cell-day means exactly kept
    return (means + anomaly).astype(np.float32)
