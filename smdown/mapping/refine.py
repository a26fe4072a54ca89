"""The stations' refinement of the ensemble's detail inside the coarse cells: the part of the error the predictors'
own within-cell anomalies explain.

The members learn soil moisture from the predictors at the coarse training scales and paint the detail inside a
9 km cell from the same relation. On the skill panel the detail they paint is a fraction of the truth's (within-cell
std ratio 0.3-0.5), and what they miss follows the predictors: the ensemble's within-cell error correlates with the
NDVI and NDWI anomalies inside the cell (r -0.3 to -0.6 in the surface). Stations see that error. The refinement is

    refined = ensemble + sum_k beta_k * anomaly_k,    anomaly_k = x_k - S_k

with ``x_k`` the 30 m predictors named in config ``refine.predictors`` and ``S_k`` the mass-preserving smooth field
of x_k's cell means that day (smdown.mapping.correction.smooth_nodes: bilinear between the cell centres, its block
mean each cell's mean). Each anomaly has mean 0 over its cell, so the refinement moves no cell's mean: the coarse
consistency (and the seamless correction) is kept exactly. Against the cell's own mean (a constant a cell) the
anomaly would step at every cell edge by beta times the difference of the neighbours' means; against the smooth
field it is continuous there. The field's nodes are solved from the cells within ``RING`` of each (0.17 a cell:
the field's block means are the cell means to about 1e-3 of the neighbours' differences before a last exact
per-cell fix), so a window of whole cells with ``HALO`` cells around it gives its pixels the same anomaly as the
whole region, bit for bit: a tile is refined alone, reading its halo for the cell means.

``beta`` is a ridge regression of the stations' errors (observed - ensemble, on days outside the test days) on the
anomalies at the stations' pixels, with an intercept (the stations' mean error, a bias the map does not take),
each station weighing once whatever its days (a pixel's error persists, so its days are nearly one draw). Its
penalty is chosen by leaving one station out; the refinement is applied only where that beats the intercept alone
(no refinement) on the left-out stations, so a layer or a region where the anomalies do not explain the stations'
errors keeps the ensemble as it is. Without at least ``min_stations`` stations there is nothing to learn from, and
the ensemble is kept.

Pure numpy and scikit-learn; the rule steps (smdown.mapping.refine_steps) read and write the rasters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from smdown.grid import block_expand
from smdown.mapping.correction import smooth_field, smooth_nodes

#: the smooth field's nodes are solved from the cells within RING cells of each
RING = 3
#: cells around a window whose cell means give its pixels the region's anomaly (RING, one for the bilinear
#: interpolation, one for the filling of a cell without a finite pixel)
HALO = RING + 2

#: the penalties tried, on standardised anomalies (a larger one draws beta towards 0)
RIDGE_ALPHAS = tuple(float(a) for a in np.geomspace(0.1, 1e4, 21))


@dataclass
class Refinement:
    """beta per predictor (m3/m3 per unit of the predictor's anomaly); ``applied`` false: the ensemble is kept.
    ``loso_rmse`` / ``base_rmse``: the stations' error left one station out, with the refinement and with the
    intercept alone (each station weighing once)."""

    predictors: list[str] = field(default_factory=list)
    beta: list[float] = field(default_factory=list)
    applied: bool = False
    alpha: float = float("nan")
    stations: int = 0
    station_days: int = 0
    loso_rmse: float = float("nan")
    base_rmse: float = float("nan")
    reason: str = ""

    @classmethod
    def from_dict(cls, data: Mapping) -> Refinement:
        return cls(**dict(data))

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def gain(self) -> float:
        """The share of the stations' left-out RMSE the refinement removes (negative: it would add)."""
        return 1.0 - self.loso_rmse / self.base_rmse if self.base_rmse > 0 else float("nan")


def cell_means(values: np.ndarray, factor: int, mask: np.ndarray | None = None) -> np.ndarray:
    """The mean (float64; NaN where none) of `values` (..., rows, cols) over each factor x factor cell's pixels finite
    in `values` and in ``mask`` (broadcast to it; default: everywhere)."""
    values = np.asarray(values, dtype=np.float64)
    if mask is not None:
        values = np.broadcast_to(values, np.broadcast_shapes(values.shape, mask.shape))
    ok = np.isfinite(values) if mask is None else np.isfinite(values) & mask
    *lead, rows, cols = values.shape
    blocks = np.where(ok, values, 0.0).reshape(*lead, rows // factor, factor, cols // factor, factor)
    count = ok.reshape(blocks.shape).sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, blocks.sum(axis=(-3, -1)) / count, np.nan)


def _filled(means: np.ndarray) -> np.ndarray:
    """Cell means (days, rows, cols) with a cell that has none given the mean of its neighbours that have one (the
    day's mean where none has), so an empty cell does not pull the smooth field around it."""
    out = means.copy()
    gap = ~np.isfinite(out)
    if not gap.any():
        return out
    padded = np.pad(np.where(gap, 0.0, out), ((0, 0), (1, 1), (1, 1)))
    weight = np.pad((~gap).astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    rows, cols = out.shape[1:]
    total = sum(padded[:, 1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols] for dr in (-1, 0, 1) for dc in (-1, 0, 1))
    count = sum(weight[:, 1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols] for dr in (-1, 0, 1) for dc in (-1, 0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(gap, total / count, out)
        day = np.nanmean(np.where(np.isfinite(out), out, np.nan), axis=(1, 2), keepdims=True) \
            if np.isfinite(out).any() else np.zeros((len(out), 1, 1))
    return np.where(np.isfinite(out), out, np.nan_to_num(np.broadcast_to(day, out.shape)))


def cell_anomaly(values: np.ndarray, factor: int, mask: np.ndarray | None = None, means: np.ndarray | None = None,
                 offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``values`` (..., rows, cols; whole cells) less the mass-preserving smooth field of their cell means (see the
    module docstring), the means taken over the pixels finite in `values` and in ``mask`` (broadcast to it;
    default: everywhere); 0 elsewhere, and shifted so that it sums to 0 over those pixels in every cell.

    ``means``: the cell means (``cell_means``, with the same mask) of a grid of cells holding the window at cell
    ``offset`` with ``HALO`` cells around it (or the region's edge): the anomaly is then the region's. Without
    them, the window's own (the window is the region)."""
    values = np.asarray(values, dtype=np.float64)
    if mask is not None:
        values = np.broadcast_to(values, np.broadcast_shapes(values.shape, mask.shape))
    ok = np.isfinite(values) if mask is None else np.isfinite(values) & mask
    kept = np.where(ok, values, np.nan)
    shape = kept.shape
    flat = kept.reshape(-1, *shape[-2:])
    cells = (shape[-2] // factor, shape[-1] // factor)
    if means is None:
        means, offset = cell_means(flat, factor), (0, 0)
    means = np.asarray(means, dtype=np.float64).reshape(-1, *np.shape(means)[-2:])
    if len(means) != len(flat):
        raise ValueError(f"cell means of {len(means)} day(s) for a window of {len(flat)}")
    field = smooth_field(smooth_nodes(_filled(means), factor, RING), factor, offset, cells).reshape(shape)
    anomaly = np.where(ok, kept - field, np.nan)
    rest = block_expand(cell_means(anomaly, factor), factor)
    return np.where(ok, anomaly - np.nan_to_num(rest), 0.0)


def _weighted_ridge(x: np.ndarray, y: np.ndarray, weight: np.ndarray, alpha: float):
    """(intercept, slopes) of a ridge of y on x (x already standardised), rows weighted."""
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=alpha).fit(x, y, sample_weight=weight)
    return float(model.intercept_), model.coef_


def _design(anomalies: Mapping[str, np.ndarray], error: np.ndarray, station: np.ndarray):
    """The finite rows of a fit: (names, standardised anomalies z, their scale, error y, each row's station index,
    the station labels, each row's weight (every station weighing once), the mask of the rows kept)."""
    names = list(anomalies)
    x = np.stack([np.asarray(anomalies[n], dtype=float) for n in names], axis=1)
    y = np.asarray(error, dtype=float)
    ok = np.isfinite(y) & np.all(np.isfinite(x), axis=1)
    x, y = x[ok], y[ok]
    labels, group, days = np.unique(np.asarray(station)[ok], return_inverse=True, return_counts=True)
    weight = 1.0 / days[group]
    scale = np.sqrt(np.sum(weight[:, None] * x**2, axis=0) / max(float(np.sum(weight)), 1e-300))
    scale = np.where(scale > 0, scale, 1.0)
    return names, x / scale, scale, y, group, labels, weight, ok


def fit(anomalies: Mapping[str, np.ndarray], error: np.ndarray, station: np.ndarray, min_stations: int,
        alphas: tuple[float, ...] = RIDGE_ALPHAS) -> Refinement:
    """The refinement of the stations' errors (`error`: observed - ensemble at each station-day) on the predictors'
    within-cell `anomalies` there (name -> value at each station-day), `station` the station of each row."""
    names, z, _, y, group, labels, weight, _ = _design(anomalies, error, station)
    out = Refinement(predictors=names, beta=[0.0] * len(names), stations=len(labels), station_days=int(len(y)))
    if len(labels) < max(min_stations, 3):
        out.reason = f"{len(labels)} station(s) with data outside the test days, fewer than {max(min_stations, 3)}"
        return out

    def left_out_rmse(alpha: float | None) -> float:
        """Each station's errors predicted by the others' fit (alpha None: their weighted mean error alone)."""
        sq = 0.0
        for g in range(len(labels)):
            fit_rows, rows = group != g, group == g
            if alpha is None:
                pred = np.sum(weight[fit_rows] * y[fit_rows]) / np.sum(weight[fit_rows])
            else:
                intercept, slopes = _weighted_ridge(z[fit_rows], y[fit_rows], weight[fit_rows], alpha)
                pred = intercept + z[rows] @ slopes
            sq += float(np.sum(weight[rows] * (y[rows] - pred) ** 2))
        return float(np.sqrt(sq / len(labels)))

    scores = {alpha: left_out_rmse(alpha) for alpha in alphas}
    out.alpha = min(scores, key=scores.get)
    out.loso_rmse, out.base_rmse = scores[out.alpha], left_out_rmse(None)
    if out.loso_rmse >= out.base_rmse:
        out.reason = (f"leaving one station out, the anomalies' fit ({out.loso_rmse:.4f}) does not beat the stations' "
                      f"mean error alone ({out.base_rmse:.4f})")
        return out
    out.beta = fitted_beta(anomalies, error, station, out.alpha)
    out.applied = True
    return out


def fitted_beta(anomalies: Mapping[str, np.ndarray], error: np.ndarray, station: np.ndarray,
                alpha: float) -> list[float]:
    """beta (per unit of each predictor's anomaly, in the order of `anomalies`) of the ridge at penalty `alpha` on
    all the stations (the inputs are those of `fit`), whatever the left-one-station-out check would say."""
    _, z, scale, y, _, _, weight, _ = _design(anomalies, error, station)
    _, slopes = _weighted_ridge(z, y, weight, alpha)
    return (slopes / scale).tolist()


def left_out_shifts(anomalies: Mapping[str, np.ndarray], error: np.ndarray, station: np.ndarray,
                    refinement: Refinement) -> np.ndarray:
    """How much the refined ensemble at each station-day would move had its own station been left out of the fit
    (the refinement's slopes refitted on the other stations at its penalty, less its own): the refined map's error
    at a station, with this added, is the error it makes where no station was (0 where not applied; NaN rows stay
    NaN). The inputs are those of `fit` (the errors against the ensemble before refinement)."""
    _, z, scale, y, group, labels, weight, ok = _design(anomalies, error, station)
    out = np.full(len(ok), np.nan)
    if not refinement.applied:
        out[ok] = 0.0
        return out
    fitted = z @ (scale * np.asarray(refinement.beta))  # the refinement's own shift, beta on the raw anomalies
    shifts = np.empty(len(y))
    for g in range(len(labels)):
        rows = group == g
        _, slopes = _weighted_ridge(z[~rows], y[~rows], weight[~rows], refinement.alpha)
        shifts[rows] = z[rows] @ slopes - fitted[rows]
    out[ok] = shifts
    return out


def refine(ensemble: np.ndarray, predictors: Mapping[str, np.ndarray], refinement: Refinement,
           factor: int, means: Mapping[str, np.ndarray] | None = None, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The refined ensemble (days, rows, cols; float32) over whole coarse cells: `predictors` name -> the 30 m
    values of the same pixels, (days, rows, cols) or (rows, cols) for a static one. NaN pixels of the ensemble
    stay NaN; cell means over its finite pixels are unchanged. ``means`` (name -> ``cell_means`` of the predictor
    where the ensemble is finite, over a grid holding the window at cell ``offset`` with ``HALO`` cells around it):
    the window refined as part of that region (see ``cell_anomaly``); without them, the window is the region."""
    out = np.asarray(ensemble, dtype=np.float64).copy()
    if not refinement.applied:
        return out.astype(np.float32)
    mask = np.isfinite(out)
    for name, beta in zip(refinement.predictors, refinement.beta, strict=True):
        values = np.broadcast_to(np.asarray(predictors[name], dtype=np.float64), out.shape)
        out += beta * cell_anomaly(values, factor, mask, None if means is None else means[name], offset)
    return out.astype(np.float32)
