"""Sentinel-2 L2A (STAC, COGs over HTTP) -> dated NDVI and NDWI on a grid nested in the coarse grid.

Default: Earth Search's sentinel-2-c1-l2a (Collection 1, processing baseline >= 05.00, the catalogue's
replacement of sentinel-2-l2a, same asset keys). Planetary Computer hrefs are signed (sign: auto).

For each acquisition date, each item's red, nir, swir16 and SCL assets are read only under the
output block (GDAL /vsicurl/ + warped VRT, HTTP Range requests), reflectances scaled with the
asset's raster:bands scale/offset and the processing baseline, the offset dropped where the
pixels already carry it (see band_scaling and offset_in_pixels), checked to lie in the range of surface reflectance
(check_reflectance: an InputError, never silent NaN), cloud-masked with the scene classification (SCL), and the
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

from smdown.acquire.http import Downloader, redact
from smdown.acquire.region import Region, bbox_overlaps, blocks, coarse_grid, fine_grid, lonlat_bounds
from smdown.acquire.remote import Raster, write_band
from smdown.acquire.stac import asset_href, by_date, raster_scaling, search_items, signer_for
from smdown.grid import Grid
from smdown.io import InputError, open_writer

log = logging.getLogger("smdown.acquire")

ASSET_KEYS = {
    "red": ["red", "B04", "b04"],
    "nir": ["nir", "B08", "b08"],  # not nir08: that is B8A (865 nm, 20 m), not B08
    "swir16": ["swir16", "B11", "b11"],
    "scl": ["scl", "SCL"],
}


# Surface reflectance, once scaled, lies within these bounds: DN 1 with the -0.1 offset of processing
# baseline >= 04.00 gives -0.0999; values beyond mean a wrong scale or an offset applied twice.
REFLECTANCE_RANGE = (-0.1, 2.0)
BOA_APPLIED = "earthsearch:boa_offset_applied"


def band_scaling(item: pystac.Item, asset: pystac.Asset) -> tuple[float, float, float | None]:
    """(scale, offset, nodata) turning an asset's digital numbers into surface reflectance, as the item says.

    - raster:bands scale/offset when the asset has them; plain digital numbers (e.g. Planetary Computer):
      DN / 10000, minus the 1000 DN offset (-0.1) from processing baseline 04.00 onwards;
    - an item processed before baseline 04.00 carries no offset, whatever raster:bands says.

    earthsearch:boa_offset_applied is not trusted here: Earth Search items say false while their COGs already
    carry the offset, and true while raster:bands still lists it. Whether the pixels still hold the offset is
    decided from the pixels themselves (offset_in_pixels) when the first block is read."""
    scale, offset, nodata = raster_scaling(asset)
    baseline = str(item.properties.get("s2:processing_baseline") or "")
    if scale == 1.0 and offset == 0.0:
        scale, offset = 1e-4, (-0.1 if baseline >= "04.00" else 0.0)
    elif baseline and baseline < "04.00":
        offset = 0.0
    return scale, offset, nodata


def offset_in_pixels(bands: dict[str, np.ndarray], land: np.ndarray, min_pixels: int = 20) -> bool | None:
    """Whether the BOA offset is already applied to the pixels, judged from reflectances read with the offset: over
    clear land (SCL 4, 5) reflectance is positive in every band, so a band more than half of whose land pixels come
    out at or below 0 had the offset taken off already (it would be subtracted twice). None: too few land pixels."""
    if int(land.sum()) < min_pixels:
        return None
    return max(float((values[land] <= 1e-6).mean()) for values in bands.values()) > 0.5


def _raster(item: pystac.Item, band: str, sign=None) -> Raster:
    href, asset = asset_href(item, ASSET_KEYS[band])
    href = sign(href) if sign else href
    if band == "scl":
        return Raster(href, nodata=0, bbox=item.bbox)
    scale, offset, nodata = band_scaling(item, asset)
    raster = Raster(href, scale=scale, offset=offset, nodata=0 if nodata is None else nodata, bbox=item.bbox)
    raster.item_id = item.id
    raster.boa_applied = item.properties.get(BOA_APPLIED)
    return raster


LAND_CLASSES = (4, 5)  # SCL vegetation, not vegetated: reflectance there is positive in every band


def check_reflectance(values: np.ndarray, land: np.ndarray, raster: Raster, band: str) -> None:
    """Fail loudly on reflectances no correct scaling gives: below/above REFLECTANCE_RANGE on any clear pixel, or
    negative on most land pixels (an offset applied twice shifts a whole scene by -0.1; over water, slightly
    negative values are noise and do not count)."""
    valid = np.isfinite(values)
    if not valid.any():
        return
    lo, hi = REFLECTANCE_RANGE
    low, high = float(values[valid].min()), float(values[valid].max())
    on_land = values[valid & land]
    negative = float((on_land < 0).mean()) if on_land.size else 0.0
    if low < lo - 1e-4 or high > hi or (on_land.size >= 20 and negative > 0.5):
        raise InputError(
            f"Sentinel-2 item {getattr(raster, 'item_id', '?')} asset {band} ({redact(raster.href)}): scaled "
            f"reflectance {low:.4f}..{high:.4f} with {negative:.0%} of the clear land pixels negative, outside what "
            f"surface reflectance can be ({lo}..{hi}, mostly positive); scale {raster.scale:g}, offset "
            f"{raster.offset:g}, {BOA_APPLIED}={getattr(raster, 'boa_applied', None)}. The offset is probably "
            "applied twice or missing: check the item's raster:bands and processing baseline, or use "
            "acquire.sentinel2.collection: sentinel-2-c1-l2a"
        )


def indices(red, nir, swir16, scl, keep) -> tuple[np.ndarray, np.ndarray]:
    """NDVI and NDWI (Gao) with the SCL mask applied (NaN where masked or undefined)."""
    clear = np.isin(np.nan_to_num(scl, nan=0).astype(np.int16), list(keep))
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (nir - red) / (nir + red)
        ndwi = (nir - swir16) / (nir + swir16)
    ndvi = np.where(clear & np.isfinite(ndvi) & (np.abs(ndvi) <= 1), ndvi, np.nan).astype(np.float32)
    ndwi = np.where(clear & np.isfinite(ndwi) & (np.abs(ndwi) <= 1), ndwi, np.nan).astype(np.float32)
    return ndvi, ndwi


def _decide_offset(scene: dict[str, Raster], bands: dict[str, np.ndarray], land: np.ndarray) -> None:
    """On the first block with enough clear land, keep or drop the scene's BOA offset as its pixels say (in place)."""
    rasters = [scene[b] for b in bands]
    if getattr(scene["scl"], "offset_decided", False) or all(r.offset == 0.0 for r in rasters):
        return
    applied = offset_in_pixels(bands, land)
    if applied is None:
        return
    scene["scl"].offset_decided = True
    flag = getattr(rasters[0], "boa_applied", None)
    if applied:
        for b, raster in zip(bands, rasters, strict=True):
            bands[b] -= np.float32(raster.offset)
            raster.offset = 0.0
        log.warning("Sentinel-2 item %s: its pixels already carry the BOA offset (over half of the clear land pixels "
                    "would be <= 0 with it); the offset of raster:bands is not applied again (%s=%s)",
                    getattr(rasters[0], "item_id", "?"), BOA_APPLIED, flag)
    elif flag is True:
        log.info("Sentinel-2 item %s says %s=true, but its pixels still carry the BOA offset: applied",
                 getattr(rasters[0], "item_id", "?"), BOA_APPLIED)


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
        classes = np.nan_to_num(scl, nan=0).astype(np.int16)
        clear, land = np.isin(classes, list(cfg["scl_keep"])), np.isin(classes, LAND_CLASSES)
        _decide_offset(scene, bands, clear & land)
        for b, values in bands.items():
            check_reflectance(np.where(clear, values, np.nan), clear & land, scene[b], b)
        for k, index in enumerate(indices(bands["red"], bands["nir"], bands["swir16"], scl, cfg["scl_keep"])):
            valid = np.isfinite(index)
            sums[k][valid] += index[valid]
            counts[k] += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        out = [np.where(c > 0, s / np.maximum(c, 1), np.nan).astype(np.float32) for s, c in zip(sums, counts, strict=True)]
    return out[0], out[1]


# Periods a collection holds no items for: Earth Search's sentinel-2-c1-l2a lacks Nov 2016 - Nov 2019 and 2022,
# ESA's reprocessing of the archive to baseline 05.00 being incomplete (Earth Search's README, April 2024).
COLLECTION_GAPS = {"sentinel-2-c1-l2a": (("2016-11-01", "2019-11-30"), ("2022-01-01", "2022-12-31"))}
GAP_FALLBACK = {"sentinel-2-c1-l2a": "sentinel-2-l2a"}


def check_collection_gaps(collection: str, start: str, end: str) -> None:
    """Stop, before any request, when acquire.start..end lies inside a period the collection has no items for; a
    warning when the period only overlaps one."""
    for first, last in COLLECTION_GAPS.get(collection, ()):
        if start > last or end < first:
            continue
        instead = GAP_FALLBACK[collection]
        if first <= start and end <= last:
            raise InputError(
                f"Sentinel-2: acquire.start..end ({start}..{end}) lies inside a gap of {collection}, which has no "
                f"items from {first} to {last} (ESA's reprocessing of the archive to baseline 05.00 is incomplete). "
                f"Set acquire.sentinel2.collection: {instead} (same catalogue, same asset keys), or choose a period "
                "outside the gap"
            )
        log.warning("Sentinel-2: %s has no items from %s to %s, inside acquire.start..end (%s..%s): those days get no "
                    "NDVI/NDWI (acquire.sentinel2.collection: %s covers them)", collection, first, last, start, end,
                    instead)


def acquire_sentinel2(
    region: Region, settings: dict, http: Downloader, ndvi: str | os.PathLike, ndwi: str | os.PathLike
) -> dict[str, Path]:
    """Write ndvi.tif and ndwi.tif: one band per acquisition date (YYYY-MM-DD), NaN where masked."""
    cfg = settings["sentinel2"]
    check_collection_gaps(cfg["collection"], region.start, region.end)
    signer = signer_for(cfg, http, "sentinel2", "Sentinel-2")
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
            scenes = [{band: _raster(item, band, signer.sign if signer else None) for band in ASSET_KEYS}
                      for item in groups[day]]
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
