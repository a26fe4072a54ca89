"""Terrain derivatives of a DEM: slope, aspect, D8 flow accumulation and topographic wetness index.

Pure numpy/scipy functions on a 2-D elevation array (rows run north to south, columns west
to east) and its pixel size in metres. NaN elevations are nodata and give NaN outputs.
"""

from __future__ import annotations

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


def flow_accumulation(dem: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """D8 flow accumulation: number of cells draining through each pixel, itself included (>= 1).

    The D8 graph is acyclic (flow is strictly downhill), so ordering pixels from high to low
    makes (I - P) lower triangular, P[receiver, donor] = 1; accumulation solves (I - P) a = w
    with one sparse triangular solve. No pit filling: a pit collects its own catchment only.
    `weights` (default 1 per cell) gives weighted accumulation. NaN where the DEM is NaN.
    """
    z = np.asarray(dem, dtype=np.float64)
    n = z.size
    receiver = d8_receivers(z)
    valid = np.isfinite(z.ravel())
    order = np.argsort(np.where(valid, -z.ravel(), np.inf), kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    donors = np.flatnonzero(receiver >= 0)
    rows = np.concatenate([np.arange(n), rank[receiver[donors]]])
    cols = np.concatenate([np.arange(n), rank[donors]])
    vals = np.concatenate([np.ones(n), -np.ones(donors.size)])
    matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))
    w = np.ones(n) if weights is None else np.nan_to_num(np.asarray(weights, dtype=np.float64).ravel())
    acc_ranked = spsolve_triangular(matrix, w[order], lower=True, unit_diagonal=True)
    acc = np.empty(n)
    acc[order] = acc_ranked
    acc[~valid] = np.nan
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
