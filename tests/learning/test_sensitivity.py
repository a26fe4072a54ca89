"""Sensitivity on tiny worlds where the answer is known: y = 3*x0 + 0.1*x1 + noise."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from smdown.learning.sensitivity import permutation_importance, response_curves

NAMES = ["x0", "x1", "x2"]


def vectors(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 3))
    y = 3 * X[:, 0] + 0.1 * X[:, 1] + rng.normal(0, 0.05, n)
    return X, y


def test_pixel_vectors_rank_x0_first():
    X, y = vectors()
    model = LinearRegression().fit(X, y)
    imp = permutation_importance(model.predict, X, y, NAMES, n_repeats=4, seed=1)
    assert list(imp.columns) == ["feature", "importance", "importance_std", "baseline_rmse", "rank"]
    assert imp.iloc[0]["feature"] == "x0"
    assert imp.set_index("feature").loc["x0", "importance"] > 10 * imp.set_index("feature").loc["x1", "importance"]
    assert imp.set_index("feature").loc["x2", "importance"] == pytest.approx(0.0, abs=0.01)
    again = permutation_importance(model.predict, X, y, NAMES, n_repeats=4, seed=1)
    assert imp.equals(again)

    for method in ("pdp", "median"):
        curves = response_curves(model.predict, X, NAMES, n_points=11, method=method, seed=1)
        x0 = curves[curves["feature"] == "x0"]
        assert len(x0) == 11
        assert np.all(np.diff(x0["prediction"]) > 0)
        assert x0["value"].min() == pytest.approx(np.quantile(X[:, 0], 0.02))
        span = x0["prediction"].max() - x0["prediction"].min()
        assert span == pytest.approx(3 * (np.quantile(X[:, 0], 0.98) - np.quantile(X[:, 0], 0.02)), rel=0.05)
        assert response_curves(model.predict, X, NAMES, n_points=11, method=method, seed=1).equals(curves)


def test_patches_and_sequences_move_whole_channels():
    rng = np.random.default_rng(2)
    n = 300
    for shape in ((n, 3, 3, 3), (n, 5, 3)):
        X = rng.random(shape)
        axes = tuple(range(1, X.ndim - 1))

        def predict(batch, axes=axes):
            means = batch.mean(axis=axes)
            return 3 * means[:, 0] + 0.1 * means[:, 1]

        y = predict(X) + rng.normal(0, 0.01, n)
        imp = permutation_importance(predict, X, y, NAMES, n_repeats=3, seed=0, batch_size=64)
        assert list(imp["feature"]) == ["x0", "x1", "x2"]
        assert imp.iloc[2]["importance"] == pytest.approx(0.0, abs=1e-12)
        curves = response_curves(predict, X, NAMES, n_points=5, seed=0, batch_size=100)
        x0 = curves[curves["feature"] == "x0"]
        assert np.all(np.diff(x0["prediction"]) > 0)
        x2 = curves[curves["feature"] == "x2"]
        assert np.ptp(x2["prediction"]) == pytest.approx(0.0, abs=1e-12)


def test_bad_inputs():
    X, y = vectors(20)
    with pytest.raises(ValueError):
        permutation_importance(lambda a: a[:, 0], X, y, ["only", "two"])
    with pytest.raises(ValueError):
        response_curves(lambda a: a[:, 0], X, NAMES, method="shap")
