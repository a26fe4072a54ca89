"""Prediction at the finest scale, block by block with a halo: memory bounded by the block, not the region."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack

import numpy as np

from smdown import io
from smdown.ensemble import combine
from smdown.features import FeatureSpec, cube, derive
from smdown.grid import block_expand, block_mean
from smdown.models import Member

log = logging.getLogger(__name__)


def coarse_correction(pred: np.ndarray, coarse: np.ndarray, factor: int) -> np.ndarray:
    """Additive correction: shift each coarse cell's fine pixels so they average to the coarse value.
    Days or cells without a coarse value keep the model's estimate."""
    delta = coarse - block_mean(pred, factor)
    delta = np.where(np.isfinite(delta), delta, 0.0).astype(np.float32)
    return pred + block_expand(delta, factor)


def blocks(coarse_shape: tuple[int, int], block_cells: int):
    """(coarse row, coarse col, rows, cols) of each block, in coarse cells."""
    for r in range(0, coarse_shape[0], block_cells):
        for c in range(0, coarse_shape[1], block_cells):
            yield r, c, min(block_cells, coarse_shape[0] - r), min(block_cells, coarse_shape[1] - c)


def predict_layer(
    members: dict[str, Member],
    member_weights: dict[str, float],
    spec: FeatureSpec,
    rasters: dict[str, str],
    coarse_path: str,
    factor: int,
    outputs: dict[str, str],
    block_cells: int = 1,
    correction: str = "additive",
    valid_range: tuple[float, float] = (0.0, 0.65),
) -> dict[str, int]:
    """Predict every member, the ensemble mean and spread at the fine scale; returns clip counts."""
    coarse = io.read_stack(coarse_path)
    fine_grid = io.read_grid(rasters[spec.rasters[0]])
    dates = coarse.dates
    halo = max(m.halo for m in members.values())
    clipped = dict.fromkeys(list(members) + ["ensemble"], 0)
    all_blocks = list(blocks(coarse.data.shape[1:], block_cells))
    started = time.perf_counter()
    with ExitStack() as stack:
        writers = {name: stack.enter_context(io.open_writer(path, fine_grid, dates)) for name, path in outputs.items()}
        for i, (cr, cc, ch, cw) in enumerate(all_blocks, 1):
            row, col, height, width = cr * factor, cc * factor, ch * factor, cw * factor
            block_rasters = {name: io.read_block(rasters[name], row, col, height, width, halo, fine_grid.shape)
                             for name in spec.rasters}
            block_cube = cube(spec, derive(spec, block_rasters, dates), len(dates))
            coarse_block = coarse.data[:, cr : cr + ch, cc : cc + cw]
            missing = ~np.isfinite(block_cube.sum(axis=-1))
            np.nan_to_num(block_cube, copy=False, nan=0.0)
            fields = {}
            for name, member in members.items():
                pred = member.predict_cube(block_cube, halo, missing)
                if correction == "additive":
                    pred = coarse_correction(pred, coarse_block, factor)
                fields[name] = _clip(pred, valid_range, clipped, name)
            mean, spread = combine(fields, member_weights)
            fields["ensemble"] = _clip(mean, valid_range, clipped, "ensemble")
            fields["ensemble_std"] = spread
            for name, writer in writers.items():
                io.write_window(writer, fields[name], row, col)
            done = sum(b[2] * b[3] for b in all_blocks[:i]) * factor**2 * len(dates)
            rate = done / (time.perf_counter() - started)
            log.info("block %d/%d done (%.0f pixel-days/s)", i, len(all_blocks), rate)
    return clipped


def _clip(values: np.ndarray, valid_range: tuple[float, float], counts: dict, name: str) -> np.ndarray:
    lo, hi = valid_range
    outside = np.isfinite(values) & ((values < lo) | (values > hi))
    counts[name] += int(outside.sum())
    return np.clip(values, lo, hi)
