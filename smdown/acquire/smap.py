"""SMAP L4 (SPL4SMGP, 3-hourly geophysical granules) -> daily coarse soil moisture and precipitation.

Search: earthaccess's CMR granule query (UMM-JSON) against a configurable CMR base URL.
Download: our cached, resumable downloader with an Earthdata bearer token.
Read: HDF5 ``Geophysical_Data/{sm_surface, sm_rootzone, precipitation_total_surface_flux}`` on the
global EASE-Grid 2.0 9 km grid (1624 x 3856; fill -9999 -> NaN), subset to the region's cells,
3-hourly granules averaged per UTC day; precipitation kg m-2 s-1 * 86400 -> mm/day.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import requests

from smdown.acquire.earthdata import Credentials, find_credentials, login
from smdown.acquire.http import Downloader, RetryableError, redact
from smdown.acquire.region import EASE2_9KM_COLS, EASE2_9KM_ROWS, Region, coarse_grid, global_offset
from smdown.grid import EASE2_9KM_RES, EASE2_9KM_X0, EASE2_9KM_Y0, Grid
from smdown.io import InputError, Stack, write_stack

log = logging.getLogger("smdown.acquire")

VARIABLES = {
    "surface": "Geophysical_Data/sm_surface",
    "rootzone": "Geophysical_Data/sm_rootzone",
    "precipitation": "Geophysical_Data/precipitation_total_surface_flux",
}
SECONDS_PER_DAY = 86400.0
CMR_URL = "https://cmr.earthdata.nasa.gov/search/"
_TIME_IN_NAME = re.compile(r"_(\d{8})T(\d{6})_")


@dataclass(frozen=True)
class Granule:
    name: str
    url: str
    date: str  # UTC date of the granule's centre time
    size: int | None = None


# ---------------------------------------------------------------- search


def _granule_date(name: str, begin: str | None, end: str | None) -> str:
    match = _TIME_IN_NAME.search(name)
    if match:
        return dt.datetime.strptime(match.group(1), "%Y%m%d").date().isoformat()
    if begin and end:
        t0 = dt.datetime.fromisoformat(begin.replace("Z", "+00:00"))
        t1 = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
        return (t0 + (t1 - t0) / 2).date().isoformat()
    if begin:
        return begin[:10]
    raise InputError(f"SMAP granule {name}: no time in its name or metadata")


def search_granules(
    region: Region, short_name: str, version: str, cmr_url: str = CMR_URL, http: Downloader | None = None
) -> list[Granule]:
    """SMAP granules intersecting the region's bbox and period (earthaccess CMR query, UMM-JSON)."""
    from earthaccess.search import DataGranules  # slow import: only when searching

    base = cmr_url if cmr_url.endswith("/") else cmr_url + "/"

    def once():
        query = DataGranules().mode(base).parameters(
            short_name=short_name,
            version=str(version),
            temporal=(f"{region.start}T00:00:00Z", f"{region.end}T23:59:59Z"),
            bounding_box=tuple(region.bbox),
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                return query.get_all()
        except RuntimeError as err:  # earthaccess: CMR answered an HTTP error
            raise RetryableError(f"CMR error: {str(err)[:200]}") from None
        except (requests.ConnectionError, requests.Timeout) as err:
            raise RetryableError(type(err).__name__) from None
        except (KeyError, ValueError) as err:
            raise InputError(f"SMAP search: unexpected answer from CMR at {redact(base)} ({err!r})") from None

    if http is not None:
        results = http.retry(f"SMAP search at {redact(base)}", once)
    else:
        results = once()
    granules = []
    for result in results:
        umm = result["umm"]
        links = result.data_links(access="external")
        links = [u for u in links if u.startswith("http") and u.split("?")[0].endswith((".h5", ".hdf5", ".he5"))] or links
        if not links:
            continue
        name = umm.get("GranuleUR") or Path(links[0]).name
        extent = umm.get("TemporalExtent", {}).get("RangeDateTime", {})
        day = _granule_date(name, extent.get("BeginningDateTime"), extent.get("EndingDateTime"))
        if not region.start <= day <= region.end:
            continue
        size = None
        for info in umm.get("DataGranule", {}).get("ArchiveAndDistributionInformation", []) or []:
            if "SizeInBytes" in info and info.get("Name") == Path(links[0].split("?")[0]).name:
                size = int(info["SizeInBytes"])
        granules.append(Granule(name, links[0], day, size))
    granules = sorted(set(granules), key=lambda g: (g.date, g.name))
    if not granules:
        raise InputError(
            f"SMAP: no {short_name} v{version} granules in CMR for {region.start}..{region.end} over bbox "
            f"{list(region.bbox)} (check acquire.start/end, acquire.smap.version and acquire.bbox)"
        )
    log.info("SMAP: %d granules over %d days", len(granules), len({g.date for g in granules}))
    return granules


# ---------------------------------------------------------------- reading


def read_granule(path: str | os.PathLike, grid: Grid) -> dict[str, np.ndarray]:
    """The region's cells of each variable of one granule (float32, NaN for fill)."""
    row0, col0 = global_offset(grid)
    rows, cols = slice(row0, row0 + grid.height), slice(col0, col0 + grid.width)
    out = {}
    try:
        with h5py.File(path, "r") as h5:
            for name, dataset in VARIABLES.items():
                if dataset not in h5:
                    raise InputError(f"{path}: SMAP L4 granule has no dataset {dataset}")
                ds = h5[dataset]
                if ds.shape != (EASE2_9KM_ROWS, EASE2_9KM_COLS):
                    raise InputError(
                        f"{path}: {dataset} has shape {ds.shape}, not the EASE-2 9 km global grid "
                        f"({EASE2_9KM_ROWS}, {EASE2_9KM_COLS})"
                    )
                data = ds[rows, cols].astype(np.float32)
                fill = ds.attrs.get("_FillValue", -9999.0)
                fill = float(np.asarray(fill).ravel()[0])
                data[(data == fill) | (data <= -9999.0)] = np.nan
                out[name] = data
            _check_coordinates(h5, path, row0, col0)
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 file ({err})") from None
    return out


def _check_coordinates(h5, path, row0: int, col0: int) -> None:
    """If the granule holds x/y cell-centre coordinates, they must be the EASE-2 9 km ones."""
    if "x" in h5 and "y" in h5:
        x = float(h5["x"][col0])
        y = float(h5["y"][row0])
        x_expected = EASE2_9KM_X0 + (col0 + 0.5) * EASE2_9KM_RES
        y_expected = EASE2_9KM_Y0 - (row0 + 0.5) * EASE2_9KM_RES
        if abs(x - x_expected) > 1.0 or abs(y - y_expected) > 1.0:
            raise InputError(f"{path}: x/y coordinates are not the EASE-Grid 2.0 9 km cell centres")


def _subset_cached(http: Downloader, granule: Granule, grid: Grid, headers: dict, keep: bool) -> dict[str, np.ndarray]:
    """The region subset of a granule, from the subset cache or by downloading and reading it."""
    key = hashlib.sha1(f"{grid.transform.c:.3f},{grid.transform.f:.3f},{grid.shape}".encode()).hexdigest()[:12]
    subset = http.cache_dir / "smap" / "subsets" / key / (Path(granule.name).stem + ".npz")
    if subset.exists():
        with np.load(subset) as npz:
            return {name: npz[name] for name in VARIABLES}
    path = http.fetch(
        granule.url,
        dest=http.cache_dir / "smap" / Path(granule.url.split("?")[0]).name,
        headers=headers,
        expected_size=granule.size,
        auth_hint="Check your Earthdata credentials and that your account may download NSIDC data.",
    )
    arrays = read_granule(path, grid)
    subset.parent.mkdir(parents=True, exist_ok=True)
    tmp = subset.with_name(f".{subset.stem}.{uuid.uuid4().hex[:8]}.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, subset)
    finally:
        tmp.unlink(missing_ok=True)
    if not keep:
        path.unlink(missing_ok=True)
    return arrays


def daily_means(granules: list[Granule], read) -> tuple[list[str], dict[str, np.ndarray]]:
    """Per-day NaN-mean of each variable over the day's granules; read(granule) -> arrays."""
    days = sorted({g.date for g in granules})
    sums: dict[str, list[np.ndarray]] = {name: [] for name in VARIABLES}
    for day in days:
        todays = [g for g in granules if g.date == day]
        if len(todays) != 8:
            log.warning("SMAP: %s has %d granules (8 expected)", day, len(todays))
        stacks = {name: [] for name in VARIABLES}
        for granule in todays:
            for name, array in read(granule).items():
                stacks[name].append(array)
        for name in VARIABLES:
            cube = np.stack(stacks[name])
            count = np.isfinite(cube).sum(axis=0)
            total = np.where(np.isfinite(cube), cube, 0.0).sum(axis=0, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                sums[name].append(np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32))
        log.info("SMAP: %s averaged from %d granules", day, len(todays))
    return days, {name: np.stack(arrays) for name, arrays in sums.items()}


# ---------------------------------------------------------------- the source


def acquire_smap(
    region: Region,
    settings: dict,
    http: Downloader,
    surface: str | os.PathLike,
    rootzone: str | os.PathLike,
    precipitation: str | os.PathLike,
    credentials: Credentials | None = None,
) -> dict[str, Path]:
    """Write coarse_surface, coarse_rootzone (m3/m3) and precipitation (mm/day) daily stacks on the EASE-2 grid."""
    smap, earthdata = settings["smap"], settings["earthdata"]
    grid = coarse_grid(region)
    log.info("SMAP: coarse grid %d x %d cells of EASE-2 9 km", grid.height, grid.width)
    creds = credentials or find_credentials(earthdata["login"], earthdata["edl_url"])
    token = login(creds, http, earthdata["edl_url"])
    granules = search_granules(region, smap["short_name"], smap["version"], earthdata["cmr_url"], http)
    headers = {"Authorization": f"Bearer {token}"}
    days, data = daily_means(granules, lambda g: _subset_cached(http, g, grid, headers, smap["keep_granules"]))
    if not np.isfinite(data["surface"]).any():
        raise InputError(
            f"SMAP: no valid soil moisture over acquire.bbox {list(region.bbox)} in {region.start}..{region.end} "
            "(region outside SMAP L4's land coverage, e.g. over the ocean?)"
        )
    data["precipitation"] = data["precipitation"] * np.float32(SECONDS_PER_DAY)
    paths = {"coarse_surface": Path(surface), "coarse_rootzone": Path(rootzone), "precipitation": Path(precipitation)}
    for key, name in (("coarse_surface", "surface"), ("coarse_rootzone", "rootzone"), ("precipitation", "precipitation")):
        write_stack(paths[key], Stack(data[name], grid, days))
        log.info("SMAP: wrote %s (%d days)", paths[key], len(days))
    return paths
