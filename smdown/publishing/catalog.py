"""A STAC catalogue of a run's outputs (pystac): one collection, one item per map (layer x map) with its GeoTIFF as a
Cloud-Optimized GeoTIFF asset, its days as start_datetime / end_datetime, and the projection extension (code,
transform, shape, bbox), so QGIS's STAC browser and odc-stac place it; each layer's NetCDF cube is a collection
asset. Every href is relative to the catalogue, so the run's folder can be moved or served as it is.

Validated offline: pystac ships the core STAC schemas, and this package the projection extension's (schemas/), which
pystac would otherwise fetch over the network; an extension schema neither holds is an error, not a skipped check.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pystac
from pyproj import CRS
from pystac.extensions.projection import ProjectionExtension
from pystac.validation import JsonSchemaSTACValidator

from smdown import io

SCHEMAS = Path(__file__).with_name("schemas")
# extension schema URI -> the local copy shipped here (stac-extensions/projection, Apache-2.0)
LOCAL_SCHEMAS = {ProjectionExtension.get_schema_uri(): SCHEMAS / "projection-v2.0.0.json"}
COG = pystac.MediaType.COG
VRT = "application/xml"  # a GDAL virtual raster (no media type of its own)
NETCDF = "application/x-netcdf"


class OfflineValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator reading every schema from local copies (pystac's core schemas, LOCAL_SCHEMAS):
    a schema found in neither raises instead of a network fetch."""

    def __init__(self) -> None:
        super().__init__()
        for uri, path in LOCAL_SCHEMAS.items():
            self.schema_cache[uri] = json.loads(path.read_text())

    def _get_schema(self, schema_uri: str) -> dict:
        if schema_uri not in self.schema_cache:
            raise pystac.errors.STACValidationError(
                f"no local copy of the schema {schema_uri} (smdown.publishing.catalog.LOCAL_SCHEMAS); "
                "offline validation cannot check it")
        return self.schema_cache[schema_uri]


def validate(path: str | os.PathLike) -> int:
    """Validate a catalogue and every object below it against the STAC schemas, offline; returns the number of
    items checked (an invalid object raises pystac.errors.STACValidationError)."""
    previous = pystac.validation.RegisteredValidator.get_validator()
    pystac.validation.set_validator(OfflineValidator())
    try:
        root = pystac.read_file(str(path))
        root.validate_all()
        return sum(1 for _ in root.get_items(recursive=True))
    finally:
        pystac.validation.set_validator(previous)


def _day_span(dates: list[str]) -> tuple[dt.datetime, dt.datetime]:
    first = dt.datetime.fromisoformat(dates[0]).replace(tzinfo=dt.timezone.utc)
    last = dt.datetime.fromisoformat(dates[-1]).replace(tzinfo=dt.timezone.utc)
    return first, last + dt.timedelta(days=1) - dt.timedelta(seconds=1)


def _footprint(grid) -> tuple[list[float], dict]:
    """The grid's outline in lon/lat (densified edges) as a GeoJSON polygon, and its bbox."""
    left, bottom, right, top = grid.bounds
    n = 21
    xs = np.concatenate([np.linspace(left, right, n), np.full(n, right), np.linspace(right, left, n), np.full(n, left)])
    ys = np.concatenate([np.full(n, top), np.linspace(top, bottom, n), np.full(n, bottom), np.linspace(bottom, top, n)])
    lon, lat = io.to_lonlat(grid.crs, xs, ys)
    ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]
    ring.append(ring[0])
    bbox = [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring), max(p[1] for p in ring)]
    return bbox, {"type": "Polygon", "coordinates": [ring]}


def _projection(item_or_asset, grid) -> None:
    proj = ProjectionExtension.ext(item_or_asset, add_if_missing=isinstance(item_or_asset, pystac.Item))
    code = CRS.from_user_input(grid.crs).to_epsg()
    if code is not None:
        proj.code = f"EPSG:{code}"
    else:
        proj.code, proj.wkt2 = None, CRS.from_user_input(grid.crs).to_wkt()
    t = grid.transform
    proj.transform = [t.a, t.b, t.c, t.d, t.e, t.f]
    proj.shape = [grid.height, grid.width]
    proj.bbox = list(grid.bounds)


def build_catalog(maps: Mapping[str, Mapping[str, str | os.PathLike]], cubes: Mapping[str, str | os.PathLike],
                  folder: str | os.PathLike, run: str, dtype: str = "float32") -> pystac.Collection:
    """The run's collection written under `folder` (collection.json and <item>/<item>.json), atomically: `maps` is
    layer -> map name -> GeoTIFF, `cubes` layer -> NetCDF cube (may be empty). Returns the collection."""
    folder = Path(folder)
    items, spans = [], []
    for layer, named in maps.items():
        for name, path in named.items():
            grid, dates = io.read_grid(path), io.read_dates(path)
            bbox, geometry = _footprint(grid)
            start, end = _day_span(dates)
            spans.append((start, end, bbox))
            item = pystac.Item(
                id=f"{layer}-{name}", geometry=geometry, bbox=bbox, datetime=None,
                start_datetime=start, end_datetime=end,
                properties={"smdown:layer": layer, "smdown:map": name, "smdown:days": len(dates)},
            )
            _projection(item, grid)
            # STAC 1.1's data values (an int16 map's scale and offset are in the GeoTIFF's band metadata)
            values = {"data_type": dtype, "nodata": io.INT16_NODATA if dtype == "int16" else "nan", "unit": "m3 m-3"}
            # a map in time chunks (config chunks) is a GDAL VRT over the chunks' Cloud-Optimized GeoTIFFs
            chunked = Path(path).suffix == ".vrt"
            item.add_asset(name, pystac.Asset(
                href=str(Path(path).resolve()), media_type=VRT if chunked else COG, roles=["data"],
                title=f"{layer} {name}, one band per day (band description YYYY-MM-DD)"
                + (", a GDAL VRT over its time chunks" if chunked else ""), extra_fields=values,
            ))
            items.append(item)
    if not items:
        raise ValueError(f"{folder}: no map to catalogue")
    west, south = min(s[2][0] for s in spans), min(s[2][1] for s in spans)
    east, north = max(s[2][2] for s in spans), max(s[2][3] for s in spans)
    extent = pystac.Extent(pystac.SpatialExtent([[west, south, east, north]]),
                           pystac.TemporalExtent([[min(s[0] for s in spans), max(s[1] for s in spans)]]))
    collection = pystac.Collection(
        id=f"smdown-{run}", description=f"Soil moisture downscaled to 30 m by smdown, run {run}: one item per map "
        "(a layer's ensemble, uncertainty, ...), each a Cloud-Optimized GeoTIFF with one band per day.",
        extent=extent, license="other", title=f"smdown run {run}",
    )
    collection.add_items(items)
    for layer, path in cubes.items():
        collection.add_asset(f"{layer}-cube", pystac.Asset(
            href=os.path.relpath(Path(path).resolve(), folder.resolve()), media_type=NETCDF, roles=["data"],
            title=f"{layer}: every map as a NetCDF-CF cube (time, y, x)"))
    tmp = folder.with_name(f".{folder.name}-{uuid.uuid4().hex[:8]}-part")  # no suffix: pystac takes it for a folder
    try:
        collection.normalize_hrefs(str(tmp.resolve()))
        collection.make_all_asset_hrefs_relative()
        collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return collection
