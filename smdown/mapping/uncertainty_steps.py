"""The mapping stage's uncertainty steps (rules calibrate_uncertainty and uncertainty of workflow/rules/predict.smk): the calibrated uncertainty map
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
from smdown.mapping import uncertainty as unc
from smdown.mapping.refine_steps import held_out_shifts
from smdown.stations import at_station_pixels, fitting_series

log = logging.getLogger(__name__)

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
    (smdown.mapping.refine_steps.held_out_shifts)."""
    info: dict = {"layer": layer}
    window = int(settings["detail_window"])
    table = pd.read_csv(weights)
    table = table[table["member"] != "rf"]
    k = unc.within_factor({c: table[c].to_numpy() for c in table.columns}, settings["within_factor"])
    info.update(k_from="self-similarity check" if "similarity_r" in table else "uncertainty.within_factor",
                detail_window=window)
    if stations and settings["use_stations"]:

        series = fitting_series({"ensemble": ensemble, "ensemble_std": spread}, stations, layer, split, coarse)
        shifts = None
        if held_out and len(series):
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
    uncertainty_map(cal, ensemble, spread, coarse, output, int(settings["detail_window"]), rasters,
                    max_pixels=max_pixels)
    return cal
