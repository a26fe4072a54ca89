"""Metrics on hand-computed arrays."""

import numpy as np
import pytest

from smdown import metrics
from smdown.metrics import METRICS, Accumulator, all_metrics


def test_hand_computed_values():
    pred = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 7.0])
    ref = np.array([1.0, 2.0, 3.0, 5.0, 9.0, np.nan])
    # finite pairs: (1,1) (2,2) (3,3) (4,5): diff 0 0 0 -1
    assert metrics.n(pred, ref) == 4
    assert metrics.bias(pred, ref) == pytest.approx(-0.25)
    assert metrics.rmse(pred, ref) == pytest.approx(0.5)
    assert metrics.ubrmse(pred, ref) == pytest.approx(np.sqrt(0.25 - 0.0625))
    assert metrics.ubrmse(pred, ref) ** 2 == pytest.approx(metrics.rmse(pred, ref) ** 2 - metrics.bias(pred, ref) ** 2)
    assert metrics.r(pred, ref) == pytest.approx(np.corrcoef([1, 2, 3, 4], [1, 2, 3, 5])[0, 1])


def test_ubrmse_removes_bias_only():
    ref = np.linspace(0.1, 0.4, 20)
    assert metrics.ubrmse(ref + 0.05, ref) == pytest.approx(0.0, abs=1e-12)
    assert metrics.rmse(ref + 0.05, ref) == pytest.approx(0.05)


def test_kge():
    ref = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
    assert metrics.kge(ref, ref) == pytest.approx(1.0)
    # pred = 2 * ref: r = 1, alpha = 2, beta = 2 -> 1 - sqrt(2)
    assert metrics.kge(2 * ref, ref) == pytest.approx(1 - np.sqrt(2))


def test_degenerate_cases_are_nan():
    assert np.isnan(metrics.r(np.ones(5), np.arange(5.0)))
    assert np.isnan(metrics.rmse(np.array([np.nan]), np.array([1.0])))
    assert metrics.n(np.array([np.nan]), np.array([1.0])) == 0
    out = all_metrics(np.array([np.nan]), np.array([1.0]))
    assert out["n"] == 0 and np.isnan(out["r"])


def test_anomaly_r_known_pattern():
    pattern = np.array([[1.0, -1.0], [-1.0, 1.0]])
    field = np.tile(pattern, (2, 2))  # 4x4, factor 2: same within-cell pattern in each cell
    offsets = np.kron(np.array([[0.1, 0.3], [0.2, 0.4]]), np.ones((2, 2)))
    ref = np.stack([offsets + 0.01 * field, offsets + 0.02 * field])
    # different cell means, same anomaly pattern (scaled): anomaly correlation is 1
    pred = np.stack([offsets[::-1] + 0.05 * field, 0.5 * offsets + 0.1 * field])
    assert metrics.anomaly_r(pred, ref, 2) == pytest.approx(1.0)
    assert metrics.anomaly_r(offsets - 0.01 * field, offsets + 0.01 * field, 2) == pytest.approx(-1.0)
    # constant within each cell: no anomaly variance
    assert np.isnan(metrics.anomaly_r(np.stack([offsets, offsets]), ref, 2))


def test_accumulator_matches_arrays():
    rng = np.random.default_rng(1)
    ref = rng.random((3, 6, 6))
    pred = ref + rng.normal(0, 0.1, ref.shape) + 0.02
    pred[0, 0, :3] = np.nan
    whole = all_metrics(pred, ref, factor=3)
    acc = Accumulator(3)
    for day in range(3):
        for rows in (slice(0, 3), slice(3, 6)):
            acc.update(pred[day, rows], ref[day, rows])
    parts = acc.result()
    assert list(parts) == list(METRICS)
    for key in METRICS:
        assert parts[key] == pytest.approx(whole[key], rel=1e-9)
    assert whole["r"] == pytest.approx(metrics.r(pred, ref))
    assert whole["kge"] == pytest.approx(metrics.kge(pred, ref))
    assert whole["anomaly_r"] == pytest.approx(metrics.anomaly_r(pred, ref, 3))
    assert np.isnan(all_metrics(pred, ref)["anomaly_r"])
