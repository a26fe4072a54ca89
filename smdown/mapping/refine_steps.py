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


def region_means(path: str, bands, factor: int, region: Tile, mask_path: str | None = None,
                 max_pixels: int = 8_000_000) -> np.ndarray:
    """The cell means (days, rows, cols; smdown.mapping.refine.cell_means) of the raster `path` (its `bands`; None:
    static, one day) over the cells of `region`, over its pixels finite there and, with ``mask_path``, in that
    raster too; read block by block of whole cells (``max_pixels`` pixel-days at most, one cell at least)."""
    days = 1 if bands is None else len(bands)
    side = max(1, int(np.sqrt(max_pixels / max(1, days * factor * factor))))
    out = None
    for r, c, h, w in cell_blocks((region.rows, region.cols), side):
        window = ((region.row + r) * factor, (region.col + c) * factor, h * factor, w * factor)
        values = io.read_window(path, *window, bands=bands)
        mask = np.isfinite(io.read_window(mask_path, *window)) if mask_path else None
        means = refining.cell_means(values, factor, mask)
        if out is None:
            out = np.full((len(means), region.rows, region.cols), np.nan)
        out[:, r : r + h, c : c + w] = means
    return out


def halo_of(tile: Tile, cells: tuple[int, int], halo: int = refining.HALO) -> Tile:
    """`tile` grown by ``halo`` cells on each side, cut to the region's `cells` (rows, cols)."""
    top, left = max(0, tile.row - halo), max(0, tile.col - halo)
    bottom, right = min(cells[0], tile.row + tile.rows + halo), min(cells[1], tile.col + tile.cols + halo)
    return Tile(top, left, bottom - top, right - left)


def station_anomalies(rasters: Mapping[str, str], series: pd.DataFrame, factor: int,
                      dates: list[str]) -> dict[str, np.ndarray]:
    """Each predictor's within-cell anomaly (smdown.mapping.refine.cell_anomaly, against the smooth field of the
    cell means) at each row (station pixel and date) of `series`, from the station's whole coarse cell and the cell
    means of the cells around it (static rasters: the same every date)."""

    out = {}
    for name, path in rasters.items():
        bands = io.bands_of_dates(path, dates)
        grid = io.read_grid(path)
        cells = (grid.height // factor, grid.width // factor)
        rows, cols = series["row"].to_numpy(int) // factor, series["col"].to_numpy(int) // factor
        around, means = Tile(0, 0, *cells), None
        if len(series):
            stations = Tile(int(rows.min()), int(cols.min()), int(rows.max() - rows.min()) + 1,
                            int(cols.max() - cols.min()) + 1)
            around = halo_of(stations, cells)
            means = region_means(path, bands, factor, around)

        def anomaly(row: int, col: int, path=path, bands=bands, around=around, means=means) -> np.ndarray:
            top, left = row // factor * factor, col // factor * factor
            cell = io.read_window(path, top, left, factor, factor, bands=bands)
            offset = (row // factor - around.row, col // factor - around.col)
            return refining.cell_anomaly(cell, factor, means=means, offset=offset)[:, row - top, col - left]

        out[name] = at_station_pixels(series, dates, anomaly, static=bands is None) if len(series) else \
            np.zeros(0)
    return out


def station_errors(layer: str, ensemble: str, rasters: Mapping[str, str], coarse: str, split: str | None,
                   stations: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """What the refinement is fitted on: the stations' series (fitting_series: days outside the split's test days,
    with the `ensemble` at each station's pixel in column ``ensemble``) and each predictor's within-cell anomaly
    (`rasters`: name -> 30 m raster) at those rows; no rows, no anomalies."""
    series = fitting_series({"ensemble": ensemble}, stations, layer, split)
    if not len(series):
        return series, {}
    factor = io.nest(io.read_grid(ensemble), io.read_grid(coarse))
    return series, station_anomalies(rasters, series, factor, io.read_dates(ensemble))


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
    series, anomalies = station_errors(layer, ensemble, {n: rasters[n] for n in names}, coarse, split, stations)
    if not len(series):
        return refining.Refinement(predictors=names, beta=[0.0] * len(names),
                                   reason="no station observation outside the test days"), no_shifts
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
    cells = (grid.height // factor, grid.width // factor)
    region = Tile(*tile) if tile else Tile(0, 0, *cells)
    names = refinement.predictors if refinement.applied else []
    bands = {name: io.bands_of_dates(rasters[name], dates) for name in names}
    side = max(1, int(np.sqrt(max_pixels / max(1, len(dates) * factor * factor))))
    # the predictors' cell means where the ensemble has values, over the tile and the cells around it: the smooth
    # field the anomalies are taken against is then the whole region's
    around = halo_of(region, cells)
    means = {name: region_means(rasters[name], bands[name], factor, around, ensemble, max_pixels) for name in names}
    clipped = 0
    with io.atomic_path(output) as tmp, io.open_writer(tmp, grid.window(*region.fine(factor)), dates) as dst:
        for r, c, h, w in cell_blocks((region.rows, region.cols), side):
            window = ((region.row + r) * factor, (region.col + c) * factor, h * factor, w * factor)
            block = io.read_window(ensemble, *window)
            if names:
                values = {name: io.read_window(rasters[name], *window, bands=bands[name]) for name in names}
                offset = (region.row + r - around.row, region.col + c - around.col)
                block = refining.refine(block, {n: v[0] if bands[n] is None else v for n, v in values.items()},
                                        refinement, factor, means, offset)
                clipped += int(np.count_nonzero(block < valid_range[0]) + np.count_nonzero(block > valid_range[1]))
                block = np.clip(block, *valid_range)
            io.write_window(dst, block, r * factor, c * factor)
    if names:
        log.info("refined with beta %s; %d value(s) outside %s clipped",
                 dict(zip(names, refinement.beta, strict=True)), clipped, list(valid_range))
    else:
        log.info("not refined (%s): the ensemble's pixels copied", refinement.reason)
    return clipped
