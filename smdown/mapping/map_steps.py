"""The mapping stage's steps (workflow/rules/predict.smk): the 30 m maps of the members and the ensemble, the forest's, the merge of tiles, the stations' refinement and the calibrated uncertainty.

Steps of workflow/rules/predict.smk: the 30 m maps of the deep members, the ensemble and its spread (`predict`),
and of the random-forest peer (`predict_rf`; also a member of the ensemble, predicted inside `predict`, where
config ensemble.forest is on).

Step of rules merge_tiles and merge_scale: one raster of the region from its tiles' rasters (rasterio only, so
the merges run in the light `gdal` environment).

Steps of workflow/rules/predict.smk (rules fit_refinement and refine): the stations' refinement of the ensemble's
within-cell detail (smdown.mapping.refine).

The fit runs after predict, since the stations' errors need the ensemble at their pixels: one job a layer, reading
the merged ``ensemble_raw`` at the stations' pixels and each predictor over the stations' coarse cells (an anomaly
needs its cell's mean). The map is then one job a tile, from the merged ``ensemble_raw`` and the predictors over the
tile's cells (no halo: a cell's anomaly needs only the cell), merged by merge_tiles into ``ensemble.tif``; reading
the merged map, not the tile's temporary one, lets a changed refinement rerun without predict.

Steps of workflow/rules/predict.smk (rules calibrate_uncertainty and uncertainty): the calibrated uncertainty map
of the ensemble.

The calibration runs after predict because its fit on stations needs the ensemble at the stations' pixels (one job
a layer, reading the stations' pixels only); the map is then one job a tile (merged by merge_tiles), one more read
of the merged ensemble and its spread, block by block of whole coarse cells with a halo of half the detail window
(the local detail needs the neighbourhood), memory bounded by the block.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from smdown import io
from smdown.grid import Tile, cell_blocks
from smdown.jobs import factor_of
from smdown.learning.train import load_members
from smdown.mapping import refine as refining
from smdown.mapping import uncertainty as unc
from smdown.mapping.blocks import predict_layer
from smdown.preparing.features import FeatureSpec
from smdown.stations import at_station_pixels, fitting_series

log = logging.getLogger(__name__)


# ------------------------------------------------------------ predict
def predict(model_paths: list[str], weights_path: str, rasters: dict[str, str], coarse: str, anchor: str, scale: str,
            outputs: dict[str, str], settings: dict, model_inputs: dict, tile: list[int] | None = None,
            threads: int = 1) -> None:
    """`settings`: config predict; `model_inputs`: what the members' inputs mean (checked against each model);
    `anchor`: the coarse field's cubic interpolation at this scale (used where settings anchor is smoothed);
    `tile`: [first row, first col, rows, cols] of the coarse cells to predict (None: all); `threads`: the job's."""
    members = load_members(model_paths, model_inputs, threads)
    table = pd.read_csv(weights_path)
    # the members given: the deep ones, and the forest where it joins the ensemble (config ensemble.forest)
    member_weights = {row.member: float(row.weight) for row in table.itertuples() if row.member in members}
    _predict(members, member_weights, rasters, coarse, anchor, scale, outputs, settings, model_inputs, tile, threads)


def predict_rf(model_path: str, rasters: dict[str, str], coarse: str, anchor: str, scale: str, output: str,
               settings: dict, model_inputs: dict, threads: int = 1, tile: list[int] | None = None) -> None:
    """The random forest's 30 m map with the members' correction (so it is compared like for like), in a job of its
    own: no TensorFlow, the forest on `threads` cores."""
    members = load_members([model_path], model_inputs, threads)
    _predict(members, {}, rasters, coarse, anchor, scale, {"rf": output}, settings, model_inputs, tile, threads)


def _predict(members, member_weights, rasters, coarse, anchor, scale, outputs, settings, model_inputs, tile, threads):
    factor = factor_of(scale, coarse)
    spec = FeatureSpec.from_dict(model_inputs["spec"])
    smoothed = anchor if settings["anchor"] == "smoothed" else None
    log.info("correction %s to the %s anchor%s; tile %s", settings["correction"], settings["anchor"],
             f" ({anchor})" if smoothed else "", tile or "whole region")
    clipped = predict_layer(members, member_weights, spec, rasters, coarse, factor, outputs,
                            block_cells=settings["block_cells"], correction=settings["correction"],
                            valid_range=tuple(settings["valid_range"]), anchor=smoothed, tile=Tile(*tile) if tile else None, threads=threads)
    for name, count in clipped.items():
        log.info("%s: %d values outside %s clipped", name, count, settings["valid_range"])


# ------------------------------------------------------------ merge
def merge_tiles(parts: list[str], output: str) -> None:
    """One raster from its tiles' (predict, predict_rf, cubic_baseline and resample_tile run one job per tile)."""
    grid = io.merge(parts, output)
    log.info("%s: %d tiles merged, %d x %d pixels", output, len(parts), grid.height, grid.width)


# ------------------------------------------------------------ refine
HELD_OUT_COLUMNS = ["station", "date", "shift"]  # fit_refinement's table of held-out shifts at the stations


def station_anomalies(rasters: Mapping[str, str], series: pd.DataFrame, factor: int,
                      dates: list[str]) -> dict[str, np.ndarray]:
    """Each predictor's within-cell anomaly (smdown.mapping.refine.cell_anomaly) at each row (station pixel and date) of
    `series`, from the station's whole coarse cell (static rasters: the same every date)."""

    out = {}
    for name, path in rasters.items():
        bands = io.bands_of_dates(path, dates)

        def anomaly(row: int, col: int, path=path, bands=bands) -> np.ndarray:
            top, left = row // factor * factor, col // factor * factor
            cell = io.read_window(path, top, left, factor, factor, bands=bands)
            return refining.cell_anomaly(cell, factor)[:, row - top, col - left]

        out[name] = at_station_pixels(series, dates, anomaly, static=bands is None)
    return out


def fit_layer(layer: str, ensemble: str, rasters: Mapping[str, str], coarse: str, split: str | None,
              stations: str | None, settings: dict) -> tuple[refining.Refinement, pd.DataFrame]:
    """The layer's refinement from the stations' days outside the split's test days (`ensemble`: the merged
    ensemble before refinement; `rasters`: the predictors of config refine.predictors on the 30 m grid;
    `settings`: config refine), and the held-out shift of each station-day it was fitted on (HELD_OUT_COLUMNS:
    how the refined map there would move had its station been left out, smdown.mapping.refine.left_out_shifts; no rows
    where the refinement is not applied)."""

    names = [n for n in settings["predictors"] if n in rasters]
    missing = sorted(set(settings["predictors"]) - set(rasters))
    if missing:
        log.warning("%s: refine.predictors %s are not predictors of this run; left out", layer, missing)
    no_shifts = pd.DataFrame(columns=HELD_OUT_COLUMNS)
    if not stations or not names:
        return refining.Refinement(predictors=names, beta=[0.0] * len(names),
                                   reason="no stations" if not stations else "no predictor"), no_shifts
    series = fitting_series({"ensemble": ensemble}, stations, layer, split)
    if not len(series):
        return refining.Refinement(predictors=names, beta=[0.0] * len(names),
                                   reason="no station observation outside the test days"), no_shifts
    factor = io.nest(io.read_grid(ensemble), io.read_grid(coarse))
    anomalies = station_anomalies({n: rasters[n] for n in names}, series, factor, io.read_dates(ensemble))
    error = (series["observed"] - series["ensemble"]).to_numpy()
    station = series["station"].to_numpy()
    result = refining.fit(anomalies, error, station, int(settings["min_stations"]))
    if not result.applied:
        return result, no_shifts
    shifts = series[["station", "date"]].assign(shift=refining.left_out_shifts(anomalies, error, station, result))
    return result, shifts


def fit_refinement(layer: str, ensemble: str, rasters: Mapping[str, str], coarse: str, split: str | None,
                   stations: str | None, output: str, settings: dict,
                   held_out: str | None = None) -> refining.Refinement:
    """Rule fit_refinement: the layer's refinement (fit_layer) written whole to `output` (refinement.json), the
    held-out shifts at the stations to `held_out` (a csv the uncertainty's calibration reads)."""
    result, shifts = fit_layer(layer, ensemble, rasters, coarse, split, stations, settings)
    if result.applied:
        log.info("%s: refined on %d day(s) of %d station(s); beta %s; left-one-station-out RMSE %.4f against %.4f "
                 "without (%.0f %% less)", layer, result.station_days, result.stations,
                 dict(zip(result.predictors, np.round(result.beta, 5).tolist(), strict=True)), result.loso_rmse,
                 result.base_rmse, 100 * result.gain)
    else:
        log.info("%s: not refined: %s", layer, result.reason)
    io.write_json(output, result.as_dict())
    if held_out:
        io.write_csv(held_out, shifts)
    return result


def read_refinement(path: str) -> refining.Refinement:
    """The refinement that fit_refinement wrote (refinement.json)."""
    return refining.Refinement.from_dict(json.loads(Path(path).read_text()))


def held_out_shifts(path: str, series: pd.DataFrame) -> np.ndarray | None:
    """For each row (station and date) of `series`: how the refined ensemble there would move had its station been
    left out of the refinement's fit, from the table fit_refinement wrote (`path`); None where the refinement was
    not applied (a table without rows). The uncertainty is calibrated on the errors so corrected: the fit took up
    part of its own stations' errors, and the map has no station elsewhere. A row the table lacks, or whose
    shift is NaN (a predictor missing there), moves by 0."""
    table = pd.read_csv(path, dtype={"station": str, "date": str})
    if table.empty:
        return None
    keys = series[["station", "date"]].astype(str)
    shifts = keys.merge(table, on=["station", "date"], how="left")["shift"].to_numpy(dtype=float)
    if np.isnan(shifts).any():
        log.info("%s: %d of %d station-day(s) without a held-out shift, taken as 0", path, int(np.isnan(shifts).sum()),
                 len(shifts))
    return np.nan_to_num(shifts)


def refine_map(refinement: refining.Refinement, ensemble: str, rasters: Mapping[str, str], factor: int, output: str,
               valid_range: tuple[float, float], tile: list[int] | None = None,
               max_pixels: int = 8_000_000) -> int:
    """Rule refine: the refined ensemble over `tile` ([first row, first col, rows, cols] in coarse cells; None: the
    whole region) on the grid of its pixels, from the layer's merged `ensemble` before refinement and the predictors
    (`rasters`), block by block of whole coarse cells, clipped to `valid_range` (config predict.valid_range) as
    predict clips; a block holds `max_pixels` pixel-days at most (one cell at least). Not applied: the tile's pixels
    are copied. Returns the number of values clipped."""
    grid, dates = io.read_grid(ensemble), io.read_dates(ensemble)
    region = Tile(*tile) if tile else Tile(0, 0, grid.height // factor, grid.width // factor)
    names = refinement.predictors if refinement.applied else []
    bands = {name: io.bands_of_dates(rasters[name], dates) for name in names}
    side = max(1, int(np.sqrt(max_pixels / max(1, len(dates) * factor * factor))))
    clipped = 0
    with io.atomic_path(output) as tmp, io.open_writer(tmp, grid.window(*region.fine(factor)), dates) as dst:
        for r, c, h, w in cell_blocks((region.rows, region.cols), side):
            window = ((region.row + r) * factor, (region.col + c) * factor, h * factor, w * factor)
            block = io.read_window(ensemble, *window)
            if names:
                values = {name: io.read_window(rasters[name], *window, bands=bands[name]) for name in names}
                block = refining.refine(block, {n: v[0] if bands[n] is None else v for n, v in values.items()},
                                        refinement, factor)
                clipped += int(np.count_nonzero(block < valid_range[0]) + np.count_nonzero(block > valid_range[1]))
                block = np.clip(block, *valid_range)
            io.write_window(dst, block, r * factor, c * factor)
    if names:
        log.info("refined with beta %s; %d value(s) outside %s clipped",
                 dict(zip(names, refinement.beta, strict=True)), clipped, list(valid_range))
    else:
        log.info("not refined (%s): the ensemble's pixels copied", refinement.reason)
    return clipped


# ------------------------------------------------------------ uncertainty
def station_detail(ensemble: str, series: pd.DataFrame, window: int) -> np.ndarray:
    """The local detail (smdown.mapping.uncertainty.local_detail) at each row (station pixel and date) of `series`."""

    grid = io.read_grid(ensemble)
    half = max(int(window), 1) // 2

    def detail(row: int, col: int) -> np.ndarray:
        block = io.read_block(ensemble, row, col, 1, 1, half, (grid.height, grid.width))
        return unc.local_detail(block, window, half)[:, 0, 0]

    return at_station_pixels(series, io.read_dates(ensemble), detail, dtype=np.float32)


def station_values(rasters: Mapping[str, str], series: pd.DataFrame, dates: Sequence[str]) -> dict[str, np.ndarray]:
    """Each raster's value at each row (station pixel and date) of `series` (static rasters: every date)."""

    out = {}
    for name, path in rasters.items():
        bands = io.bands_of_dates(path, dates)

        def pixel(row: int, col: int, path=path, bands=bands) -> np.ndarray:
            return io.read_window(path, row, col, 1, 1, bands=bands)[:, 0, 0]

        out[name] = at_station_pixels(series, dates, pixel, static=bands is None, dtype=np.float32)
    return out


def _learned(series: pd.DataFrame, error: np.ndarray, detail: np.ndarray, values: Mapping[str, np.ndarray],
             prior_a: float, k: float, settings: dict) -> unc.Calibration:
    """station_fit learned: the error model of the stations (fit_error_model) at the level of the prior's blended
    with the stations' as in `scale` (fit_scale on the model's left-one-station-out sizes); `values`: the other
    30 m maps' values at the stations (station_values)."""
    station = series["station"].to_numpy()
    spread = series["ensemble_std"].to_numpy()
    features = {"ensemble": series["ensemble"].to_numpy(), "detail": detail, "spread": np.nan_to_num(spread),
                **values}
    model, size = unc.fit_error_model(features, error, station)
    weight, _ = unc.station_weights(station, np.isfinite(size))
    prior_var = prior_a**2 + (k * np.nan_to_num(detail[np.isfinite(size)])) ** 2
    # the prior's level: its mean variance at the stations over the model's there (each station weighing once)
    start = float(np.sqrt(np.sum(weight * prior_var) / np.sum(weight * size[np.isfinite(size)] ** 2)))
    scaled = unc.fit_scale(spread, error, 0.0, start * size, 1.0, station, settings["station_error"],
                           float(settings["prior_weight"]))
    model.level = start * scaled.k
    return unc.Calibration(a=0.0, b=0.0, k=0.0, source="stations", n=scaled.n, model=model)


def calibrate(layer: str, ensemble: str, spread: str, weights: str, coarse: str, split: str | None,
              stations: str | None, settings: dict, rasters: Mapping[str, str] | None = None,
              held_out: str | None = None) -> tuple[unc.Calibration, dict]:
    """The layer's calibration (smdown.mapping.uncertainty) and what it was made from (a row of calibration.csv).

    `settings`: config uncertainty (use_stations, min_station_days, station_error, coarse_error, prior_weight,
    within_factor, detail_window, station_fit: one for both layers or one per layer). `rasters`: name -> the
    30 m maps a learned model reads besides the ensemble, its detail and spread (the coarse field, the
    predictors). `held_out`: the layer's held-out shifts (fit_refinement's table) where the stations refine the
    ensemble; where it was applied, the stations' errors are those of the refinement fitted without each station
    (smdown.mapping.map_steps.held_out_shifts)."""
    info: dict = {"layer": layer}
    window = int(settings.get("detail_window", 31))
    table = pd.read_csv(weights)
    table = table[table["member"] != "rf"]
    k = unc.within_factor({c: table[c].to_numpy() for c in table.columns}, settings["within_factor"])
    info.update(k_from="self-similarity check" if "similarity_r" in table else "uncertainty.within_factor",
                detail_window=window)
    if stations and settings["use_stations"]:

        series = fitting_series({"ensemble": ensemble, "ensemble_std": spread}, stations, layer, split, coarse)
        shifts = None
        if held_out and len(series):
            from smdown.mapping.map_steps import held_out_shifts

            shifts = held_out_shifts(held_out, series)
        if shifts is not None:
            series["ensemble"] += shifts
            info["errors_from"] = "refinement without each station"
        info["station_days"] = len(series)
        if len(series) >= settings["min_station_days"]:
            error = (series["ensemble"] - series["observed"]).to_numpy()
            fit = station_fit_of(settings, layer)
            if fit == "learned" and series["station"].nunique() < unc.MIN_LEARNING_STATIONS:
                log.warning("%s: %d station(s), fewer than the %d that uncertainty.station_fit learned needs (one is "
                            "left out at a time): the stations scale the prior instead (station_fit scale)", layer,
                            series["station"].nunique(), unc.MIN_LEARNING_STATIONS)
                fit = "scale"
            detail = station_detail(ensemble, series, window) if k or fit == "learned" \
                else np.zeros(len(series), np.float32)
            station = series["station"].to_numpy()
            values = None  # the other 30 m maps at the stations, which a learned model reads
            if fit == "learned":
                values = station_values(rasters or {}, series, io.read_dates(ensemble))
                cal = _learned(series, error, detail, values, float(settings["coarse_error"][layer]), k, settings)
            elif fit == "scale":
                cal = unc.fit_scale(series["ensemble_std"].to_numpy(), error, float(settings["coarse_error"][layer]),
                                    detail, k, station, settings["station_error"], float(settings["prior_weight"]))
            else:
                cal = unc.fit_stations(series["ensemble"].to_numpy(), series["ensemble_std"].to_numpy(), error,
                                       settings["station_error"], detail, k, station)
            sig = unc.sigma(series["ensemble"].to_numpy(np.float32), series["ensemble_std"].to_numpy(np.float32),
                            detail, cal, values)
            info.update(station_fit=fit, stations=int(series["station"].nunique()),
                        station_coverage_90=unc.coverage(error, np.sqrt(sig**2 + settings["station_error"] ** 2)))
            log.info("%s: uncertainty calibrated on %d day(s) of %d station(s) outside the test days, detail "
                     "factor %.3f (%s)", layer, len(series), info["stations"], k, info["k_from"])
            return cal, info
        log.warning("%s: %d station-day(s) outside the test days, fewer than uncertainty.min_station_days (%d): "
                    "the prior calibration instead", layer, len(series), settings["min_station_days"])
    cal = unc.Calibration(a=float(settings["coarse_error"][layer]), b=0.0, k=k, source="prior", n=0)
    log.info("%s: prior uncertainty: coarse error %.4f, detail factor %.3f (%s)", layer, cal.a, k, info["k_from"])
    return cal, info


def station_fit_of(settings: dict, layer: str) -> str:
    """The layer's station fit (config uncertainty.station_fit: one for both layers or one per layer)."""
    fit = settings["station_fit"]
    return fit[layer] if isinstance(fit, dict) else fit


def calibrate_layer(layer: str, ensemble: str, spread: str, weights: str, coarse: str, split: str | None,
                    stations: str | None, calibration_csv: str, calibration_json: str, settings: dict,
                    rasters: Mapping[str, str] | None = None, held_out: str | None = None) -> unc.Calibration:
    """Rule calibrate_uncertainty: the layer's calibration (calibrate), as a row of calibration.csv and whole (its
    learned model included) in calibration.json, which each tile's map (uncertainty_map) reads."""
    cal, info = calibrate(layer, ensemble, spread, weights, coarse, split, stations, settings, rasters, held_out)
    info.update(cal.as_dict())
    io.write_csv(calibration_csv, pd.DataFrame([info]))
    io.write_json(calibration_json, asdict(cal))
    log.info("%s: %s", layer, info)
    return cal


def read_calibration(path: str) -> unc.Calibration:
    """The calibration that calibrate_layer wrote whole (calibration.json)."""
    return unc.Calibration.from_dict(json.loads(Path(path).read_text()))


def uncertainty_map(cal: unc.Calibration, ensemble: str, spread: str, coarse: str, output: str, detail_window: int,
                    rasters: Mapping[str, str] | None = None, tile: Sequence[int] | None = None,
                    max_pixels: int = 8_000_000) -> None:
    """Rule uncertainty: the uncertainty map of `tile` ([first row, first col, rows, cols] in coarse cells; None:
    the whole region) on the grid of the ensemble's pixels there. It reads the layer's merged ensemble and spread,
    block by block of whole coarse cells with a halo of half the detail window (the local detail needs the
    neighbourhood, across the tile's edges too), and, for a learned model, the other 30 m maps (`rasters`)."""
    rasters = rasters or {}
    grid, dates = io.read_grid(ensemble), io.read_dates(ensemble)
    coarse_grid = io.read_grid(coarse)
    factor = grid.height // coarse_grid.height
    tile = Tile(*tile) if tile else Tile(0, 0, coarse_grid.height, coarse_grid.width)
    bands = {name: io.bands_of_dates(path, dates) for name, path in rasters.items()} if cal.model else {}
    side = max(1, int(np.sqrt(max_pixels / max(1, len(dates) * factor * factor))))
    half = max(int(detail_window), 1) // 2 if cal.k or cal.model else 0
    blocks = list(cell_blocks((tile.rows, tile.cols), side))
    first_row, first_col = tile.row * factor, tile.col * factor
    with io.open_writer(output, grid.window(*tile.fine(factor)), dates) as dst:
        for i, (r, c, h, w) in enumerate(blocks, 1):
            window = ((tile.row + r) * factor, (tile.col + c) * factor, h * factor, w * factor)
            if half:  # the block and a halo of half the detail window
                block = io.read_block(ensemble, *window, half, (grid.height, grid.width))
                mean = block[:, half:-half, half:-half]
                detail = unc.local_detail(block, 2 * half + 1, half)
            else:
                mean = io.read_window(ensemble, *window)
                detail = np.zeros_like(mean)
            features = {name: io.read_window(path, *window, bands=bands[name]) for name, path in rasters.items()} \
                if cal.model else None
            sig = unc.sigma(mean, io.read_window(spread, *window), detail, cal, features)
            io.write_window(dst, sig, window[0] - first_row, window[1] - first_col)
            log.info("block %d/%d done", i, len(blocks))


def uncertainty(layer: str, ensemble: str, spread: str, weights: str, coarse: str, split: str | None,
                stations: str | None, output: str, calibration_out: str, settings: dict,
                max_pixels: int = 8_000_000, rasters: Mapping[str, str] | None = None) -> unc.Calibration:
    """The two rules on the whole region in one call: the calibration (calibration.csv, and calibration.json
    beside it) and the uncertainty map (`output`, same grid and dates as the ensemble). `rasters`: the 30 m maps a
    learned error model may read (calibrate)."""
    cal = calibrate_layer(layer, ensemble, spread, weights, coarse, split, stations, calibration_out,
                          str(Path(calibration_out).with_suffix(".json")), settings, rasters)
    uncertainty_map(cal, ensemble, spread, coarse, output, int(settings.get("detail_window", 31)), rasters,
                    max_pixels=max_pixels)
    return cal
