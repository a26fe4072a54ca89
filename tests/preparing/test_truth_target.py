"""samples.target truth: the skill panel's oracle, labelled with the fine truth on the training scale."""

from __future__ import annotations

import json

import numpy as np
import pytest
from affine import Affine

from smdown import io
from smdown.config import ConfigError, validate
from smdown.grid import Grid, block_mean, nested_grid
from smdown.preparing import prepare_steps
from smdown.preparing.features import FeatureSpec
from smdown.preparing.samples import make_split

COARSE = Grid("EPSG:6933", Affine(9000.0, 0, 0.0, 0, -9000.0, 900000.0), 3, 3)
DATES = [f"2023-06-{d:02d}" for d in range(1, 11)]
FINE = 6  # the truth's factor in the coarse cell (scale "1500")
SPEC = FeatureSpec(("x1",), ("x0",), (), False)


def _tiny_world(tmp_path):
    """A 3 x 3-cell world: a fine truth (6 x 6 pixels a cell), the coarse input its block mean, two predictors at the
    truth's scale and at a scale half as fine (3 x 3 a cell: their 2 x 2 block means); the split written."""
    rng = np.random.default_rng(7)
    size = 3 * FINE
    x0 = rng.random((size, size)).astype(np.float32)
    x1 = rng.random((len(DATES), size, size)).astype(np.float32)
    truth = (0.2 + 0.1 * x0[None] - 0.05 * x1 + 0.02 * rng.standard_normal(x1.shape)).astype(np.float32)
    truth[3, 4, 5] = np.nan  # a pixel-day without truth: never drawn
    paths = {"truth": tmp_path / "truth.tif", "coarse": tmp_path / "coarse.tif", "split": tmp_path / "split.json"}
    io.write_stack(paths["truth"], io.Stack(truth, nested_grid(COARSE, FINE), DATES))
    io.write_stack(paths["coarse"], io.Stack(block_mean(np.nan_to_num(truth, nan=0.2), FINE), COARSE, DATES))
    rasters = {}
    for factor in (FINE, FINE // 2):
        grid, k = nested_grid(COARSE, factor), FINE // factor
        rasters[factor] = {"x1": str(tmp_path / f"x1_{factor}.tif"), "x0": str(tmp_path / f"x0_{factor}.tif")}
        io.write_stack(rasters[factor]["x1"], io.Stack(block_mean(x1, k) if k > 1 else x1, grid, DATES))
        io.write_stack(rasters[factor]["x0"], io.Stack((block_mean(x0, k) if k > 1 else x0)[None], grid, None))
    split = make_split((3, 3), DATES, [], {"val_cells": 0.2, "test_cells": 0.2, "time_block_days": 2,
                                           "val_days": 0.2, "test_days": 0.2}, seed=0)
    paths["split"].write_text(json.dumps(split))
    return truth, rasters, paths, split


def _samples(tmp_path, rasters, paths, scale: str) -> dict:
    out = tmp_path / f"samples_{scale}.npz"
    settings = {"target": "truth", "per_scale": 600, "bag_size": 8, "patch": 3, "sequence_days": 3}
    prepare_steps.samples(rasters, str(paths["truth"]), str(paths["split"]), str(paths["coarse"]), scale, str(out),
                          features=SPEC.to_dict(), settings=settings, seed=3)
    return dict(np.load(out))


def test_truth_target_samples_are_the_truth_at_the_drawn_pixels(tmp_path):
    truth, rasters, paths, split = _tiny_world(tmp_path)
    samples = _samples(tmp_path, rasters[FINE], paths, "1500")
    t, r, c = samples["t"], samples["row"], samples["col"]
    assert len(t) > 400
    np.testing.assert_array_equal(samples["target"], truth[t, r, c])
    assert not ((t == 3) & (r == 4) & (c == 5)).any()
    # each example in its split's cells and days: the test cells x days are drawn as test (split 2), never trained on
    for code, name in enumerate(("train", "val", "test")):
        mine = samples["split"] == code
        cells = {tuple(cell) for cell in split[f"{name}_cells"]}
        assert {(int(a), int(b)) for a, b in zip(r[mine] // FINE, c[mine] // FINE, strict=True)} <= cells
        assert {DATES[i] for i in t[mine]} <= set(split[f"{name}_dates"])
    assert set(np.unique(samples["split"])) == {0, 1, 2}


def test_truth_target_on_a_coarser_scale_is_the_truth_averaged_there(tmp_path):
    truth, rasters, paths, _ = _tiny_world(tmp_path)
    samples = _samples(tmp_path, rasters[FINE // 2], paths, "3000")
    blocks = truth.reshape(len(DATES), 3 * FINE // 2, 2, 3 * FINE // 2, 2)
    averaged = np.nanmean(blocks, axis=(2, 4))  # GDAL's average: the mean of the truth under each pixel
    t, r, c = samples["t"], samples["row"], samples["col"]
    assert len(t) > 100 and r.max() < 3 * FINE // 2 and c.max() < 3 * FINE // 2
    np.testing.assert_allclose(samples["target"], averaged[t, r, c], rtol=1e-5)
    assert not np.allclose(samples["target"], truth[t, r, c], atol=1e-3)  # not the fine truth at the same index


def test_truth_target_needs_a_truth_and_names_the_key():
    local = {"inputs": {"coarse": {"surface": "s.tif", "rootzone": "r.tif"}, "predictors": {"ndvi": "n.tif"},
                        "truth": {"surface": "t.tif"}}, "samples": {"target": "truth"}}
    with pytest.raises(ConfigError, match=r"config key 'samples.target'.*\['rootzone'\]"):
        validate(local)
    with pytest.raises(ConfigError, match=r"config key 'samples.target'"):
        validate({"source": "earthdata", "samples": {"target": "truth"}})
    local["inputs"]["truth"]["rootzone"] = "u.tif"
    assert validate(local)["samples"]["target"] == "truth"
    assert validate({"samples": {"target": "truth"}})["samples"]["target"] == "truth"  # the demo has its truth
    # the 30 m truth informs the prediction scale itself, unlike a resampled coarse target
    assert validate({"samples": {"target": "truth"}, "training_scales": [30]})["training_scales"] == [30]
