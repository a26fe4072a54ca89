"""Ensemble weights from validation skill, and combining members into a mean and a spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import nnls

WEIGHTINGS = ("inverse_mse", "equal", "stacking")


def weights(predictions: dict[str, np.ndarray], target: np.ndarray, method: str) -> dict[str, float]:
    """Member weights (summing to 1) from validation predictions.

    inverse_mse: w_i ∝ 1 / MSE_i; equal: 1 / n; stacking: non-negative least squares of the
    target on the members' predictions, normalised to sum to 1 (a convex combination, so the
    ensemble stays on the members' scale and coarse consistency is kept).
    """
    names = list(predictions)
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


def member_table(predictions: dict[str, np.ndarray], target: np.ndarray, member_weights: dict[str, float]) -> pd.DataFrame:
    """Each member's weight and validation metrics."""
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
    return pd.DataFrame(rows)


def combine(members: dict[str, np.ndarray], member_weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and weighted standard deviation of member fields; a member that is NaN at a
    pixel is left out there and the others' weights renormalised."""
    stack = np.stack([members[n] for n in member_weights])
    w = np.array(list(member_weights.values()), dtype=np.float64).reshape((-1,) + (1,) * (stack.ndim - 1))
    w = np.where(np.isfinite(stack), w, 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(np.isfinite(stack), stack, 0.0).__mul__(w).sum(axis=0) / total
        var = (w * (np.where(np.isfinite(stack), stack, 0.0) - mean) ** 2).sum(axis=0) / total
    mean = np.where(total > 0, mean, np.nan)
    return mean.astype(np.float32), np.sqrt(np.where(total > 0, var, np.nan)).astype(np.float32)
