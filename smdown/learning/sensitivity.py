"""Sensitivity analysis of a trained model to its predictors, generic over input forms.

The last axis of ``X`` is the feature axis: pixel vectors (n, F), patches (n, k, k, F) and
sequences (n, L, F) are all handled alike. ``predict`` maps such an array to one prediction per
sample, e.g. (n,) or (n, 1); a model that returns several values per sample (say a (n, k, k)
patch) is scored on their mean, and ``y`` is reduced the same way.

- ``permutation_importance``: increase of RMSE when feature f is shuffled across samples (the whole
  channel of a patch or sequence moves with its sample, so spatial/temporal structure within a
  sample is kept and only the link between that feature and the target is broken).
- ``response_curves``: partial dependence (default): the mean prediction over a seeded subset of
  samples when feature f is set to a value at every position (every pixel of a patch, every step of a
  sequence), swept over the 2-98 % quantile range of that feature; ``method="median"`` instead
  predicts one typical sample, the per-feature median at every position, with feature f swept.

Both are deterministic for a given seed and return tidy DataFrames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
#: the order in which sensitivity treats (and plots) the models of a layer
SENSITIVITY_ORDER = ("dnn", "cnn", "lstm", "rf")

Predict = Callable[[np.ndarray], np.ndarray]


def _predict(predict: Predict, X: np.ndarray, batch_size: int | None) -> np.ndarray:
    if batch_size is None or len(X) <= batch_size:
        return np.asarray(predict(X), dtype=np.float64).reshape(len(X), -1).mean(axis=1)
    parts = [np.asarray(predict(X[i:i + batch_size]), dtype=np.float64).reshape(-1) for i in range(0, len(X),
                                                                                                    batch_size)]
    return np.concatenate(parts).reshape(len(X), -1).mean(axis=1)


def _rmse(pred: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(pred) & np.isfinite(y)
    return float(np.sqrt(np.mean((pred[ok] - y[ok]) ** 2))) if ok.any() else float("nan")


def _check(X: np.ndarray, feature_names: Sequence[str]) -> list[str]:
    if X.ndim < 2:
        raise ValueError(f"X must have a sample axis and a feature axis, got shape {X.shape}")
    if len(feature_names) != X.shape[-1]:
        raise ValueError(f"{len(feature_names)} feature names for {X.shape[-1]} features (last axis of X)")
    return list(feature_names)


def permutation_importance(
    predict: Predict,
    X: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    n_repeats: int = 5,
    seed: int = 0,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Increase in RMSE when each feature is permuted across samples.

    Returns one row per feature: feature, importance (mean increase over repeats), importance_std,
    baseline_rmse, rank (1 = most important), sorted by rank. Permutations are seeded with
    (seed, feature index, repeat), so the result does not depend on the feature order of the calls.
    """
    X = np.asarray(X)
    names = _check(X, feature_names)
    y = np.asarray(y, dtype=np.float64).reshape(len(X), -1).mean(axis=1)
    base = _rmse(_predict(predict, X, batch_size), y)
    rows = []
    for f, name in enumerate(names):
        scores = []
        for rep in range(n_repeats):
            perm = np.random.default_rng([seed, f, rep]).permutation(len(X))
            Xp = X.copy()
            Xp[..., f] = X[perm, ..., f]
            scores.append(_rmse(_predict(predict, Xp, batch_size), y) - base)
        rows.append({"feature": name, "importance": float(np.mean(scores)),
                     "importance_std": float(np.std(scores)), "baseline_rmse": base})
    df = pd.DataFrame(rows)
    df["rank"] = df["importance"].rank(ascending=False, method="first").astype(int)
    return df.sort_values("rank").reset_index(drop=True)


def response_curves(
    predict: Predict,
    X: np.ndarray,
    feature_names: Sequence[str],
    n_points: int = 25,
    quantiles: tuple[float, float] = (0.02, 0.98),
    method: str = "pdp",
    n_background: int = 128,
    seed: int = 0,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Prediction as each feature sweeps its quantile range, the others held at typical values.

    ``method="pdp"``: partial dependence, the mean prediction over ``n_background`` samples drawn
    (seeded) from X with feature f set to the value at every position. ``method="median"``: one typical
    sample, the per-feature median over samples at every position, with feature f set to the value.
    Sweep values are ``n_points`` evenly spaced between the given quantiles of feature f over all its
    finite values. Returns rows feature, value, prediction (mean) and prediction_std (spread over the
    background samples; 0 for "median").
    """
    X = np.asarray(X)
    names = _check(X, feature_names)
    if method == "pdp":
        take = min(n_background, len(X))
        idx = np.sort(np.random.default_rng(seed).choice(len(X), size=take, replace=False))
        background = X[idx]
    elif method == "median":
        background = np.nanmedian(X, axis=0, keepdims=True).astype(X.dtype)
    else:
        raise ValueError(f"method must be 'pdp' or 'median', got {method!r}")
    rows = []
    for f, name in enumerate(names):
        values = X[..., f]
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        lo, hi = np.quantile(values, quantiles)
        grid = np.linspace(lo, hi, n_points)
        batch = np.repeat(background[np.newaxis], n_points, axis=0)  # (points, samples, ..., F)
        batch[..., f] = grid.reshape((n_points,) + (1,) * (batch.ndim - 2)).astype(batch.dtype)
        pred = _predict(predict, batch.reshape((-1,) + background.shape[1:]), batch_size)
        pred = pred.reshape(n_points, len(background))
        for value, row in zip(grid, pred, strict=True):
            rows.append({"feature": name, "value": float(value), "prediction": float(np.nanmean(row)),
                         "prediction_std": float(np.nanstd(row))})
    return pd.DataFrame(rows, columns=["feature", "value", "prediction", "prediction_std"])


def validation_subset(pooled: dict, count: int, seed: int, by_bag: bool = False) -> dict[str, np.ndarray]:
    """Up to ``count`` validation examples (split code 1) drawn without replacement, seeded, in sample order.

    ``by_bag``: draw whole bags (samples target "aggregate", key ``bag``) until ``count`` examples (at
    least one bag), so each bag's mean can still be scored against its coarse value.
    """
    from smdown.learning.train import subset

    val = subset(pooled, 1)
    total = len(val["target"])
    if total == 0:
        raise ValueError("no validation example in the samples: sensitivity needs split code 1")
    rng = np.random.default_rng(seed)
    if by_bag:
        bags = rng.permutation(np.unique(val["bag"]))
        sizes = np.array([np.count_nonzero(val["bag"] == b) for b in bags])
        chosen = bags[: max(1, int(np.searchsorted(np.cumsum(sizes), count, side="right")))]
        idx = np.flatnonzero(np.isin(val["bag"], chosen))
    else:
        idx = np.sort(rng.choice(total, size=min(count, total), replace=False))
    return {key: (value[idx] if key != "features" else value) for key, value in val.items()}


def bag_mean(values: np.ndarray, bag: np.ndarray) -> np.ndarray:
    """Each example's value replaced by the mean over its bag (same length as ``values``)."""
    from smdown.learning.train import bag_means

    _, index = np.unique(bag, return_inverse=True)
    return bag_means(np.asarray(values, dtype=np.float64).reshape(len(bag)), bag)[index]


def sensitivity_tables(
    members: Mapping[str, object],
    samples: dict[str, np.ndarray],
    settings: Mapping[str, int],
    seed: int,
    bags: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Permutation importance and response curves of each member on the given examples.

    ``members``: name -> object with ``predict_samples({form: X})`` (``smdown.learning.models.Member``), each
    fed in its own input form (``models.INPUT_FORM``: pixel vectors, patches or sequences; the LSTM is
    scored on its last step). ``settings``: repeats and points (config ``sensitivity``). ``bags``
    (samples target "aggregate"): importance scores each bag's mean prediction against its label, as
    the models were trained; response curves stay per pixel. Returns (importance, response) with a
    ``model`` column first.
    """
    from smdown.learning.models import INPUT_FORM

    features = [str(f) for f in samples["features"]]
    y = samples["target"]
    importance, response = [], []
    order = [m for m in SENSITIVITY_ORDER if m in members] + [m for m in members if m not in SENSITIVITY_ORDER]
    for name in order:
        member = members[name]
        form = INPUT_FORM[name]
        X = samples[form]

        def predict(batch, member=member, form=form):
            return member.predict_samples({form: batch})

        def scored(batch, predict=predict):
            return predict(batch) if bags is None else bag_mean(predict(batch), bags)

        imp = permutation_importance(scored, X, y, features, n_repeats=settings["repeats"], seed=seed)
        curves = response_curves(predict, X, features, n_points=settings["points"], seed=seed)
        importance.append(imp.assign(n=len(X)).assign(model=name))
        response.append(curves.assign(model=name))
        top = ", ".join(f"{r.feature} {r.importance:.4f}" for r in imp.head(3).itertuples())
        log.info("%s (%s, %s): baseline RMSE %.4f on %d examples; top: %s", name, form, X.shape,
                 imp["baseline_rmse"].iloc[0], len(X), top)
    imp_df = pd.concat(importance, ignore_index=True) if importance else pd.DataFrame()
    resp_df = pd.concat(response, ignore_index=True) if response else pd.DataFrame()
    return _model_first(imp_df), _model_first(resp_df)


def _model_first(frame: pd.DataFrame) -> pd.DataFrame:
    if "model" not in frame:
        return frame
    return frame[["model"] + [c for c in frame.columns if c != "model"]]
