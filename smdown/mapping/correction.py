"""Coarse-consistency corrections: make a fine prediction average back to the coarse input, cell by cell.

Pure numpy, but for ``anchor_means``, which reads a raster. ``pred`` is a fine stack (T, H, W), ``coarse`` the
coarse cells it covers (T, h, w) with ``H = h * factor`` and ``W = w * factor``. Every function returns a float32 stack of ``pred``'s shape
whose block means (over each cell's finite pixels) equal ``coarse``. Cells or days without a coarse
value (NaN), and cells without a finite predicted pixel, keep the model's estimate unchanged.

- ``additive``: shifts each cell by its own constant, the residual ``coarse - block_mean(pred)``. The
  means are exact, but neighbouring cells move by different constants, so the coarse grid shows as
  steps at every cell edge (seams).
- ``smooth``: adds a continuous field instead, a mass-preserving (pycnophylactic, after Tobler 1979)
  interpolation of the residual. The field is bilinear between nodes at the cell centres (clamped
  to a constant in the outer half cell of the grid). Its node values ``V`` are solved so that its
  block means are the residual exactly: the block mean of a bilinear field is separable,
  ``B_rows @ V @ B_cols.T``, with ``B`` a small tridiagonal matrix (about 1/8, 3/4, 1/8 per row) of
  the coarse grid, so ``V = B_rows^-1 @ residual @ B_cols^-T`` is one direct solve per axis. A final
  per-cell additive fix (zero unless a cell has NaN pixels) keeps the means exact to rounding. The
  correction has no step at a cell edge; what remains of a seam is the model's own.

Block-wise use (prediction runs block by block). The smooth field in a block depends on the
residuals of the neighbouring cells too (the influence of a cell falls by a factor of about 0.17
per cell). Two ways:

1. Exact, two passes: predict every block uncorrected and keep ``cell_residual(pred_block, coarse_block,
   factor)`` of each into a (T, h, w) grid of the whole region (small: one value per cell and day);
   then ``nodes = smooth_nodes(residual_grid)`` once, and for each block
   ``smooth(pred_block, coarse_block, factor, nodes=nodes, offset=(cell_row, cell_col))``. The result
   equals the correction of the whole region at once: block edges match exactly.
2. One pass with a halo: pass ``residual=`` the residuals of the block and a ring of ``ring``
   neighbouring cells on each side (cropped at the region's edges, NaN where unknown), and
   ``offset`` = the block's first cell inside that grid. A ring of 2 cells leaves edge differences
   of about 3 % of the neighbours' residual difference; 3 cells about 0.5 %. The neighbours'
   residuals need the model's prediction there, so this suits a prediction that covers a halo of
   whole cells anyway.

NaN residuals (no coarse value, or no finite prediction in the cell) are solved as 0 and the
correction is set to 0 inside those cells, so they keep the model's estimate.

The anchor. What each cell's mean is pinned to: the coarse value itself (``coarse``), or the cell mean of the
coarse field's cubic interpolation onto the fine grid (``smoothed``, ``anchor_means``). The cubic kernel blends each
cell with its neighbours, so the smoothed anchor damps the coarse product's random error, cell by cell, at the cost
of exact consistency with the input.
"""

from __future__ import annotations

import numpy as np

from smdown import io
from smdown.grid import Tile, block_expand, block_mean, cell_blocks

CORRECTIONS = ("none", "additive", "smooth")


def anchor_means(fine_path: str, coarse: np.ndarray, factor: int, tile: Tile | None = None,
                 max_pixels: int = 8_000_000) -> np.ndarray:
    """The smoothed anchor: the cell means (days, rows, cols) of a fine raster nested in the coarse grid (the coarse
    field's cubic interpolation) over the cells of `tile` (None: all of `coarse`), read block by block of whole cells
    (``max_pixels`` pixel-days at most, one cell at least). Cells without a coarse value stay NaN; cells without a
    finite fine pixel keep the coarse value."""
    days, rows, cols = coarse.shape
    grid, fine_days = io.read_grid(fine_path), len(io.read_dates(fine_path) or [])
    if (grid.height, grid.width) != (rows * factor, cols * factor) or fine_days != days:
        raise ValueError(f"{fine_path}: {fine_days} days of {grid.height} x {grid.width} "
                         f"pixels, not the coarse input's {days} days of {rows} x {cols} cells x {factor}")
    tile = tile or Tile(0, 0, rows, cols)
    coarse = coarse[:, tile.row : tile.row + tile.rows, tile.col : tile.col + tile.cols]
    side = max(1, int(np.sqrt(max_pixels / max(1, days * factor * factor))))
    means = np.full(coarse.shape, np.nan, dtype=np.float64)
    for r, c, h, w in cell_blocks(coarse.shape[1:], side):
        fine = io.read_window(fine_path, (tile.row + r) * factor, (tile.col + c) * factor, h * factor, w * factor)
        means[:, r : r + h, c : c + w] = block_mean(fine, factor)
    means = np.where(np.isfinite(means), means, coarse)
    return np.where(np.isfinite(coarse), means, np.nan).astype(np.float32)


def cell_residual(pred: np.ndarray, coarse: np.ndarray, factor: int) -> np.ndarray:
    """``coarse - block_mean(pred)`` per cell and day (float64; NaN where either side has no value)."""
    _check(pred, coarse, factor)
    return np.asarray(coarse, dtype=np.float64) - block_mean(pred, factor).astype(np.float64)


def additive(pred: np.ndarray, coarse: np.ndarray, factor: int) -> np.ndarray:
    """Shift each coarse cell's fine pixels by one constant so they average to the coarse value.

    Days or cells without a coarse value keep the model's estimate.
    """
    delta = cell_residual(pred, coarse, factor)
    delta = np.where(np.isfinite(delta), delta, 0.0).astype(np.float32)
    return (pred + block_expand(delta, factor)).astype(np.float32)


def _weights(n: int, factor: int, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation along one axis of ``n`` nodes (cell centres) at fine pixels start..stop.

    Returns (lower node, upper node, weight of the upper node) per pixel; clamped at the ends.
    """
    stop = n * factor if stop is None else stop
    # in node units a pixel lies at its cell + its place inside the cell - 1/2; the weight is taken from the place
    # inside the cell alone, so a pixel gets the same weights whatever grid of whole cells it is read in
    pixel = np.arange(start, stop)
    cell, place = pixel // factor, (pixel % factor + 0.5) / factor
    upper_half = place >= 0.5
    lower = np.where(upper_half, cell, cell - 1)
    frac = np.where(upper_half, place - 0.5, place + 0.5)
    upper = lower + 1
    frac = np.where(lower < 0, 0.0, frac)
    frac = np.where(upper > n - 1, 0.0, frac)
    return np.clip(lower, 0, n - 1), np.clip(upper, 0, n - 1), frac


def _block_mean_matrix(n: int, factor: int) -> np.ndarray:
    """B (n x n): B[c] @ v is the mean over cell c's pixels of the linear interpolant of nodes v."""
    lower, upper, frac = _weights(n, factor)
    cell = np.arange(n * factor) // factor
    b = np.zeros((n, n))
    np.add.at(b, (cell, lower), 1.0 - frac)
    np.add.at(b, (cell, upper), frac)
    return b / factor


def _local_inverse(n: int, factor: int, ring: int) -> np.ndarray:
    """(n, 2 ring + 1): row i holds the weights of the cells i - ring .. i + ring in node i, the row of the inverse
    block-mean matrix of those cells alone (cropped at the ends of the n cells; 0 beyond them)."""
    out = np.zeros((n, 2 * ring + 1))
    for i in range(n):
        first, last = max(0, i - ring), min(n, i + ring + 1)
        out[i, first - i + ring : last - i + ring] = np.linalg.inv(_block_mean_matrix(last - first, factor))[i - first]
    return out


def _local_solve(d: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """sum_p weights[i, p] * d[..., i - ring + p, ...] along ``axis``, in a fixed order of p (so a node's value is
    the same bits in any grid that holds its ring)."""
    ring = (weights.shape[1] - 1) // 2
    moved = np.moveaxis(d, axis, -1)
    padded = np.pad(moved, [(0, 0)] * (moved.ndim - 1) + [(ring, ring)])
    n = moved.shape[-1]
    out = np.zeros_like(moved)
    for p in range(weights.shape[1]):
        out += weights[:, p] * padded[..., p : p + n]
    return np.moveaxis(out, -1, axis)


def smooth_nodes(residual: np.ndarray, factor: int, ring: int | None = None) -> np.ndarray:
    """Node values (T, h, w) of the bilinear field whose block means are ``residual`` (NaN solved as 0).

    ``ring``: each node solved from the cells within ``ring`` cells of it only (None: from every cell). The
    influence of a cell falls by about 0.17 a cell, so the block means are then the residual to about 0.17 **
    (ring + 1) of the neighbours' differences, and a node depends on its own neighbourhood alone: a grid that
    holds ``ring`` cells around a node (or the region's edge) gives that node the same value whatever else it
    holds, so windows of a region read with a halo of ``ring + 1`` cells give their cells the same field."""
    d = np.where(np.isfinite(residual), residual, 0.0).astype(np.float64)
    if d.ndim != 3:
        raise ValueError(f"residual must be (days, rows, cols), got shape {d.shape}")
    _, h, w = d.shape
    if ring is not None:
        along_rows = _local_solve(d, _local_inverse(h, factor, ring), axis=1)
        return _local_solve(along_rows, _local_inverse(w, factor, ring), axis=2)
    rows = np.linalg.inv(_block_mean_matrix(h, factor))
    cols = np.linalg.inv(_block_mean_matrix(w, factor))
    return np.einsum("ij,tjk,lk->til", rows, d, cols, optimize=True)


def smooth_field(nodes: np.ndarray, factor: int, offset: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """The bilinear field (T, rows*factor, cols*factor) over ``shape`` = (rows, cols) cells at ``offset``
    of the node grid ``nodes`` (T, h, w) (float64)."""
    _, h, w = nodes.shape
    (r0, c0), (rows, cols) = offset, shape
    if r0 < 0 or c0 < 0 or r0 + rows > h or c0 + cols > w:
        raise ValueError(f"cells {rows}x{cols} at {offset} fall outside the node grid {h}x{w}")
    lo, hi, f = _weights(h, factor, r0 * factor, (r0 + rows) * factor)
    along_rows = nodes[:, lo, :] * (1.0 - f)[:, None] + nodes[:, hi, :] * f[:, None]
    lo, hi, f = _weights(w, factor, c0 * factor, (c0 + cols) * factor)
    return along_rows[:, :, lo] * (1.0 - f) + along_rows[:, :, hi] * f


def _interpolation(n: int, factor: int, first_cell: int, cells: int) -> tuple[np.ndarray, slice]:
    """The linear interpolation of ``n`` nodes at the fine pixels of ``cells`` cells from ``first_cell`` along one
    axis as a dense (pixels, nodes used) matrix, and the slice of the nodes it uses."""
    lower, upper, frac = _weights(n, factor, first_cell * factor, (first_cell + cells) * factor)
    first, last = int(lower.min()), int(upper.max())
    matrix = np.zeros((len(lower), last - first + 1))
    pixel = np.arange(len(lower))
    np.add.at(matrix, (pixel, lower - first), 1.0 - frac)
    np.add.at(matrix, (pixel, upper - first), frac)
    return matrix, slice(first, last + 1)


def add_smooth_field(pred: np.ndarray, nodes: np.ndarray, factor: int, offset: tuple[int, int],
                     valid: np.ndarray | None = None) -> np.ndarray:
    """``pred += smooth_field(nodes, factor, offset, cells)`` in place, in float32, where ``valid`` (T, rows, cols
    cells; all where None): the field of ``smooth`` without its float64 copies, as two small matrix products (the
    interpolation along rows, then along columns). Follow with the additive fix (``additive``, or an in-place
    equivalent) to make the means exact where a cell has NaN pixels: together they are ``smooth(pred, coarse,
    factor, nodes=nodes, offset=offset)`` to float32 rounding."""
    days, height, width = pred.shape
    rows_m, rows = _interpolation(nodes.shape[1], factor, offset[0], height // factor)
    cols_m, cols = _interpolation(nodes.shape[2], factor, offset[1], width // factor)
    if rows_m.shape[0] != height or cols_m.shape[0] != width:
        raise ValueError(f"pred {pred.shape} is not whole cells of factor {factor}")
    along_rows = np.einsum("ij,tjk->tik", rows_m, nodes[:, rows, cols]).astype(np.float32)  # (T, H, node cols)
    field = np.matmul(along_rows, cols_m.T.astype(np.float32))  # (T, H, W)
    if valid is not None and not valid.all():
        field.reshape(days, height // factor, factor, width // factor, factor).transpose(0, 1, 3, 2, 4)[~valid] = 0.0
    pred += field
    return pred


def smooth(
    pred: np.ndarray,
    coarse: np.ndarray,
    factor: int,
    residual: np.ndarray | None = None,
    nodes: np.ndarray | None = None,
    offset: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Mass-preserving smooth correction of a block (see the module docstring).

    Without ``residual`` and ``nodes`` the block is corrected on its own. ``residual`` (T, h', w'): the
    residuals of the block and its neighbouring cells, the block's first cell at ``offset``. ``nodes``
    (T, h', w'): ``smooth_nodes`` of the whole region's residual grid, the block at ``offset`` (exact
    block-wise). The block's own residual is always recomputed from ``pred`` and ``coarse``.
    """
    own = cell_residual(pred, coarse, factor)
    _, rows, cols = own.shape
    if nodes is None:
        grid = own if residual is None else np.array(residual, dtype=np.float64, copy=True)
        if residual is not None:
            r0, c0 = offset
            if grid.ndim != 3 or grid.shape[0] != own.shape[0] or r0 < 0 or c0 < 0 or \
                    r0 + rows > grid.shape[1] or c0 + cols > grid.shape[2]:
                raise ValueError(f"residual grid {grid.shape} does not hold the block {own.shape} at {offset}")
            grid[:, r0 : r0 + rows, c0 : c0 + cols] = own
        else:
            offset = (0, 0)
        nodes = smooth_nodes(grid, factor)
    field = smooth_field(nodes, factor, offset, (rows, cols))
    valid = block_expand(np.isfinite(own), factor)
    out = pred.astype(np.float64) + np.where(valid, field, 0.0)
    fix = np.asarray(coarse, dtype=np.float64) - block_mean(out, factor).astype(np.float64)
    fix = np.where(np.isfinite(own) & np.isfinite(fix), fix, 0.0)
    return (out + block_expand(fix, factor)).astype(np.float32)


def correct(method: str, pred: np.ndarray, coarse: np.ndarray, factor: int, **kwargs) -> np.ndarray:
    """Apply the correction named ``method`` (one of ``CORRECTIONS``); ``kwargs`` go to ``smooth``."""
    if method == "none":
        return pred
    if method == "additive":
        return additive(pred, coarse, factor)
    if method == "smooth":
        return smooth(pred, coarse, factor, **kwargs)
    raise ValueError(f"unknown correction {method!r}; choose one of {CORRECTIONS}")


def _check(pred: np.ndarray, coarse: np.ndarray, factor: int) -> None:
    if pred.ndim != 3 or coarse.ndim != 3:
        raise ValueError(f"pred and coarse must be (days, rows, cols), got {pred.shape} and {coarse.shape}")
    expected = (coarse.shape[0], coarse.shape[1] * factor, coarse.shape[2] * factor)
    if pred.shape != expected:
        raise ValueError(f"pred shape {pred.shape} does not match coarse {coarse.shape} x factor {factor}")
