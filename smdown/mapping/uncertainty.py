"""A calibrated uncertainty of the 30 m ensemble: the standard deviation of its error, not the members' spread.

The members' spread (``ensemble_std``) measures how much the members disagree. They are trained on the same data
and corrected to the same coarse means, so they agree far more than they are right: on the demo their spread is a
tenth of the error. The error of a 30 m value has two parts the spread cannot see: the coarse product's own error,
which the coarse correction hands down to every pixel of a cell, and the detail inside the cell that the members
paint wrongly. The uncertainty is modelled as

    sigma^2 = a^2 + (b * ensemble)^2 + (k * detail)^2 + spread^2

per pixel-day, where ``ensemble`` is the ensemble value (wetter soil, larger errors), ``detail`` the pixel's local
detail, |ensemble - its mean over a ``detail_window`` x ``detail_window`` neighbourhood| that day (the fine
structure the members paint: where they paint much of it, they can paint it wrongly by much), and ``spread`` the
members' spread (so the interval is never narrower than the members' disagreement). Its parameters come from the
data a user has:

- k, in both sources, from the self-similarity check of the members (weights.csv: the error of the within-cell
  detail relative to the detail painted, with s the check's std ratio and r its correlation,
  k^2 = mean(1 + s^2 - 2 r s) / mean(s)^2, means weighted by the ensemble weights: within_factor), or
  ``within_factor`` without one. It is not fitted on stations:
  a pixel-scale term needs many pixels, and a station network is a dozen (on the demo the station fit of k is 0).
- ``stations`` (when given, with at least ``min_station_days`` observations on days outside the test days of the
  split), by maximum likelihood of a normal error on the station-days (ensemble at the station's pixel minus the
  observation), each station weighing once whatever its days (a pixel's error persists, so its days are nearly
  one draw). ``station_fit: scale`` (the default): the prior's model (a = ``coarse_error``, the k term) times one
  factor c, drawn towards 1 as if ``prior_weight`` more stations agreed with the prior (fit_scale): a dozen
  stations are a small, noisy sample of a heavy-tailed error, and on the skill panel's tune worlds the stations
  alone made the interval too wide in 3 of 8 layer-worlds (their own error adds, and a few badly painted pixels
  weigh much), the prior alone too narrow in one, the blend with a prior weighing as 12 stations in 7 of 8
  within 80-95 %. ``station_fit: ab``: a and b (the growth with wetness) on the stations alone, the k term of
  the prior inside the likelihood. ``station_fit: learned``: where the error is large is learned from the
  stations too (fit_error_model): a ridge regression of |error| on the maps' values at the station pixel-days (the
  ensemble, its detail and spread, the coarse field and the predictors on the 30 m grid), its penalty chosen by
  leaving one station out, gives the error's size at every pixel-day; its level is then blended with the prior's
  as in ``scale``. The error's size follows the soil, the terrain and the wetness in ways that differ from one
  region to the next, so only data from the region can say how; on the skill panel it raised the surface's
  spread-error correlation from about 0 to about 0.4, and not the root zone's. The stations' own error (sensor,
  point against pixel) counts as model error unless ``station_error`` (m3/m3) is given, which is removed in quadrature: without it the interval is wide by
  that much.
- ``prior`` (no stations): a = ``coarse_error`` of the layer (the coarse product's published accuracy, e.g. SMAP
  L4's 0.04 / 0.03 m3/m3 at core sites), b = 0.

Pure numpy and scipy; the rule step (smdown.mapping.uncertainty_steps) reads and writes the rasters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import uniform_filter
from scipy.optimize import minimize

SOURCES = ("stations", "prior")


SQRT_HALF_PI = float(np.sqrt(np.pi / 2))  # sd / mean |error| of a normal error
RIDGE_ALPHAS = tuple(float(a) for a in np.geomspace(0.01, 1e4, 25))  # the penalties tried (standardised features)
FLOOR_SHARE = 0.25  # the smallest |error| the learned model predicts, as a share of the stations' mean |error|
MIN_LEARNING_STATIONS = 3  # fewer: the error model cannot leave one station out and still fit on several


@dataclass
class ErrorModel:
    """The error's size at a pixel-day from the maps' values there (``names``): sqrt(pi/2) max(floor, intercept +
    sum coef (value - mean) / scale), a ridge regression of |error| fitted at the stations, times ``level``. Each
    value is first clipped to the range the stations saw (``low``, ``high``): a linear model fitted on a dozen
    pixels says nothing beyond them, and unclipped it can paint errors of any size there."""

    names: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    floor: float
    alpha: float
    level: float = 1.0
    low: list[float] | None = None
    high: list[float] | None = None

    def size(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """The standard deviation of the error, float32, from {name: values} of one shape (NaN counts as the
        feature's mean)."""
        total = None
        low = self.low or [-np.inf] * len(self.names)
        high = self.high or [np.inf] * len(self.names)
        for name, mean, scale, coef, lo, hi in zip(self.names, self.mean, self.scale, self.coef, low, high,
                                                   strict=True):
            values = np.clip(np.asarray(features[name], dtype=np.float32), np.float32(lo), np.float32(hi))
            term = np.nan_to_num((values - np.float32(mean)) * np.float32(coef / scale))
            total = term if total is None else total + term
        return (np.float32(self.level * SQRT_HALF_PI) * np.maximum(total + np.float32(self.intercept),
                                                                  np.float32(self.floor))).astype(np.float32)


@dataclass
class Calibration:
    """sigma^2 = a^2 + (b * ensemble)^2 + (k * detail)^2 + spread^2, or with a learned ``model``
    sigma^2 = model.size^2 + spread^2; `source`: what set them; `n`: the station-days of the fit (0 for the
    prior)."""

    a: float
    b: float = 0.0
    k: float = 0.0
    source: str = "prior"
    n: int = 0
    model: ErrorModel | None = None

    @classmethod
    def from_dict(cls, data: Mapping) -> Calibration:
        """The calibration that dataclasses.asdict wrote (calibration.json), its learned model included."""
        model = data.get("model")
        return cls(**{**data, "model": ErrorModel(**model) if model else None})

    def as_dict(self) -> dict:
        """A flat row (calibration.csv): the learned model's features, penalty and level, not its coefficients."""
        row = {key: value for key, value in asdict(self).items() if key != "model"}
        if self.model is not None:
            row.update(model_features=" ".join(self.model.names), model_alpha=self.model.alpha,
                       model_level=self.model.level)
        return row


def local_detail(field: np.ndarray, window: int, halo: int = 0) -> np.ndarray:
    """|field - its mean over a window x window neighbourhood| per day of a field (days, rows, cols), float32.

    `window` is made odd (an even one grows by 1); NaN pixels are left out of the means (a NaN pixel stays NaN).
    With `halo` > 0 the field carries that many extra rows and columns on each side (io.read_block), which feed
    the means and are cropped from the result; beyond them the edge values repeat (scipy's "nearest")."""
    field = np.asarray(field, dtype=np.float32)
    half = max(int(window), 1) // 2
    if half == 0:
        out = np.zeros_like(field)
    else:
        finite = np.isfinite(field)
        size = (1, 2 * half + 1, 2 * half + 1)
        total = uniform_filter(np.where(finite, field, 0.0).astype(np.float64), size=size, mode="nearest")
        count = uniform_filter(finite.astype(np.float64), size=size, mode="nearest")
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.abs(field - total / count).astype(np.float32)
        out[~finite] = np.nan
    if halo:
        out = out[:, halo:-halo, halo:-halo]
    return out


def sigma(ensemble: np.ndarray, spread: np.ndarray, detail: np.ndarray, calibration: Calibration,
          features: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The uncertainty (float32, NaN where the ensemble is NaN; a NaN spread or detail counts as 0). A learned
    model reads the ensemble, detail and spread given here and the other maps from ``features``."""
    c = calibration
    if c.model is not None:
        values = {**(features or {}), "ensemble": ensemble, "detail": detail, "spread": spread}
        var = c.model.size(values) ** 2 + np.nan_to_num(spread) ** 2
        out = np.sqrt(var).astype(np.float32)
        out[~np.isfinite(ensemble)] = np.nan
        return out
    var = np.full(ensemble.shape, np.float32(c.a) ** 2, dtype=np.float32)
    if c.b:
        var += (np.float32(c.b) * ensemble) ** 2
    if c.k:
        var += np.nan_to_num(np.float32(c.k) * detail) ** 2
    var += np.nan_to_num(spread) ** 2
    out = np.sqrt(var)
    out[~np.isfinite(ensemble)] = np.nan
    return out


def within_factor(table: Mapping[str, np.ndarray] | None, default: float) -> float:
    """k of the prior from the members' self-similarity check (columns member, weight, similarity_r,
    similarity_ratio of weights.csv), over the weighted members with a check: the error of the detail relative to
    the truth's detail, 1 + s^2 - 2 r s per member (s its std ratio, r its correlation), over the detail the
    ensemble paints relative to the truth's, the weighted mean s (the ensemble's detail is about the members'
    weighted mean): k = sqrt(sum_i w_i (1 + s_i^2 - 2 r_i s_i) / sum_i w_i) / (sum_i w_i s_i / sum_i w_i).
    A member that paints almost no detail (s near 0) weighs in s as little as it paints, where a ratio per member
    (k_i = sqrt(1 + s_i^2 - 2 r_i s_i) / s_i) would be unbounded. `default` where no member has a check."""
    if table is None or "similarity_r" not in table or "similarity_ratio" not in table:
        return float(default)
    w = np.asarray(table["weight"], dtype=float)
    r = np.asarray(table["similarity_r"], dtype=float)
    s = np.asarray(table["similarity_ratio"], dtype=float)
    ok = (w > 0) & np.isfinite(r) & np.isfinite(s) & (s > 0)
    if not ok.any():
        return float(default)
    w, r, s = w[ok] / np.sum(w[ok]), r[ok], s[ok]
    return float(np.sqrt(np.sum(w * (1.0 + s**2 - 2.0 * r * s))) / np.sum(w * s))


def station_weights(station: np.ndarray | None, ok: np.ndarray) -> tuple[np.ndarray, float]:
    """Each finite row's weight (summing to 1) and the number of units: with `station` (each row's station) every
    station weighs as one observation whatever its days (a pixel's error persists from day to day, so a station's
    days are nearly one draw); without, every row is one."""
    if station is None:
        units = float(ok.sum())
        return np.full(int(ok.sum()), 1.0 / units), units
    _, group, days = np.unique(np.asarray(station).ravel()[ok], return_inverse=True, return_counts=True)
    return 1.0 / (days[group] * len(days)), float(len(days))


def _station_rows(ensemble, spread, error, detail):
    """The finite station-days (ensemble, when given, and error finite) of each array, NaN spread and detail as 0,
    and the mask that picked them."""
    e, s = np.asarray(error, dtype=float).ravel(), np.asarray(spread, dtype=float).ravel()
    m = np.zeros_like(e) if ensemble is None else np.asarray(ensemble, dtype=float).ravel()
    d = np.zeros_like(e) if detail is None else np.asarray(detail, dtype=float).ravel()
    ok = np.isfinite(m) & np.isfinite(e)
    if ok.sum() < 3:
        raise ValueError(f"{int(ok.sum())} station-days: too few to calibrate the uncertainty")
    return m[ok], np.nan_to_num(s[ok]), e[ok], np.nan_to_num(d[ok]), ok


def fit_stations(ensemble: np.ndarray, spread: np.ndarray, error: np.ndarray, station_error: float = 0.0,
                 detail: np.ndarray | None = None, k: float = 0.0, station: np.ndarray | None = None) -> Calibration:
    """a, b by maximum likelihood of error ~ N(0, a^2 + (b ensemble)^2 + (k detail)^2 + spread^2 + station_error^2)
    over the finite station-days, k and the detail at the stations' pixels given (the prior's k: see the module);
    the station's own error is then left out of the uncertainty. With ``station`` (each row's station), every
    station weighs as one observation (station_weights)."""
    m, s, e, d, ok = _station_rows(ensemble, spread, error, detail)
    weight, _ = station_weights(station, ok)
    fixed = s**2 + (k * d) ** 2 + station_error**2 + 1e-10
    rms = max(float(np.sqrt(np.sum(weight * e * e))), 1e-4)

    def nll(params: np.ndarray) -> float:
        """Weighted mean negative log-likelihood (up to constants) of (log a, b)."""
        var = np.exp(2 * params[0]) + (params[1] * m) ** 2 + fixed
        return float(np.sum(weight * (np.log(var) + e * e / var)))

    # b starts inside its range: at b = 0 the likelihood is flat in b (it enters squared)
    start_b = min(0.5 * rms / max(float(np.mean(np.abs(m))), 1e-3), 5.0)
    fit = minimize(nll, np.array([np.log(rms), start_b]), method="L-BFGS-B",
                   bounds=[(np.log(rms) - 8, np.log(rms) + 2), (0.0, 5.0)])
    return Calibration(a=float(np.exp(fit.x[0])), b=float(fit.x[1]), k=float(k), source="stations", n=int(len(e)))


def fit_scale(spread: np.ndarray, error: np.ndarray, prior_a: float, detail: np.ndarray | None = None,
              k: float = 0.0, station: np.ndarray | None = None, station_error: float = 0.0,
              prior_weight: float = 0.0) -> Calibration:
    """The prior's model scaled by the stations: sigma^2 = c^2 (prior_a^2 + (k detail)^2) + spread^2, c by maximum
    likelihood over the station-days (the station error added to each), each station weighing once
    (station_weights). With ``prior_weight`` > 0, c^2 is drawn towards 1 as by that many stations that agree with
    the prior (a conjugate prior on c^2): a dozen stations whose errors persist say little about a region's
    error, and the prior (the coarse product's published accuracy, the members' self-similarity check) is the
    other thing a user knows. Returns the calibration with a = c prior_a, k = c k, b = 0."""
    _, s, e, d, ok = _station_rows(None, spread, error, detail)
    weight, units = station_weights(station, ok)
    base = prior_a**2 + (k * d) ** 2 + 1e-10
    fixed = s**2 + station_error**2
    share = prior_weight / units

    def nll(log_c2: np.ndarray) -> float:
        c2 = float(np.exp(log_c2[0]))
        var = c2 * base + fixed
        return float(np.sum(weight * (np.log(var) + e * e / var)) + share * (np.log(c2) + 1.0 / c2))

    fit = minimize(nll, np.zeros(1), method="L-BFGS-B", bounds=[(-12.0, 12.0)])
    c = float(np.exp(fit.x[0] / 2))
    return Calibration(a=c * prior_a, b=0.0, k=c * k, source="stations", n=int(len(e)))


def _ridge_predictions(x: np.ndarray, y: np.ndarray, alpha: float, fit_rows: np.ndarray, rows: np.ndarray):
    """Ridge of y on standardised x fitted on `fit_rows`, predicted at `rows`; (prediction, mean, scale, model)."""
    from sklearn.linear_model import Ridge

    mean, scale = x[fit_rows].mean(axis=0), x[fit_rows].std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model = Ridge(alpha=alpha).fit((x[fit_rows] - mean) / scale, y[fit_rows])
    return model.predict((x[rows] - mean) / scale), mean, scale, model


def fit_error_model(features: Mapping[str, np.ndarray], error: np.ndarray, station: np.ndarray,
                    alphas: tuple[float, ...] = RIDGE_ALPHAS) -> tuple[ErrorModel, np.ndarray]:
    """Where the error is large, learned at the stations: a ridge regression of |error| on the maps' values
    (``features``: name -> value at each station-day) with its penalty chosen by leaving one station out (each
    station weighing once: a station's days share one pixel's persistent error, so they are not independent).
    Returns the model (level 1) and the error's size at each station-day predicted without its own station (for
    the level's fit), both floored at FLOOR_SHARE of the stations' mean |error|."""
    names = list(features)
    x = np.stack([np.asarray(features[n], dtype=float) for n in names], axis=1)
    y = np.abs(np.asarray(error, dtype=float))
    ok = np.isfinite(y) & np.all(np.isfinite(x), axis=1)
    x, y, groups = x[ok], y[ok], np.asarray(station)[ok]
    labels, group, days = np.unique(groups, return_inverse=True, return_counts=True)
    if len(labels) < MIN_LEARNING_STATIONS:
        raise ValueError(f"{len(labels)} station(s): too few to learn where the error is large")
    weight = 1.0 / days[group]
    every = np.arange(len(y))

    def left_out(alpha: float) -> np.ndarray:
        out = np.empty_like(y)
        for g in range(len(labels)):
            out[group == g] = _ridge_predictions(x, y, alpha, group != g, group == g)[0]
        return out

    scores = {alpha: float(np.sum(weight * (left_out(alpha) - y) ** 2)) for alpha in alphas}
    alpha = min(scores, key=scores.get)
    _, mean, scale, ridge = _ridge_predictions(x, y, alpha, every, every)
    floor = FLOOR_SHARE * float(np.sum(weight * y) / len(labels))
    model = ErrorModel(names, mean.tolist(), scale.tolist(), ridge.coef_.tolist(), float(ridge.intercept_), floor,
                       alpha, low=x.min(axis=0).tolist(), high=x.max(axis=0).tolist())
    loso = np.full(len(ok), np.nan)
    loso[ok] = SQRT_HALF_PI * np.maximum(left_out(alpha), floor)
    return model, loso


def coverage(error: np.ndarray, sigma_: np.ndarray, z: float = 1.6448536269514722) -> float:
    """Share of the finite pairs with |error| <= z sigma (z = 1.645: the central 90 % normal interval)."""
    e, s = np.asarray(error, dtype=float), np.asarray(sigma_, dtype=float)
    ok = np.isfinite(e) & np.isfinite(s)
    return float(np.mean(np.abs(e[ok]) <= z * s[ok])) if ok.any() else float("nan")
