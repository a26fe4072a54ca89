"""Sentinel-1 backscatter (STAC, e.g. Planetary Computer sentinel-1-rtc, assets vv/vh) -> s1_vv.tif, s1_vh.tif in dB.

Items of one date are mosaicked by the mean of their valid pixels in linear power, then converted
to dB (10 log10); non-positive values are NaN. With units 'db' the assets are taken as already dB.
Planetary Computer assets need a SAS token (sign: auto signs when the catalog is the Planetary
Computer's), and the Planetary Computer gives sentinel-1-rtc tokens only with a subscription key,
read from the environment variable PC_SDK_SUBSCRIPTION_KEY (a missing key stops the job at once with a
clear message). enabled: auto turns the source on only when that key is set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from smdown.acquire.http import Downloader
from smdown.acquire.region import Region, blocks, coarse_grid, fine_grid, lonlat_bounds
from smdown.acquire.remote import Raster, mosaic, write_band
from smdown.acquire.stac import asset_href, by_date, search_items, signer_for, subscription_key
from smdown.io import InputError, open_writer

log = logging.getLogger("smdown.acquire")


def sentinel1_enabled(cfg: dict) -> bool:
    """acquire.sentinel1.enabled: true, false, or 'auto' (on when PC_SDK_SUBSCRIPTION_KEY is set)."""
    enabled = cfg["enabled"]
    if enabled == "auto":
        return subscription_key() is not None
    if not isinstance(enabled, bool):
        raise InputError(f"acquire.sentinel1.enabled: {enabled!r} is not true, false or auto")
    return enabled


def to_db(linear: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(linear > 0, 10.0 * np.log10(linear), np.nan).astype(np.float32)


def acquire_sentinel1(
    region: Region, settings: dict, http: Downloader, vv: str | os.PathLike, vh: str | os.PathLike
) -> dict[str, Path]:
    """Write s1_vv.tif and s1_vh.tif (dB), one band per acquisition date."""
    cfg = settings["sentinel1"]
    signer = signer_for(cfg, http, "sentinel1", "Sentinel-1")  # a missing key fails here, before any request
    items = search_items(http, cfg["catalog"], cfg["collection"], region.bbox, region.datetime_range, "Sentinel-1")
    groups = by_date(items, region.start, region.end)
    if not groups:
        raise InputError(
            f"Sentinel-1: no items of {cfg['collection']} at {cfg['catalog']} over acquire.bbox {list(region.bbox)} "
            f"in {region.start}..{region.end} (region outside coverage?)"
        )
    grid = fine_grid(coarse_grid(region), cfg["res"])
    dates = list(groups)
    windows = [(row, col, block, lonlat_bounds(block)) for row, col, block in blocks(grid, cfg["block"])]
    log.info("Sentinel-1: %d items on %d dates; grid %d x %d at %.1f m", len(items), len(dates), grid.height,
             grid.width, grid.res)
    paths = {"s1_vv": Path(vv), "s1_vh": Path(vh)}
    with open_writer(paths["s1_vv"], grid, dates) as out_vv, open_writer(paths["s1_vh"], grid, dates) as out_vh:
        for d, day in enumerate(dates):
            for pol, out in (("vv", out_vv), ("vh", out_vh)):
                keys = [cfg["assets"][pol], pol, pol.upper()]
                rasters = []
                for item in groups[day]:
                    href = asset_href(item, keys)[0]
                    rasters.append(Raster(signer.sign(href) if signer else href, bbox=item.bbox))
                try:
                    for row, col, block, box in windows:
                        data = mosaic(rasters, block, cfg["resampling"], box)
                        write_band(out, to_db(data) if cfg["units"] == "linear" else data, d + 1, row, col)
                finally:
                    for raster in rasters:
                        raster.close()
            log.info("Sentinel-1: %s done (%d/%d)", day, d + 1, len(dates))
    return paths
