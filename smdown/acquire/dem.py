"""Copernicus DEM GLO-30 (STAC collection cop-dem-glo-30, asset 'data', COGs) -> dem.tif (static, metres).

Earth Search (default) needs no signing; from the Planetary Computer the hrefs are signed (sign: auto)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from smdown.acquire.http import Downloader
from smdown.acquire.region import Region, blocks, coarse_grid, fine_grid, lonlat_bounds
from smdown.acquire.remote import Raster, mosaic, write_band
from smdown.acquire.stac import asset_href, search_items, signer_for
from smdown.io import InputError, open_writer

log = logging.getLogger("smdown.acquire")


def acquire_dem(region: Region, settings: dict, http: Downloader, dem: str | os.PathLike) -> dict[str, Path]:
    """Mosaic the DEM tiles under the region onto the nested grid, block by block (one band, no date)."""
    cfg = settings["dem"]
    signer = signer_for(cfg, http, "dem", "DEM")
    items = search_items(http, cfg["catalog"], cfg["collection"], region.bbox, None, "DEM")
    if not items:
        raise InputError(
            f"DEM: no {cfg['collection']} tiles at {cfg['catalog']} over acquire.bbox {list(region.bbox)} "
            "(region outside coverage?)"
        )
    hrefs = [asset_href(item, [cfg["asset"]])[0] for item in items]
    rasters = [Raster(signer.sign(href) if signer else href, bbox=item.bbox) for href, item in zip(hrefs, items, strict=True)]
    grid = fine_grid(coarse_grid(region), cfg["res"])
    log.info("DEM: %d tiles; grid %d x %d at %.1f m", len(items), grid.height, grid.width, grid.res)
    path = Path(dem)
    try:
        with open_writer(path, grid, None, count=1) as out:
            for row, col, block in blocks(grid, cfg["block"]):
                write_band(out, mosaic(rasters, block, cfg["resampling"], lonlat_bounds(block)), 1, row, col)
    finally:
        for raster in rasters:
            raster.close()
    return {"dem": path}
