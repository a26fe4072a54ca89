"""A layer's maps as one NetCDF-CF time cube: `xarray.open_dataset` gives each map as a variable over `time`, `y`,
`x` (pixel centres), with its units (m3 m-3) and CF grid mapping (`spatial_ref`: the CRS as CF attributes and WKT,
GDAL's GeoTransform), so xarray, rioxarray, QGIS and GDAL place it without the GeoTIFFs.

Written with h5netcdf (netCDF4 files through h5py) in slabs of CHUNK_DAYS days by CHUNK_ROWS rows and every column,
each slab whole chunks, so memory follows a slab whatever the region's size. Values are stored float32 (NaN fill) or,
like SMAP's products, as int16 with CF's scale_factor / add_offset / _FillValue (smdown.io.encode), which xarray
decodes to float on opening.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from pyproj import CRS

from smdown import io

log = logging.getLogger(__name__)

CHUNK_DAYS = 16  # a pixel's series of a year reads 23 chunks, a day's map 1/16 of the chunks it touches
CHUNK_ROWS = 128  # rows (and columns) of a chunk
EPOCH = dt.date(1970, 1, 1)
UNITS = "m3 m-3"
# what each map holds (its long_name); the depth is the layer's
LONG_NAMES = {
    "ensemble": "soil moisture, weighted ensemble of the deep models",
    "ensemble_raw": "soil moisture, ensemble before the stations' refinement",
    "ensemble_std": "spread (weighted standard deviation) of the ensemble's members",
    "uncertainty": "calibrated uncertainty (standard deviation of the error) of the ensemble",
    "dnn": "soil moisture, dense network member",
    "cnn": "soil moisture, convolutional network member",
    "lstm": "soil moisture, LSTM member",
    "rf": "soil moisture, random forest",
    "cubic": "soil moisture, cubic interpolation of the coarse input",
    "cubic_corrected": "soil moisture, cubic interpolation pinned to the coarse cell means",
}
DEPTHS = {"surface": "0-5 cm", "rootzone": "0-100 cm"}


def grid_mapping(grid) -> dict:
    """The CF grid-mapping attributes of a grid (pyproj's CF conversion, the WKT under both names CF and GDAL read,
    and GDAL's GeoTransform)."""
    crs = CRS.from_user_input(grid.crs)
    attrs = {key: value for key, value in crs.to_cf().items() if value is not None}
    attrs["crs_wkt"] = attrs["spatial_ref"] = crs.to_wkt()
    t = grid.transform
    attrs["GeoTransform"] = " ".join(str(v) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    return attrs


def _days(dates: list[str]) -> np.ndarray:
    return np.array([(dt.date.fromisoformat(d) - EPOCH).days for d in dates], dtype=np.int32)


def write_cube(maps: Mapping[str, str | os.PathLike], path: str | os.PathLike, layer: str, dtype: str = "float32",
               attrs: Mapping[str, str] | None = None) -> dict:
    """Write a layer's maps (name -> GeoTIFF, same grid and dates) as one NetCDF-CF cube at `path`, atomically, with
    its values stored as `dtype` (smdown.io.DTYPES). Returns a summary: maps, days, rows, cols, bytes."""
    import h5netcdf.legacyapi as netcdf

    if not maps:
        raise ValueError(f"{path}: no map to write")
    names = list(maps)
    grid = io.read_grid(maps[names[0]])
    dates = io.read_dates(maps[names[0]])
    for name in names[1:]:
        if io.read_grid(maps[name]) != grid or io.read_dates(maps[name]) != dates:
            raise ValueError(f"{maps[name]}: not on the grid and dates of {maps[names[0]]}")
    t = grid.transform
    chunks = (min(CHUNK_DAYS, len(dates)), min(CHUNK_ROWS, grid.height), min(CHUNK_ROWS, grid.width))
    with io.atomic_path(path) as tmp, netcdf.Dataset(tmp, "w") as nc:
        nc.Conventions = "CF-1.8"
        nc.title = f"Downscaled soil moisture, {layer} layer ({DEPTHS.get(layer, layer)})"
        nc.source = "smdown"
        for key, value in (attrs or {}).items():
            setattr(nc, key, value)
        nc.createDimension("time", None)
        nc.createDimension("y", grid.height)
        nc.createDimension("x", grid.width)
        time = nc.createVariable("time", "i4", ("time",))
        time.units, time.calendar, time.standard_name, time.axis = f"days since {EPOCH}", "standard", "time", "T"
        time[:] = _days(dates)
        crs = CRS.from_user_input(grid.crs)
        x_name, y_name = ("longitude", "latitude") if crs.is_geographic else ("projection_x_coordinate",
                                                                             "projection_y_coordinate")
        unit = "degrees" if crs.is_geographic else "m"
        for axis, n, start, step, standard in (("x", grid.width, t.c, t.a, x_name), ("y", grid.height, t.f, t.e, y_name)):
            var = nc.createVariable(axis, "f8", (axis,))
            var.standard_name, var.units, var.axis = standard, unit, axis.upper()
            var[:] = start + (np.arange(n) + 0.5) * step
        mapping = nc.createVariable("spatial_ref", "i4", ())
        for key, value in grid_mapping(grid).items():
            setattr(mapping, key, value)
        variables = {}
        for name in names:
            scaled = dtype == "int16"
            var = nc.createVariable(name, "i2" if scaled else "f4", ("time", "y", "x"), chunksizes=chunks,
                                    zlib=True, complevel=4, shuffle=True,
                                    fill_value=np.int16(io.INT16_NODATA) if scaled else np.float32(np.nan))
            if scaled:  # float32 factors: xarray decodes to float32, as the GeoTIFFs read
                var.scale_factor, var.add_offset = np.float32(io.INT16_SCALE), np.float32(io.INT16_OFFSET)
            var.units, var.long_name = UNITS, LONG_NAMES.get(name, name)
            var.grid_mapping = "spatial_ref"
            var.coordinates = "spatial_ref"  # a coordinate, as rioxarray writes it: ds.rio.crs finds it
            var.layer = f"{layer} ({DEPTHS.get(layer, layer)})"
            variables[name] = var
        for first in range(0, len(dates), chunks[0]):
            bands = list(range(first, min(first + chunks[0], len(dates))))
            for row in range(0, grid.height, chunks[1]):
                rows = min(chunks[1], grid.height - row)
                for name in names:
                    data = io.read_window(maps[name], row, 0, rows, grid.width, bands=bands)
                    variables[name][first : first + len(bands), row : row + rows, :] = io.encode(data, dtype)
            log.info("%s: days %d-%d of %d written", path, first + 1, bands[-1] + 1, len(dates))
    size = Path(path).stat().st_size
    return {"maps": names, "days": len(dates), "rows": grid.height, "cols": grid.width, "bytes": size}
