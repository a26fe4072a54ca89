"""The mapping stage's refinement steps (rules fit_refinement and refine of workflow/rules/predict.smk): the stations' refinement of the ensemble's
within-cell detail (smdown.mapping.refine).

The fit runs after predict, since the stations' errors need the ensemble at their pixels: one job a layer, reading
the merged ``ensemble_raw`` at the stations' pixels and each predictor over the stations' coarse cells (an anomaly
needs its cell's mean). The map is then one job a tile, from the merged ``ensemble_raw`` and the predictors over the
tile's cells (no halo: a cell's anomaly needs only the cell), merged by merge_tiles into ``ensemble.tif``; reading
the merged map, not the tile's temporary one, lets a changed refinement rerun without predict.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from smdown import io
from smdown.grid import Tile, cell_blocks
from smdown.mapping import refine as refining
from smdown.stations import at_station_pixels, fitting_series

log = logging.getLogger(__name__)


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
