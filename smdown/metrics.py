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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
