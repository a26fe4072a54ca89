"""The sensitivity step (smdown.learning.sensitivity) on a tiny known world, one model per input form.

Target = 3 * x0 + 0.1 * x1 (+ noise) at the example's pixel and day; x2 does nothing. Stub models
behind real ``models.Member`` objects follow that law in their own input form (pixel vectors,
the centre of a patch, the last step of a sequence), so the step must rank x0 first for each,
feed each its own form, score the LSTM on its last step and use validation examples only.
"""

import numpy as np
import pandas as pd
import pytest

from smdown.learning.models import Member
from smdown.learning.sensitivity import bag_mean, sensitivity_tables, validation_subset

NAMES = np.array(["x0", "x1", "x2"])
STEPS = 5


def law(x):
    return 3 * x[..., 0] + 0.1 * x[..., 1]


class Pixel:
    def predict(self, x, **_):
        return law(x)[:, None]


class Patch:
    def predict(self, x, **_):
        centre = x.shape[1] // 2
        return law(x[:, centre : centre + 1, centre : centre + 1, :])[..., None]  # (n, 1, 1, 1)


class Sequence:
    def predict(self, x, **_):
        out = np.full(x.shape[:2], 10.0)  # earlier steps are far off: only the last step may be scored
        out[:, -1] = law(x[:, -1])
        return out[..., None]  # (n, L, 1)


class Forest:
    def predict(self, x):
        return law(x)


def members():
    meta = {"patch": 3, "sequence_days": STEPS}
    return {name: Member(name, model, meta) for name, model in
            (("lstm", Sequence()), ("rf", Forest()), ("dnn", Pixel()), ("cnn", Patch()))}


def pooled(n=600, seed=0):
    rng = np.random.default_rng(seed)
    sequence = rng.random((n, STEPS, 3)).astype(np.float32)
    patch = rng.random((n, 3, 3, 3)).astype(np.float32)
    pixel = sequence[:, -1].copy()
    patch[:, 1, 1] = pixel  # the same example in every form: its pixel is the patch centre and the last step
    split = rng.integers(0, 3, n)
    target = law(pixel) + rng.normal(0, 0.01, n)
    target[split != 1] = 99.0  # training and test examples must not be used
    return {"features": NAMES, "pixel": pixel, "patch": patch, "sequence": sequence,
            "target": target.astype(np.float32), "split": split}


def test_validation_subset_is_seeded_and_validation_only():
    data = pooled()
    sub = validation_subset(data, 50, seed=3)
    assert len(sub["target"]) == 50 and (sub["split"] == 1).all()
    again = validation_subset(data, 50, seed=3)
    assert np.array_equal(sub["pixel"], again["pixel"])
    everything = validation_subset(data, 10_000, seed=3)
    assert len(everything["target"]) == (data["split"] == 1).sum()
    with pytest.raises(ValueError, match="validation"):
        validation_subset({**data, "split": np.zeros_like(data["split"])}, 50, seed=3)


def test_each_model_ranks_the_driver_first_in_its_own_form():
    samples = validation_subset(pooled(), 150, seed=1)
    settings = {"repeats": 2, "points": 6}
    importance, response = sensitivity_tables(members(), samples, settings, seed=7)
    assert list(importance["model"].unique()) == ["dnn", "cnn", "lstm", "rf"]
    assert list(importance.columns[:2]) == ["model", "feature"]
    for model, imp in importance.groupby("model"):
        imp = imp.set_index("feature")
        assert imp["importance"].idxmax() == "x0", model
        assert imp.loc["x0", "importance"] > 10 * imp.loc["x1", "importance"] > 0, model
        assert imp.loc["x2", "importance"] == pytest.approx(0.0, abs=1e-9), model
        assert imp["baseline_rmse"].iloc[0] < 0.02, model  # last step only, validation only
        assert (imp["n"] == 150).all()
    assert (response.groupby(["model", "feature"]).size() == 6).all()
    for model, curve in response[response["feature"] == "x0"].groupby("model"):
        assert np.all(np.diff(curve["prediction"].to_numpy()) > 0), model
    again = sensitivity_tables(members(), samples, settings, seed=7)
    pd.testing.assert_frame_equal(importance, again[0])
    pd.testing.assert_frame_equal(response, again[1])


def test_bags_are_drawn_whole_and_scored_on_their_mean():
    """samples target "aggregate": each bag of pixels is labelled with its areal mean (the coarse value)."""
    data = pooled(n=800, seed=4)
    bag_size = 8
    data["bag"] = np.arange(800) // bag_size
    data["split"] = np.repeat(np.random.default_rng(5).integers(0, 3, 100), bag_size)
    label = bag_mean(law(data["pixel"]), data["bag"])
    data["target"] = np.where(data["split"] == 1, label, 99.0).astype(np.float32)
    samples = validation_subset(data, 60, seed=2, by_bag=True)
    sizes = np.bincount(np.unique(samples["bag"], return_inverse=True)[1])
    assert (sizes == bag_size).all() and len(samples["target"]) == 56 and (samples["split"] == 1).all()
    importance, _ = sensitivity_tables(members(), samples, {"repeats": 2, "points": 4}, seed=7, bags=samples["bag"])
    for model, imp in importance.groupby("model"):
        imp = imp.set_index("feature")
        assert imp["importance"].idxmax() == "x0", model
        assert imp["baseline_rmse"].iloc[0] < 1e-5, model  # bag means match their labels exactly
    per_pixel, _ = sensitivity_tables(members(), samples, {"repeats": 1, "points": 4}, seed=7)
    assert (per_pixel.groupby("model")["baseline_rmse"].first() > 0.1).all()
