"""Skill metrics of a prediction against a reference, NaN-aware (pairs where both are finite).

Array functions (``r``, ``bias``, ``rmse``, ``ubrmse``, ``kge``, ``anomaly_r``, ``n``,
``all_metrics``) take two arrays of the same shape. ``Accumulator`` gives the same numbers
streamed over blocks, so an evaluation never holds a whole run in memory.

Definitions (pred = prediction, ref = reference, over the finite pairs):

- ``bias``   = mean(pred - ref)
- ``rmse``   = sqrt(mean((pred - ref)^2))
- ``ubrmse`` = sqrt(rmse^2 - bias^2) (Entekhabi et al. 2010; no rescaling)
- ``r``      = Pearson correlation
- ``kge``    = 1 - sqrt((r - 1)^2 + (alpha - 1)^2 + (beta - 1)^2), alpha = sd(pred)/sd(ref),
  beta = mean(pred)/mean(ref) (Gupta et al. 2009; population standard deviations)
- ``anomaly_r`` = correlation of within-coarse-cell anomalies: from both pred and ref each
  coarse cell's mean (per day, over the paired pixels of the block) is subtracted, then the
  anomalies are correlated. It measures the sub-cell detail a downscaler adds; a method that is
  constant within each cell has no anomaly variance and gets NaN.

Beyond skill: ``Seams`` (the coarse grid showing in a fine map: mean |difference| of neighbours
across a cell edge over the same inside cells), ``Spread`` (coverage, spread-error correlation,
reliability and proper scores of a predicted standard deviation: ``crps_normal`` and
``interval_score``, each beside a constant standard deviation of the same coverage) and ``ClusterSums`` / ``bootstrap_ci`` (95 %
intervals of r, bias, rmse and ubrmse by a bootstrap over spatial clusters and blocks of days,
memory bounded by one row of sums per cluster and block).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.special import ndtr

METRICS = ("r", "bias", "rmse", "ubrmse", "n", "anomaly_r", "kge")


def paired(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The finite pairs of two same-shape arrays, flattened to float64."""
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    ok = np.isfinite(pred) & np.isfinite(ref)
    return pred[ok], ref[ok]


def n(pred: np.ndarray, ref: np.ndarray) -> int:
    """Number of pairs where both are finite."""
    return int(paired(pred, ref)[0].size)


def bias(pred: np.ndarray, ref: np.ndarray) -> float:
    p, o = paired(pred, ref)
    return float(np.mean(p - o)) if p.size else float("nan")


def rmse(pred: np.ndarray, ref: np.ndarray) -> float:
    p, o = paired(pred, ref)
    return float(np.sqrt(np.mean((p - o) ** 2))) if p.size else float("nan")


def ubrmse(pred: np.ndarray, ref: np.ndarray) -> float:
    """Unbiased RMSE, sqrt(rmse^2 - bias^2) (Entekhabi et al. 2010)."""
    return _ubrmse(rmse(pred, ref), bias(pred, ref))


def _ubrmse(rmse_: float, bias_: float) -> float:
    return float(np.sqrt(max(rmse_**2 - bias_**2, 0.0))) if np.isfinite(rmse_) else float("nan")


def _corr(var_p: float, var_o: float, cov: float) -> float:
    if not (var_p > 0 and var_o > 0):
        return float("nan")
    return float(np.clip(cov / np.sqrt(var_p * var_o), -1.0, 1.0))


def r(pred: np.ndarray, ref: np.ndarray) -> float:
    """Pearson correlation (NaN with fewer than two pairs or a constant side)."""
    p, o = paired(pred, ref)
    if p.size < 2:
        return float("nan")
    dp, do = p - p.mean(), o - o.mean()
    return _corr(float(np.mean(dp * dp)), float(np.mean(do * do)), float(np.mean(dp * do)))


def _kge(r_: float, mean_p: float, mean_o: float, var_p: float, var_o: float) -> float:
    if not (np.isfinite(r_) and var_o > 0 and mean_o != 0):
        return float("nan")
    alpha = np.sqrt(var_p / var_o)
    beta = mean_p / mean_o
    return float(1.0 - np.sqrt((r_ - 1.0) ** 2 + (alpha - 1.0) ** 2 + (beta - 1.0) ** 2))


def kge(pred: np.ndarray, ref: np.ndarray) -> float:
    """Kling-Gupta efficiency (Gupta et al. 2009); 1 is perfect."""
    p, o = paired(pred, ref)
    if p.size < 2:
        return float("nan")
    return _kge(r(p, o), float(p.mean()), float(o.mean()), float(p.var()), float(o.var()))


def cell_anomalies(pred: np.ndarray, ref: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Within-coarse-cell anomalies of both arrays (..., rows, cols), NaN outside the finite pairs.

    Each factor x factor block's mean over its paired pixels (per leading index, e.g. per day) is
    subtracted from both sides.
    """
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    ok = np.isfinite(pred) & np.isfinite(ref)
    p = np.where(ok, pred, np.nan)
    o = np.where(ok, ref, np.nan)
    return _anomaly(p, factor), _anomaly(o, factor)


def _anomaly(values: np.ndarray, factor: int) -> np.ndarray:
    """Values minus their block mean (float64; rounding noise of a constant block is zeroed)."""
    *lead, rows, cols = values.shape
    if rows % factor or cols % factor:
        raise ValueError(f"shape {rows}x{cols} is not a multiple of factor {factor}")
    blocks = values.reshape(*lead, rows // factor, factor, cols // factor, factor)
    finite = np.isfinite(blocks)
    count = finite.sum(axis=(-3, -1), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, blocks, 0.0).sum(axis=(-3, -1), keepdims=True) / count
    anomaly = blocks - mean
    anomaly = np.where(np.abs(anomaly) <= 1e-12 * np.abs(mean), 0.0, anomaly)
    return anomaly.reshape(values.shape)


def anomaly_r(pred: np.ndarray, ref: np.ndarray, factor: int) -> float:
    """Correlation of within-coarse-cell anomalies (see the module docstring)."""
    return r(*cell_anomalies(pred, ref, factor))


def all_metrics(pred: np.ndarray, ref: np.ndarray, factor: int | None = None) -> dict[str, float]:
    """All metrics in a dict (keys METRICS); anomaly_r is NaN without a factor."""
    acc = Accumulator(factor)
    acc.update(pred, ref)
    return acc.result()


# ---------------------------------------------------------------- streaming


@dataclass
class Moments:
    """Running first and second moments of finite pairs (Chan et al. parallel update; float64)."""

    n: int = 0
    mean_p: float = 0.0
    mean_o: float = 0.0
    m2_p: float = 0.0
    m2_o: float = 0.0
    c_po: float = 0.0

    def update(self, pred: np.ndarray, ref: np.ndarray) -> None:
        p, o = paired(pred, ref)
        if p.size:
            mp, mo = p.mean(), o.mean()
            dp, do = p - mp, o - mo
            self.merge(Moments(int(p.size), float(mp), float(mo), float(dp @ dp), float(do @ do), float(dp @ do)))

    def merge(self, other: Moments) -> None:
        if other.n == 0:
            return
        if self.n == 0:
            self.n, self.mean_p, self.mean_o = other.n, other.mean_p, other.mean_o
            self.m2_p, self.m2_o, self.c_po = other.m2_p, other.m2_o, other.c_po
            return
        total = self.n + other.n
        dp = other.mean_p - self.mean_p
        do = other.mean_o - self.mean_o
        w = self.n * other.n / total
        self.m2_p += other.m2_p + dp * dp * w
        self.m2_o += other.m2_o + do * do * w
        self.c_po += other.c_po + dp * do * w
        self.mean_p += dp * other.n / total
        self.mean_o += do * other.n / total
        self.n = total

    @property
    def var_p(self) -> float:
        return self.m2_p / self.n if self.n else float("nan")

    @property
    def var_o(self) -> float:
        return self.m2_o / self.n if self.n else float("nan")

    @property
    def cov(self) -> float:
        return self.c_po / self.n if self.n else float("nan")

    def r(self) -> float:
        return _corr(self.var_p, self.var_o, self.cov) if self.n >= 2 else float("nan")

    def metrics(self) -> dict[str, float]:
        """r, bias, rmse, ubrmse, kge and n of the pairs seen so far."""
        if self.n == 0:
            nan = float("nan")
            return dict(r=nan, bias=nan, rmse=nan, ubrmse=nan, kge=nan, n=0)
        bias_ = self.mean_p - self.mean_o
        var_d = max(self.var_p + self.var_o - 2.0 * self.cov, 0.0)
        rmse_ = float(np.sqrt(bias_**2 + var_d))
        r_ = self.r()
        return dict(
            r=r_,
            bias=float(bias_),
            rmse=rmse_,
            ubrmse=float(np.sqrt(var_d)),
            kge=_kge(r_, self.mean_p, self.mean_o, self.var_p, self.var_o),
            n=int(self.n),
        )


class Accumulator:
    """All metrics streamed over blocks: ``update(pred, ref)`` per block, then ``result()``.

    With a ``factor``, each block must be (..., rows, cols) made of whole coarse cells and the
    within-cell anomaly correlation is accumulated too; without one, anomaly_r is NaN.
    """

    def __init__(self, factor: int | None = None) -> None:
        self.factor = factor
        self.values = Moments()
        self.anomalies = Moments()

    def update(self, pred: np.ndarray, ref: np.ndarray) -> None:
        self.values.update(pred, ref)
        if self.factor is not None:
            self.anomalies.update(*cell_anomalies(pred, ref, self.factor))

    def result(self) -> dict[str, float]:
        out = self.values.metrics()
        out["anomaly_r"] = self.anomalies.r() if self.factor is not None else float("nan")
        return {key: out[key] for key in METRICS}


# ---------------------------------------------------------------- seams


@dataclass
class Seams:
    """Mean absolute difference between 4-neighbour fine pixels across a coarse-cell edge and inside cells.

    ``ratio`` = across / inside. A map corrected by one constant per coarse cell shows the coarse
    grid as steps: a ratio well above 1. A field without the coarse grid in it has a ratio near 1 (a
    little below where cells are statistically homogeneous inside). ``update(field, factor, row,
    col)`` takes a window (..., rows, cols) whose first pixel is at fine ``(row, col)`` of the grid
    (so edges are placed right wherever a window starts); only pairs where both pixels are finite
    count. To stream over windows that tile a grid and still count the pairs between them, give
    each window with one more pixel row and column (where the grid has them) and its own size as
    ``extent``: only pairs whose first pixel lies in the window proper are counted.
    """

    across: float = 0.0
    n_across: int = 0
    inside: float = 0.0
    n_inside: int = 0

    def update(self, field: np.ndarray, factor: int, row: int = 0, col: int = 0,
               extent: tuple[int, int] | None = None) -> None:
        field = np.asarray(field, dtype=np.float64)
        height, width = extent if extent is not None else field.shape[-2:]
        if field.shape[-2] < height or field.shape[-1] < width:
            raise ValueError(f"window {field.shape[-2:]} is smaller than its extent {(height, width)}")
        for axis, start, own in ((-1, col, width), (-2, row, height)):
            # pairs (j, j + 1) with j inside the window proper; the other axis cut to the window proper
            part = field[..., :height, : min(width + 1, field.shape[-1])] if axis == -1 else \
                field[..., : min(height + 1, field.shape[-2]), :width]
            size = part.shape[axis]
            if size < 2:
                continue
            diff = np.abs(np.diff(part, axis=axis))
            pairs = min(own, size - 1)
            diff = diff[..., :pairs] if axis == -1 else diff[..., :pairs, :]
            # the difference between pixels j and j+1 crosses an edge where (start + j + 1) % factor == 0
            edge = (start + np.arange(1, pairs + 1)) % factor == 0
            edge = edge if axis == -1 else edge[:, None]
            ok = np.isfinite(diff)
            cross = ok & edge
            within = ok & ~edge
            self.across += float(diff[cross].sum())
            self.n_across += int(cross.sum())
            self.inside += float(diff[within].sum())
            self.n_inside += int(within.sum())

    def merge(self, other: Seams) -> None:
        """Add another's pairs (e.g. another tile's)."""
        self.across += other.across
        self.n_across += other.n_across
        self.inside += other.inside
        self.n_inside += other.n_inside

    def result(self) -> dict[str, float]:
        """seam_ratio, across (mean |difference| across edges), inside (same within cells) and the counts."""
        across = self.across / self.n_across if self.n_across else float("nan")
        inside = self.inside / self.n_inside if self.n_inside else float("nan")
        ratio = across / inside if self.n_across and self.n_inside and inside > 0 else float("nan")
        return dict(seam_ratio=ratio, across=across, inside=inside, n_across=self.n_across, n_inside=self.n_inside)


def seam_ratio(field: np.ndarray, factor: int) -> float:
    """Seam ratio of a whole field (..., rows, cols) on a grid nested ``factor`` times (see ``Seams``)."""
    seams = Seams()
    seams.update(field, factor)
    return seams.result()["seam_ratio"]


# ---------------------------------------------------------------- uncertainty

#: nominal coverages of the reliability table (central intervals of a normal error)
NOMINAL = (0.5, 0.68, 0.8, 0.9, 0.95, 0.99)
#: the interval reported in the uncertainty table: mean +/- Z90 std covers 90 % of a normal error
Z90 = 1.6448536269514722


def _z(nominal: float) -> float:
    """Half width, in standard deviations, of the central normal interval holding ``nominal``."""
    return NormalDist().inv_cdf(0.5 + nominal / 2.0)


def crps_normal(error: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The continuous ranked probability score of a normal forecast N(mean, std) at an outcome ``mean + error``,
    in closed form (Gneiting and Raftery 2007): ``std * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))``, z =
    error / std; |error| where std is 0. Lower is better; a forecast without spread scores its absolute error."""
    error = np.abs(np.asarray(error, dtype=np.float64))
    std = np.asarray(std, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 0, error / np.where(std > 0, std, 1.0), 0.0)
    pdf = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    score = std * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * pdf - 1.0 / np.sqrt(np.pi))
    return np.where(std > 0, score, error)


def interval_score(error: np.ndarray, half_width: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    """The interval score of the central interval mean +/- ``half_width`` at an outcome ``mean + error``
    (Gneiting and Raftery 2007, for a (1 - alpha) interval): its width, plus 2 / alpha times how far the outcome
    falls outside it. Lower is better; its mean is least for the interval whose ends are the true quantiles."""
    error = np.abs(np.asarray(error, dtype=np.float64))
    half_width = np.asarray(half_width, dtype=np.float64)
    return 2.0 * half_width + 2.0 / alpha * np.maximum(error - half_width, 0.0)


#: the proper scores of ``Spread.result()`` (beside coverage90, spread_error_r, mean_std, mae, rmse, n)
PROPER_SCORES = ("crps", "crps_constant", "crps_skill", "interval_score_90", "interval_score_90_constant",
                 "interval_skill", "constant_std")


def _skill(score: float, reference: float) -> float:
    """1 - score / reference (NaN without a positive reference)."""
    return 1.0 - score / reference if reference > 0 else float("nan")


class Spread:
    """How well a predicted standard deviation describes the error of a prediction, streamed.

    ``update(pred, std, ref)`` per block; triples where all three are finite count. ``result()``:
    coverage90 (share of |pred - ref| <= 1.645 std), spread_error_r (Pearson correlation of std and
    |pred - ref|), mean_std, mae, rmse, n. ``coverage()``: observed against nominal coverage of the
    central normal intervals. ``reliability()``: the pairs binned by predicted std (fixed log bins,
    merged until each holds ``min_count``), with the RMS of std and the observed RMSE per bin. A
    well calibrated std has coverage near nominal and RMSE near the RMS std in every bin.

    Proper scores (``result()``; lower is better): ``crps``, the mean CRPS of N(pred, std) (``crps_normal``), and
    ``interval_score_90``, the mean interval score of pred +/- 1.645 std (``interval_score``). Coverage alone
    rewards an interval wide everywhere; these also reward a narrow one where the error is small. Each beside
    the same score of a *constant* standard deviation ``constant_std`` chosen to cover as often as the std does
    (pred +/- 1.645 constant_std holds the same share of the pairs): ``crps_constant``,
    ``interval_score_90_constant``; ``crps_skill`` = 1 - crps / crps_constant and ``interval_skill`` likewise
    say what knowing where the error is large is worth (0: no more than a constant of the same coverage). The
    constant's scores come from a histogram of |error| (``ERROR_EDGES``: 200 log bins a decade), to about 1e-4
    of their value. Everything is a sum, so spreads of parts ``merge`` exactly.
    """

    EDGES = np.concatenate([[0.0], np.logspace(-5, 0, 51), [np.inf]])
    #: bins of |error| for the constant-std reference: 0, then 200 a decade from 1e-9 to 1e3, then beyond
    ERROR_EDGES = np.concatenate([[0.0], np.logspace(-9, 3, 2401), [np.inf]])

    def __init__(self, nominal: tuple[float, ...] = NOMINAL) -> None:
        self.nominal = tuple(nominal)
        self.z = np.array([_z(p) for p in self.nominal])
        self.inside = np.zeros(len(self.nominal), dtype=np.int64)
        self.inside90 = 0
        self.moments = Moments()
        self.abs_err = 0.0
        bins = len(self.EDGES) - 1
        self.count = np.zeros(bins, dtype=np.int64)
        self.var_sum = np.zeros(bins)
        self.sq_err = np.zeros(bins)
        self.crps_sum = 0.0
        self.interval_sum = 0.0
        self.err_count = np.zeros(len(self.ERROR_EDGES) - 1, dtype=np.int64)
        self.err_sum = np.zeros(len(self.ERROR_EDGES) - 1)

    def update(self, pred: np.ndarray, std: np.ndarray, ref: np.ndarray) -> None:
        pred, std, ref = (np.asarray(a, dtype=np.float64) for a in (pred, std, ref))
        if not (pred.shape == std.shape == ref.shape):
            raise ValueError(f"shapes differ: pred {pred.shape}, std {std.shape}, ref {ref.shape}")
        ok = np.isfinite(pred) & np.isfinite(std) & np.isfinite(ref)
        err = np.abs(pred[ok] - ref[ok])
        s = std[ok]
        if not err.size:
            return
        self.inside += (err[:, None] <= self.z[None, :] * s[:, None]).sum(axis=0)
        self.inside90 += int((err <= Z90 * s).sum())
        self.moments.update(s, err)
        self.abs_err += float(err.sum())
        b = np.clip(np.searchsorted(self.EDGES, s, side="right") - 1, 0, len(self.count) - 1)
        self.count += np.bincount(b, minlength=len(self.count))
        self.var_sum += np.bincount(b, weights=s * s, minlength=len(self.count))
        self.sq_err += np.bincount(b, weights=err * err, minlength=len(self.count))
        self.crps_sum += float(crps_normal(err, s).sum())
        self.interval_sum += float(interval_score(err, Z90 * s).sum())
        e = np.clip(np.searchsorted(self.ERROR_EDGES, err, side="right") - 1, 0, len(self.err_count) - 1)
        self.err_count += np.bincount(e, minlength=len(self.err_count))
        self.err_sum += np.bincount(e, weights=err, minlength=len(self.err_count))

    def merge(self, other: Spread) -> None:
        """Add another's pairs (e.g. another tile's or another cell's); the same nominal coverages."""
        if other.nominal != self.nominal:
            raise ValueError(f"spreads of nominal coverages {self.nominal} and {other.nominal} do not merge")
        self.inside += other.inside
        self.inside90 += other.inside90
        self.moments.merge(other.moments)
        self.abs_err += other.abs_err
        for name in ("count", "var_sum", "sq_err", "err_count", "err_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.crps_sum += other.crps_sum
        self.interval_sum += other.interval_sum

    def constant_half_width(self, coverage: float) -> float:
        """The half width w whose interval pred +/- w holds ``coverage`` of the pairs' |error| (the histogram's
        quantile, linear inside a bin)."""
        n_ = int(self.err_count.sum())
        if not n_:
            return float("nan")
        target = float(np.clip(coverage, 0.0, 1.0)) * n_
        cum = np.cumsum(self.err_count)
        i = int(np.searchsorted(cum, target, side="left"))
        i = min(i, len(cum) - 1)
        below = cum[i] - self.err_count[i]
        lo = self.ERROR_EDGES[i]
        hi = self.ERROR_EDGES[i + 1] if np.isfinite(self.ERROR_EDGES[i + 1]) else self.err_sum[i] / self.err_count[i]
        if not self.err_count[i]:
            return float(lo)
        return float(lo + (hi - lo) * (target - below) / self.err_count[i])

    def constant_scores(self, coverage: float) -> dict[str, float]:
        """constant_std, crps_constant and interval_score_90_constant of the constant std whose 90 % interval
        covers ``coverage`` of the pairs, from the histogram of |error| (each bin at its mean |error|)."""
        n_ = int(self.err_count.sum())
        if not n_:
            nan = float("nan")
            return dict(constant_std=nan, crps_constant=nan, interval_score_90_constant=nan)
        width = self.constant_half_width(coverage)
        std = width / Z90
        full = self.err_count > 0
        mean_err = self.err_sum[full] / self.err_count[full]
        crps = float(np.sum(self.err_count[full] * crps_normal(mean_err, np.full(mean_err.shape, std))))
        # outside the interval: whole bins above the width by their sums, the bin holding it as if uniform inside
        lo, hi = self.ERROR_EDGES[:-1], self.ERROR_EDGES[1:]
        above = lo >= width
        excess = float(np.sum(self.err_sum[above] - width * self.err_count[above]))
        part = np.flatnonzero((lo < width) & (hi > width) & (self.err_count > 0))
        for j in part:
            top = hi[j] if np.isfinite(hi[j]) else self.err_sum[j] / self.err_count[j]
            if top > width:
                excess += float(self.err_count[j] * (top - width) ** 2 / (2.0 * (top - lo[j])))
        return dict(constant_std=std, crps_constant=crps / n_,
                    interval_score_90_constant=2.0 * width + 2.0 / 0.1 * excess / n_)

    def result(self) -> dict[str, float]:
        n_ = self.moments.n
        if not n_:
            nan = float("nan")
            return dict(coverage90=nan, spread_error_r=nan, mean_std=nan, mae=nan, rmse=nan, n=0,
                        **{k: nan for k in PROPER_SCORES})
        constant = self.constant_scores(self.inside90 / n_)
        crps, interval = self.crps_sum / n_, self.interval_sum / n_
        return dict(
            coverage90=self.inside90 / n_,
            spread_error_r=self.moments.r(),
            mean_std=self.moments.mean_p,
            mae=self.abs_err / n_,
            rmse=float(np.sqrt(self.sq_err.sum() / n_)),
            n=int(n_),
            crps=crps,
            crps_constant=constant["crps_constant"],
            crps_skill=_skill(crps, constant["crps_constant"]),
            interval_score_90=interval,
            interval_score_90_constant=constant["interval_score_90_constant"],
            interval_skill=_skill(interval, constant["interval_score_90_constant"]),
            constant_std=constant["constant_std"],
        )

    def coverage(self) -> list[dict]:
        """Rows of nominal and observed coverage (NaN observed without pairs)."""
        n_ = self.moments.n
        return [dict(nominal=p, z=float(z), observed=(int(k) / n_ if n_ else float("nan")))
                for p, z, k in zip(self.nominal, self.z, self.inside, strict=True)]

    def reliability(self, min_count: int = 100) -> list[dict]:
        """Rows per std bin: std_lo, std_hi, n, rms_std, rmse (bins merged to hold min_count pairs)."""
        rows, start = [], 0
        nonzero = np.flatnonzero(self.count)
        if not nonzero.size:
            return rows
        start, last = nonzero[0], nonzero[-1]
        i = start
        while i <= last:
            j, count = i, 0
            while j <= last and (count < min_count or j == i):
                count += int(self.count[j])
                j += 1
            # a last bin that is too small joins the previous one
            if j > last and count < min_count and rows:
                prev = rows.pop()
                i = prev["_from"]
                count = int(self.count[i:j].sum())
            c, v, e = self.count[i:j].sum(), self.var_sum[i:j].sum(), self.sq_err[i:j].sum()
            rows.append(dict(_from=i, std_lo=float(self.EDGES[i]), std_hi=float(self.EDGES[j]), n=int(c),
                             rms_std=float(np.sqrt(v / c)), rmse=float(np.sqrt(e / c))))
            i = j
        for row in rows:
            del row["_from"]
        return rows


# ---------------------------------------------------------------- confidence intervals

#: the metrics that get bootstrap intervals (columns <name>_lo, <name>_hi)
CI_METRICS = ("r", "bias", "rmse", "ubrmse")


class ClusterSums:
    """Sums of finite pairs per (cluster, time block): the sufficient statistics of r, bias, rmse, ubrmse.

    A cluster is a spatial unit (a test cell, a station, a tile of coarse cells), a time block a run of
    consecutive days. ``add(cluster, block, pred, ref)`` accumulates; memory is one row of 6 sums
    per (cluster, block), whatever the number of pixels.
    """

    def __init__(self) -> None:
        self.sums: dict[tuple, np.ndarray] = {}

    def add(self, cluster, block, pred: np.ndarray, ref: np.ndarray) -> None:
        p, o = paired(pred, ref)
        if not p.size:
            return
        key = (cluster, block)
        s = np.array([p.size, p.sum(), o.sum(), p @ p, o @ o, p @ o])
        self.sums[key] = self.sums.get(key, 0.0) + s

    def add_many(self, clusters: np.ndarray, blocks: np.ndarray, pred: np.ndarray, ref: np.ndarray) -> None:
        """Accumulate pairs labelled by integer cluster and block arrays (broadcast to pred's shape)."""
        pred = np.asarray(pred, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        if pred.shape != ref.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
        ok = np.isfinite(pred) & np.isfinite(ref)
        if not ok.any():
            return
        c = np.broadcast_to(np.asarray(clusters, dtype=np.int64), pred.shape)[ok]
        b = np.broadcast_to(np.asarray(blocks, dtype=np.int64), pred.shape)[ok]
        p, o = pred[ok], ref[ok]
        # one integer a (cluster, block): labels span a few cells and day blocks, so the sums are a bincount over
        # their span (np.unique on the label pairs sorted every pair: most of the evaluation's time)
        c_lo, b_lo = int(c.min()), int(b.min())
        b_span = int(b.max()) - b_lo + 1
        flat = (c - c_lo) * b_span + (b - b_lo)
        span = int(flat.max()) + 1
        if span > 4 * flat.size:  # labels far apart: the pairs seen, numbered
            seen, flat = np.unique(flat, return_inverse=True)
            span = seen.size
        else:
            seen = np.arange(span)
        sums = np.stack([np.bincount(flat, weights=w, minlength=span)
                         for w in (np.ones_like(p), p, o, p * p, o * o, p * o)], axis=1)
        for key, row in zip(seen.tolist(), sums, strict=True):
            if row[0]:
                pair = (key // b_span + c_lo, key % b_span + b_lo)
                self.sums[pair] = self.sums.get(pair, 0.0) + row

    def merge(self, other: ClusterSums) -> None:
        """Add another's sums (e.g. another tile's pixels)."""
        for key, row in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + row

    def keys(self) -> tuple[set, set]:
        """The clusters and the time blocks seen."""
        return {k[0] for k in self.sums}, {k[1] for k in self.sums}

    def table(self, clusters: list | None = None, blocks: list | None = None) -> tuple[list, list, np.ndarray]:
        """(clusters, blocks, sums (clusters x blocks x 6)); given orders (e.g. shared by the methods of a
        paired comparison) may hold keys this one has not seen (zero sums)."""
        seen_c, seen_b = self.keys()
        clusters = sorted(seen_c, key=str) if clusters is None else list(clusters)
        blocks = sorted(seen_b, key=str) if blocks is None else list(blocks)
        ci = {c: i for i, c in enumerate(clusters)}
        bi = {b: i for i, b in enumerate(blocks)}
        out = np.zeros((len(clusters), len(blocks), 6))
        for (c, b), s in self.sums.items():
            if c in ci and b in bi:
                out[ci[c], bi[b]] = s
        return clusters, blocks, out


def metrics_from_sums(s: np.ndarray) -> dict[str, np.ndarray]:
    """r, bias, rmse, ubrmse from sums (..., 6) = n, sum p, sum o, sum p^2, sum o^2, sum po."""
    s = np.asarray(s, dtype=np.float64)
    n_, sp, so, spp, soo, spo = np.moveaxis(s, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mp, mo = sp / n_, so / n_
        vp = np.maximum(spp / n_ - mp * mp, 0.0)
        vo = np.maximum(soo / n_ - mo * mo, 0.0)
        cov = spo / n_ - mp * mo
        bias_ = mp - mo
        var_d = np.maximum(vp + vo - 2.0 * cov, 0.0)
        r_ = np.where((vp > 0) & (vo > 0), np.clip(cov / np.sqrt(vp * vo), -1.0, 1.0), np.nan)
    return dict(r=r_, bias=bias_, rmse=np.sqrt(bias_**2 + var_d), ubrmse=np.sqrt(var_d))


def bootstrap_weights(clusters: int, blocks: int, replicates: int, seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Resampling multiplicities (replicates x clusters) and (replicates x blocks), drawn with replacement.

    The same weights applied to every method of a comparison give paired intervals of differences.
    """
    rng = np.random.default_rng(seed)
    wc = rng.multinomial(clusters, np.full(clusters, 1.0 / clusters), size=replicates) if clusters else np.zeros((replicates, 0))
    wb = rng.multinomial(blocks, np.full(blocks, 1.0 / blocks), size=replicates) if blocks else np.zeros((replicates, 0))
    return wc.astype(np.float64), wb.astype(np.float64)


def resampled_sums(sums: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Sums (replicates x 6) of each bootstrap replicate: clusters and time blocks resampled independently."""
    wc, wb = weights
    return np.einsum("rc,cbk,rb->rk", wc, sums, wb, optimize=True)


def intervals(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN replicates left out; NaN if none is finite)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


def bootstrap_ci(cluster_sums: ClusterSums, replicates: int = 1000, seed: int = 0, level: float = 0.95,
                 weights: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
    """<metric>_lo, <metric>_hi of ``CI_METRICS`` by a bootstrap over clusters and time blocks.

    NaN where there are fewer than two clusters and two blocks' worth of data (one cluster and one
    block cannot be resampled).
    """
    _, _, sums = cluster_sums.table()
    out = {f"{m}_{side}": float("nan") for m in CI_METRICS for side in ("lo", "hi")}
    if sums.size == 0 or sums.shape[0] * sums.shape[1] < 2:
        return out
    weights = weights if weights is not None else bootstrap_weights(sums.shape[0], sums.shape[1], replicates, seed)
    values = metrics_from_sums(resampled_sums(sums, weights))
    for m in CI_METRICS:
        out[f"{m}_lo"], out[f"{m}_hi"] = intervals(values[m], level)
    return out
