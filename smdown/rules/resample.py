"""Steps of workflow/rules/resample.smk: terrain derivatives of the DEM, and each variable onto each scale."""

from __future__ import annotations

import logging
from contextlib import ExitStack

import numpy as np

from smdown import io
from smdown import resample as resampling
from smdown import terrain as terrain_lib
from smdown.grid import Tile
from smdown.rules import factor_of

log = logging.getLogger(__name__)


def terrain(dem: str, outputs: dict[str, str], names: list[str], window: int = terrain_lib.WINDOW) -> None:
    """Terrain derivatives at the DEM's native resolution (slope, northness/eastness from aspect, twi), read and
    written window by window with a halo (smdown.terrain.windowed): memory bounded by a window, not the DEM."""
    grid = io.read_grid(dem)
    if io.band_count(dem) != 1:
        raise io.InputError(f"{dem}: a static predictor must have one band, found {io.band_count(dem)}")
    res_x, res_y = io.pixel_size_m(grid)
    res = float(np.sqrt(res_x * res_y))

    def read(row: int, col: int, height: int, width: int) -> np.ndarray:
        return io.read_window(dem, row, col, height, width, bands=[0])[0]

    ranges = {name: [np.inf, -np.inf] for name in outputs}
    with ExitStack() as stack:
        writers = {name: stack.enter_context(io.open_writer(path, grid, None, count=1)) for name, path in outputs.items()}
        for (row, col, _, _), values in terrain_lib.windowed(read, grid.shape, res, names, window):
            layers = {k: v for k, v in values.items() if k != "aspect"}
            if "aspect" in values:
                radians = np.deg2rad(values["aspect"])
                layers["northness"], layers["eastness"] = np.cos(radians), np.sin(radians)
            for name, value in layers.items():
                io.write_window(writers[name], value[np.newaxis], row, col)
                if np.isfinite(value).any():
                    ranges[name] = [min(ranges[name][0], np.nanmin(value)), max(ranges[name][1], np.nanmax(value))]
    for name, (low, high) in ranges.items():
        log.info("%s: %s range %.3g..%.3g (windows of %d pixels)", name, grid.shape, low, high, window)


def resample_one(source: str, coarse: str, output: str, scale: str, static: bool, is_target: bool, max_gap: int,
                 tile: list[int] | None = None) -> None:
    """One variable onto one scale; `tile`: [first row, first col, rows, cols] of the coarse cells to write (the
    finest scale's daily variables run one job per tile, rule resample_tile), None: the whole region."""
    factor = factor_of(scale, coarse)
    missing = resampling.resample_variable(source, coarse, factor, static, output, fill=not is_target,
                                           max_gap_days=max_gap, tile=Tile(*tile) if tile else None)
    grid = io.read_grid(output)
    log.info("%s -> scale %s (factor %s), tile %s: %s x %d bands, %.1f%% NaN", source, scale, factor,
             tile or "whole region", grid.shape, io.band_count(output), 100 * missing)
