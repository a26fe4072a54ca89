"""Prediction at the finest scale, block by block with a halo: memory bounded by the block, not the region.

The blocks flow through three threads: one reads and derives the features of the next block, the main one
predicts the members of this block, corrects and combines them, and one writes the previous block (GDAL reads,
compresses and writes outside Python's lock). At most one block waits at each stage, so memory stays bounded by
a few blocks whatever the region's size.

The `smooth` correction (smdown.mapping.correction) needs every cell's residual before any block is corrected, so it runs
in two passes: the first predicts every block, keeps each member's per-cell residual (one value per cell and day)
and spills the uncorrected block to a scratch file beside the outputs (sequential, uncompressed; deleted at the
end); the second reads the blocks back in the same order, adds the smooth field and writes. Memory stays bounded
by a few blocks; the scratch file holds one float32 per member and pixel-day.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from smdown import io
from smdown.grid import Tile, cell_blocks
from smdown.learning.ensemble import combine
from smdown.learning.models import Member
from smdown.mapping.correction import CORRECTIONS, add_smooth_field, anchor_means, cell_residual, smooth_nodes
from smdown.mapping.detail import borrow_detail
from smdown.mapping.inference import predict_cube
from smdown.preparing.features import FeatureSpec, cube, derive, missing_days

log = logging.getLogger(__name__)

Block = tuple[int, int, int, int]  # first cell row, first cell col, cell rows, cell cols


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
    *,
    block_cells: int,
    correction: str,
    valid_range: tuple[float, float],
    timings: dict[str, list[float]] | None = None,
    overlap: bool = True,
    anchor: str | None = None,
    tile: Tile | None = None,
    threads: int = 1,
    api_start: tuple[str, str] | None = None,
    detail: tuple[str, float] | None = None,
) -> dict[str, int]:
    """Predict members, and where asked the ensemble mean and spread, at the fine scale; returns clip counts.

    `outputs`: output name (a member, "ensemble", "ensemble_std") -> path. A member is predicted only where it has
    an output or a weight in the ensemble (so the random-forest peer, predicted by its own job, costs nothing here).
    The ensemble and its spread are computed only where they are outputs. `correction`: one of
    smdown.mapping.correction.CORRECTIONS, applied to each member before the ensemble; `valid_range`: values
    outside are clipped (config predict.valid_range).
    `timings`, when given, accumulates [wall seconds, process CPU seconds] of each part: reading (with feature
    derivation), each member, the correction, the ensemble and spread, writing (and, for the smooth correction,
    "scratch": spilling the uncorrected blocks and reading them back); with `overlap` (reading and writing in their
    own threads, beside the prediction) "read", "write" and "scratch" are their threads' own wall and CPU time and
    "read wait" / "write wait" the main thread's waits for them.
    `anchor`: a fine raster whose cell means replace the coarse values as the correction's target (the smoothed
    anchor, smdown.mapping.correction.anchor_means); None pins the cells to the coarse values themselves.
    `tile`: the coarse cells to predict (the outputs cover just them; the halo is read beyond them from the
    rasters, so a tile's pixels equal the same pixels of the whole region's prediction); None: the whole region.
    The smooth correction is computed within the tile. `threads`: the job's threads, over which ONNX Runtime spreads
    each block's pieces. `api_start` (a raster of the antecedent precipitation indices of the day before a date,
    that date): a time chunk's indices carried from the chunks before it (rule api_state), from its first day on.
    `detail` (a raster on the tile's grid and dates, a share): the ensemble takes that share of its within-cell
    detail from the raster's (the root zone's from the surface ensemble, smdown.mapping.detail), its cell means kept.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; choose one of {CORRECTIONS}")
    timings = {} if timings is None else timings
    with _timed(timings, "read"):
        fine_grid = io.read_grid(rasters[spec.rasters[0]])
        coarse, tile = _coarse_target(coarse_path, factor, anchor, tile)
    job = _Job(_active_members(members, member_weights, outputs), member_weights, spec, rasters, fine_grid.shape, tile,
               factor, coarse, "ensemble" in outputs or "ensemble_std" in outputs, valid_range, timings, overlap,
               threads, api_start, detail if detail and detail[1] > 0 else None)
    if job.detail and io.read_dates(job.detail[0]) != coarse.dates:
        raise ValueError(f"{job.detail[0]}: its dates are not those of {coarse_path}, whose detail it would give")
    blocks = list(cell_blocks(coarse.data.shape[1:], block_cells))  # within the tile
    progress = _Progress(blocks, factor, len(coarse.dates), passes=2 if correction == "smooth" else 1)
    with ExitStack() as stack:
        tile_grid = fine_grid.window(*tile.fine(factor))
        job.writers = {name: stack.enter_context(io.open_writer(path, tile_grid, coarse.dates))
                       for name, path in outputs.items()}
        if correction == "smooth":
            scratch = stack.enter_context(_Scratch(Path(next(iter(outputs.values()))).parent, timings, overlap))
            _predict_smooth(job, blocks, scratch, progress)
        else:
            _predict_per_cell(job, blocks, correction == "additive", progress)
        with _timed(timings, "write"):  # the last compressed tiles are flushed on closing
            stack.close()
    return job.clipped


def _coarse_target(coarse_path: str, factor: int, anchor: str | None, tile: Tile | None) -> tuple[io.Stack, Tile]:
    """The tile's cell values the correction pins each cell to (the coarse values, or the anchor's cell means),
    and the tile (the whole region where None)."""
    coarse = io.read_stack(coarse_path)
    tile = tile or Tile(0, 0, *coarse.data.shape[1:])
    if anchor is not None:
        cells_data = anchor_means(anchor, coarse.data, factor, tile)
    else:
        cells_data = coarse.data[:, tile.row : tile.row + tile.rows, tile.col : tile.col + tile.cols]
    return replace(coarse, data=cells_data), tile


def _active_members(members: dict[str, Member], member_weights: dict[str, float],
                    outputs: dict[str, str]) -> dict[str, Member]:
    """The members to predict: those with an output or a weight; checked against the outputs asked for."""
    unknown = [name for name in member_weights if name not in members]
    if unknown:
        raise ValueError(f"ensemble weights for members {unknown} that were not loaded ({sorted(members)})")
    active = {name: m for name, m in members.items() if name in outputs or name in member_weights}
    if not active:
        raise ValueError(f"no member to predict for outputs {sorted(outputs)}")
    if ("ensemble" in outputs or "ensemble_std" in outputs) and not member_weights:
        raise ValueError("an ensemble output without member weights")
    return active


@dataclass
class _Job:
    """One layer's prediction over a tile: what each step of a block (read, predict, finish, write) needs."""

    active: dict[str, Member]
    member_weights: dict[str, float]
    spec: FeatureSpec
    rasters: dict[str, str]
    fine_shape: tuple[int, int]
    tile: Tile
    factor: int
    coarse: io.Stack  # the tile's cell values the correction pins each cell to
    combined: bool  # the ensemble and its spread are outputs
    valid_range: tuple[float, float]
    timings: dict[str, list[float]]
    overlap: bool
    threads: int
    api_start: tuple[str, str] | None = None  # the carried indices' raster, and the day they continue from
    detail: tuple[str, float] | None = None  # the raster whose within-cell detail the ensemble borrows, and the share
    writers: dict = field(default_factory=dict)
    clipped: dict[str, int] = field(init=False)
    halo: int = field(init=False)
    _free: list[np.ndarray] = field(init=False, default_factory=list)  # cube buffers to reuse (mapping fresh pages
    # cost more than filling them)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.halo = max(m.halo for m in self.active.values())
        self.clipped = dict.fromkeys(list(self.active) + (["ensemble"] if self.combined else []), 0)

    @property
    def dates(self) -> list[str]:
        return self.coarse.dates

    def cells(self, block: Block) -> tuple[slice, slice, slice]:
        cr, cc, ch, cw = block
        return slice(None), slice(cr, cr + ch), slice(cc, cc + cw)

    def read(self, block: Block, donor: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The block's feature cube (with the halo), its missing pixel-days (zeroed in the cube) and, with `donor`,
        the window whose detail its ensemble borrows (None without one)."""
        cr, cc, ch, cw = block
        row, col = (self.tile.row + cr) * self.factor, (self.tile.col + cc) * self.factor  # first pixel in the rasters
        with _timed(self.timings, "read", thread=self.overlap):
            block_rasters = {name: io.read_block(self.rasters[name], row, col, ch * self.factor, cw * self.factor,
                                                 self.halo, self.fine_shape) for name in self.spec.rasters}
            features = derive(self.spec, block_rasters, self.dates, self.carried(row, col, ch, cw))
            del block_rasters
            # a pixel-day with a NaN (or inf) feature is predicted NaN whatever its features hold, so only those are
            # zeroed (found on the features before stacking: a pass over the whole cube costs as much as building it)
            missing = missing_days(features, len(self.dates))
            block_cube = cube(self.spec, features, len(self.dates), self._buffer(features))
            del features
            if missing.any():
                block_cube[missing] = 0.0
        return block_cube, missing, self.donor(block) if donor else None

    def donor(self, block: Block) -> np.ndarray | None:
        """The block's window of the raster whose within-cell detail the ensemble borrows (None without one)."""
        if not (self.detail and self.combined):
            return None
        _, _, ch, cw = block
        with _timed(self.timings, "read", thread=self.overlap):
            return io.read_window(self.detail[0], block[0] * self.factor, block[1] * self.factor, ch * self.factor,
                                  cw * self.factor)

    def carried(self, row: int, col: int, ch: int, cw: int) -> tuple[int, np.ndarray] | None:
        """The block's carried antecedent precipitation indices (with the halo) and the day they continue from."""
        if self.api_start is None:
            return None
        path, day = self.api_start
        state = io.read_block(path, row, col, ch * self.factor, cw * self.factor, self.halo, self.fine_shape)
        return self.dates.index(day), state

    def _buffer(self, features: list[np.ndarray]) -> np.ndarray | None:
        """A cube buffer of the block's shape freed by an earlier block (predict gives them back), or None."""
        shape = (len(self.dates), *features[-1].shape[-2:], len(features))
        with self._lock:
            for i, free in enumerate(self._free):
                if free.shape == shape:
                    return self._free.pop(i)
        return None

    def predict(self, block_cube: np.ndarray, missing: np.ndarray) -> dict[str, np.ndarray]:
        """Each member over the block; the cube's buffer is then kept for a later block's read (at most two are
        kept: the reader fills one while the other is predicted)."""
        preds = {}
        for name, member in self.active.items():
            with _timed(self.timings, name):
                preds[name] = predict_cube(member, block_cube, self.halo, missing, self.threads)
        with self._lock:
            self._free = [block_cube, *self._free][:2]
        return preds

    def finish(self, block: Block, preds: dict[str, np.ndarray], fix: Callable[[str, np.ndarray], None],
               donor: np.ndarray | None) -> dict:
        """Correct (in place), clip, combine (the ensemble borrowing its share of the `donor`'s detail): the fields to
        write."""
        fields = {}
        for name, pred in preds.items():
            with _timed(self.timings, "correction"):
                fix(name, pred)
                fields[name] = _clip(pred, self.valid_range, self.clipped, name)
        if self.combined:
            with _timed(self.timings, "ensemble"):
                mean, spread = combine(fields, self.member_weights)
                if donor is not None:
                    mean = borrow_detail(mean, donor, self.factor, self.detail[1])
                fields["ensemble"] = _clip(mean, self.valid_range, self.clipped, "ensemble")
                fields["ensemble_std"] = spread
        return fields

    def write(self, block: Block, fields: dict[str, np.ndarray]) -> None:
        with _timed(self.timings, "write", thread=self.overlap):
            for name, writer in self.writers.items():
                io.write_window(writer, fields[name], block[0] * self.factor, block[1] * self.factor)


def _predict_per_cell(job: _Job, blocks: list[Block], additive: bool, progress: _Progress) -> None:
    """One pass: each block predicted, each cell shifted to its target where `additive`, combined and written."""

    def single(block: Block, data: tuple[np.ndarray, np.ndarray]) -> dict:
        def fix(name: str, pred: np.ndarray) -> None:
            if additive:
                coarse_correction(pred, job.coarse.data[job.cells(block)], job.factor, out=pred)

        block_cube, missing, donor = data
        return job.finish(block, job.predict(block_cube, missing), fix, donor)

    _pipeline(blocks, job.read, single, job.write, job.overlap, job.timings, progress.step(""))


def _predict_smooth(job: _Job, blocks: list[Block], scratch: _Scratch, progress: _Progress) -> None:
    """Two passes: the first predicts every block, keeps each member's per-cell residual and spills the block to
    `scratch`; the second adds the smooth field of the residuals (and the remaining per-cell shift) and writes."""
    residual = {name: np.full(job.coarse.data.shape, np.nan) for name in job.active}

    def first(block: Block, data: tuple[np.ndarray, np.ndarray, None]) -> dict[str, np.ndarray]:
        preds = job.predict(*data[:2])
        with _timed(job.timings, "correction"):
            for name, pred in preds.items():
                residual[name][job.cells(block)] = cell_residual(pred, job.coarse.data[job.cells(block)], job.factor)
        return preds

    _pipeline(blocks, lambda block: job.read(block, donor=False), first, lambda block, preds: scratch.put(preds),
              job.overlap, job.timings, progress.step("pass 1 of 2:"))
    with _timed(job.timings, "correction"):
        nodes = {name: smooth_nodes(values, job.factor) for name, values in residual.items()}
    scratch.rewind()

    def second(block: Block, data: tuple[dict[str, np.ndarray], np.ndarray | None]) -> dict:
        def fix(name: str, pred: np.ndarray) -> None:
            valid = np.isfinite(residual[name][job.cells(block)])
            add_smooth_field(pred, nodes[name], job.factor, block[:2], valid)
            coarse_correction(pred, job.coarse.data[job.cells(block)], job.factor, out=pred)

        preds, donor = data
        return job.finish(block, preds, fix, donor)

    def reread(block: Block) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        return scratch.get(list(job.active), _shape(block, job.factor, len(job.dates))), job.donor(block)

    _pipeline(blocks, reread, second, job.write, job.overlap, job.timings, progress.step("pass 2 of 2:"))


def _pipeline(blocks: list[Block], read: Callable, compute: Callable, write: Callable, overlap: bool,
              timings: dict[str, list[float]], done: Callable[[int], None]) -> None:
    """For each block: write(block, compute(block, read(block))). With `overlap`, the next block is read in one
    thread and the previous one written in another while this one is computed."""
    if not overlap:
        for i, block in enumerate(blocks, 1):
            write(block, compute(block, read(block)))
            done(i)
        return
    with ThreadPoolExecutor(1, "smdown-read") as reader, ThreadPoolExecutor(1, "smdown-write") as writer:
        pending_read, pending_write = reader.submit(read, blocks[0]), None
        for i, block in enumerate(blocks, 1):
            with _timed(timings, "read wait"):
                data = pending_read.result()
            if i < len(blocks):
                pending_read = reader.submit(read, blocks[i])
            result = compute(block, data)
            del data
            if pending_write is not None:
                with _timed(timings, "write wait"):
                    pending_write.result()
            pending_write = writer.submit(write, block, result)
            del result
            done(i)
        if pending_write is not None:
            with _timed(timings, "write wait"):
                pending_write.result()


def _shape(block: Block, factor: int, days: int) -> tuple[int, int, int]:
    return days, block[2] * factor, block[3] * factor


class _Scratch:
    """A temporary file beside the outputs holding the uncorrected blocks of the first pass, written and read back
    in the same order (sequential, uncompressed float32); removed on exit."""

    def __init__(self, folder: Path, timings: dict[str, list[float]], overlap: bool):
        folder.mkdir(parents=True, exist_ok=True)
        self._dir = tempfile.TemporaryDirectory(prefix=".smdown-scratch-", dir=folder)
        self._path = Path(self._dir.name) / "blocks.f32"
        self._file = open(self._path, "wb")  # noqa: SIM115 (closed in __exit__)
        self._timings, self._overlap = timings, overlap

    def __enter__(self) -> _Scratch:
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()
        self._dir.cleanup()

    def put(self, preds: dict[str, np.ndarray]) -> None:
        with _timed(self._timings, "scratch", thread=self._overlap):
            for values in preds.values():
                np.ascontiguousarray(values, dtype=np.float32).tofile(self._file)

    def rewind(self) -> None:
        self._file.close()
        self._file = open(self._path, "rb")  # noqa: SIM115 (closed in __exit__)

    def get(self, names: list[str], shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
        with _timed(self._timings, "scratch", thread=self._overlap):
            count = int(np.prod(shape))
            out = {}
            for name in names:
                values = np.fromfile(self._file, dtype=np.float32, count=count)
                if values.size != count:
                    raise OSError(f"{self._path}: scratch file ends early")
                out[name] = values.reshape(shape)
            return out


class _Progress:
    """Log one line per block: pixel-days per second so far and the time left (of all passes)."""

    def __init__(self, blocks: list[Block], factor: int, days: int, passes: int = 1):
        self.sizes = [b[2] * b[3] * factor**2 * days for b in blocks]
        self.passes, self.total = passes, passes * sum(self.sizes)
        self.started = time.perf_counter()
        self.done = 0

    def step(self, label: str) -> Callable[[int], None]:
        def done(i: int) -> None:
            self.done += self.sizes[i - 1]
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)  # block passes a second
            log.info("%sblock %d/%d done (%.0f pixel-days/s, about %.0f s left)", f"{label} " if label else "", i,
                     len(self.sizes), rate / self.passes, (self.total - self.done) / rate)

        return done


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
