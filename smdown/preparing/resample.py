"""Resampling one variable onto one scale: GDAL warp (cubic) onto a nested grid, then daily dates."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from affine import Affine

from smdown import io
from smdown.grid import Grid, Tile, nested_grid
from smdown.preparing import temporal


def target_grid(coarse: Grid, factor: int | None) -> Grid:
    """The nested grid of a scale (factor) or the coarse grid itself (factor None)."""
    return coarse if factor is None else nested_grid(coarse, factor)


# Output blocks of at most this many pixel-days (32 MB of float32): the step's memory is bounded by
# the block and its source window, not by the region.
BLOCK_PIXEL_DAYS = 2**23


def coarse_params(grid: Grid, dates: list[str] | None) -> dict:
    """The coarse grid (and the dates a filled variable is put on) as a rule's params: what a variable's resampling
    reads of the coarse input, so a changed coarse value reruns no predictor's resampling (only new dates do)."""
    return {"crs": grid.crs, "transform": list(grid.transform)[:6], "height": grid.height, "width": grid.width,
            "dates": None if dates is None else list(dates)}


def coarse_frame(coarse: str | os.PathLike | Mapping) -> tuple[Grid, list[str] | None]:
    """The coarse grid and dates: from a coarse raster's header, or from coarse_params (a rule's params)."""
    if isinstance(coarse, Mapping):
        grid = Grid(str(coarse["crs"]), Affine(*coarse["transform"]), int(coarse["height"]), int(coarse["width"]))
        return grid, None if coarse["dates"] is None else list(coarse["dates"])
    return io.read_grid(coarse), io.read_dates(coarse)


def output_dates(path: str, coarse_dates: list[str] | None, static: bool, fill: bool) -> list[str] | None:
    """The dates of a resampled variable: none (static), the coarse input's daily dates (filled), or its own."""
    if static:
        return None
    if not fill:
        return io.read_dates(path)
    if coarse_dates is None:
        raise ValueError(f"{path}: a daily variable needs the coarse dates it is filled to")
    return coarse_dates


def resample_block(path: str, grid: Grid, dates: list[str] | None, static: bool, method: str, fill: bool,
                   max_gap_days: int, scale: tuple[float, float]) -> np.ndarray:
    """One variable on a grid (or a window of one): (bands, rows, cols), NaN where the source does not reach.

    Cubic convolution onto a nested scale (the reference study's recipe) or area mean onto the coarse
    grid, nodata masked to NaN first. Dynamic variables are put on `dates` (temporal.fill_to_dates)
    unless `fill` is False (the coarse soil moisture itself: an outage day stays NaN). `scale` is
    the whole grid's (io.warp_scale), so that a window gives what the whole grid gives there.
    """
    stack = io.read_covering(path, grid, static)
    if stack is None:
        return np.full((1 if dates is None else len(dates), grid.height, grid.width), np.nan, dtype=np.float32)
    if not static and fill:
        # close cloud gaps on the native grid first: GDAL's cubic kernel, widened when it
        # downsamples, would otherwise spread every gap over a whole coarse pixel
        stack.data = temporal.fill_to_dates(stack.data, stack.dates, stack.dates, max_gap_days)
    warped = io.warp(stack, grid, method, scale)
    if static or not fill:
        return warped.data
    return temporal.fill_to_dates(warped.data, warped.dates, dates, max_gap_days)


def resample_variable(path: str, coarse: str | os.PathLike | Mapping, factor: int | None, static: bool, output: str,
                      max_gap_days: int, fill: bool = True, block_pixel_days: int = BLOCK_PIXEL_DAYS,
                      tile: Tile | None = None) -> float:
    """One variable onto one scale (factor None: the coarse grid), block by block of whole coarse cells,
    written window by window to `output`: the whole region, or the coarse cells of `tile`, one cell a block (so a
    tile holds the bits any other tiling holds there: the warp's kernel width is the whole grid's). Returns the NaN
    share of the output. `coarse`: the coarse raster, or its grid and dates as coarse_params gives them."""
    coarse_grid, coarse_dates = coarse_frame(coarse)
    grid = target_grid(coarse_grid, factor)
    method = "average" if factor is None else "cubic"
    dates = output_dates(path, coarse_dates, static, fill)
    bands = 1 if dates is None else len(dates)
    size = factor or 1
    cells = max(1, int(np.sqrt(block_pixel_days / (size * size * bands))))  # block side, in coarse cells
    if tile is not None:
        # one coarse cell a block whatever the tiles: GDAL fits its approximate transformer per warped chunk, so a
        # pixel's value depends (by < 0.1 %) on its block; with blocks of one cell every tiling gives the same bits
        cells = 1
    scale = io.warp_scale(path, grid)
    tile = tile or Tile(0, 0, coarse_grid.height, coarse_grid.width)
    out_grid = grid.window(*tile.fine(size))
    missing = 0
    with io.open_writer(output, out_grid, dates, count=bands) as dst:
        for row in range(0, tile.rows, cells):
            for col in range(0, tile.cols, cells):
                height = min(cells, tile.rows - row) * size
                width = min(cells, tile.cols - col) * size
                window = grid.window((tile.row + row) * size, (tile.col + col) * size, height, width)
                block = resample_block(path, window, dates, static, method, fill, max_gap_days, scale)
                io.write_window(dst, block, row * size, col * size)
                missing += int(np.count_nonzero(np.isnan(block)))
    return missing / (bands * out_grid.height * out_grid.width)


def terrain_names(names: list[str]) -> list[str]:
    """Raster names written for the configured terrain derivatives."""
    out = []
    for name in names:
        out += ["northness", "eastness"] if name == "aspect" else [name]
    return out
