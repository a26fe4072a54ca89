"""experiments.detail's pooled scores: the ubRMSE and within-cell anomaly r of all pixel-days, summed row by row."""

import numpy as np
import pytest

from experiments.detail import _Score


def test_pooled_scores_over_rows_equal_the_scores_of_the_whole():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0.1, 0.4, (5, 8, 12)).astype(np.float32)
    pred = (truth + 0.03 + 0.02 * rng.standard_normal(truth.shape)).astype(np.float32)
    pred[2, 1, 1] = np.nan
    score = _Score()
    for row in range(0, 8, 4):
        score.add(pred[:, row : row + 4], truth[:, row : row + 4], 4)
    ok = np.isfinite(pred)
    error = (pred - truth)[ok].astype(np.float64)
    assert score.ubrmse() == pytest.approx(error.std(), rel=1e-6)

    def anomaly(x):
        x = np.where(ok, x, np.nan).astype(np.float64)
        cells = x.reshape(5, 2, 4, 3, 4)
        return (cells - np.nanmean(cells, axis=(2, 4), keepdims=True)).reshape(x.shape)[ok]

    assert score.anomaly_r() == pytest.approx(np.corrcoef(anomaly(pred), anomaly(truth))[0, 1], rel=1e-6)
