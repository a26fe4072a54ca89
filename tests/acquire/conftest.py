"""Fixtures for the acquire tests: a real HTTP server on 127.0.0.1 and fixture files in the real formats.

The server serves files from a folder with HEAD and single Range support (so GDAL's /vsicurl/ reads
COG windows), plus fake Earthdata Login, CMR (UMM-JSON granule search), STAC API and SAS-token
endpoints, and fault injection (HTTP 500s, bodies cut mid-way, bodies stalled mid-way until released,
Range ignored).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import json
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import h5py
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from smdown.acquire.region import EASE2_9KM_COLS, EASE2_9KM_ROWS, coarse_grid, global_offset, make_region
from smdown.grid import EASE2_9KM_RES, EASE2_9KM_X0, EASE2_9KM_Y0
from smdown.io import lonlat_to

USER, PASSWORD, TOKEN = "alice", "s3cret-pw", "tok-123"
PC_KEY = "pc-key-456"  # a Planetary Computer subscription key
SAS = "sig=fixture"
BBOX = [-120.15, 37.20, -119.85, 37.32]  # straddles UTM zones 10 and 11
START, END = "2023-05-01", "2023-05-02"


# ---------------------------------------------------------------- server


@dataclass
class Server:
    root: Path
    url: str = ""
    requests: list = field(default_factory=list)
    faults: dict = field(default_factory=dict)  # path -> list of actions, consumed one per request
    routes: dict = field(default_factory=dict)  # path -> callable(handler, body) -> (status, headers, bytes)
    protected: dict = field(default_factory=dict)  # path prefix -> bearer token required
    signed: dict = field(default_factory=dict)  # path prefix -> text the query must hold (a SAS token)
    release: threading.Event = field(default_factory=threading.Event)  # ends the bodies a "stall" holds

    def hits(self, path: str) -> list:
        return [r for r in self.requests if r["path"] == path]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: Server

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _handle(self, method: str):
        state = self.server_state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        state.requests.append({"method": method, "path": parts.path, "query": parts.query,
                               "headers": dict(self.headers.items())})
        actions = state.faults.get(parts.path)
        action = actions.pop(0) if actions else None
        if action == "500":
            return self._send(500, b"server error")
        if parts.path in state.routes:
            status, headers, data = state.routes[parts.path](self, parts, body)
            return self._send(status, data, headers, head=method == "HEAD")
        for prefix, token in state.protected.items():
            if parts.path.startswith(prefix) and self.headers.get("Authorization") != f"Bearer {token}":
                return self._send(401, b"unauthorized")
        for prefix, sas in state.signed.items():
            if parts.path.startswith(prefix) and sas not in parts.query:
                return self._send(403, b"AuthenticationFailed: no SAS token")  # as Azure Blob Storage answers
        path = (state.root / parts.path.lstrip("/")).resolve()
        if not path.is_file() or state.root.resolve() not in path.parents:
            return self._send(404, b"not found")
        data = path.read_bytes()
        total = len(data)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match and action != "ignore_range":
            start = int(match.group(1))
            stop = min(int(match.group(2)) + 1 if match.group(2) else total, total)
            if start >= total:
                return self._send(416, b"", {"Content-Range": f"bytes */{total}"})
            return self._send(206, data[start:stop], {"Content-Range": f"bytes {start}-{stop - 1}/{total}",
                                                      "Accept-Ranges": "bytes"}, head=method == "HEAD")
        if action in ("cut", "stall"):  # promise everything, send half, hang up (stall: once released)
            self.send_response(200)
            self.send_header("Content-Length", str(total))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.write(data[: total // 2])
            self.wfile.flush()
            if action == "stall":
                state.release.wait(60)
            self.close_connection = True
            return
        return self._send(200, data, {"Accept-Ranges": "bytes"}, head=method == "HEAD")

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_POST(self):
        self._handle("POST")


class QuietServer(ThreadingHTTPServer):
    """Quiet about clients that hang up mid-request (a download the tests kill)."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(root: Path):
    """A Server on 127.0.0.1 (a free port) serving `root`, shut down on exit."""
    root.mkdir(parents=True, exist_ok=True)
    state = Server(root)
    handler = type("BoundHandler", (Handler,), {"server_state": state})
    httpd = QuietServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(tmp_path):
    with serving(tmp_path / "www") as state:
        yield state


# ---------------------------------------------------------------- Earthdata + CMR


def _edl_route(handler, parts, body):
    auth = handler.headers.get("Authorization", "")
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    if auth != expected:
        return 401, {"Content-Type": "application/json"}, b'{"error": "invalid_credentials"}'
    return 200, {"Content-Type": "application/json"}, json.dumps(
        {"access_token": TOKEN, "token_type": "Bearer", "expiration_date": "12/31/2099"}).encode()


def smap_values(day: int, hour: int) -> dict:
    """Fixture values of a granule (uniform over the region's cells)."""
    return {"surface": 0.20 + 0.01 * day + 0.001 * hour, "rootzone": 0.30 + 0.01 * day,
            "precipitation": 1e-5 * (1 + hour)}


_GRANULES: dict = {}  # built once per session: (grid, values, ocean, fill_cell) -> bytes


def write_granule(path: Path, region_grid, values: dict, ocean: bool = False, fill_cell: bool = True) -> None:
    """A SMAP L4 gph granule: global EASE-2 9 km datasets (fill -9999) with values over the region
    (each value a number or a (rows, cols) array over the region's cells); with fill_cell, the region's
    first cell holds the fill value."""
    key = (region_grid, tuple((k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in sorted(values.items())),
           ocean, fill_cell)
    if key not in _GRANULES:
        _build_granule(path, region_grid, values, ocean, fill_cell)
        _GRANULES[key] = path.read_bytes()
    path.write_bytes(_GRANULES[key])


def _build_granule(path: Path, region_grid, values: dict, ocean: bool, fill_cell: bool) -> None:
    row0, col0 = global_offset(region_grid)
    rows, cols = slice(row0, row0 + region_grid.height), slice(col0, col0 + region_grid.width)
    with h5py.File(path, "w") as h5:
        geo = h5.create_group("Geophysical_Data")
        for name, dataset in (("surface", "sm_surface"), ("rootzone", "sm_rootzone"),
                              ("precipitation", "precipitation_total_surface_flux")):
            data = np.full((EASE2_9KM_ROWS, EASE2_9KM_COLS), -9999.0, dtype=np.float32)
            if not ocean:
                data[rows, cols] = values[name]
                if fill_cell:
                    data[row0, col0] = -9999.0  # one fill cell inside the region
            ds = geo.create_dataset(dataset, data=data, chunks=(203, 482), compression="gzip", compression_opts=1)
            ds.attrs["_FillValue"] = np.float32(-9999.0)
        h5.create_dataset("x", data=EASE2_9KM_X0 + (np.arange(EASE2_9KM_COLS) + 0.5) * EASE2_9KM_RES)
        h5.create_dataset("y", data=EASE2_9KM_Y0 - (np.arange(EASE2_9KM_ROWS) + 0.5) * EASE2_9KM_RES)


GRANULE_HOURS = [1, 4]  # two 3-hourly granules a day keep the fixtures small (8 in reality)


def _subset_route(source: Path):
    """An OPeNDAP (Hyrax DAP4) answer for one granule: the constrained index ranges as netCDF-4 (HDF5, groups kept)."""

    def route(handler, parts, body):
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {}, b"unauthorized"
        ce = parse_qs(parts.query).get("dap4.ce", [""])[0]
        buffer = io.BytesIO()
        with h5py.File(source, "r") as h5, h5py.File(buffer, "w") as out:
            for term in ce.split(";"):
                match = re.fullmatch(r"/([\w/]+)\[(\d+):1:(\d+)\]\[(\d+):1:(\d+)\]", term)
                if not match or match.group(1) not in h5:
                    return 400, {}, f"bad constraint {term!r}".encode()
                r0, r1, c0, c1 = (int(match.group(k)) for k in range(2, 6))
                ds = h5[match.group(1)]
                copy = out.create_dataset(match.group(1), data=ds[r0:r1 + 1, c0:c1 + 1])
                copy.attrs["_FillValue"] = ds.attrs["_FillValue"]
        return 200, {"Content-Type": "application/x-netcdf;ver=4"}, buffer.getvalue()

    return route


def add_smap(server: Server, region, days=(START, END), ocean: bool = False, values=smap_values,
             hours=GRANULE_HOURS, fill_cell: bool = True, opendap: str = "ok") -> list[dict]:
    """SPL4SMGP granules for `days` at `hours`, with values(day index, hour) -> {surface, rootzone,
    precipitation}, served behind Earthdata Login with a CMR granule search, as CMR lists them:

    - ECS-style GranuleURs ('SC:SPL4SMGP.008:<number>'), not file names;
    - each granule twice: from NSIDC_CPRD (Earthdata Cloud: a protected https URL, an s3 direct-access link
      and an OPeNDAP link) and from NSIDC_ECS (on-premises, another URL to the same file);
    - opendap: 'ok' (the cloud granules' OPeNDAP URLs answer DAP4 subsets), 'none' (no OPeNDAP links),
      'broken' (the OPeNDAP server answers HTTP 500)."""
    grid = coarse_grid(region)
    folder = server.root / "smap"
    folder.mkdir(exist_ok=True)
    entries = []
    for k, day in enumerate(days):
        for hour in hours:
            stamp = dt.datetime.fromisoformat(day).strftime("%Y%m%d") + f"T{hour:02d}3000"
            name = f"SMAP_L4_SM_gph_{stamp}_Vv8010_001.h5"
            write_granule(folder / name, grid, values(k, hour), ocean, fill_cell)
            ecs = server.root / "smap-ecs" / "SPL4SMGP.008" / day.replace("-", ".")
            ecs.mkdir(parents=True, exist_ok=True)
            (ecs / name).write_bytes((folder / name).read_bytes())
            begin = f"{day}T{hour - 1:02d}:00:00.000Z"
            end = f"{day}T{hour + 1:02d}:59:59.999Z"
            size = (folder / name).stat().st_size
            opendap_path = f"/opendap/collections/C2938664763-NSIDC_CPRD/granules/{name[:-3]}"
            for provider in ("NSIDC_CPRD", "NSIDC_ECS"):
                if provider == "NSIDC_CPRD":
                    links = [{"URL": f"{server.url}/smap/{name}", "Type": "GET DATA"},
                             {"URL": f"s3://nsidc-cumulus-prod-protected/SMAP/SPL4SMGP/008/{name}",
                              "Type": "GET DATA VIA DIRECT ACCESS"}]
                    if opendap != "none":
                        links.append({"URL": f"{server.url}{opendap_path}", "Type": "USE SERVICE API",
                                      "Subtype": "OPENDAP DATA"})
                else:
                    links = [{"URL": f"{server.url}/smap-ecs/SPL4SMGP.008/{day.replace('-', '.')}/{name}",
                              "Type": "GET DATA"}]
                links.append({"URL": f"{server.url}/smap/{name}.iso.xml", "Type": "EXTENDED METADATA"})
                entries.append({
                    "meta": {"concept-id": f"G{2815000 + len(entries)}-{provider}", "provider-id": provider},
                    "umm": {
                        "GranuleUR": f"SC:SPL4SMGP.008:{281500000 + len(entries)}",
                        "CollectionReference": {"ShortName": "SPL4SMGP", "Version": "008"},
                        "TemporalExtent": {"RangeDateTime": {"BeginningDateTime": begin, "EndingDateTime": end}},
                        "SpatialExtent": {},
                        "RelatedUrls": links,
                        "DataGranule": {"ArchiveAndDistributionInformation": [{"Name": name, "SizeInBytes": size}]},
                    },
                })
            if opendap == "broken":
                server.routes[f"{opendap_path}.dap.nc4"] = lambda h, p, b: (500, {}, b"Hyrax: internal error")
            else:
                server.routes[f"{opendap_path}.dap.nc4"] = _subset_route(folder / name)
    server.protected["/smap/"] = TOKEN
    server.protected["/smap-ecs/"] = TOKEN
    server.routes["/api/users/find_or_create_token"] = _edl_route

    def cmr(handler, parts, body):
        query = parse_qs(parts.query)
        page_size = int(query.get("page_size", ["2000"])[0])
        items = [e for e in entries if query.get("short_name") == ["SPL4SMGP"] and query.get("version") == ["008"]]
        if "provider" in query:
            items = [e for e in items if e["meta"]["provider-id"] in query["provider"]]
        if "temporal[]" in query:
            t0, t1 = query["temporal[]"][0].split(",")
            items = [e for e in items
                     if e["umm"]["TemporalExtent"]["RangeDateTime"]["BeginningDateTime"][:19] <= t1[:19]
                     and e["umm"]["TemporalExtent"]["RangeDateTime"]["EndingDateTime"][:19] >= t0[:19]]
        if handler.headers.get("cmr-search-after"):
            items = []
        page = items[:page_size]
        data = json.dumps({"hits": len(items), "took": 1, "items": page}).encode()
        headers = {"Content-Type": "application/vnd.nasa.cmr.umm_results+json", "CMR-Hits": str(len(items))}
        if page:
            headers["CMR-Search-After"] = '["x"]'
        return 200, headers, data

    server.routes["/search/granules.umm_json"] = cmr
    return entries


# ---------------------------------------------------------------- STAC + COGs


def write_tif(path: Path, data: np.ndarray, crs: str, transform, nodata=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = data if data.ndim == 3 else data[None]
    profile = dict(driver="GTiff", dtype=data.dtype, count=data.shape[0], height=data.shape[1], width=data.shape[2],
                   crs=crs, transform=transform, nodata=nodata, tiled=True, blockxsize=32, blockysize=32,
                   compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _utm_frame(crs: str, region, res: float, margin: float = 3000.0):
    west, south, east, north = region.bbox
    xs, ys = lonlat_to(crs, [west, east, west, east], [south, south, north, north])
    x0, y1 = xs.min() - margin, ys.max() + margin
    width, height = int((xs.max() - xs.min() + 2 * margin) / res) + 1, int((ys.max() - ys.min() + 2 * margin) / res) + 1
    return from_origin(np.floor(x0), np.ceil(y1), res, res), height, width


S2_COLLECTION = "sentinel-2-c1-l2a"
S2_DN = {"red": 2000, "nir": 5000, "swir16": 3000}  # reflectance = DN * 1e-4 - 0.1 -> 0.1, 0.4, 0.2


def _item(server, collection, item_id, when, bbox, assets, props=None) -> dict:
    west, south, east, north = bbox
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
        "bbox": list(bbox),
        "geometry": {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north],
                                                          [west, south]]]},
        "properties": {"datetime": when, **(props or {})},
        "assets": assets, "links": [],
    }


def _s2_tiles(region, day: str, nir_factor: float, cloud_third: int, suffix: str = "A") -> list[tuple]:
    """The zone-10 (west) and zone-11 (east) Sentinel-2 tiles of one acquisition day."""
    west, south, east, north = region.bbox
    stamp = day.replace("-", "")
    return [(f"S2{suffix}_10SGF_{stamp}", "EPSG:32610", f"{day}T18:50:00Z", (west - 0.1, south - 0.1, -120.0, north + 0.1),
             nir_factor, cloud_third),
            (f"S2{suffix}_11SKA_{stamp}", "EPSG:32611", f"{day}T18:50:10Z", (-120.0, south - 0.1, east + 0.1, north + 0.1),
             nir_factor, cloud_third)]


def _sas_route(needs_key: bool):
    def route(handler, parts, body):
        if needs_key and handler.headers.get("Ocp-Apim-Subscription-Key") != PC_KEY:
            return 401, {"Content-Type": "application/json"}, b'{"statusCode": 401, "message": "Access denied"}'
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"token": f"se=2099&{SAS}", "msr:expiry": "2099-01-01T00:00:00Z"}).encode()

    return route


def add_sas(server: Server) -> None:
    """Planetary Computer SAS token endpoints: sentinel-1-rtc only with the subscription key (header
    Ocp-Apim-Subscription-Key), the other collections anonymously."""
    server.routes["/sas/token/sentinel-1-rtc"] = _sas_route(needs_key=True)
    for collection in ("sentinel-2-l2a", S2_COLLECTION, "cop-dem-glo-30"):
        server.routes[f"/sas/token/{collection}"] = _sas_route(needs_key=False)


def add_stac(server: Server, region, s1_token: bool = False, season: list[str] | None = None) -> dict:
    """STAC API with sentinel-2-l2a, cop-dem-glo-30 and sentinel-1-rtc items over the region.

    By default: Sentinel-2 on 2023-05-01 (two UTM tiles) and 2023-05-02 (one tile, NIR halved), the
    northern third cloudy, and Sentinel-1 on both days. With `season` (a list of days): both tiles and a
    Sentinel-1 scene on each day, vegetation greening through the season and the cloudy third moving.
    """
    www = server.root
    items = []
    west, south, east, north = region.bbox
    if season is None:
        s2 = _s2_tiles(region, "2023-05-01", 1.0, 0)
        s2.append(("S2B_10SGF_20230502", "EPSG:32610", "2023-05-02T18:50:00Z",
                   (west - 0.1, south - 0.1, east + 0.1, north + 0.1), 0.5, 0))
        s1 = [("2023-05-01T14:00:00Z", 1.0), ("2023-05-02T02:00:00Z", 10.0)]
    else:
        s2 = [tile for i, day in enumerate(season)
              for tile in _s2_tiles(region, day, 0.6 + 0.4 * i / max(len(season) - 1, 1), i % 3)]
        s1 = [(f"{day}T14:00:00Z", 1.0 + 0.2 * i) for i, day in enumerate(season)]
    for item_id, crs, when, box, nir_factor, cloud_third in s2:
        assets = {}
        for band, res in (("red", 200.0), ("nir", 200.0), ("swir16", 400.0), ("scl", 400.0)):
            transform, height, width = _utm_frame(crs, make_region(box, START, END), res, margin=0.0)
            if band == "scl":
                data = np.full((height, width), 4, dtype=np.uint8)
                third = slice(cloud_third * height // 3, (cloud_third + 1) * height // 3)
                data[third] = 9  # one cloudy third
            else:
                value = S2_DN[band] if band != "nir" else int((S2_DN["nir"] - 1000) * nir_factor + 1000)
                data = np.full((height, width), value, dtype=np.uint16)
            name = f"s2/{item_id}/{band}.tif"
            write_tif(www / name, data, crs, transform, nodata=0)
            assets[band] = {"href": f"{server.url}/{name}", "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                            "raster:bands": [{"nodata": 0, "scale": 0.0001, "offset": -0.1}] if band != "scl" else []}
        items.append(_item(server, S2_COLLECTION, item_id, when, box, assets,
                           {"eo:cloud_cover": 20.0, "s2:processing_baseline": "05.09"}))
    # A cloudy item that max_cloud filters out.
    items.append(_item(server, S2_COLLECTION, "S2A_cloudy", "2023-05-02T18:51:00Z", region.bbox,
                       {"red": {"href": f"{server.url}/missing.tif"}}, {"eo:cloud_cover": 99.0}))
    # Copernicus DEM: one 1x1 degree-ish tile in lon/lat, elevation = 100 + 1000 * (lat - 37).
    res = 0.002
    lats = 38.0 - (np.arange(500) + 0.5) * res
    dem = np.repeat((100 + 1000 * (lats - 37.0))[:, None], 1000, axis=1).astype(np.float32)
    write_tif(www / "dem/Copernicus_DSM_COG_10_N37_00_W121_00_DEM.tif", dem, "EPSG:4326",
              from_origin(-121.0, 38.0, res, res), nodata=-32767.0)
    items.append(_item(server, "cop-dem-glo-30", "Copernicus_DSM_COG_10_N37_00_W121_00", "2021-04-22T00:00:00Z",
                       (-121.0, 37.0, -119.0, 38.0),
                       {"data": {"href": f"{server.url}/dem/Copernicus_DSM_COG_10_N37_00_W121_00_DEM.tif"}}))
    # Sentinel-1 RTC: linear gamma0 (vv 0.1 -> -10 dB, vh 0.01 -> -20 dB), EPSG:32610.
    for when, scale in s1:
        transform, height, width = _utm_frame("EPSG:32610", region, 300.0, margin=20000.0)
        assets = {}
        for pol, value in (("vv", 0.1), ("vh", 0.01)):
            name = f"s1/{when[:10]}/{pol}.tif"
            write_tif(www / name, np.full((height, width), value * scale, dtype=np.float32), "EPSG:32610", transform,
                      nodata=-32768.0)
            assets[pol] = {"href": f"{server.url}/{name}"}
        items.append(_item(server, "sentinel-1-rtc", f"S1A_{when[:10]}", when, (west - 0.1, south - 0.1, east + 0.1,
                                                                                    north + 0.1), assets))
    if s1_token:
        add_sas(server)
        server.signed["/s1/"] = SAS

    landing = {
        "type": "Catalog", "stac_version": "1.0.0", "id": "fixture", "description": "fixture STAC API",
        "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
        "links": [
            {"rel": "self", "href": f"{server.url}/stac/", "type": "application/json"},
            {"rel": "root", "href": f"{server.url}/stac/", "type": "application/json"},
            {"rel": "search", "href": f"{server.url}/stac/search", "type": "application/geo+json", "method": "POST"},
            {"rel": "search", "href": f"{server.url}/stac/search", "type": "application/geo+json", "method": "GET"},
        ],
    }

    def landing_route(handler, parts, body):
        return 200, {"Content-Type": "application/json"}, json.dumps(landing).encode()

    def search_route(handler, parts, body):
        params = json.loads(body or b"{}") if handler.command == "POST" else {
            k: v[0] for k, v in parse_qs(parts.query).items()}
        collections = params.get("collections") or []
        if isinstance(collections, str):
            collections = collections.split(",")
        bbox = params.get("bbox")
        if isinstance(bbox, str):
            bbox = [float(v) for v in bbox.split(",")]
        when = params.get("datetime")
        found = []
        for item in items:
            if collections and item["collection"] not in collections:
                continue
            b = item["bbox"]
            if bbox and not (b[0] < bbox[2] and b[2] > bbox[0] and b[1] < bbox[3] and b[3] > bbox[1]):
                continue
            if when:
                t0, t1 = when.split("/")
                t = item["properties"]["datetime"]
                if (t0 not in ("", "..") and t < t0) or (t1 not in ("", "..") and t > t1):
                    continue
            found.append(item)
        return 200, {"Content-Type": "application/geo+json"}, json.dumps(
            {"type": "FeatureCollection", "features": found, "links": []}).encode()

    server.routes["/stac/"] = landing_route
    server.routes["/stac"] = landing_route
    server.routes["/stac/search"] = search_route
    return {"items": items}


# ---------------------------------------------------------------- SoilGrids


SAND = {"0-5cm": 400, "5-15cm": 420, "15-30cm": 450, "30-60cm": 500, "60-100cm": 550}  # g/kg
CLAY = {"0-5cm": 200, "5-15cm": 220, "15-30cm": 250, "30-60cm": 300, "60-100cm": 350}


def add_soilgrids(server: Server) -> str:
    res = 0.0025
    for prop, values in (("sand", SAND), ("clay", CLAY)):
        for depth, value in values.items():
            data = np.full((120, 240), value, dtype=np.int16)
            data[:5, :5] = -32768
            write_tif(server.root / f"soilgrids/{prop}/{prop}_{depth}_mean.tif", data, "EPSG:4326",
                      from_origin(-120.3, 37.45, res, res), nodata=-32768)
    return server.url + "/soilgrids/{property}/{property}_{depth}_mean.tif"


POLARIS_URL = "/polaris/{property}/mean/{depth}/lat{lat0}{lat1}_lon{lon0}{lon1}.tif"
POLARIS_DEPTHS = ("0_5", "5_15", "15_30", "30_60", "60_100")


def add_polaris(server: Server, tiles=((37, -121),)) -> str:
    """POLARIS 1 x 1 degree tiles (sand 40 + k %, clay 20 + k % at the k-th depth) for the (lat0, lon0) given;
    every other tile answers HTTP 404, as POLARIS does where a cell holds no land."""
    res = 1 / 3600 * 30  # 30 arc-seconds keeps the fixture small
    n = round(1 / res)
    for prop, base in (("sand", 40.0), ("clay", 20.0)):
        for k, depth in enumerate(POLARIS_DEPTHS):
            for lat0, lon0 in tiles:
                name = POLARIS_URL.format(property=prop, depth=depth, lat0=lat0, lat1=lat0 + 1, lon0=lon0,
                                          lon1=lon0 + 1)
                write_tif(server.root / name.lstrip("/"), np.full((n, n), base + k, dtype=np.float32), "EPSG:4326",
                          from_origin(lon0, lat0 + 1, res, res), nodata=-9999.0)
    return server.url + POLARIS_URL


def rewrite_s2(server: Server, dn: dict, properties: dict | None = None, collection: str | None = None) -> None:
    """Serve the Sentinel-2 items with other digital numbers (dn: band -> value, on new COGs on the same grids),
    extra item properties, and optionally under another collection name."""
    route = server.routes["/stac/search"]

    def rewritten(handler, parts, body):
        if collection:
            params = json.loads(body or b"{}") if handler.command == "POST" else {}
            wanted = params.get("collections") or []
            if collection in wanted:
                body = json.dumps({**params, "collections": [S2_COLLECTION]}).encode()
        status, headers, data = route(handler, parts, body)
        found = json.loads(data)
        for feature in found["features"]:
            if feature["collection"] != S2_COLLECTION:
                continue
            feature["properties"].update(properties or {})
            if collection:
                feature["collection"] = collection
            for band, value in dn.items():
                asset = feature["assets"].get(band)
                if asset is None:
                    continue
                old = server.root / urlsplit(asset["href"]).path.lstrip("/")
                if not old.exists():
                    continue
                new = old.with_name(f"{old.stem}_{value}.tif")
                if not new.exists():
                    with rasterio.open(old) as src:
                        write_tif(new, np.full((src.height, src.width), value, dtype=np.uint16), str(src.crs),
                                  src.transform, nodata=0)
                asset["href"] = f"{server.url}/{new.relative_to(server.root)}"
        return status, headers, json.dumps(found).encode()

    server.routes["/stac/search"] = rewritten


# ---------------------------------------------------------------- ISMN


def stm_file(folder: Path, network: str, station: str, lat: float, lon: float, depth: tuple, rows: list,
             variable: str = "sm") -> Path:
    name = f"{network}_{network}_{station}_{variable}_{depth[0]:.6f}_{depth[1]:.6f}_Hydraprobe_20230101_20231231.stm"
    path = folder / network / station / name
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"{network:<14}{network:<14}{station:<26}{lat:11.5f}{lon:12.5f}{35.0:10.2f}{depth[0]:10.4f}{depth[1]:10.4f}  Hydraprobe-II"
    lines = [header] + [f"{when} {value:9.4f} {flag} M" for when, value, flag in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def add_ismn(folder: Path, days: list[str] | None = None) -> Path:
    """Station A inside the bbox with sensors at 0.05, 0.2, 0.5, 1.0 m; station B outside.

    By default two days of values with a flagged (D03) and a C01 reading; with `days`, a daily series
    at 06:00 and 18:00 of every day, drying through the period, with one flagged reading a day.
    """
    if days is None:
        rows = {
            0.05: [("2023/05/01 00:00", 0.20, "G"), ("2023/05/01 12:00", 0.22, "G"), ("2023/05/01 18:00", 0.90, "D03"),
                   ("2023/05/02 00:00", 0.18, "G")],
            0.20: [("2023/05/01 00:00", 0.25, "G"), ("2023/05/02 00:00", 0.24, "G")],
            0.50: [("2023/05/01 00:00", 0.30, "G"), ("2023/05/02 00:00", 0.29, "C01")],
            1.00: [("2023/05/01 00:00", 0.35, "G"), ("2023/05/02 00:00", 0.34, "G")],
        }
    else:
        rows = {depth: [] for depth in (0.05, 0.20, 0.50, 1.00)}
        for k, day in enumerate(days):
            stamp = day.replace("-", "/")
            for depth, series in rows.items():
                value = 0.15 + 0.2 * depth - 0.002 * k
                series += [(f"{stamp} 06:00", value, "G"), (f"{stamp} 12:00", 0.95, "D03"),
                           (f"{stamp} 18:00", value, "G")]
    for depth, values in rows.items():
        stm_file(folder, "SCAN", "Fresno-Fixture", 37.25, -120.0, (depth, depth), values)
    stm_file(folder, "SCAN", "Fresno-Fixture", 37.25, -120.0, (0.05, 0.05),
             [("2023/05/01 00:00", 20.0, "G")], variable="ts")  # soil temperature: ignored
    stm_file(folder, "SCAN", "Far-Away", 45.0, -100.0, (0.05, 0.05), [("2023/05/01 00:00", 0.1, "G")])
    return folder


# ---------------------------------------------------------------- a full fixture world


@pytest.fixture
def region():
    return make_region(BBOX, START, END)


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("EARTHDATA_USERNAME", USER)
    monkeypatch.setenv("EARTHDATA_PASSWORD", PASSWORD)
    monkeypatch.delenv("EARTHDATA_TOKEN", raising=False)


@pytest.fixture
def pc_key(monkeypatch):
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", PC_KEY)


@pytest.fixture
def world(server, region, tmp_path, credentials, pc_key):
    """Every source served on 127.0.0.1, and the acquire config pointing at it."""
    add_smap(server, region)
    add_stac(server, region, s1_token=True)
    soil_url = add_soilgrids(server)
    ismn = add_ismn(tmp_path / "ismn")
    config = {
        "source": "earthdata",
        "acquire": {
            "bbox": BBOX, "start": START, "end": END,
            "cache_dir": str(tmp_path / "cache"),
            "http": {"retries": 2, "backoff": 0.01, "timeout": 10},
            "earthdata": {"login": "environment", "edl_url": server.url, "cmr_url": f"{server.url}/search/"},
            "smap": {"version": "008"},
            # small blocks so the block-by-block writers are exercised on the 18 x 36 px grids
            "sentinel2": {"catalog": f"{server.url}/stac/", "res": 1000, "max_cloud": 80, "block": 16},
            "dem": {"catalog": f"{server.url}/stac/", "res": 1000, "block": 16},
            "soil": {"url": soil_url, "res": 1000, "block": 32},
            "sentinel1": {"enabled": True, "catalog": f"{server.url}/stac/", "res": 1000, "block": 16,
                          "sign": "planetary_computer", "token_url": f"{server.url}/sas/token"},
            "ismn": {"path": str(ismn)},
        },
    }
    return config
