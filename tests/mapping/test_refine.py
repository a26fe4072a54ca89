"""The stations' refinement of the ensemble's within-cell detail (smdown.mapping.refine, smdown.mapping.refine_steps)."""

import json

import numpy as np
import pandas as pd
import pytest

from smdown import io
from smdown.evaluating.metrics import seam_ratio
from smdown.grid import block_expand, block_mean, ease2_9km_grid, nested_grid
from smdown.mapping import refine as refining
from smdown.mapping.refine_steps import fit_layer, fit_refinement, held_out_shifts, read_refinement, refine_map

FACTOR = 4
MIN_STATIONS = 4  # config refine.min_stations, its schema default


def test_a_cell_anomaly_has_mean_zero_over_the_cell_and_the_mask():
    values = np.arange(2 * 8 * 8, dtype=float).reshape(2, 8, 8)
    anomaly = refining.cell_anomaly(values, FACTOR)
    assert np.abs(refining.cell_means(anomaly, FACTOR)).max() < 1e-12
    # against the smooth field of the cell means, not the cell's own mean: no step at the cell edges. A ramp's
    # anomaly against its cell means steps back by the ramp over a cell at every edge (seam ratio 3 here), against the
    # smooth field by about what it jumps inside
    ramp = np.add.outer(np.arange(24.0), np.arange(24.0))[None]
    flat = ramp - block_expand(refining.cell_means(ramp, FACTOR), FACTOR)
    assert seam_ratio(flat, FACTOR) == pytest.approx(3.0)
    assert seam_ratio(refining.cell_anomaly(ramp, FACTOR), FACTOR) < 1.5
    # a window of the region with HALO cells around it (or the region's edge) gets the region's anomaly exactly
    rng = np.random.default_rng(3)
    region = rng.uniform(0, 1, (2, 13 * FACTOR, 12 * FACTOR))
    whole = refining.cell_anomaly(region, FACTOR)
    top = 6 - refining.HALO  # cells rows 6-7, cols 0-1: the halo is cut by the region's left edge
    grid = region[:, top * FACTOR : 13 * FACTOR, : (2 + refining.HALO) * FACTOR]
    window = region[:, 6 * FACTOR : 8 * FACTOR, : 2 * FACTOR]
    part = refining.cell_anomaly(window, FACTOR, means=refining.cell_means(grid, FACTOR), offset=(6 - top, 0))
    assert np.array_equal(part, whole[:, 6 * FACTOR : 8 * FACTOR, : 2 * FACTOR])
    mask = np.ones_like(values, dtype=bool)
    mask[:, 0, 0] = False
    values[:, 1, 1] = np.nan
    masked = refining.cell_anomaly(values, FACTOR, mask)
    assert masked[0, 0, 0] == 0 and masked[0, 1, 1] == 0  # outside the mask, and not finite: 0
    assert np.nansum(masked[0, :4, :4]) == pytest.approx(0.0, abs=1e-5)


def _stations(beta, noise, stations=12, days=20, seed=0):
    """Station errors made of beta times two anomalies (fixed per station, as NDVI's nearly is, plus a little day
    to day), a station's persistent offset and day noise."""
    rng = np.random.default_rng(seed)
    station = np.repeat(np.arange(stations), days)
    anomalies = {name: np.repeat(rng.normal(0, 0.1, stations), days) + rng.normal(0, 0.01, stations * days)
                 for name in ("ndvi", "ndwi")}
    error = (beta[0] * anomalies["ndvi"] + beta[1] * anomalies["ndwi"]
             + np.repeat(rng.normal(0.005, noise, stations), days) + rng.normal(0, noise, stations * days))
    return anomalies, error, station


def test_the_fit_finds_a_known_response_and_nothing_in_noise():
    anomalies, error, station = _stations((-0.2, 0.3), noise=0.004)
    found = refining.fit(anomalies, error, station, MIN_STATIONS)
    assert found.applied and found.stations == 12 and found.station_days == 240
    assert found.beta == pytest.approx([-0.2, 0.3], rel=0.15)
    assert found.gain > 0.5
    assert refining.fitted_beta(anomalies, error, station, found.alpha) == pytest.approx(found.beta, rel=1e-12)
    # a larger penalty draws beta towards 0, whatever the check
    shrunk = refining.fitted_beta(anomalies, error, station, 1e4)
    assert 0 < np.abs(shrunk).max() < 0.1 * np.abs(found.beta).max()
    # errors the anomalies do not explain: left one station out, the fit does not beat the mean error
    anomalies, error, station = _stations((0.0, 0.0), noise=0.02, seed=3)
    none = refining.fit(anomalies, error, station, MIN_STATIONS)
    assert not none.applied and none.beta == [0.0, 0.0] and "does not beat" in none.reason
    few = refining.fit(*_stations((-0.2, 0.3), noise=0.004, stations=3)[:2], np.repeat(np.arange(3), 20), MIN_STATIONS)
    assert not few.applied and "fewer than" in few.reason


def test_left_out_shifts_are_the_refits_without_each_station():
    """The error the refined map makes where no station was: at each station, the slopes refitted on the others
    (sklearn's own ridge on the standardised anomalies, each station weighing once, the fit's penalty) less the
    fitted ones; they are small where the response is clear, and the left-out errors' RMS is the fit's own
    left-out RMSE once each refit's intercept is taken off."""
    from sklearn.linear_model import Ridge

    anomalies, error, station = _stations((-0.2, 0.3), noise=0.004)
    error[5] = np.nan  # a gap stays a gap
    found = refining.fit(anomalies, error, station, MIN_STATIONS)
    shifts = refining.left_out_shifts(anomalies, error, station, found)
    assert np.isnan(shifts[5]) and np.isfinite(np.delete(shifts, 5)).all()
    ok = np.isfinite(error)
    x = np.stack([anomalies["ndvi"], anomalies["ndwi"]], axis=1)[ok]
    y, groups = error[ok], station[ok]
    weight = 1.0 / np.bincount(groups)[groups]
    scale = np.sqrt(np.sum(weight[:, None] * x**2, axis=0) / weight.sum())
    for left in (0, 7):
        others = groups != left
        ridge = Ridge(alpha=found.alpha).fit(x[others] / scale, y[others], sample_weight=weight[others])
        expected = (x[~others] / scale) @ ridge.coef_ - x[~others] @ np.array(found.beta)
        assert shifts[ok][~others] == pytest.approx(expected, abs=1e-12)
        refit_error = y[~others] - ridge.predict(x[~others] / scale)
        left_out_error = y[~others] - x[~others] @ np.array(found.beta) - shifts[ok][~others] - ridge.intercept_
        assert left_out_error == pytest.approx(refit_error, abs=1e-12)
    assert np.nanmax(np.abs(shifts)) < 0.25 * np.nanstd(error)
    declined = refining.Refinement(predictors=["ndvi", "ndwi"], beta=[0.0, 0.0])
    assert np.nansum(np.abs(refining.left_out_shifts(anomalies, error, station, declined))) == 0


def test_the_refined_map_keeps_every_cell_mean_and_its_gaps():
    rng = np.random.default_rng(2)
    ensemble = rng.uniform(0.1, 0.4, (3, 8, 8))
    ensemble[1, 2, 3] = np.nan
    ndvi = rng.uniform(0.2, 0.8, (3, 8, 8))
    sand = rng.uniform(0.1, 0.9, (8, 8))  # a static predictor: the same anomaly every day
    applied = refining.Refinement(["ndvi", "sand"], [-0.1, 0.05], applied=True)
    out = refining.refine(ensemble, {"ndvi": ndvi, "sand": sand}, applied, FACTOR)
    assert out.dtype == np.float32 and np.isnan(out[1, 2, 3]) and np.isfinite(np.delete(out.ravel(), 64 + 19)).all()
    assert np.allclose(block_mean(out, FACTOR), block_mean(ensemble, FACTOR), atol=1e-6)
    expected = ensemble[0] - 0.1 * refining.cell_anomaly(ndvi, FACTOR)[0] + 0.05 * refining.cell_anomaly(sand, FACTOR)
    assert np.allclose(out[0], expected, atol=1e-6)
    kept = refining.refine(ensemble, {}, refining.Refinement(["ndvi"], [0.0]), FACTOR)
    assert np.array_equal(kept, ensemble.astype(np.float32), equal_nan=True)


def _world(tmp_path, days=16):
    """A 2 x 3-cell region, factor 4: an ensemble, NDVI whose anomaly the ensemble misses (the truth is
    ensemble - 0.2 NDVI anomaly), a static sand map that explains nothing, 12 stations on the truth, a split
    with 4 test days."""
    x, y = io.lonlat_to("EPSG:6933", -120.0, 37.0)
    coarse_grid = ease2_9km_grid(float(x[0]), float(y[0]), 2, 3)
    fine_grid = nested_grid(coarse_grid, FACTOR)
    dates = pd.date_range("2023-05-01", periods=days).strftime("%Y-%m-%d").tolist()
    rng = np.random.default_rng(5)
    ensemble = rng.uniform(0.15, 0.35, (days, 8, 12)).astype(np.float32)
    ndvi = (np.linspace(0.2, 0.8, 8 * 12).reshape(8, 12)[None] + rng.normal(0, 0.05, (days, 8, 12)))
    truth = ensemble - 0.2 * refining.cell_anomaly(ndvi, FACTOR)
    paths = {name: tmp_path / f"{name}.tif" for name in ("ensemble", "ndvi", "sand", "coarse")}
    io.write_stack(paths["ensemble"], io.Stack(ensemble, fine_grid, dates))
    io.write_stack(paths["ndvi"], io.Stack(ndvi.astype(np.float32), fine_grid, dates))
    io.write_stack(paths["sand"], io.Stack(rng.uniform(0.1, 0.9, (1, 8, 12)).astype(np.float32), fine_grid, None))
    io.write_stack(paths["coarse"], io.Stack(block_mean(ensemble, FACTOR), coarse_grid, dates))
    (tmp_path / "split.json").write_text(json.dumps({"test_dates": dates[-4:]}))
    pixels = [(r, c) for r in (0, 3, 5, 7) for c in (1, 6, 10)]
    rows = []
    for i, (row, col) in enumerate(pixels):
        lon, lat = io.to_lonlat(fine_grid.crs, *(fine_grid.transform @ (col + 0.5, row + 0.5)))
        rows += [{"station": f"s{i}", "lon": float(lon[0]), "lat": float(lat[0]), "date": d,
                  "surface": float(truth[t, row, col] + 0.002 * rng.standard_normal()), "rootzone": np.nan}
                 for t, d in enumerate(dates)]
    pd.DataFrame(rows).to_csv(tmp_path / "stations.csv", index=False)
    return paths, ensemble, truth


SETTINGS = {"enabled": True, "predictors": ["ndvi", "sand"], "min_stations": 4}


def test_the_rule_steps_learn_the_response_from_the_stations_and_refine_tile_by_tile(tmp_path):
    paths, ensemble, truth = _world(tmp_path)
    rasters = {"ndvi": str(paths["ndvi"]), "sand": str(paths["sand"])}
    out, held_out = tmp_path / "refinement.json", tmp_path / "held_out.csv"
    found = fit_refinement("surface", str(paths["ensemble"]), rasters, str(paths["coarse"]),
                           str(tmp_path / "split.json"), str(tmp_path / "stations.csv"), str(out), SETTINGS,
                           str(held_out))
    assert found.applied and found.stations == 12 and found.station_days == 12 * 12  # the 4 test days left out
    assert found.beta[0] == pytest.approx(-0.2, rel=0.1) and abs(found.beta[1]) < 0.01
    assert read_refinement(str(out)) == found
    whole = tmp_path / "whole.tif"
    refine_map(found, str(paths["ensemble"]), rasters, FACTOR, str(whole), valid_range=(0.0, 0.65))
    refined = io.read_stack(whole).data
    assert np.abs(refined - truth).mean() < 0.2 * np.abs(ensemble - truth).mean()
    assert np.allclose(block_mean(refined, FACTOR), block_mean(ensemble, FACTOR), atol=1e-6)
    # the refined map's errors at the stations, had each station been left out of the fit (what the uncertainty
    # is calibrated on): larger than the fitted ones, far smaller than the unrefined ensemble's
    from smdown.stations import station_series

    series = station_series({"ensemble": str(whole), "raw": str(paths["ensemble"])}, str(tmp_path / "stations.csv"),
                            "surface")
    series = series[~series["date"].isin(json.loads((tmp_path / "split.json").read_text())["test_dates"])]
    series = series.sample(frac=1.0, random_state=0).reset_index(drop=True)  # the table's rows match by key
    shifts = held_out_shifts(str(held_out), series)
    assert len(pd.read_csv(held_out)) == found.station_days
    assert np.isfinite(shifts).all() and np.abs(shifts).max() > 0

    def rms(values):
        return float(np.sqrt(np.mean(values**2)))

    fitted, held_out = series["observed"] - series["ensemble"], series["observed"] - series["ensemble"] - shifts
    assert rms(fitted) < rms(held_out) < 0.5 * rms(series["observed"] - series["raw"])
    # one tile (the region's right column of cells), refined alone, is the whole map's part on the tile's grid
    refine_map(found, str(paths["ensemble"]), rasters, FACTOR, str(tmp_path / "tile.tif"), valid_range=(0.0, 0.65), tile=[0, 2, 2, 1],
               max_pixels=1)  # one cell a block
    tile = io.read_stack(tmp_path / "tile.tif")
    assert np.array_equal(tile.data, refined[:, :, 8:])
    assert tile.grid == io.read_grid(paths["ensemble"]).window(0, 8, 8, 4)


def test_without_stations_or_a_response_the_ensemble_is_kept(tmp_path):
    paths, ensemble, _ = _world(tmp_path)
    rasters = {"ndvi": str(paths["ndvi"])}
    none, no_shifts = fit_layer("surface", str(paths["ensemble"]), rasters, str(paths["coarse"]),
                                str(tmp_path / "split.json"), None, SETTINGS)
    assert not none.applied and none.reason == "no stations" and no_shifts.empty
    kept = tmp_path / "kept.tif"
    refine_map(none, str(paths["ensemble"]), rasters, FACTOR, str(kept), valid_range=(0.0, 0.65))
    assert np.array_equal(io.read_stack(kept).data, ensemble)
    # the root zone has no observation at the stations
    dry, _ = fit_layer("rootzone", str(paths["ensemble"]), rasters, str(paths["coarse"]),
                       str(tmp_path / "split.json"), str(tmp_path / "stations.csv"), SETTINGS)
    assert not dry.applied
    # a table without rows (not applied) leaves the calibration's errors as they are
    fit_refinement("rootzone", str(paths["ensemble"]), rasters, str(paths["coarse"]), str(tmp_path / "split.json"),
                   str(tmp_path / "stations.csv"), str(tmp_path / "dry.json"), SETTINGS, str(tmp_path / "dry.csv"))
    assert held_out_shifts(str(tmp_path / "dry.csv"), pd.DataFrame({"station": ["s0"], "date": ["2023-05-01"]})) \
        is None
