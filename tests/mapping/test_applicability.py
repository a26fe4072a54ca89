"""The area of applicability: the dissimilarity index and its threshold (smdown.mapping.applicability), and its map
of a tile from predictor rasters (smdown.mapping.applicability_steps), on tiny worlds with known values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smdown import io
from smdown.grid import nested_grid
from smdown.mapping import applicability as aoa
from smdown.mapping.applicability_steps import aoa_map, reference
from smdown.preparing.features import FeatureSpec


def test_dissimilarity_is_the_nearest_distance_over_the_mean_distance():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    ref = aoa.build_reference(x, ["a", "b"], np.arange(4), np.array([0.5, 0.5]), folds=2, examples=100, seed=0)
    # standardised: +-1 on each axis, weighted by 0.5: the corners of a unit square
    pairs = [1, 1, np.sqrt(2), np.sqrt(2), 1, 1]
    assert ref.mean_distance == pytest.approx(np.mean(pairs))
    di = aoa.dissimilarity(ref, np.array([[0.0, 0.0], [0.5, 0.0], [np.nan, 0.0]]))
    assert di[0] == pytest.approx(0.0)
    assert di[1] == pytest.approx(0.5 / np.mean(pairs))  # half a side from two corners
    assert np.isnan(di[2])


def test_threshold_is_the_upper_whisker_of_the_cross_validation_di():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    groups = rng.integers(0, 20, 400)
    ref = aoa.build_reference(x, list("abc"), groups, np.full(3, 1 / 3), folds=5, examples=400, seed=0)
    q25, q75 = np.percentile(ref.training_di, [25, 75])
    assert ref.threshold == pytest.approx(q75 + 1.5 * (q75 - q25))
    # the examples lie inside; a point far from all of them lies outside
    inside = aoa.dissimilarity(ref, rng.normal(size=(200, 3)))
    assert np.mean(inside > ref.threshold) < 0.05
    assert aoa.dissimilarity(ref, np.array([[8.0, 8.0, 8.0]]))[0] > 3 * ref.threshold


def test_the_reference_keeps_at_most_the_examples_asked_for_and_weights_by_importance():
    x = np.random.default_rng(2).normal(size=(1000, 2))
    weights = aoa.importance_weights(["a", "b"], {"a": 0.3, "b": -0.1})
    assert weights.tolist() == [1.0, 0.0]  # a negative importance counts zero
    assert aoa.importance_weights(["a", "b"], None).tolist() == [0.5, 0.5]
    ref = aoa.build_reference(x, ["a", "b"], np.arange(1000) // 50, weights, folds=3, examples=200, seed=0)
    assert ref.points.shape == (200, 2) and np.all(ref.points[:, 1] == 0)
    # with b weighing nothing, a point far along b alone is not dissimilar
    assert aoa.dissimilarity(ref, np.array([[0.0, 50.0]]))[0] < ref.threshold


def test_a_cell_of_predictors_the_training_never_saw_is_flagged(tmp_path, coarse_grid, write_raster):
    """A 2 x 2-cell world whose training examples come from three cells; the fourth cell's soil texture is set far
    outside their range: its pixels lie outside the area of applicability, the others inside."""
    factor, days = 6, 4
    fine = nested_grid(coarse_grid, factor)
    dates = [f"2023-05-0{d + 1}" for d in range(days)]
    rng = np.random.default_rng(3)
    ndvi = (0.4 + 0.1 * rng.random((days, *fine.shape))).astype(np.float32)
    sand = (40 + 5 * rng.random((1, *fine.shape))).astype(np.float32)
    sand[0, factor:, factor:] = 90.0  # cell (1, 1): a texture the training never saw
    rasters = {"ndvi": str(write_raster("ndvi.tif", ndvi, fine, dates)),
               "sand": str(write_raster("sand.tif", sand, fine))}
    coarse = str(write_raster("coarse.tif", np.full((days, 2, 2), 0.2), coarse_grid, dates))
    spec = FeatureSpec(("ndvi",), ("sand",), (), False)
    # training examples: every pixel-day of cells (0, 0), (0, 1) and (1, 0), one fold a cell
    t, r, c = np.meshgrid(np.arange(days), np.arange(fine.height), np.arange(fine.width), indexing="ij")
    seen = ~((r >= factor) & (c >= factor))
    t, r, c = t[seen], r[seen], c[seen]
    samples = tmp_path / "samples.npz"
    np.savez(samples, features=np.array(spec.names), pixel=np.stack([ndvi[t, r, c], sand[0, r, c]], axis=1),
             split=np.zeros(len(t), dtype=np.int8), t=t, bag=np.arange(len(t)), cell_row=r // factor,
             cell_col=c // factor)
    outputs = {"points": str(tmp_path / "aoa.npz"), "meta": str(tmp_path / "aoa.json")}
    reference([str(samples)], None, outputs, {"examples": 300, "folds": 3}, seed=0)
    meta = json.loads((tmp_path / "aoa.json").read_text())
    assert meta["examples"] == 300 and meta["weighting"] == "equal"
    assert meta["ranges"]["sand"]["q99"] < 50  # the training's texture, for the unit check of an applied run

    out = tmp_path / "aoa.tif"
    aoa_map(outputs["points"], outputs["meta"], rasters, coarse, "1500", str(out), {"spec": spec.to_dict()},
            [0, 0, 2, 2], block_cells=1)
    di = io.read_stack(out)
    assert di.dates == dates and di.data.shape == (days, *fine.shape)
    unseen = np.zeros(fine.shape, dtype=bool)
    unseen[factor:, factor:] = True
    outside = di.data > meta["threshold"]
    assert outside[:, unseen].all()  # every pixel-day of the unseen cell
    assert outside[:, ~unseen].mean() < 0.05  # the cells the training saw lie inside (a few edge pixels aside)
