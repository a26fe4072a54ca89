"""Sentinel-2 L2A (STAC, COGs over HTTP) -> dated NDVI and NDWI on a grid nested in the coarse grid.

For each acquisition date, each item's red, nir, swir16 and SCL assets are read only under the
output block (GDAL /vsicurl/ + warped VRT, HTTP Range requests), reflectances scaled with the
asset's raster:bands scale/offset, cloud-masked with the scene classification (SCL), and the
indices computed:

- NDVI = (nir - red) / (nir + red)            (B08, B04)
- NDWI = (nir - swir16) / (nir + swir16)      (B08, B11: Gao 1996, vegetation liquid water;
                                               not McFeeters' green/NIR open-water index)

SCL classes kept by default: 4 vegetation, 5 not vegetated, 6 water, 7 unclassified; masked:
0 no data, 1 saturated/defective, 2 dark area/topographic shadow, 3 cloud shadow,
8/9 cloud medium/high probability, 10 thin cirrus, 11 snow/ice. Items of one date are mosaicked
by the mean of their valid pixels; dates where everything is masked stay as NaN bands.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pystac

from smdown.acquire.http import Downloader
from smdown.acquire.region import Region, bbox_overlaps, blocks, coarse_grid, fine_grid, lonlat_bounds
from smdown.acquire.remote import Raster, write_band
from smdown.acquire.stac import asset_href, by_date, raster_scaling, search_items
from smdown.grid import Grid
from smdown.io import InputError, open_writer

log = logging.getLogger("smdown.acquire")

ASSET_KEYS = {
    "red": ["red", "B04", "b04"],
    "nir": ["nir", "B08", "b08", "nir08"],
    "swir16": ["swir16", "B11", "b11"],
    "scl": ["scl", "SCL"],
}


def _raster(item: pystac.Item, band: str) -> Raster:
    href, asset = asset_href(item, ASSET_KEYS[band])
    if band == "scl":
        return Raster(href, nodata=0, bbox=item.bbox)
    scale, offset, nodata = raster_scaling(asset)
    if scale == 1.0 and offset == 0.0:
        # Plain digital numbers (e.g. Planetary Computer): reflectance = DN / 10000, minus the
        # 1000 DN offset of processing baseline 04.00 onwards.
        baseline = str(item.properties.get("s2:processing_baseline", "00.00"))
        scale, offset = 1e-4, (-0.1 if baseline >= "04.00" else 0.0)
    return Raster(href, scale=scale, offset=offset, nodata=0 if nodata is None else nodata, bbox=item.bbox)


def indices(red, nir, swir16, scl, keep) -> tuple[np.ndarray, np.ndarray]:
    """NDVI and NDWI (Gao) with the SCL mask applied (NaN where masked or undefined)."""
    clear = np.isin(np.nan_to_num(scl, nan=0).astype(np.int16), list(keep))
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (nir - red) / (nir + red)
        ndwi = (nir - swir16) / (nir + swir16)
    ndvi = np.where(clear & np.isfinite(ndvi) & (np.abs(ndvi) <= 1), ndvi, np.nan).astype(np.float32)
    ndwi = np.where(clear & np.isfinite(ndwi) & (np.abs(ndwi) <= 1), ndwi, np.nan).astype(np.float32)
    return ndvi, ndwi


def _date_indices(scenes: list[dict[str, Raster]], grid: Grid, box, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """NDVI and NDWI of one date on a block: mean of the clear values of the date's scenes."""
    sums = [np.zeros(grid.shape), np.zeros(grid.shape)]
    counts = [np.zeros(grid.shape, dtype=np.int32), np.zeros(grid.shape, dtype=np.int32)]
    for scene in scenes:
        if scene["scl"].bbox is not None and not bbox_overlaps(scene["scl"].bbox, box):
            continue
        scl = scene["scl"].read(grid, "nearest")
        if not np.isin(np.nan_to_num(scl, nan=0), cfg["scl_keep"]).any():
            continue  # nothing clear here: skip the reflectance reads
        bands = {b: scene[b].read(grid, cfg["resampling"]) for b in ("red", "nir", "swir16")}
        for k, index in enumerate(indices(bands["red"], bands["nir"], bands["swir16"], scl, cfg["scl_keep"])):
            valid = np.isfinite(index)
            sums[k][valid] += index[valid]
            counts[k] += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        out = [np.where(c > 0, s / np.maximum(c, 1), np.nan).astype(np.float32) for s, c in zip(sums, counts, strict=True)]
    return out[0], out[1]


def acquire_sentinel2(
    region: Region, settings: dict, http: Downloader, ndvi: str | os.PathLike, ndwi: str | os.PathLike
) -> dict[str, Path]:
    """Write ndvi.tif and ndwi.tif: one band per acquisition date (YYYY-MM-DD), NaN where masked."""
    cfg = settings["sentinel2"]
    items = search_items(http, cfg["catalog"], cfg["collection"], region.bbox, region.datetime_range, "Sentinel-2")
    items = [i for i in items if float(i.properties.get("eo:cloud_cover", 0.0)) <= cfg["max_cloud"]]
    groups = by_date(items, region.start, region.end)
    if not groups:
        raise InputError(
            f"Sentinel-2: no items of {cfg['collection']} at {cfg['catalog']} over acquire.bbox {list(region.bbox)} "
            f"in {region.start}..{region.end} with cloud cover <= {cfg['max_cloud']}% (region outside coverage?)"
        )
    grid = fine_grid(coarse_grid(region), cfg["res"])
    dates = list(groups)
    windows = [(row, col, block, lonlat_bounds(block)) for row, col, block in blocks(grid, cfg["block"])]
    log.info("Sentinel-2: %d items on %d dates; grid %d x %d at %.1f m in %d blocks", len(items), len(dates),
             grid.height, grid.width, grid.res, len(windows))
    paths = {"ndvi": Path(ndvi), "ndwi": Path(ndwi)}
    with open_writer(paths["ndvi"], grid, dates) as out_ndvi, open_writer(paths["ndwi"], grid, dates) as out_ndwi:
        for d, day in enumerate(dates):
            scenes = [{band: _raster(item, band) for band in ASSET_KEYS} for item in groups[day]]
            try:
                for row, col, block, box in windows:
                    block_ndvi, block_ndwi = _date_indices(scenes, block, box, cfg)
                    write_band(out_ndvi, block_ndvi, d + 1, row, col)
                    write_band(out_ndwi, block_ndwi, d + 1, row, col)
            finally:
                for scene in scenes:
                    for raster in scene.values():
                        raster.close()
            log.info("Sentinel-2: %s done (%d/%d, %d scenes)", day, d + 1, len(dates), len(scenes))
    return paths
