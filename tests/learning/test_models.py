"""Samples, members, ensemble and block prediction on tiny known worlds."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from affine import Affine
from conftest import PREDICT_SETTINGS

from smdown import io
from smdown.grid import Grid, block_expand, block_mean, nested_grid
from smdown.learning import ensemble, models, train
from smdown.mapping.blocks import coarse_correction, predict_layer
from smdown.mapping.inference import predict_cube
from smdown.preparing import prepare_steps as samples_rule
from smdown.preparing.features import FeatureSpec
from smdown.preparing.samples import bag_samples, group_masks, make_split, pad_features

HP = {"dnn_units": [16], "cnn_filters": [8], "lstm_units": 4, "dropout": 0.0, "learning_rate": 0.01,
      "epochs": 30, "patience": 5, "batch_size": 512}
COARSE = Grid("EPSG:6933", Affine(9000.0, 0, 0.0, 0, -9000.0, 900000.0), 2, 2)
DATES = [f"2023-05-{d:02d}" for d in range(1, 9)]


def _member(kind: str, n_features: int = 2, patch: int = 3, sequence_days: int = 3) -> models.Member:
    hp = dict(HP, cnn_filters=[8] * ((patch - 1) // 2))
    model = models.with_units(models.build(kind, n_features, np.zeros(n_features), np.ones(n_features), hp), 0.2, 0.05)
    return models.Member(kind, model, {"patch": patch, "sequence_days": sequence_days})


def test_coarse_correction_makes_blocks_average_to_coarse():
    rng = np.random.default_rng(0)
    pred = rng.random((3, 4, 6)).astype(np.float32)
    coarse = np.array([[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]] * 3, dtype=np.float32)
    out = coarse_correction(pred, coarse, 2)
    np.testing.assert_allclose(block_mean(out, 2), coarse, atol=1e-6)
    # the pattern inside each block is kept
    np.testing.assert_allclose(out - block_expand(block_mean(out, 2), 2), pred - block_expand(block_mean(pred, 2), 2),
                               atol=1e-6)


def test_coarse_correction_keeps_estimate_on_outage_day():
    pred = np.full((1, 2, 2), 0.3, dtype=np.float32)
    out = coarse_correction(pred, np.full((1, 1, 1), np.nan, dtype=np.float32), 2)
    np.testing.assert_allclose(out, pred)


def test_ensemble_weights_known_values():
    target = np.zeros(4)
    preds = {"a": np.full(4, 0.1), "b": np.full(4, 0.2)}
    w = ensemble.weights(preds, target, "inverse_mse")
    assert w["a"] == pytest.approx(0.8) and w["b"] == pytest.approx(0.2)  # 1/0.01 : 1/0.04
    assert ensemble.weights(preds, target, "equal") == {"a": 0.5, "b": 0.5}
    stacked = ensemble.weights({"a": np.array([1.0, 2, 3, 4]), "b": np.array([4.0, 1, 0, 2])},
                               np.array([1.0, 2, 3, 4]), "stacking")
    assert stacked["a"] == pytest.approx(1.0, abs=1e-9)


def test_combine_skips_nan_members_and_gives_spread():
    mean, spread = ensemble.combine({"a": np.array([0.1, np.nan, np.nan]), "b": np.array([0.3, 0.2, np.nan])},
                                    {"a": 0.5, "b": 0.5})
    np.testing.assert_allclose(mean[:2], [0.2, 0.2], atol=1e-7)
    np.testing.assert_allclose(spread[:2], [0.1, 0.0], atol=1e-7)
    assert np.isnan(mean[2]) and np.isnan(spread[2])


@pytest.mark.parametrize("kind", ["dnn", "cnn", "lstm"])
def test_nan_predictor_pixel_gives_nan_not_zero(kind):
    member = _member(kind)
    cube = np.random.default_rng(1).random((4, 8, 8, 2)).astype(np.float32)
    cube[:, 4, 4, 0] = np.nan
    out = predict_cube(member, cube, halo=1)
    assert out.shape == (4, 6, 6)
    assert np.isnan(out[:, 3, 3]).all()
    assert np.isfinite(out[:, 0, 0]).all()


def test_cnn_block_prediction_equals_patch_prediction():
    member = _member("cnn", patch=5)
    cube = np.random.default_rng(2).random((2, 10, 10, 2)).astype(np.float32)
    block = predict_cube(member, cube, halo=2)
    patch = cube[:, 3:8, 4:9][:, None].reshape(2, 5, 5, 2)  # centred on block pixel (3, 4)
    single = np.asarray(member.model.predict(patch, verbose=0)).reshape(2)
    np.testing.assert_allclose(block[:, 3, 4], single, rtol=1e-5)


def test_lstm_runs_once_along_time_like_its_sequences():
    member = _member("lstm", sequence_days=3)
    cube = np.random.default_rng(3).random((5, 2, 2, 2)).astype(np.float32)
    full = predict_cube(member, cube, halo=0)
    # day 4 from a sequence (days 2..4) as in training, after the same spin-up as prediction
    series = cube[:, 1, 0]
    spun = np.concatenate([np.repeat(series[:1], 2, axis=0), series])[None]
    direct = np.asarray(member.model.predict(spun, verbose=0))[0, 2:, 0]
    np.testing.assert_allclose(full[:, 1, 0], direct, rtol=1e-5)


def test_model_from_other_predictor_set_is_refused(tmp_path):
    member = _member("dnn")
    path = tmp_path / "dnn.keras"
    member.model.save(path)
    models.save_meta(tmp_path / "dnn.json", {"name": "dnn", "features": ["a", "b"],
                                             "signature": models.signature(["a", "b"], {"patch": 3})})
    loaded = models.load_member(path, models.signature(["a", "b"], {"patch": 3}))
    assert loaded.name == "dnn"
    with pytest.raises(io.InputError, match="other predictors or settings"):
        models.load_member(path, models.signature(["a", "c"], {"patch": 3}))


def test_outage_day_is_left_out_of_training_and_logged(tmp_path, caplog):
    data = np.random.default_rng(4).random((len(DATES), 2, 2)).astype(np.float32)
    data[3] = np.nan
    path = tmp_path / "coarse_surface.tif"
    io.write_stack(path, io.Stack(data, COARSE, DATES))
    settings = {"val_cells": 0.25, "test_cells": 0.25, "time_block_days": 2, "val_days": 0.25, "test_days": 0.25}
    with caplog.at_level(logging.WARNING):
        samples_rule.split([str(path)], str(tmp_path / "split.json"), settings, seed=0)
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["outage_dates"] == [DATES[3]]
    assert all(DATES[3] not in split[f"{name}_dates"] for name in ("train", "val", "test"))
    assert DATES[3] in caplog.text and "outage" in caplog.text


def test_split_separates_cells_and_days():
    split = make_split((3, 3), DATES, [], {"val_cells": 0.2, "test_cells": 0.2, "time_block_days": 2,
                                           "val_days": 0.25, "test_days": 0.25}, seed=1)
    cells = [{tuple(c) for c in split[f"{n}_cells"]} for n in ("train", "val", "test")]
    days = [set(split[f"{n}_dates"]) for n in ("train", "val", "test")]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not cells[i] & cells[j] and not days[i] & days[j]


def _world(seed: int = 0, cells: int = 4, factor: int = 6, days: int = 12):
    """A known world: fine soil moisture = 0.2 + 0.1 * x0 - 0.05 * x1; coarse = its block mean.

    Both predictors vary between cells and within them, as real ones do."""
    rng = np.random.default_rng(seed)
    size = cells * factor
    x0 = 0.5 * block_expand(rng.random((cells, cells)), factor) + 0.5 * rng.random((size, size))
    x1 = 0.5 * block_expand(rng.random((days, cells, cells)), factor) + 0.5 * rng.random((days, size, size))
    fine = (0.2 + 0.1 * x0[None] - 0.05 * x1).astype(np.float32)
    return x0.astype(np.float32), x1.astype(np.float32), fine, block_mean(fine, factor)


def _bags(spec, arrays: dict, coarse, dates, split, factor, n_bags, bag_size, sequence_days, seed):
    """samples.bag_samples over in-memory arrays (each padded once with repeated edges, then windowed)."""

    def read_cell(row, col, size, halo):
        padded = {name: pad_features([a if a.ndim == 3 else a[None]], halo)[0] for name, a in arrays.items()}
        return {name: a[:, row : row + size + 2 * halo, col : col + size + 2 * halo] for name, a in padded.items()}

    settings = {"per_scale": n_bags * bag_size, "bag_size": bag_size, "patch": 3, "sequence_days": sequence_days}
    masks = group_masks(split, dates, coarse.shape[1:], 1)
    return bag_samples(spec, read_cell, coarse, dates, masks, factor, settings, np.random.default_rng(seed))


def test_aggregate_learning_recovers_the_fine_pattern():
    """Trained only on coarse values (bag means), the DNN predicts the within-cell pattern."""
    x0, x1, fine, coarse = _world()
    factor, days = 6, fine.shape[0]
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    dates = [f"2023-06-{d + 1:02d}" for d in range(days)]
    split = make_split((4, 4), dates, [], {"val_cells": 0.25, "test_cells": 0.0, "time_block_days": 3,
                                           "val_days": 0.25, "test_days": 0.0}, seed=0)
    samples = _bags(spec, {"x1": x1, "x0": x0}, coarse, dates, split, factor, 800, 16, 2, seed=0)
    # each bag is one cell-day, labelled with its coarse value
    for bag in range(3):
        members = samples["bag"] == bag
        assert len(set(zip(samples["t"][members], samples["row"][members] // factor,
                           samples["col"][members] // factor, strict=True))) == 1
    model, history = train.train_deep("dnn", samples, dict(HP, epochs=60, patience=10), seed=0, aggregate=True)
    pred = np.asarray(model.predict(np.stack([x1, np.broadcast_to(x0, x1.shape)], -1).reshape(-1, 2),
                                    verbose=0)).reshape(fine.shape)
    anomaly = lambda a: a - block_expand(block_mean(a, factor), factor)  # noqa: E731
    r = np.corrcoef(anomaly(pred).ravel(), anomaly(fine).ravel())[0, 1]
    assert r > 0.7, r


def test_bags_read_cell_by_cell_equal_bags_drawn_in_memory(tmp_path):
    """The samples rule reads only the windows of the cells holding bags (edge-padded at the region's border):
    the samples are exactly those drawn from the whole arrays padded at once, NaN predictors included."""
    x0, x1, fine, coarse = _world(seed=4, days=8)
    factor, days = 6, fine.shape[0]
    x0[0, 0] = np.nan  # a corner pixel: bags whose patch touches it are dropped
    x1[2:, 13, 7] = np.nan  # an inner pixel, from day 2 on
    dates = DATES[:days]
    coarse_grid = Grid("EPSG:6933", Affine(9000.0, 0, 0.0, 0, -9000.0, 900000.0), 4, 4)
    fine_grid = nested_grid(coarse_grid, factor)
    rasters = {"x1": str(tmp_path / "x1.tif"), "x0": str(tmp_path / "x0.tif")}
    io.write_stack(rasters["x1"], io.Stack(x1, fine_grid, dates))
    io.write_stack(rasters["x0"], io.Stack(x0[None], fine_grid, None))
    split = make_split((4, 4), dates, [], {"val_cells": 0.25, "test_cells": 0.1, "time_block_days": 2,
                                           "val_days": 0.25, "test_days": 0.25}, seed=0)
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    settings = {"per_scale": 400, "bag_size": 8, "patch": 3, "sequence_days": 3}
    windowed = samples_rule._bag_samples(spec, rasters, io.Stack(coarse, coarse_grid, dates), split, factor, settings,
                                        np.random.default_rng(1))
    whole = _bags(spec, {"x1": x1, "x0": x0}, coarse, dates, split, factor, 50, 8, 3, seed=1)
    assert set(windowed) == set(whole)
    for key in whole:
        np.testing.assert_array_equal(windowed[key], whole[key], err_msg=key)
    assert 0 < windowed["bag"].max() + 1 < 50  # some bags were dropped for the NaN pixels
    corner = (windowed["row"] <= 1) & (windowed["col"] <= 1)
    assert not corner.any()
    assert set(np.unique(windowed["split"])) == {0, 1}  # train and validation bags; the test split is never drawn


def test_predict_layer_writes_members_and_consistent_ensemble(tmp_path):
    factor = 4
    fine_grid = nested_grid(COARSE, factor)
    rng = np.random.default_rng(5)
    rasters = {}
    for name, static in (("x1", False), ("x0", True)):
        data = rng.random((1 if static else len(DATES), 8, 8)).astype(np.float32)
        if name == "x0":
            data[0, 1, 1] = np.nan
        rasters[name] = str(tmp_path / f"{name}.tif")
        io.write_stack(rasters[name], io.Stack(data, fine_grid, None if static else DATES))
    coarse = rng.uniform(0.1, 0.4, (len(DATES), 2, 2)).astype(np.float32)
    coarse_path = tmp_path / "coarse.tif"
    io.write_stack(coarse_path, io.Stack(coarse, COARSE, DATES))
    members = {"dnn": _member("dnn"), "cnn": _member("cnn"), "lstm": _member("lstm")}
    outputs = {name: str(tmp_path / f"{name}.tif") for name in list(members) + ["ensemble", "ensemble_std"]}
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    _predict_layer(members, {"dnn": 0.5, "cnn": 0.25, "lstm": 0.25}, spec, rasters, str(coarse_path), factor,
                  outputs, block_cells=1)
    result = io.read_stack(outputs["ensemble"])
    assert result.dates == DATES and result.grid == fine_grid
    assert np.isnan(result.data[:, 1, 1]).all()  # NaN predictor pixel -> NaN, never 0
    finite_cells = block_mean(result.data, factor)
    np.testing.assert_allclose(finite_cells[:, 1, 1], coarse[:, 1, 1], atol=1e-5)  # untouched cell: exact
    assert np.isfinite(io.read_stack(outputs["ensemble_std"]).data[:, 5, 5]).all()


@pytest.mark.parametrize("kind", ["dnn", "cnn", "lstm"])
def test_training_is_reproducible(kind):
    """Same samples and seed -> the same model, to the last bit (a rerun gives the same numbers)."""
    x0, x1, fine, coarse = _world(seed=3, days=6)
    factor = 6
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    dates = [f"2023-06-{d + 1:02d}" for d in range(fine.shape[0])]
    split = make_split((4, 4), dates, [], {"val_cells": 0.25, "test_cells": 0.0, "time_block_days": 3,
                                           "val_days": 0.25, "test_days": 0.0}, seed=0)
    samples = _bags(spec, {"x1": x1, "x0": x0}, coarse, dates, split, factor, 60, 8, 2, seed=0)
    hp = dict(HP, epochs=2)
    first, _ = train.train_deep(kind, samples, hp, seed=7, aggregate=True)
    second, _ = train.train_deep(kind, samples, hp, seed=7, aggregate=True)
    x = samples[models.INPUT_FORM[kind]][:50]
    np.testing.assert_array_equal(first.predict(x, verbose=0), second.predict(x, verbose=0))


def test_no_finite_target_is_a_clear_error():
    x0, x1, fine, coarse = _world(days=3)
    dates = [f"2023-06-{d + 1:02d}" for d in range(3)]
    split = make_split((4, 4), dates, [], {"val_cells": 0.25, "test_cells": 0.0, "time_block_days": 1,
                                           "val_days": 0.34, "test_days": 0.0}, seed=0)
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    with pytest.raises(ValueError, match="no training example: every target or predictor value is NaN"):
        _bags(spec, {"x1": x1, "x0": x0}, np.full_like(coarse, np.nan), dates, split, 6, 10, 4, 2, seed=0)


def test_predictors_nan_on_every_drawn_cell_day_is_a_clear_error():
    x0, x1, fine, coarse = _world(days=3)
    dates = [f"2023-06-{d + 1:02d}" for d in range(3)]
    split = make_split((4, 4), dates, [], {"val_cells": 0.25, "test_cells": 0.0, "time_block_days": 1,
                                           "val_days": 0.34, "test_days": 0.0}, seed=0)
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    with pytest.raises(ValueError, match="no training example: the predictors are NaN on every drawn training"):
        _bags(spec, {"x1": np.full_like(x1, np.nan), "x0": x0}, coarse, dates, split, 6, 10, 4, 2, seed=0)


def test_a_member_flat_inside_each_cell_is_collapsed_and_others_are_not():
    bag = np.repeat(np.arange(4), 8)
    rng = np.random.default_rng(0)
    target = np.array([0.1, 0.2, 0.3, 0.4])
    flat = np.repeat(target, 8) + 1e-6 * rng.standard_normal(32)
    detailed = np.repeat(target, 8) + 0.02 * rng.standard_normal(32)
    spread = {"flat": ensemble.within_bag_std(flat, bag), "detailed": ensemble.within_bag_std(detailed, bag)}
    assert spread["flat"] < 1e-5 and 0.01 < spread["detailed"] < 0.03
    assert ensemble.collapsed(spread, target) == {"flat": True, "detailed": False}
    # one pixel per bag: the spread is unknown, not a collapse
    one = ensemble.within_bag_std(detailed[:4], np.arange(4))
    assert np.isnan(one) and ensemble.collapsed({"x": one}, target) == {"x": False}


def test_the_forest_shares_the_weights_only_where_it_joins():
    """ensemble.forest: the forest is weighted with the deep members (rules.ensemble.candidates, then
    ensemble.weights); off, the deep members share the weights alone. A collapsed member never joins."""
    from smdown.learning.learn_steps import candidates

    rng = np.random.default_rng(0)
    target = rng.random(200)
    preds = {"dnn": target + 0.02, "cnn": target + 0.05 * rng.standard_normal(200), "lstm": np.full(200, 0.5),
             "rf": target + 0.01 * rng.standard_normal(200)}
    flat = {"dnn": False, "cnn": False, "lstm": True, "rf": False}
    alone = ensemble.weights(candidates(preds, flat, forest=False), target, "inverse_mse")
    joined = ensemble.weights(candidates(preds, flat, forest=True), target, "inverse_mse")
    assert set(alone) == {"dnn", "cnn"} and set(joined) == {"dnn", "cnn", "rf"}
    assert joined["rf"] > joined["dnn"] > 0 and sum(joined.values()) == pytest.approx(1.0)
    # the deep members keep their shares among themselves
    assert joined["dnn"] / joined["cnn"] == pytest.approx(alone["dnn"] / alone["cnn"])
    every = dict.fromkeys(preds, True)
    assert set(candidates(preds, every, forest=False)) == {"dnn", "cnn", "lstm"}


def _predict_layer(*args, **settings):
    """predict_layer with the schema's defaults of config predict where a test does not set them."""
    return predict_layer(*args, **{**PREDICT_SETTINGS, **settings})
