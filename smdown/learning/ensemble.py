"""Ensemble weights from validation skill, and combining members into a mean and a spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import nnls

WEIGHTINGS = ("inverse_mse", "equal", "stacking", "within_cell")
#: a member whose detail inside the coarse cells is below this share of the spread of the coarse values has
#: collapsed to a field flat over each cell (it adds nothing to cubic interpolation and no honest spread)
COLLAPSE_RATIO = 0.02


def within_bag_std(pred: np.ndarray, bag: np.ndarray) -> float:
    """Mean over bags of the standard deviation of the per-pixel predictions inside a bag (a coarse cell-day)."""
    _, index = np.unique(bag, return_inverse=True)
    ok = np.isfinite(pred)
    counts = np.bincount(index[ok])
    mean = np.bincount(index[ok], weights=pred[ok]) / np.maximum(counts, 1)
    sq = np.bincount(index[ok], weights=(pred[ok] - mean[index[ok]]) ** 2) / np.maximum(counts, 1)
    return float(np.sqrt(sq[counts > 1]).mean()) if (counts > 1).any() else float("nan")


def collapsed(spread: dict[str, float], target: np.ndarray) -> dict[str, bool]:
    """Which members' within-cell spread is negligible against the spread of the coarse values they reproduce
    (unknown spread, as with samples of one pixel per bag, is not a collapse)."""
    scale = float(np.nanstd(target)) or 1.0
    return {name: bool(value < COLLAPSE_RATIO * scale) for name, value in spread.items()}


def weights(predictions: dict[str, np.ndarray], target: np.ndarray, method: str,
            within_error: dict[str, float] | None = None) -> dict[str, float]:
    """Member weights (summing to 1) from validation predictions.

    inverse_mse: w_i ∝ 1 / MSE_i; equal: 1 / n; stacking: non-negative least squares of the
    target on the members' predictions, normalised to sum to 1 (a convex combination, so the
    ensemble stays on the members' scale and coarse consistency is kept); within_cell: w_i ∝ 1 / the
    member's within-cell error `within_error` (the self-similarity check's nmse), since after the coarse
    correction the members differ only inside the cells.
    """
    names = list(predictions)
    if method == "within_cell":
        missing = [n for n in names if not np.isfinite((within_error or {}).get(n, np.nan))]
        if missing:
            raise ValueError(f"within_cell weighting: no self-similarity check for {missing}")
        raw = np.array([1.0 / max(within_error[n], 1e-6) for n in names])
        return dict(zip(names, (raw / raw.sum()).tolist(), strict=True))
    ok = np.isfinite(target) & np.all([np.isfinite(predictions[n]) for n in names], axis=0)
    if not ok.any():
        raise ValueError("no validation example where every member has a prediction")
    if method == "equal":
        raw = np.ones(len(names))
    elif method == "inverse_mse":
        raw = np.array([1.0 / max(np.mean((predictions[n][ok] - target[ok]) ** 2), 1e-12) for n in names])
    elif method == "stacking":
        matrix = np.column_stack([predictions[n][ok] for n in names])
        raw, _ = nnls(matrix, target[ok])
        if raw.sum() == 0:
            raw = np.ones(len(names))
    else:
        raise ValueError(f"unknown weighting {method!r}; choose one of {WEIGHTINGS}")
    return dict(zip(names, (raw / raw.sum()).tolist(), strict=True))


def member_table(predictions: dict[str, np.ndarray], target: np.ndarray, member_weights: dict[str, float],
                 spread: dict[str, float] | None = None, flat: dict[str, bool] | None = None) -> pd.DataFrame:
    """Each member's weight and validation metrics (with `spread` / `flat`: its within-cell spread and whether it
    collapsed)."""
    rows = []
    for name, pred in predictions.items():
        ok = np.isfinite(pred) & np.isfinite(target)
        err = pred[ok] - target[ok]
        bias = float(err.mean())
        rmse = float(np.sqrt(np.mean(err**2)))
        rows.append({
            "member": name, "weight": member_weights.get(name, 0.0), "val_r": float(np.corrcoef(pred[ok], target[ok])[0, 1]),
            "val_bias": bias, "val_rmse": rmse, "val_ubrmse": float(np.sqrt(max(rmse**2 - bias**2, 0.0))), "n": int(ok.sum()),
        })
        if spread is not None:
            rows[-1].update(within_std=spread[name], collapsed=bool(flat[name]))
    return pd.DataFrame(rows)


def combine(fields: dict[str, np.ndarray], member_weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and weighted standard deviation of member fields (float32, member by member, no stacked copy):
    a member that is NaN at a pixel is left out there and the others' weights renormalised."""
    names = list(member_weights)
    shape = fields[names[0]].shape
    total = np.zeros(shape, np.float32)
    mean = np.zeros(shape, np.float32)
    for name in names:
        values, w = fields[name], np.float32(member_weights[name])
        finite = np.isfinite(values)
        total += np.where(finite, w, np.float32(0))
        mean += np.where(finite, values * w, np.float32(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean /= total
        var = np.zeros(shape, np.float32)
        for name in names:
            dev = fields[name] - mean
            np.multiply(dev, dev, out=dev)
            dev *= np.float32(member_weights[name])
            var += np.where(np.isfinite(dev), dev, np.float32(0))
        var /= total
    empty = total <= 0
    mean[empty] = np.nan
    var[empty] = np.nan
    return mean, np.sqrt(var, out=var)
