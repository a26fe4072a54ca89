"""The self-similarity check (smdown.learning.similarity): pairs of neighbouring training cells, the within-pair skill, and
the tuning scored by it."""

import numpy as np
import pytest

from learning.test_models import HP, _bags, _world
from smdown.learning.similarity import neighbour_pairs, pair_samples, score_days, within_pair_skill
from smdown.learning.tune import search
from smdown.preparing.features import FeatureSpec
from smdown.preparing.samples import make_split

SPEC = FeatureSpec(("x1",), ("x0",), (), False)


@pytest.fixture(scope="module")
def world_samples():
    """Bags of a known 5 x 5-cell world over 24 days: fine = 0.2 + 0.1 x0 - 0.05 x1, coarse = its cell means."""
    x0, x1, fine, coarse = _world(seed=3, cells=5, factor=4, days=24)
    dates = [f"2023-06-{d + 1:02d}" for d in range(24)]
    split = make_split((5, 5), dates, [], {"val_cells": 0.2, "test_cells": 0.0, "time_block_days": 4,
                                           "val_days": 0.2, "test_days": 0.0}, seed=1)
    samples = _bags(SPEC, {"x1": x1, "x0": x0}, coarse, dates, split, 4, 900, 8, 2, seed=0)
    return samples, coarse


def test_neighbour_pairs_join_adjacent_cells_of_one_day():
    day, row, col = np.array([0, 0, 0, 0, 1, 1]), np.array([0, 0, 1, 2, 0, 0]), np.array([0, 1, 0, 2, 0, 1])
    pairs = neighbour_pairs(day, row, col, np.random.default_rng(0))
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (0, 2), (4, 5)]  # (2,2) has no neighbour, days apart


def test_score_days_take_one_block_in_three():
    day = np.repeat(np.arange(24), 2)
    score = score_days(day)
    assert sorted(np.unique(day[score]).tolist()) == [8, 9, 10, 11, 20, 21, 22, 23]


def test_pair_samples_hold_two_neighbouring_cells_labelled_with_their_mean(world_samples):
    samples, coarse = world_samples
    pairs = pair_samples(samples, np.random.default_rng(0), max_pairs=400)
    size = 8
    n_pairs = len(np.unique(pairs["bag"]))
    assert n_pairs == 400 and len(pairs["target"]) == n_pairs * 2 * size
    t = pairs["t"].reshape(n_pairs, 2, size)
    cell = np.stack([pairs["cell_row"], pairs["cell_col"]], -1).reshape(n_pairs, 2, size, 2)
    assert (t == t[:, :1, :1]).all(), "a pair is one day"
    assert (cell == cell[:, :, :1]).all(), "each half is one cell"
    assert (np.abs(cell[:, 0, 0] - cell[:, 1, 0]).sum(axis=1) == 1).all(), "the two cells are neighbours"
    known = coarse[t[:, :, 0], cell[:, :, 0, 0], cell[:, :, 0, 1]]  # (pairs, 2)
    np.testing.assert_allclose(pairs["cell_target"].reshape(n_pairs, 2, size)[:, :, 0], known, atol=1e-7)
    np.testing.assert_allclose(pairs["target"].reshape(n_pairs, -1)[:, 0], known.mean(axis=1), atol=1e-7)
    code = pairs["split"].reshape(n_pairs, -1)[:, 0]
    assert set(code.tolist()) == {0, 1}
    assert not set(t[code == 0, 0, 0].tolist()) & set(t[code == 1, 0, 0].tolist()), "fit and score days apart"


def test_pair_samples_need_neighbouring_cells(world_samples):
    samples, _ = world_samples
    keep = (samples["cell_row"] == 0) & (samples["cell_col"] == 0)
    one_cell = {key: (value[keep] if key != "features" else value) for key, value in samples.items()}
    assert pair_samples(one_cell, np.random.default_rng(0), max_pairs=400) is None
    assert pair_samples({k: v for k, v in samples.items() if k not in ("cell_row", "cell_col")},
                        np.random.default_rng(0), max_pairs=400) is None


def test_within_pair_skill_scores_flat_exact_and_exaggerated_differences(world_samples):
    samples, _ = world_samples
    pairs = pair_samples(samples, np.random.default_rng(0), max_pairs=400)
    exact = within_pair_skill(pairs["cell_target"], pairs)
    assert exact["nmse"] == pytest.approx(0.0, abs=1e-10) and exact["r"] == pytest.approx(1.0)
    assert exact["ratio"] == pytest.approx(1.0)
    flat = within_pair_skill(pairs["target"], pairs)
    assert flat["nmse"] == pytest.approx(1.0) and flat["ratio"] == pytest.approx(0.0, abs=1e-6)
    doubled = within_pair_skill(2 * pairs["cell_target"] - pairs["target"], pairs)
    assert doubled["nmse"] == pytest.approx(1.0, rel=1e-5) and doubled["ratio"] == pytest.approx(2.0, rel=1e-5)


def test_search_scores_trials_by_self_similarity(world_samples):
    """A heavy penalty flattens the member: its within-pair error nears that of a flat field (1); a light one
    learns the pattern the predictors set, so it recovers the differences between neighbouring cells."""
    samples, _ = world_samples
    settings = {"space": {"l2": {"low": 1e-6, "high": 1e3, "log": True}}, "trials": 3, "startup_trials": 3,
                "epochs": 8}
    best, trials = search("dnn", samples, dict(HP, l2=0.0), settings, seed=0, aggregate=True)
    np.testing.assert_array_equal(trials["objective"], trials["similarity_nmse"])
    assert trials["val_loss"].notna().all()
    crushed = trials.loc[trials["l2"].idxmax()]
    assert crushed["similarity_nmse"] > 0.5 and crushed["similarity_ratio"] < 0.3, trials
    assert best["l2"] < 1.0 and trials["similarity_nmse"].min() < 0.1, trials


def test_within_cell_weights_follow_the_self_similarity_error():
    from smdown.learning.ensemble import weights

    preds = {"a": np.full(4, 0.1), "b": np.full(4, 0.2)}
    w = weights(preds, np.zeros(4), "within_cell", {"a": 0.2, "b": 0.8})
    assert w["a"] == pytest.approx(0.8) and w["b"] == pytest.approx(0.2)  # 1/0.2 : 1/0.8
    with pytest.raises(ValueError, match=r"no self-similarity check for \['b'\]"):
        weights(preds, np.zeros(4), "within_cell", {"a": 0.2})
