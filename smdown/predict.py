"""Prediction at the finest scale, block by block with a halo: memory bounded by the block, not the region.

The blocks flow through three threads: one reads and derives the features of the next block, the main one
predicts the members of this block, corrects and combines them, and one writes the previous block (GDAL reads,
compresses and writes outside Python's lock). At most one block waits at each stage, so memory stays bounded by
a few blocks whatever the region's size.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import numpy as np

from smdown import io
from smdown.ensemble import combine
from smdown.features import FeatureSpec, cube, derive
from smdown.grid import cell_blocks
from smdown.models import Member

log = logging.getLogger(__name__)


def coarse_correction(pred: np.ndarray, coarse: np.ndarray, factor: int, out: np.ndarray | None = None) -> np.ndarray:
    """Additive correction: shift each coarse cell's fine pixels so they average to the coarse value.
    Days or cells without a coarse value (or without a finite pixel) keep the model's estimate.

    pred (T, H, W) float32, coarse (T, H / factor, W / factor); `out` may be `pred` itself (in place)."""
    days, rows, cols = pred.shape
    if rows % factor or cols % factor:
        raise ValueError(f"shape {rows}x{cols} is not a multiple of factor {factor}")
    cells = pred.reshape(days, rows // factor, factor, cols // factor, factor)
    finite = np.isfinite(cells)
    total = np.where(finite, cells, np.float32(0)).sum(axis=(2, 4), dtype=np.float64)
    count = finite.sum(axis=(2, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = (coarse - total / count).astype(np.float32)
    delta[~np.isfinite(delta)] = 0.0
    out = np.empty_like(pred, dtype=np.float32) if out is None else out
    np.add(cells, delta[:, :, None, :, None], out=out.reshape(cells.shape))
    return out


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
    timings: dict[str, list[float]] | None = None,
    overlap: bool = True,
) -> dict[str, int]:
    """Predict every member, the ensemble mean and spread at the fine scale; returns clip counts.

    `outputs`: output name (a member, "ensemble", "ensemble_std") -> path. A member is predicted only where it has
    an output or a weight in the ensemble (so a peer such as the random forest costs nothing when not asked for).
    `timings`, when given, accumulates [wall seconds, process CPU seconds] of each part: reading (with feature
    derivation), each member, the correction, the ensemble and spread, writing; with `overlap` (reading and writing
    in their own threads, beside the prediction) "read" and "write" are their threads' own wall and CPU time and
    "read wait" / "write wait" the main thread's waits for them.
    """
    timings = {} if timings is None else timings
    with _timed(timings, "read"):
        coarse = io.read_stack(coarse_path)
        fine_grid = io.read_grid(rasters[spec.rasters[0]])
    dates = coarse.dates
    unknown = [name for name in member_weights if name not in members]
    if unknown:
        raise ValueError(f"ensemble weights for members {unknown} that were not loaded ({sorted(members)})")
    active = {name: m for name, m in members.items() if name in outputs or name in member_weights}
    halo = max(m.halo for m in active.values())
    clipped = dict.fromkeys(list(active) + ["ensemble"], 0)
    all_blocks = list(cell_blocks(coarse.data.shape[1:], block_cells))
    started = time.perf_counter()

    def read(block: tuple[int, int, int, int]):
        cr, cc, ch, cw = block
        with _timed(timings, "read", thread=overlap):
            block_rasters = {name: io.read_block(rasters[name], cr * factor, cc * factor, ch * factor, cw * factor,
                                                 halo, fine_grid.shape) for name in spec.rasters}
            block_cube = cube(spec, derive(spec, block_rasters, dates), len(dates))
            del block_rasters
            # a pixel-day with a NaN (or inf) feature is predicted NaN whatever its features hold, so only those are
            # zeroed (a pass over the whole cube costs as much as building it)
            missing = ~np.isfinite(block_cube.sum(axis=-1))
            if missing.any():
                block_cube[missing] = 0.0
        return block_cube, missing

    def write(fields: dict[str, np.ndarray], row: int, col: int) -> None:
        with _timed(timings, "write", thread=overlap):
            for name, writer in writers.items():
                io.write_window(writer, fields[name], row, col)

    with ExitStack() as stack:
        writers = {name: stack.enter_context(io.open_writer(path, fine_grid, dates)) for name, path in outputs.items()}
        reader = stack.enter_context(ThreadPoolExecutor(1, "smdown-read")) if overlap else None
        writer = stack.enter_context(ThreadPoolExecutor(1, "smdown-write")) if overlap else None
        pending_read = reader.submit(read, all_blocks[0]) if overlap else None
        pending_write = None
        for i, (cr, cc, ch, cw) in enumerate(all_blocks, 1):
            row, col = cr * factor, cc * factor
            if overlap:
                with _timed(timings, "read wait"):
                    block_cube, missing = pending_read.result()
                if i < len(all_blocks):
                    pending_read = reader.submit(read, all_blocks[i])
            else:
                block_cube, missing = read((cr, cc, ch, cw))
            coarse_block = coarse.data[:, cr : cr + ch, cc : cc + cw]
            fields = {}
            for name, member in active.items():
                with _timed(timings, name):
                    pred = member.predict_cube(block_cube, halo, missing)
                with _timed(timings, "correction"):
                    if correction == "additive":
                        pred = coarse_correction(pred, coarse_block, factor, out=pred)
                    fields[name] = _clip(pred, valid_range, clipped, name)
            del block_cube, missing
            with _timed(timings, "ensemble"):
                mean, spread = combine(fields, member_weights)
                fields["ensemble"] = _clip(mean, valid_range, clipped, "ensemble")
                fields["ensemble_std"] = spread
            if overlap:
                if pending_write is not None:
                    with _timed(timings, "write wait"):
                        pending_write.result()
                pending_write = writer.submit(write, fields, row, col)
            else:
                write(fields, row, col)
            del fields, mean, spread, pred
            done = sum(b[2] * b[3] for b in all_blocks[:i]) * factor**2 * len(dates)
            total = sum(b[2] * b[3] for b in all_blocks) * factor**2 * len(dates)
            rate = done / (time.perf_counter() - started)
            log.info("block %d/%d done (%.0f pixel-days/s, about %.0f s left)", i, len(all_blocks), rate,
                     (total - done) / rate)
        if pending_write is not None:
            with _timed(timings, "write wait"):
                pending_write.result()
        with _timed(timings, "write"):  # the last compressed tiles are flushed on closing
            stack.close()
    return clipped


@contextmanager
def _timed(timings: dict[str, list[float]], part: str, thread: bool = False):
    """Add a part's wall seconds and CPU seconds to timings[part]: the process's CPU (all threads, as TensorFlow
    computes in its own) or, with `thread`, the calling thread's own."""
    clock = time.thread_time if thread else time.process_time
    wall, cpu = time.perf_counter(), clock()
    try:
        yield
    finally:
        spent = timings.setdefault(part, [0.0, 0.0])
        spent[0] += time.perf_counter() - wall
        spent[1] += clock() - cpu


def _clip(values: np.ndarray, valid_range: tuple[float, float], counts: dict, name: str) -> np.ndarray:
    """Clip in place (NaN stays NaN) and count the values that were outside."""
    lo, hi = valid_range
    counts[name] += int(np.count_nonzero(values < lo) + np.count_nonzero(values > hi))
    return np.clip(values, lo, hi, out=values)
