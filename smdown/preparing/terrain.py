"""Terrain derivatives of a DEM: slope, aspect, D8 flow accumulation and topographic wetness index.

Pure numpy/scipy functions on a 2-D elevation array (rows run north to south, columns west
to east) and its pixel size in metres. NaN elevations are nodata and give NaN outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve_triangular

# D8 neighbour offsets (drow, dcol): N, NE, E, SE, S, SW, W, NW.
_D8 = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def _fill_nan_nearest(dem: np.ndarray) -> np.ndarray:
    """Replace NaN pixels with their nearest valid value (so differences near gaps stay finite)."""
    nan = ~np.isfinite(dem)
    if not nan.any():
        return dem.astype(np.float64, copy=False)
    if nan.all():
        return np.zeros(dem.shape)
    idx = ndimage.distance_transform_edt(nan, return_distances=False, return_indices=True)
    return dem[tuple(idx)].astype(np.float64)


def _gradients(dem: np.ndarray, res: float) -> tuple[np.ndarray, np.ndarray]:
    """(dz/dx east, dz/dy north) by central differences (one-sided at the edges)."""
    z = _fill_nan_nearest(np.asarray(dem, dtype=np.float64))
    if min(z.shape) < 2:
        raise ValueError(f"DEM must be at least 2x2, got {z.shape}")
    dz_drow, dz_dcol = np.gradient(z, res)
    return dz_dcol, -dz_drow


def slope(dem: np.ndarray, res: float) -> np.ndarray:
    """Slope in degrees (0 = flat) from central differences; NaN where the DEM is NaN."""
    dzdx, dzdy = _gradients(dem, res)
    out = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    return np.where(np.isfinite(dem), out, np.nan).astype(np.float32)


def aspect(dem: np.ndarray, res: float) -> np.ndarray:
    """Aspect: the direction the slope faces (downslope), degrees clockwise from north in [0, 360).

    A plane falling towards the east has aspect 90. Flat pixels get 0; NaN where the DEM is NaN.
    """
    dzdx, dzdy = _gradients(dem, res)
    out = np.degrees(np.arctan2(-dzdx, -dzdy)) % 360.0
    out = np.where((dzdx == 0) & (dzdy == 0), 0.0, out)
    return np.where(np.isfinite(dem), out, np.nan).astype(np.float32)


def d8_receivers(dem: np.ndarray) -> np.ndarray:
    """Flat index of each pixel's D8 receiver (steepest downhill neighbour), -1 for none.

    Pixels with no strictly lower neighbour (pits, flats, edge outlets) and NaN pixels have no
    receiver; a pixel never drains into a NaN pixel.
    """
    z = np.asarray(dem, dtype=np.float64)
    rows, cols = z.shape
    padded = np.pad(np.where(np.isfinite(z), z, np.inf), 1, constant_values=np.inf)
    best = np.zeros(z.shape)
    receiver = np.full(z.shape, -1, dtype=np.int64)
    r_idx, c_idx = np.indices(z.shape)
    for dr, dc in _D8:
        neighbour = padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]
        with np.errstate(invalid="ignore"):
            drop = (z - neighbour) / np.hypot(dr, dc)
        better = np.isfinite(drop) & (drop > best)
        best = np.where(better, drop, best)
        receiver = np.where(better, (r_idx + dr) * cols + (c_idx + dc), receiver)
    receiver[~np.isfinite(z)] = -1
    return receiver.ravel()


def _accumulate(elevation: np.ndarray, receiver: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Accumulate `weights` down a flow graph: out[i] = weights[i] + sum of out[d] over donors d (receiver[d] == i).

    Flow runs strictly downhill, so ordering the nodes from high to low makes (I - P) lower triangular,
    P[receiver, donor] = 1, and the sums come from one sparse triangular solve. `elevation` orders the nodes (NaN
    last); `receiver` is -1 for none.
    """
    n = elevation.size
    order = np.argsort(np.where(np.isfinite(elevation), -elevation, np.inf), kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    donors = np.flatnonzero(receiver >= 0)
    rows = np.concatenate([np.arange(n), rank[receiver[donors]]])
    cols = np.concatenate([np.arange(n), rank[donors]])
    vals = np.concatenate([np.ones(n), -np.ones(donors.size)])
    matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))
    ranked = spsolve_triangular(matrix, weights[order], lower=True, unit_diagonal=True)
    out = np.empty(n)
    out[order] = ranked
    return out


def flow_accumulation(dem: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """D8 flow accumulation: number of cells draining through each pixel, itself included (>= 1).

    The D8 graph is acyclic (flow is strictly downhill): one sparse triangular solve (_accumulate).
    No pit filling: a pit collects its own catchment only. `weights` (default 1 per cell) gives weighted
    accumulation. NaN where the DEM is NaN.
    """
    z = np.asarray(dem, dtype=np.float64)
    w = np.ones(z.size) if weights is None else np.nan_to_num(np.asarray(weights, dtype=np.float64).ravel())
    acc = _accumulate(z.ravel(), d8_receivers(z), w)
    acc[~np.isfinite(z.ravel())] = np.nan
    return acc.reshape(z.shape)


def twi(dem: np.ndarray, res: float, min_tan_slope: float = 0.001) -> np.ndarray:
    """Topographic wetness index ln(a / tan(beta)) (Beven & Kirkby 1979).

    a = specific catchment area (D8 accumulation x pixel size, m), tan(beta) from `slope`,
    floored at `min_tan_slope` so flats stay finite. NaN where the DEM is NaN.
    """
    acc = flow_accumulation(dem)
    tan_beta = np.maximum(np.tan(np.radians(slope(dem, res).astype(np.float64))), min_tan_slope)
    with np.errstate(invalid="ignore"):
        out = np.log(acc * res / tan_beta)
    return out.astype(np.float32)


# Window by window: a DEM larger than memory ---------------------------------------------------------------------

WINDOW = 2048  # pixels a side of a window
# Pixels read around a window: the gradients need 1; a NaN neighbour takes its nearest valid value, which lies
# among its own neighbours (one more pixel out), so 2 make slope and aspect equal the whole-DEM result.
HALO = 2
WINDOW_PIXELS = (WINDOW + 2 * HALO) ** 2

Window = tuple[int, int, int, int]  # row, col, height, width
Reader = Callable[[int, int, int, int], np.ndarray]  # (row, col, height, width) -> elevations of that window


def windows(shape: tuple[int, int], size: int = WINDOW) -> list[Window]:
    """Windows of at most size x size pixels covering a raster, row by row."""
    rows, cols = shape
    return [(r, c, min(size, rows - r), min(size, cols - c)) for r in range(0, rows, size) for c in range(0, cols, size)]


def _read_with_halo(read: Reader, shape: tuple[int, int], window: Window) -> tuple[np.ndarray, tuple[int, int], tuple]:
    """The window and its halo (clipped to the raster), the halo's top-left, and the window's slices in it."""
    r, c, h, w = window
    r0, c0 = max(0, r - HALO), max(0, c - HALO)
    r1, c1 = min(shape[0], r + h + HALO), min(shape[1], c + w + HALO)
    z = np.asarray(read(r0, c0, r1 - r0, c1 - c0), dtype=np.float64)
    return z, (r0, c0), (slice(r - r0, r - r0 + h), slice(c - c0, c - c0 + w))


def _window_graph(z: np.ndarray, origin: tuple[int, int], inner: tuple, shape: tuple[int, int]):
    """The window's D8 graph: its elevations (flat), each pixel's receiver within the window (-1: none or outside)
    and its receiver's flat index in the whole raster (-1: none). Receivers come from the halo'd window, so they
    are the whole raster's."""
    receiver = d8_receivers(z)
    rows, cols = np.indices(z.shape)
    where = (rows[inner].ravel(), cols[inner].ravel())
    h, w = inner[0].stop - inner[0].start, inner[1].stop - inner[1].start
    rec = receiver[where[0] * z.shape[1] + where[1]]
    has = rec >= 0
    rec_row, rec_col = np.divmod(np.where(has, rec, 0), z.shape[1])
    whole = np.where(has, (rec_row + origin[0]) * shape[1] + rec_col + origin[1], -1)
    local_row, local_col = rec_row - inner[0].start, rec_col - inner[1].start
    inside = has & (local_row >= 0) & (local_row < h) & (local_col >= 0) & (local_col < w)
    local = np.where(inside, local_row * w + local_col, -1)
    return z[inner].ravel(), local, whole


def _outlets(local: np.ndarray) -> np.ndarray:
    """Where each pixel's path within the window ends (a pixel draining out of it, or a pit), by pointer jumping."""
    end = np.where(local >= 0, local, np.arange(local.size))
    while True:
        nxt = end[end]
        if np.array_equal(nxt, end):
            return end
        end = nxt


def _inflows(read: Reader, shape: tuple[int, int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """First pass: the flow entering each window from its neighbours, exactly.

    Each window is accumulated on its own. A pixel draining out of its window (an exit) carries its whole-raster
    accumulation A into its receiver, a pixel on the edge of another window (an entry); that entry's path within
    its window ends at another exit (or a pit). So A(exit) = local accumulation + the A of the exits draining
    into entries whose paths reach it: an accumulation on the graph of exits only (a few pixels per window edge),
    solved like the pixels'. Returns the entries (flat indices in the raster) and the flow each receives.
    """
    exit_id, exit_rec, exit_acc, exit_z, ring_id, ring_end = [], [], [], [], [], []
    for window in windows(shape, size):
        r, c, h, w = window
        z, local, whole = _window_graph(*_read_with_halo(read, shape, window), shape)
        acc = _accumulate(z, local, np.ones(z.size))
        idx = np.arange(z.size)
        to_whole = (r + idx // w) * shape[1] + c + idx % w
        leaves = (whole >= 0) & (local < 0)
        exit_id.append(to_whole[leaves])
        exit_rec.append(whole[leaves])
        exit_acc.append(acc[leaves])
        exit_z.append(z[leaves])
        edge = (idx // w == 0) | (idx // w == h - 1) | (idx % w == 0) | (idx % w == w - 1)
        end = _outlets(local)[edge]
        ring_id.append(to_whole[edge])
        ring_end.append(np.where(leaves[end], to_whole[end], -1))
    exit_id, exit_rec, exit_acc, exit_z = (np.concatenate(a) for a in (exit_id, exit_rec, exit_acc, exit_z))
    ring_id, ring_end = np.concatenate(ring_id), np.concatenate(ring_end)
    if exit_id.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    order = np.argsort(ring_id)
    ring_id, ring_end = ring_id[order], ring_end[order]
    downstream = ring_end[np.searchsorted(ring_id, exit_rec)]  # the exit each exit's flow reaches next (-1: none)
    by_id = np.argsort(exit_id)
    pos = np.searchsorted(exit_id, downstream, sorter=by_id)
    receiver = np.where(downstream >= 0, by_id[np.minimum(pos, by_id.size - 1)], -1)
    total = _accumulate(exit_z, receiver, exit_acc)
    entries, inverse = np.unique(exit_rec, return_inverse=True)
    return entries, np.bincount(inverse, weights=total, minlength=entries.size)


def windowed(read: Reader, shape: tuple[int, int], res: float, names: list[str], size: int = WINDOW,
             min_tan_slope: float = 0.001) -> Iterator[tuple[Window, dict[str, np.ndarray]]]:
    """Slope, aspect and twi of a DEM window by window (each read with a HALO), for a DEM larger than memory.

    `read(row, col, height, width)` returns the DEM's elevations in that window. Yields each window and its
    derivatives (float32), equal to slope(), aspect() and twi() of the whole DEM: slope and aspect need only the
    halo; the wetness index's flow accumulation takes a first pass over the windows for the flow crossing their
    edges (_inflows), then each window is accumulated with that inflow added. Memory: a window, plus a few
    numbers per pixel on the windows' edges.
    """
    entries, inflow = _inflows(read, shape, size) if "twi" in names else (None, None)
    for window in windows(shape, size):
        r, c, h, w = window
        z, origin, inner = _read_with_halo(read, shape, window)
        out = {}
        if "slope" in names or "twi" in names:
            slope_deg = slope(z, res)[inner]
        if "slope" in names:
            out["slope"] = slope_deg
        if "aspect" in names:
            out["aspect"] = aspect(z, res)[inner]
        if "twi" in names:
            flat, local, _ = _window_graph(z, origin, inner, shape)
            weights = np.ones(flat.size)
            first, last = r * shape[1], (r + h - 1) * shape[1] + c + w
            lo, hi = np.searchsorted(entries, [first, last])
            rows, cols = np.divmod(entries[lo:hi], shape[1])
            mine = (cols >= c) & (cols < c + w)
            np.add.at(weights, (rows[mine] - r) * w + cols[mine] - c, inflow[lo:hi][mine])
            acc = _accumulate(flat, local, weights).reshape(h, w)
            acc[~np.isfinite(z[inner])] = np.nan
            tan_beta = np.maximum(np.tan(np.radians(slope_deg.astype(np.float64))), min_tan_slope)
            with np.errstate(invalid="ignore"):
                out["twi"] = np.log(acc * res / tan_beta).astype(np.float32)
        yield window, out
