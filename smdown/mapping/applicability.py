"""The area of applicability (Meyer & Pebesma 2021, Methods in Ecology and Evolution; CAST's `aoa`): where a pixel's
predictors lie outside what the models learned.

The predictors are standardised by the training examples' mean and standard deviation and weighted by their
importance (the sensitivity analysis's permutation importance, or equally). A pixel-day's dissimilarity index (DI) is
its distance to the nearest training example over the mean distance between training examples. The threshold is what
cross-validation saw: the upper whisker (75th percentile + 1.5 IQR) of the training examples' DI to the examples of
the other folds. A DI above the threshold lies outside the area of applicability.

Numpy in, numpy out: the reference (a bounded set of training examples in the weighted space) is a KD-tree
(scipy.spatial.cKDTree), so a query costs log(examples) whatever the map's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WHISKER = 1.5  # IQRs above the 75th percentile: the upper whisker of a box plot


@dataclass
class Reference:
    """The training examples in the weighted, standardised predictor space and what their DI is measured by."""

    features: list[str]
    mean: np.ndarray  # (F,) training mean of each feature
    scale: np.ndarray  # (F,) training standard deviation (1 where constant)
    weights: np.ndarray  # (F,) importance weights (sum 1)
    points: np.ndarray  # (n, F) the examples, standardised and weighted
    mean_distance: float  # mean distance between the examples
    threshold: float  # the DI above which a pixel lies outside the area of applicability
    training_di: np.ndarray  # (n,) each example's DI to the examples of the other folds

    def to_meta(self) -> dict:
        """What the sidecar JSON keeps (the points go to the .npz)."""
        return {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weights": self.weights.tolist(), "mean_distance": self.mean_distance, "threshold": self.threshold,
                "examples": int(len(self.points))}


def importance_weights(features: list[str], importance: dict[str, float] | None) -> np.ndarray:
    """Weights of the features (sum 1): their importance (negative ones count zero), equal where `importance` is
    None or gives every feature zero. A feature the importance lacks weighs zero."""
    if importance is None:
        return np.full(len(features), 1.0 / len(features))
    values = np.array([max(float(importance.get(name, 0.0)), 0.0) for name in features])
    if not np.isfinite(values).all() or values.sum() <= 0:
        return np.full(len(features), 1.0 / len(features))
    return values / values.sum()


def folds_of(groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each example's fold: its group (a coarse cell, or a day) dealt to `folds` folds at random, whole."""
    names, inverse = np.unique(groups, return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(names))
    return (order % max(min(folds, len(names)), 1))[inverse]


def _mean_distance(points: np.ndarray, most: int, rng: np.random.Generator) -> float:
    """Mean distance between the examples (between `most` of them at random where there are more)."""
    from scipy.spatial.distance import pdist

    if len(points) > most:
        points = points[rng.choice(len(points), most, replace=False)]
    distances = pdist(points)
    return float(distances.mean()) if distances.size else 0.0


def _cross_di(points: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each example's distance to the nearest example of another fold (to the nearest other example where there is
    one fold only)."""
    from scipy.spatial import cKDTree

    if len(np.unique(folds)) < 2:
        distances, _ = cKDTree(points).query(points, k=2)
        return distances[:, 1]
    out = np.empty(len(points))
    for fold in np.unique(folds):
        inside = folds == fold
        distances, _ = cKDTree(points[~inside]).query(points[inside], k=1)
        out[inside] = distances
    return out


def build_reference(x: np.ndarray, features: list[str], groups: np.ndarray, weights: np.ndarray, folds: int,
                    examples: int, seed: int, pairs: int = 3000) -> Reference:
    """The reference of training examples `x` (n, F; rows with a NaN are left out), at most `examples` of them drawn
    at random; `groups`: each example's spatial (or temporal) block, dealt whole to `folds` folds."""
    rng = np.random.default_rng(seed)
    keep = np.isfinite(x).all(axis=1)
    x, groups = x[keep], groups[keep]
    if len(x) < 2:
        raise ValueError(f"area of applicability: {len(x)} training example(s) without a NaN predictor; need 2")
    if len(x) > examples:
        chosen = np.sort(rng.choice(len(x), examples, replace=False))
        x, groups = x[chosen], groups[chosen]
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    points = (x - mean) / scale * weights
    mean_distance = _mean_distance(points, pairs, rng)
    if mean_distance <= 0:
        raise ValueError("area of applicability: the training examples are all alike (mean distance 0)")
    training_di = _cross_di(points, folds_of(groups, folds, seed)) / mean_distance
    q25, q75 = np.percentile(training_di, [25, 75])
    return Reference(list(features), mean, scale, np.asarray(weights, dtype=float), points, mean_distance,
                     float(q75 + WHISKER * (q75 - q25)), training_di)


def dissimilarity(reference: Reference, x: np.ndarray, tree=None, workers: int = 1) -> np.ndarray:
    """The DI of each row of `x` (n, F): NaN where a feature is NaN. `tree`: the reference points' cKDTree (built
    here where None)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(reference.points) if tree is None else tree
    out = np.full(len(x), np.nan, dtype=np.float32)
    ok = np.isfinite(x).all(axis=1)
    if ok.any():
        distances, _ = tree.query((x[ok] - reference.mean) / reference.scale * reference.weights, k=1,
                                  workers=workers)
        out[ok] = distances / reference.mean_distance
    return out


def quantiles(x: np.ndarray, features: list[str]) -> dict[str, dict[str, float]]:
    """Each feature's 1st, 50th and 99th percentile over the finite values (the predictors' units, checked when a
    trained run is applied: smdown.config.check_units)."""
    out = {}
    for f, name in enumerate(features):
        values = x[:, f][np.isfinite(x[:, f])]
        if values.size:
            q01, q50, q99 = np.percentile(values, [1, 50, 99])
            out[name] = {"q01": float(q01), "q50": float(q50), "q99": float(q99)}
    return out
