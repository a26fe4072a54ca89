"""Hyper-parameters chosen by validation (smdown.learning.tune): start points over the whole range, and a search that
prefers the penalty under which the member learns."""

import numpy as np
import pytest

from smdown.learning.tune import search, start_points
from smdown.preparing.features import FeatureSpec
from smdown.preparing.samples import make_split


def test_start_points_spread_over_each_range():
    points = start_points({"l2": {"low": 1e-6, "high": 1.0, "log": True}, "dropout": {"low": 0.0, "high": 0.4},
                           "units": {"choices": [8, 16]}}, 3)
    np.testing.assert_allclose([p["l2"] for p in points], [10**-4.5, 1e-3, 10**-1.5])
    np.testing.assert_allclose([p["dropout"] for p in points], [0.1, 0.2, 0.3])
    assert [p["units"] for p in points] == [8, 16, 8]


def test_search_rejects_an_unknown_hyper_parameter():
    with pytest.raises(ValueError, match=r"tune.space: \['depth'\] are not hyper-parameters"):
        search("dnn", {}, {"l2": 0.0}, {"space": {"depth": {"low": 1, "high": 3}}, "trials": 1, "startup_trials": 1,
                                       "epochs": 1}, 0, True)


def test_search_prefers_a_penalty_that_lets_the_member_learn():
    """A field driven by one predictor: a crushing penalty (1e3) flattens the member and loses on validation."""
    from learning.test_models import HP, _bags, _world

    x0, x1, fine, coarse = _world(seed=5, days=6)
    dates = [f"2023-06-{d + 1:02d}" for d in range(fine.shape[0])]
    split = make_split((4, 4), dates, [], {"val_cells": 0.25, "test_cells": 0.0, "time_block_days": 3,
                                           "val_days": 0.25, "test_days": 0.0}, seed=0)
    samples = _bags(FeatureSpec(("x1",), ("x0",), (), False), {"x1": x1, "x0": x0}, coarse, dates, split, 6, 200, 8,
                    2, seed=0)
    settings = {"space": {"l2": {"low": 1e-6, "high": 1e3, "log": True}}, "trials": 3, "startup_trials": 3,
                "epochs": 8}
    best, trials = search("dnn", samples, dict(HP, l2=0.0), settings, seed=0, aggregate=True)
    assert len(trials) == 3 and trials["val_loss"].notna().all()
    assert best["l2"] < 1.0, trials
    assert trials.loc[trials["l2"].idxmax(), "val_loss"] > trials["val_loss"].min()
