"""Windowed reads of remote (or local) rasters onto one of our grids.

The only module of smdown.acquire that uses rasterio (the raster I/O module smdown.io holds the
rest): a COG over HTTP is opened once through GDAL's /vsicurl/ and read block by block through a
warped VRT on the target grid, so GDAL fetches (with HTTP Range requests) only the tiles under
each block.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from smdown.acquire.http import redact
from smdown.acquire.region import bbox_overlaps
from smdown.grid import Grid
from smdown.io import InputError

log = logging.getLogger("smdown.acquire")

# GDAL settings for cloud-optimised reads over HTTP (they work on a plain localhost server too).
GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no directory listing probes
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_TIMEOUT": "60",
    "VSI_CACHE": "TRUE",
    "CPL_VSIL_CURL_CHUNK_SIZE": "524288",
}

RESAMPLING = {"nearest": Resampling.nearest, "bilinear": Resampling.bilinear, "cubic": Resampling.cubic,
              "average": Resampling.average, "mode": Resampling.mode}


def gdal_path(href: str) -> str:
    """A GDAL path: /vsicurl/ for http(s) URLs (s3://bucket/key as a public https URL), else the path."""
    if href.startswith("s3://"):
        bucket, _, key = href[len("s3://"):].partition("/")
        href = f"https://{bucket}.s3.amazonaws.com/{key}"
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.startswith("file://"):
        return href[len("file://"):]
    return href


class Raster:
    """One band of a raster (local or remote), opened on first use and read onto grids.

    Values are returned as float32 value * scale + offset, NaN where nodata or outside.
    bbox (lon/lat) lets callers skip rasters that miss a block without opening them.
    """

    def __init__(self, href: str, scale: float = 1.0, offset: float = 0.0, nodata: float | None = None,
                 bbox=None, band: int = 1, retry_delay: float | None = None) -> None:
        self.href, self.scale, self.offset, self.nodata, self.bbox, self.band = href, scale, offset, nodata, bbox, band
        self.env = dict(GDAL_ENV)
        if retry_delay is not None:
            self.env["GDAL_HTTP_RETRY_DELAY"] = str(retry_delay)
        self._src = None

    def _open(self):
        if self._src is None:
            try:
                with rasterio.Env(**self.env):
                    self._src = rasterio.open(gdal_path(self.href))
            except rasterio.errors.RasterioIOError as err:
                raise InputError(f"cannot read raster {redact(self.href)} ({_short(err)})") from None
        return self._src

    def read(self, grid: Grid, resampling: str = "bilinear") -> np.ndarray:
        src = self._open()
        src_nodata = self.nodata if self.nodata is not None else src.nodata
        options = dict(crs=CRS.from_user_input(grid.crs), transform=grid.transform, width=grid.width,
                       height=grid.height, resampling=RESAMPLING[resampling], dtype="float32", nodata=np.nan)
        if src_nodata is not None:
            options["src_nodata"] = src_nodata
        try:
            with rasterio.Env(**self.env), WarpedVRT(src, **options) as vrt:
                data = vrt.read(self.band).astype(np.float32)
        except rasterio.errors.RasterioIOError as err:
            raise InputError(f"cannot read raster {redact(self.href)} ({_short(err)})") from None
        if self.scale != 1.0 or self.offset != 0.0:
            data = data * np.float32(self.scale) + np.float32(self.offset)
        return data

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None

    def __enter__(self) -> Raster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _short(err: Exception) -> str:
    return str(err).split("?")[0][:200]


def read_on_grid(href: str, grid: Grid, resampling: str = "bilinear", **kwargs) -> np.ndarray:
    """One-off read of a raster onto a grid (see Raster)."""
    with Raster(href, **kwargs) as raster:
        return raster.read(grid, resampling)


def mosaic(rasters: Iterable[Raster], grid: Grid, resampling: str, lonlat_box=None) -> np.ndarray:
    """Mean of the valid values of several rasters on a grid (NaN where none is valid)."""
    total = np.zeros(grid.shape, dtype=np.float64)
    count = np.zeros(grid.shape, dtype=np.int32)
    for raster in rasters:
        if raster.bbox is not None and lonlat_box is not None and not bbox_overlaps(raster.bbox, lonlat_box):
            continue
        data = raster.read(grid, resampling)
        valid = np.isfinite(data)
        total[valid] += data[valid]
        count += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def write_band(dst, data: np.ndarray, band: int, row: int, col: int) -> None:
    """Write one 2-D array into band `band` (1-based) of an smdown.io.open_writer at (row, col)."""
    dst.write(data.astype(np.float32, copy=False), indexes=band, window=Window(col, row, data.shape[-1], data.shape[-2]))
