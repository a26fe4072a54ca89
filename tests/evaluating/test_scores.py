"""evaluate_run on a tiny world: 2x2 coarse cells, factor 3 (6x6 fine pixels), six days."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from smdown import io
from smdown.evaluating import evaluate_steps as evaluate_step
from smdown.evaluating import metrics
from smdown.evaluating.scores import (
    COLUMNS,
    DIFFERENCE_COLUMNS,
    RELIABILITY_COLUMNS,
    SEAM_COLUMNS,
    UNCERTAINTY_COLUMNS,
    Scoring,
    TileCheck,
    check_tile,
    evaluate_run,
    map_panels,
)
from smdown.grid import Tile, block_expand, block_mean, ease2_9km_grid, nested_grid, tiles
from smdown.stations import read_stations, station_series

DATES = [f"2023-05-0{d}" for d in range(1, 7)]
FACTOR = 3


def pixel_lonlat(grid, row, col):
    x, y = grid.transform @ (col + 0.5, row + 0.5)
    lon, lat = io.to_lonlat(grid.crs, x, y)
    return float(lon[0]), float(lat[0])


@pytest.fixture
def world(tmp_path):
    x, y = io.lonlat_to("EPSG:6933", -120.0, 37.0)
    coarse_grid = ease2_9km_grid(float(x[0]), float(y[0]), 2, 2)
    fine_grid = nested_grid(coarse_grid, FACTOR)
    rng = np.random.default_rng(0)
    truth = (0.2 + 0.1 * rng.random((len(DATES), 6, 6))).astype(np.float32)
    coarse = block_mean(truth, FACTOR)
    run = tmp_path / "results" / "demo"
    down = run / "downscaled" / "surface"
    dnn = truth.copy()
    # bogus values where truth metrics must not look: a train cell (0, 1) and train dates in a test cell
    dnn[:, 0:3, 3:6] = 99.0
    dnn[:3, 0:3, 0:3] = -5.0
    methods = {
        "dnn": dnn,
        "cnn": truth + np.float32(0.01),
        "ensemble": truth,
        "cubic": block_expand(coarse, FACTOR),  # constant within each coarse cell
    }
    for name, data in methods.items():
        io.write_stack(down / f"{name}.tif", io.Stack(data.astype(np.float32), fine_grid, DATES))
    io.write_stack(down / "ensemble_std.tif", io.Stack(np.full_like(truth, 0.01), fine_grid, DATES))
    io.write_stack(run / "truth_surface.tif", io.Stack(truth, fine_grid, DATES))
    io.write_stack(run / "coarse_surface.tif", io.Stack(coarse, coarse_grid, DATES))
    split = {"train_cells": [[0, 1]], "val_cells": [[1, 0]], "test_cells": [[0, 0], [1, 1]],
             "train_dates": DATES[:3], "val_dates": [], "test_dates": DATES[3:]}
    (run / "samples").mkdir(parents=True)
    (run / "samples" / "split.json").write_text(json.dumps(split))
    lon, lat = pixel_lonlat(fine_grid, 4, 2)
    stations = pd.DataFrame(
        [{"station": "inside", "lon": lon, "lat": lat, "date": d, "surface": float(truth[i, 4, 2]),
          "rootzone": np.nan} for i, d in enumerate(DATES)]
        + [{"station": "faraway", "lon": 10.0, "lat": 50.0, "date": DATES[0], "surface": 0.3, "rootzone": 0.3}]
        + [{"station": "olden", "lon": lon, "lat": lat, "date": "2020-01-01", "surface": 0.3, "rootzone": 0.3}]
    )
    stations.to_csv(run / "stations.csv", index=False)
    return dict(run=run, truth=truth, coarse=coarse, fine_grid=fine_grid, coarse_grid=coarse_grid)


def run_eval(world, tile_checks=None, **kw):
    """evaluate_run on the world: `<table>_out` (or `out`, the metrics) names a table's file, the rest are Scoring's."""
    run = world["run"]
    outputs = {("metrics" if key == "out" else key.removesuffix("_out")): kw.pop(key)
               for key in list(kw) if key == "out" or key.endswith("_out")}
    return evaluate_run(
        run / "downscaled",
        coarse={"surface": run / "coarse_surface.tif"},
        truth={"surface": run / "truth_surface.tif"},
        stations=run / "stations.csv",
        split=run / "samples" / "split.json",
        outputs=outputs,
        scoring=Scoring(**kw),
        tile_checks=tile_checks,
    )


def get(table, method, reference):
    rows = table[(table["method"] == method) & (table["reference"] == reference)]
    assert len(rows) == 1, (method, reference)
    return rows.iloc[0]


def test_truth_metrics(world, caplog):
    caplog.set_level(logging.INFO)
    out = world["run"] / "evaluation" / "metrics.csv"
    table = run_eval(world, out=out)
    assert list(table.columns) == COLUMNS
    assert out.exists() and list(pd.read_csv(out).columns) == COLUMNS
    # lstm and rf have no output: skipped, logged
    assert set(table["method"]) == {"dnn", "cnn", "ensemble", "cubic"}
    assert "lstm" in caplog.text and "rf" in caplog.text
    dnn = get(table, "dnn", "truth")
    # only test cells x test dates, despite the bogus values elsewhere
    assert dnn["n"] == 2 * 3 * FACTOR * FACTOR
    assert dnn["r"] == pytest.approx(1.0)
    assert dnn["rmse"] == pytest.approx(0.0, abs=1e-7)
    assert dnn["anomaly_r"] == pytest.approx(1.0)
    assert dnn["kge"] == pytest.approx(1.0)
    cnn = get(table, "cnn", "truth")
    assert cnn["bias"] == pytest.approx(0.01, abs=1e-6)
    assert cnn["ubrmse"] == pytest.approx(0.0, abs=1e-5)
    assert cnn["r"] == pytest.approx(1.0)
    cubic = get(table, "cubic", "truth")
    assert np.isnan(cubic["anomaly_r"]) or cubic["anomaly_r"] == pytest.approx(0.0, abs=1e-6)
    assert cubic["rmse"] > 0


def test_truth_ignores_train_cells(world):
    a = get(run_eval(world), "ensemble", "truth")
    # spoil the ensemble in a train cell (all dates) and in a test cell on train dates only
    run = world["run"]
    path = run / "downscaled" / "surface" / "ensemble.tif"
    stack = io.read_stack(path)
    stack.data[:, 0:3, 3:6] = 42.0
    stack.data[:3, 3:6, 3:6] = 42.0
    io.write_stack(path, stack)
    b = get(run_eval(world), "ensemble", "truth")
    for key in ("r", "bias", "rmse", "ubrmse", "n"):
        assert a[key] == pytest.approx(b[key])


def test_coarse_consistency(world):
    table = run_eval(world)
    ens = get(table, "ensemble", "coarse")
    assert ens["n"] == 4 * len(DATES)
    assert ens["rmse"] == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(ens["anomaly_r"])
    assert get(table, "cubic", "coarse")["rmse"] == pytest.approx(0.0, abs=1e-6)
    assert get(table, "dnn", "coarse")["rmse"] > 1  # its bogus train cell shows here


def test_stations(world, caplog):
    caplog.set_level(logging.WARNING)
    pairs_out = world["run"] / "evaluation" / "pairs.csv"
    series_out = world["run"] / "evaluation" / "stations_series.csv"
    table = run_eval(world, pairs_out=pairs_out, series_out=series_out)
    assert "faraway" in caplog.text and "outside" in caplog.text
    assert "olden" in caplog.text
    ens = get(table, "ensemble", "stations")
    assert ens["n"] == len(DATES[3:])  # the test days only: the others may refine the ensemble
    assert ens["rmse"] == pytest.approx(0.0, abs=1e-7)
    assert ens["r"] == pytest.approx(1.0)
    assert np.isnan(ens["anomaly_r"])
    series = pd.read_csv(series_out)
    assert set(series["station"]) == {"inside"}
    assert {"observed", "coarse", "ensemble", "ensemble_std", "layer"} <= set(series.columns)
    assert series["coarse"].to_numpy() == pytest.approx(world["coarse"][:, 1, 0])
    pairs = pd.read_csv(pairs_out)
    assert set(pairs["reference"]) == {"truth", "stations", "coarse"}
    truth_dnn = pairs[(pairs["reference"] == "truth") & (pairs["method"] == "dnn")]
    assert len(truth_dnn) == 2 * 3 * 9 and np.allclose(truth_dnn["pred"], truth_dnn["ref"])


def test_station_series_no_overlap(world, caplog):
    run = world["run"]
    paths = {"ensemble": run / "downscaled" / "surface" / "ensemble.tif"}
    stations = pd.read_csv(run / "stations.csv")
    stations = stations[stations["station"] != "inside"]
    caplog.set_level(logging.WARNING)
    out = station_series(paths, stations, "surface", run / "coarse_surface.tif")
    assert out.empty
    table = evaluate_run(run / "downscaled", {"surface": run / "coarse_surface.tif"}, stations=stations)
    assert "stations" not in set(table["reference"])
    assert "truth" not in set(table["reference"])
    assert "no station overlaps" in caplog.text


def test_stations_table_is_checked(tmp_path):
    path = tmp_path / "stations.csv"
    path.write_text("station,lon,lat,date,surface\nA,-120.0,37.0,2023-05-01,0.2\nB,-120.1,37.0,2023-05-01,0.3\n"
                    "A,-120.0,37.0,2023-05-02,0.25\n")
    table = read_stations(path)
    assert table["date"].tolist() == ["2023-05-01", "2023-05-01", "2023-05-02"]
    assert table["rootzone"].isna().all()  # a layer the stations do not measure
    # a station read twice on one day: which reading would the fits use?
    path.write_text(path.read_text() + "A,-120.0,37.0,2023-05-01 00:00,0.21\nA,-120.0,37.0,2023-05-02,0.26\n")
    with pytest.raises(io.InputError, match=rf"{path}: station 'A' has 2 rows on 2023-05-01 \(2 repeated"):
        read_stations(path)
    path.write_text("station,lon,lat,date,surface\nA,-120.0,37.0,2023-05-01,0.2\nA,-120.0,37.0,May,0.3\n")
    with pytest.raises(io.InputError, match=rf"{path}: row 2 of the table: date 'May' is not a date"):
        read_stations(path)
    path.write_text("station,lon,date,surface\nA,-120.0,2023-05-01,0.2\n")
    with pytest.raises(io.InputError, match=rf"{path}: missing column\(s\) \['lat'\]"):
        read_stations(path)


def test_no_split_uses_everything(world, caplog):
    run = world["run"]
    caplog.set_level(logging.WARNING)
    table = evaluate_run(run / "downscaled", {"surface": run / "coarse_surface.tif"},
                         truth={"surface": run / "truth_surface.tif"})
    assert get(table, "ensemble", "truth")["n"] == 36 * len(DATES)
    assert "no split" in caplog.text


def _tile_inputs(world):
    run = world["run"]
    down = run / "downscaled" / "surface"
    paths = {m: down / f"{m}.tif" for m in ("dnn", "cnn", "ensemble", "cubic")}
    seam_files = {**paths, "truth": run / "truth_surface.tif"}
    return run, paths, seam_files


@pytest.mark.parametrize("tile_cells", [1, 2])
def test_tile_checks_equal_one_job(world, tmp_path, tile_cells):
    """The coarse check and the seams merged from the tiles' checks (files, as rule evaluate_tile writes them)
    equal the whole region's: metrics to rounding, the intervals, the pair sample and the seam counts exactly."""
    run, paths, seam_files = _tile_inputs(world)
    coarse = run / "coarse_surface.tif"
    parts = []
    for tile in tiles((2, 2), tile_cells):
        part = tmp_path / f"{tile.name}.json"
        check_tile(paths, coarse, seam_files, DATES[3:], tile, max_pixels=20, max_pairs=10).write(part)
        parts.append(part)
    kw = dict(max_pixels=20, max_pairs=10, bootstrap=200)
    outs = {}
    for name, checks in (("whole", None), ("tiles", {"surface": parts})):
        folder = tmp_path / name
        table = run_eval(world, tile_checks=checks, pairs_out=folder / "pairs.csv", seams_out=folder / "seams.csv",
                         **kw)
        outs[name] = (table, pd.read_csv(folder / "pairs.csv"), pd.read_csv(folder / "seams.csv"))
    (whole, whole_pairs, whole_seams), (tiled, tiled_pairs, tiled_seams) = outs["whole"], outs["tiles"]
    numbers = whole.select_dtypes("number").columns
    np.testing.assert_allclose(tiled[numbers].to_numpy(float), whole[numbers].to_numpy(float), rtol=1e-12,
                               atol=1e-15)
    coarse_pairs = whole_pairs[whole_pairs["reference"] == "coarse"]
    assert 0 < len(coarse_pairs) < 4 * 4 * len(DATES)  # a sample (about 10 of 24 a method), not every pair
    pd.testing.assert_frame_equal(tiled_pairs.sort_values(list(tiled_pairs.columns)).reset_index(drop=True),
                                  whole_pairs.sort_values(list(whole_pairs.columns)).reset_index(drop=True))
    pd.testing.assert_frame_equal(tiled_seams[["method", "n_across", "n_inside"]],
                                  whole_seams[["method", "n_across", "n_inside"]])
    np.testing.assert_allclose(tiled_seams["seam_ratio"], whole_seams["seam_ratio"], rtol=1e-12)
    # the seams count every pair of neighbours once: 6 x 6 pixels, 2 x 6 x 5 pairs a day, 2 x 6 across edges
    assert (whole_seams["n_across"] == 12 * 3).all() and (whole_seams["n_inside"] == 48 * 3).all()


def test_tile_checks_must_cover_the_region(world, tmp_path):
    run, paths, seam_files = _tile_inputs(world)
    coarse = run / "coarse_surface.tif"
    parts = {}
    for tile in (Tile(0, 0, 1, 2), Tile(1, 0, 1, 2), Tile(0, 1, 2, 1)):
        parts[tile] = tmp_path / f"{tile.row}{tile.col}{tile.rows}{tile.cols}.json"
        check_tile(paths, coarse, seam_files, DATES, tile).write(parts[tile])
    assert TileCheck.read(parts[Tile(0, 0, 1, 2)]).tile == Tile(0, 0, 1, 2)
    with pytest.raises(io.InputError, match=r"no tile has \(row, col\) \[\(1, 0\), \(1, 1\)\]"):
        run_eval(world, tile_checks={"surface": [parts[Tile(0, 0, 1, 2)]]})
    with pytest.raises(io.InputError, match="0121.json: tile .* overlaps"):
        run_eval(world, tile_checks={"surface": list(parts.values())})
    (tmp_path / "bad.json").write_text('{"coarse": {}}')
    with pytest.raises(io.InputError, match="bad.json: not a tile check"):
        run_eval(world, tile_checks={"surface": [tmp_path / "bad.json"]})


def test_rule_evaluate_groups_the_tile_checks_by_the_layer_they_record(world, tmp_path):
    run, paths, seam_files = _tile_inputs(world)
    coarse = run / "coarse_surface.tif"
    folder = tmp_path / "any_folder"
    written = {}
    for layer in ("surface", "rootzone", "deep"):
        check = check_tile(paths, coarse, seam_files, DATES, Tile(0, 0, 2, 2))
        check.layer = layer
        written[layer] = folder / f"{layer}.json"
        check.write(written[layer])
    assert TileCheck.read(written["rootzone"]).layer == "rootzone"
    grouped = evaluate_step.tile_checks_by_layer([written["surface"], written["rootzone"]], ["surface", "rootzone"])
    assert grouped == {"surface": [written["surface"]], "rootzone": [written["rootzone"]]}
    with pytest.raises(io.InputError, match="deep.json: a tile check of layer 'deep', not one of"):
        evaluate_step.tile_checks_by_layer(list(written.values()), ["surface", "rootzone"])


def test_map_panels(world):
    run = world["run"]
    down = run / "downscaled" / "surface"
    files = {"ensemble": down / "ensemble.tif", "ensemble_std": down / "ensemble_std.tif",
             "truth": run / "truth_surface.tif"}
    panels = map_panels(files, run / "coarse_surface.tif", [DATES[0], "1999-01-01"])
    assert list(panels) == [DATES[0]]
    assert panels[DATES[0]]["ensemble"] == pytest.approx(world["truth"][0])
    assert panels[DATES[0]]["coarse"].shape == (2, 2)
    small = map_panels(files, run / "coarse_surface.tif", [DATES[1]], max_side=2)
    assert small[DATES[1]]["truth"] == pytest.approx(world["coarse"][1])


# ---------------------------------------------------------------- seams, uncertainty, intervals


def outputs(world):
    ev = world["run"] / "evaluation"
    return {"out": ev / "metrics.csv", "seams_out": ev / "seams.csv", "uncertainty_out": ev / "uncertainty.csv",
            "reliability_out": ev / "reliability.csv", "differences_out": ev / "differences.csv"}


def test_seam_table(world):
    from smdown.evaluating.metrics import seam_ratio

    files = outputs(world)
    run_eval(world, **files)
    seams = pd.read_csv(files["seams_out"]).set_index("method")
    assert list(pd.read_csv(files["seams_out"]).columns) == SEAM_COLUMNS
    assert set(seams.index) == {"dnn", "cnn", "ensemble", "cubic", "truth"}
    test_days = world["truth"][3:]  # seams over all cells on the test dates
    assert seams.loc["truth", "seam_ratio"] == pytest.approx(seam_ratio(test_days, FACTOR), rel=1e-6)
    assert seams.loc["ensemble", "seam_ratio"] == pytest.approx(seams.loc["truth", "seam_ratio"], rel=1e-6)
    # 6 x 6 pixels, 2 x 2 cells: one edge line per axis, 6 pairs each, per day
    assert seams.loc["truth", "n_across"] == 3 * 2 * 6
    assert seams.loc["truth", "n_inside"] == 3 * 2 * 6 * 4
    # cubic here is constant within each cell: no inside difference, steps across
    assert seams.loc["cubic", "inside"] == 0 and seams.loc["cubic", "across"] > 0
    assert np.isnan(seams.loc["cubic", "seam_ratio"])
    # the dnn's bogus train cell is one big step
    assert seams.loc["dnn", "seam_ratio"] > 100


def test_uncertainty_coverage_and_spread_error(world):
    """Errors of 0.03 on a known set of pixels, where the std is 0.01 (not covered); no error, std 0.005, elsewhere."""
    run = world["run"]
    down = run / "downscaled" / "surface"
    truth, fine_grid = world["truth"], world["fine_grid"]
    rng = np.random.default_rng(1)
    wrong = rng.random(truth.shape) < 0.3
    io.write_stack(down / "ensemble.tif", io.Stack(truth + np.float32(0.03) * wrong, fine_grid, DATES))
    io.write_stack(down / "ensemble_std.tif", io.Stack(np.where(wrong, 0.01, 0.005).astype(np.float32), fine_grid,
                                                       DATES))
    files = outputs(world)
    run_eval(world, **files)
    table = pd.read_csv(files["uncertainty_out"])
    assert list(table.columns) == UNCERTAINTY_COLUMNS
    assert set(zip(table["method"], table["reference"], strict=True)) == {("ensemble", "truth"),
                                                                           ("ensemble", "stations")}
    row = table[table["reference"] == "truth"].iloc[0]
    test = np.zeros(truth.shape, dtype=bool)
    test[3:, 0:3, 0:3] = test[3:, 3:6, 3:6] = True  # test cells (0, 0), (1, 1) x test dates
    assert row["n"] == test.sum()
    assert row["coverage_90"] == pytest.approx(1.0 - wrong[test].mean())
    assert row["coverage_99"] == pytest.approx(1.0 - wrong[test].mean())  # 2.58 x 0.01 < 0.03 still
    assert row["spread_error_r"] == pytest.approx(1.0)
    assert row["mae"] == pytest.approx(0.03 * wrong[test].mean(), rel=1e-4)
    # the proper scores: 0.03 off where the std is 0.01, exact where it is 0.005
    share = wrong[test].mean()
    assert row["crps"] == pytest.approx(share * metrics.crps_normal(0.03, 0.01)
                                        + (1 - share) * metrics.crps_normal(0.0, 0.005), rel=1e-4)
    assert row["interval_score_90"] == pytest.approx(
        share * (2 * metrics.Z90 * 0.01 + 20 * (0.03 - metrics.Z90 * 0.01)) + (1 - share) * 2 * metrics.Z90 * 0.005,
        rel=1e-4)
    # a constant std covering as often (the exact pixels alone) is a point forecast: CRPS = MAE, width 0
    assert row["constant_std"] == pytest.approx(0.0, abs=1e-8)
    assert row["crps_constant"] == pytest.approx(0.03 * share, rel=1e-4)
    assert row["interval_score_90_constant"] == pytest.approx(20 * 0.03 * share, rel=1e-4)
    assert row["crps_skill"] == pytest.approx(1 - row["crps"] / row["crps_constant"])
    station = table[table["reference"] == "stations"].iloc[0]  # on the test days only
    assert station["n"] == len(DATES) - 3
    assert station["coverage_90"] == pytest.approx(1.0 - wrong[3:, 4, 2].mean())
    bins = pd.read_csv(files["reliability_out"])
    assert list(bins.columns) == RELIABILITY_COLUMNS
    truth_bins = bins[bins["reference"] == "truth"]
    assert truth_bins["n"].sum() == row["n"]


def test_intervals_in_metrics_and_differences(world):
    files = outputs(world)
    table = run_eval(world, **files)
    assert list(table.columns[:8]) == ["layer", "method", "reference", "r", "bias", "rmse", "ubrmse", "n"]
    assert {"r_lo", "r_hi", "ubrmse_lo", "ubrmse_hi", "bias_lo", "bias_hi"} <= set(table.columns)
    for _, row in table.iterrows():
        for name in ("bias", "rmse", "ubrmse"):
            if np.isfinite(row[f"{name}_lo"]):
                assert row[f"{name}_lo"] - 1e-9 <= row[name] <= row[f"{name}_hi"] + 1e-9, (row["method"], name)
    cnn = get(table, "cnn", "truth")
    assert cnn["bias_lo"] == pytest.approx(0.01, abs=1e-5) and cnn["bias_hi"] == pytest.approx(0.01, abs=1e-5)
    cubic = get(table, "cubic", "truth")
    assert cubic["rmse_lo"] < cubic["rmse_hi"]
    diffs = pd.read_csv(files["differences_out"])
    assert list(diffs.columns) == DIFFERENCE_COLUMNS
    d = diffs[(diffs["reference"] == "truth") & (diffs["method"] == "cnn") & (diffs["metric"] == "bias")].iloc[0]
    assert d["versus"] == "ensemble"
    assert d["difference"] == pytest.approx(0.01, abs=1e-5) and d["lo"] == pytest.approx(0.01, abs=1e-5)
    # paired: cubic is worse than the (perfect) ensemble in every resample
    d = diffs[(diffs["reference"] == "truth") & (diffs["method"] == "cubic") & (diffs["metric"] == "rmse")].iloc[0]
    assert d["lo"] > 0
    # seeded: the same run gives the same intervals; no resampling leaves them NaN
    again = run_eval(world)
    pd.testing.assert_frame_equal(table, again)
    bare = run_eval(world, bootstrap=0)
    assert bare[["r_lo", "ubrmse_hi"]].isna().all().all()
    pd.testing.assert_frame_equal(bare[COLUMNS[:10]], table[COLUMNS[:10]])


def test_bad_block_days_is_refused(world):
    with pytest.raises(ValueError, match="block_days"):
        run_eval(world, block_days=0)


def test_reliability_figure_from_the_tables(world, tmp_path):
    from smdown.evaluating import plots

    files = outputs(world)
    run_eval(world, **files)
    bins, table = pd.read_csv(files["reliability_out"]), pd.read_csv(files["uncertainty_out"])
    for name, args in (("full", (bins, table)), ("empty", (bins.iloc[:0], table.iloc[:0]))):
        path = plots.plot_reliability(*args, tmp_path / f"{name}.png", title="surface")
        assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"
