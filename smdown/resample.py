"""Resampling one variable onto one scale: GDAL warp (cubic) onto a nested grid, then daily dates."""

from __future__ import annotations

import numpy as np

from smdown import io, temporal, terrain
from smdown.grid import Grid, nested_grid


def target_grid(coarse: Grid, factor: int | None) -> Grid:
    """The nested grid of a scale (factor) or the coarse grid itself (factor None)."""
    return coarse if factor is None else nested_grid(coarse, factor)


def resample_variable(
    path: str,
    coarse_path: str,
    factor: int | None,
    static: bool,
    fill: bool = True,
    max_gap_days: int = 45,
) -> io.Stack:
    """One variable on one scale.

    factor None means the coarse grid itself, reached by area mean; a nested scale is reached by
    cubic convolution (the reference study's recipe), nodata masked to NaN first. Dynamic
    variables are then put on the coarse input's daily dates (temporal.fill_to_dates) unless
    `fill` is False (the coarse soil moisture itself: an outage day stays NaN).
    """
    coarse_grid = io.read_grid(coarse_path)
    grid = target_grid(coarse_grid, factor)
    stack = io.read_stack(path, static=static)
    if not static and fill:
        # close cloud gaps on the native grid first: GDAL's cubic kernel, widened when it
        # downsamples, would otherwise spread every gap over a whole coarse pixel
        stack.data = temporal.fill_to_dates(stack.data, stack.dates, stack.dates, max_gap_days)
    warped = io.warp(stack, grid, "average" if factor is None else "cubic")
    if static or not fill:
        return warped
    dates = io.read_dates(coarse_path)
    daily = temporal.fill_to_dates(warped.data, warped.dates, dates, max_gap_days)
    return io.Stack(daily, grid, dates)


def terrain_layers(dem_path: str, names: list[str]) -> dict[str, io.Stack]:
    """Terrain derivatives at the DEM's native resolution: slope, northness/eastness (aspect), twi."""
    dem = io.read_stack(dem_path, static=True)
    res_x, res_y = io.pixel_size_m(dem.grid)
    elevation = dem.data[0]
    res = float(np.sqrt(res_x * res_y))
    layers = {}
    if "slope" in names:
        layers["slope"] = terrain.slope(elevation, res)
    if "aspect" in names:
        radians = np.deg2rad(terrain.aspect(elevation, res))
        layers["northness"] = np.cos(radians)
        layers["eastness"] = np.sin(radians)
    if "twi" in names:
        layers["twi"] = terrain.twi(elevation, res)
    return {name: io.Stack(value[np.newaxis].astype(np.float32), dem.grid) for name, value in layers.items()}


def terrain_names(names: list[str]) -> list[str]:
    """Raster names written for the configured terrain derivatives."""
    out = []
    for name in names:
        out += ["northness", "eastness"] if name == "aspect" else [name]
    return out
