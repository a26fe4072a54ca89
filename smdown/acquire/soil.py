"""Soil texture: SoilGrids 250 m (default) or POLARIS 30 m sand and clay (%) matched to the two layers.

- surface (0-5 cm): the 0-5 cm interval -> sand.tif, clay.tif
- rootzone (0-100 cm): thickness-weighted mean of 0-5, 5-15, 15-30, 30-60, 60-100 cm
  (weights 5, 10, 15, 30, 40 / 100) -> sand_rootzone.tif, clay_rootzone.tif

SoilGrids: one raster per property and depth (default the ISRIC VRTs over HTTP, read windowed),
mapped units g/kg -> % (x 0.1), nodata -32768. POLARIS: 1 x 1 degree GeoTIFF tiles in %,
downloaded once into the cache and mosaicked; a tile the server does not have (HTTP 404: no land
in that 1 x 1 degree cell, e.g. over the ocean) is an empty tile.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from smdown.acquire.http import Downloader, NotFound
from smdown.acquire.region import Region, blocks, coarse_grid, fine_grid, lonlat_bounds
from smdown.acquire.remote import Raster, mosaic, write_band
from smdown.io import InputError, open_writer

log = logging.getLogger("smdown.acquire")

# (top, bottom) in cm of the standard GlobalSoilMap intervals used by SoilGrids and POLARIS.
INTERVALS = [(0, 5), (5, 15), (15, 30), (30, 60), (60, 100)]
LAYER_DEPTH_CM = {"surface": 5, "rootzone": 100}


def layer_weights(bottom_cm: float) -> list[tuple[tuple[int, int], float]]:
    """Thickness weights of the intervals within 0..bottom_cm (summing to 1)."""
    parts = [((top, bot), min(bot, bottom_cm) - top) for top, bot in INTERVALS if top < bottom_cm]
    total = sum(w for _, w in parts)
    return [(interval, w / total) for interval, w in parts]


def _depth_name(source: str, interval: tuple[int, int]) -> str:
    top, bot = interval
    return f"{top}-{bot}cm" if source == "soilgrids" else f"{top}_{bot}"


def _polaris_tiles(region: Region) -> list[dict]:
    west, south, east, north = region.bbox
    tiles = []
    for lat in range(math.floor(south), math.ceil(north)):
        for lon in range(math.floor(west), math.ceil(east)):
            tiles.append({"lat0": lat, "lat1": lat + 1, "lon0": lon, "lon1": lon + 1,
                          "bbox": (lon, lat, lon + 1, lat + 1)})
    return tiles


def _sources(cfg: dict, http: Downloader, region: Region, prop: str, interval) -> list[Raster]:
    depth = _depth_name(cfg["source"], interval)
    if cfg["source"] == "soilgrids":
        href = cfg["url"].format(property=prop, depth=depth)
        return [Raster(href, scale=cfg["scale"], nodata=cfg["nodata"])]
    sources = []
    for tile in _polaris_tiles(region):
        box = tile.pop("bbox")
        url = cfg["polaris_url"].format(property=prop, depth=depth, **tile)
        try:
            path = http.fetch(url, dest=http.cache_dir / "polaris" / prop / depth / Path(url).name)
        except NotFound:
            # POLARIS has no tile where a 1 x 1 degree cell holds no CONUS land: an empty tile
            log.info("soil: no POLARIS tile %s (HTTP 404): empty", Path(url).name)
            continue
        sources.append(Raster(str(path), scale=cfg["scale"], nodata=cfg["nodata"], bbox=box))
    return sources


def acquire_soil(region: Region, settings: dict, http: Downloader, outputs: dict[str, str | os.PathLike]) -> dict[str, Path]:
    """Write the requested outputs among sand, clay (0-5 cm) and sand_rootzone, clay_rootzone (0-100 cm), in %."""
    cfg = dict(settings["soil"])
    if cfg["source"] not in ("soilgrids", "polaris"):
        raise InputError(f"acquire.soil.source: {cfg['source']!r} is not soilgrids or polaris")
    if cfg["source"] == "polaris":
        cfg.update(url=None, res=cfg["res"] or 30, scale=1.0 if cfg["scale"] is None else cfg["scale"])
    else:
        cfg.update(res=cfg["res"] or 250, scale=0.1 if cfg["scale"] is None else cfg["scale"])
    grid = fine_grid(coarse_grid(region), cfg["res"])
    paths = {}
    for name, out in outputs.items():
        prop, _, layer = name.partition("_")
        layer = layer or "surface"
        if prop not in ("sand", "clay") or layer not in LAYER_DEPTH_CM:
            raise InputError(f"soil output {name!r}: expected sand, clay, sand_rootzone or clay_rootzone")
        weights = layer_weights(LAYER_DEPTH_CM[layer])
        sources = [(_sources(cfg, http, region, prop, interval), w) for interval, w in weights]
        path = Path(out)
        any_valid = False
        try:
            with open_writer(path, grid, None, count=1) as dst:
                for row, col, block in blocks(grid, cfg["block"]):
                    box = lonlat_bounds(block)
                    total = np.zeros(block.shape, dtype=np.float64)
                    for interval_sources, w in sources:
                        total += w * mosaic(interval_sources, block, cfg["resampling"], box)
                    any_valid = any_valid or bool(np.isfinite(total).any())
                    write_band(dst, total.astype(np.float32), 1, row, col)
        finally:
            for interval_sources, _ in sources:
                for raster in interval_sources:
                    raster.close()
        if not any_valid:
            path.unlink()
            raise InputError(f"soil: no {cfg['source']} {prop} data over acquire.bbox {list(region.bbox)}")
        log.info("soil: wrote %s (%s, %s, %s)", path, cfg["source"], prop, layer)
        paths[name] = path
    return paths
