"""The skill panel: scores with known answers, streamed and on rasters, the worlds and the config overrides."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from experiments import panel
from smdown import io
from smdown.config import ConfigError, validate
from smdown.grid import block_expand, block_mean, ease2_9km_grid, nested_grid

FACTOR = 4


def _truth(days: int = 3, rows: int = 2, cols: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.25 + 0.05 * rng.standard_normal((days, rows * FACTOR, cols * FACTOR))).astype(np.float32)


def _flat(values: np.ndarray) -> np.ndarray:
    return block_expand(block_mean(values, FACTOR), FACTOR)


# ---------------------------------------------------------------- scores


def test_perfect_prediction_scores_zero_error_and_ratio_one():
    truth = _truth()
    s = panel.skill(truth.copy(), truth, FACTOR)
    for key in ("ubrmse", "rmse", "bias", "cell_rmse", "within_rmse"):
        assert s[key] == pytest.approx(0.0, abs=1e-7), key
    assert s["std_ratio"] == pytest.approx(1.0) and s["anomaly_r"] == pytest.approx(1.0)
    assert s["n"] == truth.size


def test_flat_per_cell_prediction_has_no_within_cell_skill():
    truth = _truth()
    s = panel.skill(_flat(truth), truth, FACTOR)
    assert s["std_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(s["anomaly_r"])
    assert s["cell_rmse"] == pytest.approx(0.0, abs=1e-7)  # the cell means are right ...
    assert s["within_rmse"] == pytest.approx(s["truth_within_std"], rel=1e-6)  # ... the detail is all missed
    assert s["within_rmse"] == pytest.approx(s["rmse"], rel=1e-6)


def test_known_values_on_one_cell():
    truth = np.tile(np.array([0.0, 0.0, 2.0, 2.0]), (4, 1))[None]  # one 4 x 4 cell: anomalies -1 / +1
    s = panel.skill(2.0 * truth, truth, FACTOR)  # error = truth: cell mean 1, within -1 / +1
    assert s["std_ratio"] == pytest.approx(2.0) and s["anomaly_r"] == pytest.approx(1.0)
    assert s["bias"] == pytest.approx(1.0) and s["rmse"] == pytest.approx(math.sqrt(2.0))
    assert s["cell_rmse"] == pytest.approx(1.0) and s["within_rmse"] == pytest.approx(1.0)
    assert s["ubrmse"] == pytest.approx(1.0) and s["truth_within_std"] == pytest.approx(1.0)
    reversed_ = panel.skill(2.0 - truth, truth, FACTOR)
    assert reversed_["anomaly_r"] == pytest.approx(-1.0) and reversed_["std_ratio"] == pytest.approx(1.0)


def test_offset_is_all_cell_mean_error_and_parts_add_up():
    truth = _truth()
    rng = np.random.default_rng(1)
    s = panel.skill(truth + 0.03, truth, FACTOR)
    assert s["bias"] == pytest.approx(0.03, rel=1e-4) and s["ubrmse"] == pytest.approx(0.0, abs=1e-6)
    assert s["cell_rmse"] == pytest.approx(0.03, rel=1e-4) and s["within_rmse"] == pytest.approx(0.0, abs=1e-6)
    noisy = truth + 0.02 * rng.standard_normal(truth.shape) + 0.01
    s = panel.skill(noisy, truth, FACTOR)
    assert s["cell_rmse"] ** 2 + s["within_rmse"] ** 2 == pytest.approx(s["rmse"] ** 2, rel=1e-9)
    assert 0.0 < s["anomaly_r"] < 1.0 and s["std_ratio"] > 1.0  # noise adds spread inside the cells


def test_streamed_equals_whole_and_nan_pairs_are_left_out():
    truth = _truth(days=4, cols=4)
    pred = truth + 0.02 * np.random.default_rng(2).standard_normal(truth.shape)
    pred[0, :3, :5] = np.nan
    whole = panel.skill(pred, truth, FACTOR)
    acc = panel.Skill(FACTOR)
    for c in range(4):  # one column of cells at a time
        window = (slice(None), slice(None), slice(c * FACTOR, (c + 1) * FACTOR))
        acc.update(pred[window], truth[window])
    streamed = acc.result()
    assert streamed["n"] == whole["n"] == truth.size - 15
    for key in ("ubrmse", "anomaly_r", "std_ratio", "cell_rmse", "within_rmse", "bias"):
        assert streamed[key] == pytest.approx(whole[key], rel=1e-9), key


# ---------------------------------------------------------------- rasters


@pytest.fixture()
def rasters(tmp_path):
    coarse = ease2_9km_grid(-10_000_000.0, 4_000_000.0, 2, 3)
    fine = nested_grid(coarse, FACTOR)
    dates = ["2023-05-01", "2023-05-02", "2023-05-03", "2023-05-04"]
    truth = _truth(days=4)
    paths = {"truth": tmp_path / "truth.tif"}
    io.write_stack(paths["truth"], io.Stack(truth, fine, dates))
    folder = tmp_path / "downscaled"
    folder.mkdir()
    fields = {"cnn": _flat(truth), "dnn": truth.copy(), "cubic": truth + 0.01 * np.random.default_rng(3).standard_normal(truth.shape),
              "ensemble_std": np.zeros_like(truth), "uncertainty": np.zeros_like(truth), "aoa": np.zeros_like(truth), "xgb": 0.5 * truth + 0.5 * _flat(truth)}
    for name, data in fields.items():
        paths[name] = folder / f"{name}.tif"
        io.write_stack(paths[name], io.Stack(data.astype(np.float32), fine, dates))
    return paths, truth, dates, fine


def test_method_files_order_and_spread_and_applicability_left_out(rasters):
    paths, *_ = rasters
    assert list(panel.method_files(paths["dnn"].parent)) == ["dnn", "cnn", "xgb", "cubic"]


def test_score_layer_on_rasters_with_test_split(rasters):
    paths, truth, dates, _ = rasters
    methods = panel.method_files(paths["dnn"].parent)
    split = {"test_cells": [[0, 1]], "test_dates": dates[1:3]}
    scores = panel.score_layer(paths["truth"], methods, FACTOR, split)
    assert set(scores) == {(m, s) for m in methods for s in ("all", "test")}
    assert scores[("dnn", "all")]["ubrmse"] == pytest.approx(0.0, abs=1e-7)
    assert scores[("cnn", "all")]["std_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert scores[("xgb", "all")]["std_ratio"] == pytest.approx(0.5, rel=1e-5)
    assert scores[("cnn", "test")]["n"] == 2 * FACTOR * FACTOR  # one cell x two days
    cell = (slice(1, 3), slice(0, FACTOR), slice(FACTOR, 2 * FACTOR))
    expected = panel.skill(_flat(truth)[cell], truth[cell], FACTOR)
    assert scores[("cnn", "test")]["within_rmse"] == pytest.approx(expected["within_rmse"], rel=1e-6)
    rows = panel.table_rows(panel.WORLDS[0], "surface", scores, {"dnn": 0.7, "cnn": 0.3})
    by = {(r["method"], r["split"]): r for r in rows}
    assert by[("cubic", "all")]["ratio_cubic"] == pytest.approx(1.0)
    assert by[("dnn", "all")]["ratio_cubic"] == pytest.approx(0.0, abs=1e-5)
    assert by[("cnn", "all")]["collapsed"] and not by[("dnn", "all")]["collapsed"]
    assert by[("dnn", "all")]["weight"] == 0.7 and math.isnan(by[("cubic", "all")]["weight"])
    assert list(rows[0]) == panel.COLUMNS


def test_score_layer_scores_the_spread_maps_against_the_ensemble_error(rasters, tmp_path):
    paths, truth, dates, fine = rasters
    error = 0.02 * np.random.default_rng(5).standard_normal(truth.shape)
    sigma = np.full(truth.shape, 0.02, np.float32)
    for name, data in {"ensemble": truth + error, "uncertainty": sigma, "ensemble_std": 0.1 * sigma}.items():
        io.write_stack(tmp_path / f"{name}.tif", io.Stack(data.astype(np.float32), fine, dates))
    spreads = {name: tmp_path / f"{name}.tif" for name in panel.SPREADS}
    split = {"test_cells": [[1, 2]], "test_dates": dates[:2]}
    found = {}
    panel.score_layer(paths["truth"], {"ensemble": tmp_path / "ensemble.tif"}, FACTOR, split, spreads=spreads,
                      spread_scores=found)
    assert set(found) == {(n, s) for n in panel.SPREADS for s in ("all", "test")}
    err = np.abs(np.float32(truth + error) - truth)
    assert found[("uncertainty", "all")]["coverage90"] == pytest.approx(np.mean(err <= 1.6448536 * 0.02), abs=1e-6)
    assert 0.85 < found[("uncertainty", "all")]["coverage90"] < 0.95  # normal errors of the stated sigma
    assert found[("ensemble_std", "all")]["coverage90"] < 0.2
    # the proper scores: the stated sigma beats one ten times too narrow
    assert found[("uncertainty", "all")]["crps"] < found[("ensemble_std", "all")]["crps"]
    assert found[("uncertainty", "all")]["interval_score_90"] < found[("ensemble_std", "all")]["interval_score_90"]
    assert found[("uncertainty", "test")]["n"] == 2 * FACTOR * FACTOR
    rows = panel.uncertainty_rows(panel.WORLDS[0], "surface", found)
    assert list(rows[0]) == panel.UNCERTAINTY_COLUMNS and len(rows) == 4
    text = panel.format_uncertainty(pd.DataFrame(rows, columns=panel.UNCERTAINTY_COLUMNS))
    assert "uncertainty" in text and "ensemble_std" in text
    with pytest.raises(ValueError, match="without the ensemble"):
        panel.score_layer(paths["truth"], {"dnn": paths["dnn"]}, FACTOR, spreads=spreads, spread_scores={})


def test_score_layer_matches_dates_and_rejects_missing_ones(rasters, tmp_path):
    paths, truth, dates, fine = rasters
    longer = tmp_path / "longer.tif"  # one more day first: the bands are matched by date
    io.write_stack(longer, io.Stack(np.concatenate([truth[:1] + 0.5, truth]), fine, ["2023-04-30", *dates]))
    scores = panel.score_layer(paths["truth"], {"lstm": longer}, FACTOR)
    assert scores[("lstm", "all")]["rmse"] == pytest.approx(0.0, abs=1e-7)
    short = tmp_path / "short.tif"
    io.write_stack(short, io.Stack(truth[:2].copy(), fine, dates[:2]))
    with pytest.raises(io.InputError, match="short.tif: no band for date"):
        panel.score_layer(paths["truth"], {"lstm": short}, FACTOR)
    with pytest.raises(ValueError, match="not whole coarse cells"):
        panel.score_layer(paths["truth"], {"dnn": paths["dnn"]}, 5)


def test_panel_median_per_part():
    rows = []
    for world, part, value, std in (("a", "tune", 0.01, 0.5), ("b", "tune", 0.03, 0.01), ("c", "untouched", 0.02, 0.8)):
        rows.append({**dict.fromkeys(panel.COLUMNS, 0.0), "world": world, "part": part, "layer": "surface",
                     "method": "ensemble", "split": "all", "ubrmse": value, "std_ratio": std,
                     "collapsed": std < panel.COLLAPSED})
    med = panel.panel_median(pd.DataFrame(rows, columns=panel.COLUMNS))
    tune = med[med["part"] == "tune"].iloc[0]
    assert tune["ubrmse"] == pytest.approx(0.02) and tune["worlds"] == 2 and tune["collapsed"] == 1
    assert med[med["part"] == "untouched"].iloc[0]["ubrmse"] == pytest.approx(0.02)
    assert "COLLAPSED" not in panel.format_median(med) and "untouched worlds" in panel.format_median(med)


# ---------------------------------------------------------------- worlds and overrides


def test_worlds_differ_from_the_demo_and_are_valid():
    default_demo = validate({})["demo"]
    assert len(panel.WORLDS) >= 8 and len({w.name for w in panel.WORLDS}) == len(panel.WORLDS)
    assert len(panel.select_worlds("untouched")) >= 4 and len(panel.select_worlds("tune")) >= 4
    for world in panel.WORLDS:
        cfg = validate(panel.world_config({}, world, {}))["demo"]
        assert cfg != default_demo and cfg["seed"] != default_demo["seed"]
        assert 3 <= cfg["coarse_rows"] <= 5 and 3 <= cfg["coarse_cols"] <= 5 and 30 <= cfg["days"] <= 45
    knobs = {key for w in panel.WORLDS for key in w.demo}
    assert {"relief", "soil_res_deg", "start", "mean_storm_mm", "wet_day_probability", "irrigated_fraction",
            "coarse_noise_surface"} <= knobs
    assert {w.demo.get("irrigated_fraction", 0.5) == 0 for w in panel.WORLDS} == {True, False}
    assert [w.name for w in panel.select_worlds("wet_winter_rainfed, steep_fine_soil")] == [
        "wet_winter_rainfed", "steep_fine_soil"]
    with pytest.raises(ValueError, match="unknown world"):
        panel.select_worlds("nowhere")


def test_set_overrides_apply_to_every_world_and_bad_ones_name_the_key(tmp_path):
    overrides = panel.parse_set(["models.l2=0", "samples.patch=5", "ensemble.weighting=equal"])
    assert overrides == {"models.l2": 0, "samples.patch": 5, "ensemble.weighting": "equal"}
    base = {"run": "demo", "demo": {"seed": 42, "stations": 12}, "models": {"epochs": 3}}
    cfg = panel.world_config(base, panel.WORLDS[1], {"models.l2": 0.0})
    assert cfg["models"] == {"epochs": 3, "l2": 0.0} and cfg["demo"]["seed"] == panel.WORLDS[1].demo["seed"]
    assert cfg["demo"]["stations"] == 12 and base["demo"]["seed"] == 42  # the base is not changed
    with pytest.raises(ValueError, match="key=value"):
        panel.parse_set(["models.l2"])
    with pytest.raises(ConfigError, match="models.l2"):
        panel.world_config(base, panel.WORLDS[0], {"models.l2": "lots"})
    with pytest.raises(ValueError, match="'run' is not a mapping"):
        panel.apply_set(base, {"run.name": 1})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert yaml.safe_load(path.read_text())["demo"]["start"] == panel.WORLDS[1].demo["start"]  # stays a string


def test_targets_are_the_maps_spreads_weights_split_and_applicability_only():
    targets = panel.targets(panel.world_config({"run": "x"}, panel.WORLDS[0], {}))
    maps = ("dnn", "cnn", "lstm", "ensemble", "rf", "cubic", "ensemble_std", "uncertainty")
    assert targets == ["results/x/samples/split.json"] + [
        path for layer in ("surface", "rootzone")
        for path in [f"results/x/downscaled/{layer}/{m}.tif" for m in maps] + [f"results/x/ensemble/{layer}/weights.csv"]
    ] + ["results/x/evaluation/applicability.csv"]
    without = panel.targets(panel.world_config({"run": "x", "aoa": {"enabled": False}}, panel.WORLDS[0], {}))
    assert without == targets[:-1]
    # every map is merged from its tiles by a job of its own (rule merge_tiles): each member must be a target, or the
    # panel loses its members (their tiles are temporary); the forest is the acceptance's peer
    assert panel.RF in panel.METHOD_ORDER and "results/x/downscaled/rootzone/rf.tif" in targets


def _row(world, part, method, ubrmse, ratio, anomaly_r=0.6, std_ratio=0.8, layer="rootzone"):
    return {**dict.fromkeys(panel.COLUMNS, 0.0), "world": world, "part": part, "layer": layer, "method": method,
            "split": "all", "ubrmse": ubrmse, "ratio_cubic": ratio, "anomaly_r": anomaly_r, "std_ratio": std_ratio,
            "collapsed": std_ratio < panel.COLLAPSED}


def test_acceptance_checks_on_the_untouched_medians():
    rows = []
    for world in ("u1", "u2"):
        rows += [_row(world, "untouched", "dnn", 0.030, 0.75), _row(world, "untouched", "cnn", 0.025, 0.62),
                 _row(world, "untouched", "lstm", 0.040, 1.0), _row(world, "untouched", "ensemble", 0.0252, 0.63),
                 _row(world, "untouched", "rf", 0.028, 0.7), _row(world, "untouched", "cubic", 0.040, 1.0)]
    rows.append(_row("t1", "tune", "lstm", 0.040, 1.0, std_ratio=0.01))  # collapsed on a tune world counts too
    rows.append(_row("t1", "tune", "ensemble", 0.5, 9.0, anomaly_r=0.0))  # tune worlds stay out of the medians
    checks = {c["check"]: c for c in panel.acceptance(pd.DataFrame(rows, columns=panel.COLUMNS))}
    assert checks["ensemble/cubic"]["ok"] and checks["ensemble/cubic"]["value"] == pytest.approx(0.63)
    assert checks["ensemble < rf"]["ok"] and checks["ensemble < rf"]["value"] == pytest.approx(0.9)
    assert checks["anomaly r"]["ok"]
    assert checks["ensemble vs best member"]["ok"] and checks["ensemble vs best member"]["value"] == pytest.approx(1.008)
    assert checks["collapsed members"]["ok"] is False and checks["collapsed members"]["value"] == 1
    text = panel.format_acceptance(list(checks.values()))
    assert "FAIL  rootzone collapsed members" in text and "pass  rootzone ensemble/cubic" in text
    no_rf = [r for r in rows if r["method"] != "rf"]
    assert {c["check"]: c["ok"] for c in panel.acceptance(pd.DataFrame(no_rf))}["ensemble < rf"] is None


# ---------------------------------------------------------------- weighting study


def test_error_moments_score_any_weights_exactly(rasters):
    paths, truth, dates, _ = rasters
    rng = np.random.default_rng(4)
    members = {"dnn": truth + 0.02 * rng.standard_normal(truth.shape) + 0.01,
               "cnn": truth + 0.04 * rng.standard_normal(truth.shape),
               "lstm": 0.6 * truth + 0.1}
    members["cnn"][1, :2, :3] = np.nan  # a NaN in one member leaves that pixel-day out for all
    moments = panel.ErrorMoments(list(members))
    for c in range(3):  # streamed one column of coarse cells at a time
        window = (slice(None), slice(None), slice(c * FACTOR, (c + 1) * FACTOR))
        moments.update({m: v[window] for m, v in members.items()}, truth[window])
    ok = np.isfinite(members["cnn"])
    for weights in ({"dnn": 1.0}, {"dnn": 0.2, "cnn": 0.5, "lstm": 0.3}, {"dnn": 2.0, "lstm": 2.0}):
        total = sum(weights.values())
        ensemble = sum(w / total * members[m] for m, w in weights.items())
        err = (ensemble - truth)[ok]
        assert moments.ubrmse(weights) == pytest.approx(err.std(), rel=1e-6)  # the fields are float32
    best = moments.best_convex()
    assert sum(best.values()) == pytest.approx(1.0) and min(best.values()) >= 0.0
    grid = [{"dnn": a, "cnn": b, "lstm": 1 - a - b} for a in np.linspace(0, 1, 21) for b in np.linspace(0, 1 - a, 21)]
    assert moments.ubrmse(best) <= min(moments.ubrmse(w) for w in grid) + 1e-9
    assert 0.0 < best["lstm"] < 1.0  # the errors of lstm (a scaled truth) and the noisy members partly cancel
    assert math.isnan(moments.ubrmse({"dnn": 0.0}))


def test_weighting_rows_from_weights_csv_columns(rasters):
    paths, truth, _, _ = rasters
    moments = panel.ErrorMoments(["dnn", "cnn"])
    moments.update({"dnn": truth + 0.01 * np.sin(truth * 50), "cnn": _flat(truth)}, truth)
    table = pd.DataFrame({"member": ["dnn", "cnn", "rf"], "weight": [0.25, 0.75, 0.0],
                          "val_rmse": [0.02, 0.01, 0.03], "val_ubrmse": [0.01, 0.02, 0.03]})
    rows = {r["scheme"]: r for r in panel.weighting_rows(panel.WORLDS[0], "surface", moments, table, 0.05)}
    assert rows["as run"]["weights"] == "dnn 0.25 cnn 0.75"
    assert rows["inverse_mse"]["weights"] == "dnn 0.20 cnn 0.80"  # 1/0.02^2 : 1/0.01^2
    assert rows["inverse_ubmse"]["weights"] == "dnn 0.80 cnn 0.20"
    assert math.isnan(rows["within_cell"]["ubrmse"])  # no self-similarity column in this weights.csv
    assert rows["oracle: best member"]["weights"] == "dnn 1.00 cnn 0.00"
    assert rows["oracle: best member"]["ratio_best"] == pytest.approx(1.0)
    assert rows["oracle: best weights"]["ubrmse"] <= rows["equal"]["ubrmse"] + 1e-12
    assert rows["equal"]["ratio_cubic"] == pytest.approx(rows["equal"]["ubrmse"] / 0.05)
    assert "best member" in panel.format_weightings(pd.DataFrame(list(rows.values())))
    assert "forest joins: equal" not in rows  # no forest map among the moments

    # with the forest's map: the schemes where it joins, weighted from its validation like the members; the oracles
    # stay over the deep members
    moments = panel.ErrorMoments(["dnn", "cnn", "rf"])
    moments.update({"dnn": truth + 0.01 * np.sin(truth * 50), "cnn": _flat(truth), "rf": truth + 0.001}, truth)
    rows = {r["scheme"]: r for r in panel.weighting_rows(panel.WORLDS[0], "surface", moments, table, 0.05)}
    assert rows["forest joins: inverse_mse"]["weights"] == "dnn 0.18 cnn 0.73 rf 0.08"  # 1/0.02^2 : 1/0.01^2 : 1/0.03^2
    assert rows["forest joins: equal"]["weights"] == "dnn 0.33 cnn 0.33 rf 0.33"
    assert rows["inverse_mse"]["weights"] == "dnn 0.20 cnn 0.80"
    assert rows["oracle: best member"]["weights"] == "dnn 1.00 cnn 0.00"  # rf, the best map here, is no member
    assert rows["oracle: best weights"]["weights"].endswith("rf 0.00")


def test_error_size_bound_finds_an_error_size_the_maps_show_and_none_where_there_is_none(tmp_path):
    """Errors whose size follows a static map (a soil-like field): the model fitted on the truth of half the cells
    tells their size on the others; errors of one size everywhere: it tells nothing."""
    factor, dates = 20, ["2023-05-01", "2023-05-02", "2023-05-03", "2023-05-04"]
    fine = nested_grid(ease2_9km_grid(-10_000_000.0, 4_000_000.0, 2, 3), factor)
    rng = np.random.default_rng(11)
    # the truth is the ensemble minus an error drawn apart from it, so the ensemble's value says nothing of the
    # error's size (an error added to the truth would: the larger the ensemble's anomaly, the larger its error)
    ensemble = (0.25 + 0.05 * rng.standard_normal((len(dates), fine.height, fine.width))).astype(np.float32)
    io.write_stack(tmp_path / "ensemble.tif", io.Stack(ensemble, fine, dates))
    soil = rng.uniform(0.0, 1.0, ensemble.shape[1:]).astype(np.float32)  # static: one undated band
    io.write_stack(tmp_path / "soil.tif", io.Stack(soil[None], fine, None))
    noise = rng.standard_normal(ensemble.shape)
    features = {"ensemble": tmp_path / "ensemble.tif", "soil": tmp_path / "soil.tif"}
    found = {}
    for name, error in {"follows_soil": 0.05 * soil * noise, "uniform": 0.025 * noise}.items():
        io.write_stack(tmp_path / f"{name}.tif", io.Stack((ensemble - error).astype(np.float32), fine, dates))
        found[name] = panel.error_size_bound(tmp_path / f"{name}.tif", features, factor)
    assert found["follows_soil"]["n"] == pytest.approx(3 * factor * factor * len(dates), rel=0.02)  # half the cells
    # sigma uniform on [0, 1] times |z|: the best possible r is 0.8 sd / sqrt(E sigma^2 - 0.64 E^2 sigma) = 0.55
    assert 0.45 < found["follows_soil"]["r"] < 0.6
    assert abs(found["uniform"]["r"]) < 0.1
    with pytest.raises(ValueError, match="needs the ensemble"):
        panel.error_size_bound(tmp_path / "uniform.tif", {"soil": tmp_path / "soil.tif"}, factor)


# ---------------------------------------------------------------- variants and the ceiling


def test_station_variants_and_the_ceiling_make_the_right_configs(tmp_path):
    base = {"run": "demo", "demo": {"seed": 42, "stations": 12}}
    flat = panel.select_worlds("flat_coarse_soil")[0]  # 5 x 5 coarse cells
    hills = panel.select_worlds("wet_rainfed_hills")[0]  # 3 x 3
    assert panel.world_config(base, flat, {})["demo"]["stations"] == 12
    assert panel.world_config(base, flat, {}, "none")["demo"]["stations"] == 0
    assert panel.world_config(base, flat, {}, "sparse")["demo"]["stations"] == 3  # 25 cells
    assert panel.world_config(base, hills, {}, "sparse")["demo"]["stations"] == 1  # 9 cells: at least one
    assert panel.sparse_station_count(4, 4) == 2 and panel.sparse_station_count(3, 4) == 1
    ceiling = validate(panel.world_config(base, flat, {"models.l2": 0.0}, "world", ceiling=True))
    assert ceiling["samples"]["target"] == "truth" and ceiling["demo"]["stations"] == 0
    assert ceiling["models"]["l2"] == 0.0
    default = validate(panel.world_config(base, flat, {}))
    assert default["samples"]["target"] == "aggregate"
    same = ("seed", "coarse_rows", "coarse_cols", "days", "start", "relief")  # the same world in every variant
    assert {k: ceiling["demo"][k] for k in same} == {k: default["demo"][k] for k in same}
    with pytest.raises(ValueError, match="stations variant"):
        panel.world_config(base, flat, {}, "many")
    assert panel.parse_stations("none, sparse,none") == ["none", "sparse"]
    with pytest.raises(ValueError, match="--stations"):
        panel.parse_stations("world,few")
    names = [panel.variant_name(s) for s in panel.STATIONS] + [panel.variant_name("none", ceiling=True)]
    assert names == ["default", "stations_sparse", "stations_none", "ceiling"]
    assert panel.world_dir(tmp_path, flat) == tmp_path / "flat_coarse_soil"
    assert panel.world_dir(tmp_path, flat, "ceiling") == tmp_path / "flat_coarse_soil__ceiling"
    assert panel.world_dir(tmp_path, flat, "stations_none") == tmp_path / "flat_coarse_soil__stations_none"
    parser = panel.argparse.ArgumentParser()
    panel.add_arguments(parser)
    args = parser.parse_args(["--worlds", "flat_coarse_soil", "--stations", "world,none", "--ceiling"])
    assert args.stations == "world,none" and args.ceiling


def test_gain_share_on_known_numbers():
    assert panel.gain_share(0.05, 0.04, 0.03) == pytest.approx(0.5)
    assert panel.gain_share(0.05, 0.03, 0.03) == pytest.approx(1.0)
    assert panel.gain_share(0.05, 0.05, 0.03) == pytest.approx(0.0)
    assert panel.gain_share(0.05, 0.06, 0.03) == pytest.approx(-0.5)  # worse than cubic
    assert panel.gain_share(0.05, 0.02, 0.03) == pytest.approx(1.5)  # past the ceiling (e.g. with stations)
    assert math.isnan(panel.gain_share(0.05, 0.04, 0.05))  # a ceiling no better than cubic: nothing to reach
    assert math.isnan(panel.gain_share(0.05, 0.04, 0.06))


def _skill_row(world, variant, method, split, ubrmse, within, layer="surface"):
    return {**dict.fromkeys(panel.COLUMNS, 0.0), "world": world, "part": "tune", "variant": variant, "layer": layer,
            "method": method, "split": split, "ubrmse": ubrmse, "within_rmse": within, "ratio_cubic": 0.0,
            "collapsed": False}


def test_the_ceiling_row_and_the_shares_of_the_reachable_gain():
    rows = []
    for variant, ensemble in (("default", (0.04, 0.020)), ("stations_none", (0.045, 0.025)), ("ceiling", (0.03, 0.01))):
        for split in ("all", "test"):
            rows += [_skill_row("w", variant, "cubic", split, 0.05, 0.03),
                     _skill_row("w", variant, "ensemble", split, *ensemble)]
    rows += [_skill_row("v", "default", "cubic", "test", 0.05, 0.03),  # a world without a ceiling run
             _skill_row("v", "default", "ensemble", "test", 0.04, 0.02)]
    table = panel.with_ceiling(pd.DataFrame(rows, columns=[*panel.COLUMNS, "variant"]))
    assert list(table.columns) == panel.SKILL_COLUMNS
    get = table.set_index(["world", "variant", "method", "split"])
    assert get.loc[("w", "default", "ensemble", "test"), "gain_share"] == pytest.approx(0.5)  # (0.05-0.04)/(0.05-0.03)
    assert get.loc[("w", "default", "ensemble", "test"), "within_gain_share"] == pytest.approx(0.5)  # 0.01/0.02
    assert get.loc[("w", "stations_none", "ensemble", "test"), "gain_share"] == pytest.approx(0.25)
    assert get.loc[("w", "stations_none", "ensemble", "test"), "within_gain_share"] == pytest.approx(0.25)
    assert get.loc[("w", "default", "cubic", "test"), "gain_share"] == pytest.approx(0.0)
    assert get.loc[("w", "ceiling", "ensemble", "test"), "gain_share"] == pytest.approx(1.0)
    ceiling = get.loc[("w", "default", "ceiling", "test")]
    assert ceiling["ubrmse"] == pytest.approx(0.03) and ceiling["ratio_cubic"] == pytest.approx(0.6)
    assert ceiling["within_rmse"] == pytest.approx(0.01) and ceiling["part"] == "tune"
    assert ("w", "stations_none", "ceiling", "test") in get.index
    assert ("w", "ceiling", "ceiling", "test") not in get.index  # the ceiling's own rows are its methods
    assert not any(method == "ceiling" for _, _, method, split in get.index if split == "all")
    assert get.xs("all", level="split")["gain_share"].isna().all()  # the ceiling saw the truth of those cell-days
    assert get.loc[("v", "default", "ensemble", "test"), ["gain_share", "within_gain_share"]].isna().all()
    assert "0.500" in panel.format_gains(table) and "stations_none" in panel.format_gains(table)


def test_the_applicability_summary_is_the_median_over_worlds_of_the_outside_share_and_error_ratio(tmp_path):
    rows = []
    for world, share, inside, outside in (("a", 0.1, 0.02, 0.03), ("b", 0.3, 0.02, 0.04), ("c", 0.2, 0.03, 0.03)):
        for area, ub, sh in (("inside", inside, 1 - share), ("outside", outside, share)):
            rows.append({"layer": "surface", "method": "ensemble", "area": area, "ubrmse": ub, "share": sh,
                         "world": world, "part": "tune", "variant": "default"})
            rows.append({"layer": "surface", "method": "cubic", "area": area, "ubrmse": 9.0, "share": sh,
                         "world": world, "part": "tune", "variant": "default"})
    summary = panel.applicability_summary(pd.DataFrame(rows))
    assert summary.loc[("default", "tune", "surface"), "share_outside"] == pytest.approx(0.2)
    assert summary.loc[("default", "tune", "surface"), "outside_over_inside"] == pytest.approx(1.5)
    world = panel.WORLDS[0]
    config = panel.world_config({"run": "w"}, world, {})
    assert panel.applicability_rows(world, tmp_path, config, "default") is None
    (tmp_path / "results" / "w" / "evaluation").mkdir(parents=True)
    pd.DataFrame(rows[:2]).drop(columns=["world", "part", "variant"]).to_csv(
        tmp_path / "results" / "w" / "evaluation" / "applicability.csv", index=False)
    found = panel.applicability_rows(world, tmp_path, config, "default")
    assert list(found["world"]) == [world.name] * 2 and set(found["variant"]) == {"default"}
