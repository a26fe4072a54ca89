"""The study region and period of an acquisition, and the grids the sources are written on.

The coarse grid is the window of the global EASE-Grid 2.0 9 km grid (SMAP L4) whose cells cover
the bbox; finer products are written on grids nested in it (integer factor), so the workflow's
resampling never needs a second reprojection.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from smdown.grid import EASE2_9KM_RES, EASE2_9KM_X0, EASE2_9KM_Y0, Grid, ease2_9km_grid, nest_factor, nested_grid
from smdown.io import InputError, lonlat_to, to_lonlat

# Global EASE-Grid 2.0 9 km: 1624 rows x 3856 cols, latitudes within about +-85.044 deg.
EASE2_9KM_ROWS = 1624
EASE2_9KM_COLS = 3856
EASE2_MAX_LAT = 85.044


@dataclass(frozen=True)
class Region:
    """A lon/lat bbox (west, south, east, north) and an inclusive period of ISO dates."""

    bbox: tuple[float, float, float, float]
    start: str
    end: str

    @property
    def days(self) -> list[str]:
        first, last = dt.date.fromisoformat(self.start), dt.date.fromisoformat(self.end)
        return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]

    @property
    def datetime_range(self) -> str:
        """The period as a STAC datetime interval (UTC, whole days)."""
        return f"{self.start}T00:00:00Z/{self.end}T23:59:59Z"


def _date(value, key: str) -> str:
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError as err:
        raise InputError(f"{key}: {value!r} is not a date YYYY-MM-DD") from err


def make_region(bbox, start, end, key: str = "acquire") -> Region:
    """A checked Region; errors name the config key."""
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise InputError(f"{key}.bbox: expected [west, south, east, north] in degrees, got {bbox!r}") from err
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InputError(
            f"{key}.bbox: {bbox!r} is not a valid lon/lat box (need -180 <= west < east <= 180, -90 <= south < north <= 90)"
        )
    if south < -EASE2_MAX_LAT or north > EASE2_MAX_LAT:
        raise InputError(
            f"{key}.bbox: {bbox!r} is outside the coverage of the EASE-Grid 2.0 global grid of SMAP L4 "
            f"(latitudes within +-{EASE2_MAX_LAT})"
        )
    first, last = _date(start, f"{key}.start"), _date(end, f"{key}.end")
    if last < first:
        raise InputError(f"{key}.end: {last} is before {key}.start {first}")
    return Region((west, south, east, north), first, last)


def coarse_grid(region: Region) -> Grid:
    """The EASE-2 9 km cells covering the bbox (the bbox edges are densified before projecting)."""
    west, south, east, north = region.bbox
    t = np.linspace(0.0, 1.0, 51)
    lons = np.concatenate([west + (east - west) * t, np.full_like(t, east), east - (east - west) * t, np.full_like(t, west)])
    lats = np.concatenate([np.full_like(t, south), south + (north - south) * t, np.full_like(t, north), north - (north - south) * t])
    xs, ys = lonlat_to("EPSG:6933", lons, lats)
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise InputError(f"acquire.bbox: {region.bbox} cannot be projected to EASE-Grid 2.0")
    col0 = math.floor((xs.min() - EASE2_9KM_X0) / EASE2_9KM_RES)
    col1 = math.ceil((xs.max() - EASE2_9KM_X0) / EASE2_9KM_RES)
    row0 = math.floor((EASE2_9KM_Y0 - ys.max()) / EASE2_9KM_RES)
    row1 = math.ceil((EASE2_9KM_Y0 - ys.min()) / EASE2_9KM_RES)
    col0, row0 = max(col0, 0), max(row0, 0)
    col1, row1 = min(col1, EASE2_9KM_COLS), min(row1, EASE2_9KM_ROWS)
    if col1 <= col0 or row1 <= row0:
        raise InputError(f"acquire.bbox: {region.bbox} is outside the EASE-Grid 2.0 9 km global grid")
    x = EASE2_9KM_X0 + (col0 + 0.5) * EASE2_9KM_RES
    y = EASE2_9KM_Y0 - (row0 + 0.5) * EASE2_9KM_RES
    return ease2_9km_grid(x, y, row1 - row0, col1 - col0)


def global_offset(grid: Grid) -> tuple[int, int]:
    """(row, col) of a coarse grid's top-left cell in the global EASE-2 9 km grid."""
    col = round((grid.transform.c - EASE2_9KM_X0) / EASE2_9KM_RES)
    row = round((EASE2_9KM_Y0 - grid.transform.f) / EASE2_9KM_RES)
    return row, col


def fine_grid(coarse: Grid, res: float) -> Grid:
    """The grid nested in the coarse grid at a nominal resolution in metres (factor = round(9008 / res))."""
    return nested_grid(coarse, nest_factor(coarse.res, float(res)))


def blocks(grid: Grid, size: int = 1024) -> Iterator[tuple[int, int, Grid]]:
    """(row, col, sub-grid) windows of at most size x size pixels covering a grid."""
    for row in range(0, grid.height, size):
        for col in range(0, grid.width, size):
            yield row, col, grid.window(row, col, min(size, grid.height - row), min(size, grid.width - col))


def lonlat_bounds(grid: Grid) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a grid's footprint (edges densified)."""
    left, bottom, right, top = grid.bounds
    t = np.linspace(0.0, 1.0, 11)
    xs = np.concatenate([left + (right - left) * t, np.full_like(t, right), left + (right - left) * t, np.full_like(t, left)])
    ys = np.concatenate([np.full_like(t, bottom), bottom + (top - bottom) * t, np.full_like(t, top), bottom + (top - bottom) * t])
    lons, lats = to_lonlat(grid.crs, xs, ys)
    return float(np.nanmin(lons)), float(np.nanmin(lats)), float(np.nanmax(lons)), float(np.nanmax(lats))


def bbox_overlaps(a, b) -> bool:
    """Whether two lon/lat boxes (west, south, east, north) overlap."""
    return a[0] < b[2] and a[2] > b[0] and a[1] < b[3] and a[3] > b[1]
