"""SMAP L4 (SPL4SMGP, 3-hourly geophysical granules) -> daily coarse soil moisture and precipitation.

Search: earthaccess's CMR granule query (UMM-JSON) against a configurable CMR base URL, by provider
(default NSIDC_CPRD, Earthdata Cloud); granules are identified, deduplicated and cached by the basename
of their data URL.
Download: the region's cells of the three variables only, from the granule's OPeNDAP (Hyrax) URL
(DAP4 index constraint, netCDF-4 answer, a few kB); the whole granule (~150 MB) as the fallback.
Our cached, resumable downloader sends an Earthdata bearer token.
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
from urllib.parse import quote, urlsplit

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
GRANULE_BYTES = 150e6  # a whole SPL4SMGP granule, where CMR gives no size
_TIME_IN_NAME = re.compile(r"_(\d{8})T(\d{6})_")


@dataclass(frozen=True)
class Granule:
    """One granule. Its identity (and cache key) is the basename of its data URL: CMR GranuleURs of
    ECS-style records ('SC:SPL4SMGP.008:281234567') are not file names, and the same file is listed by
    several providers (on-premises and Earthdata Cloud) under different URs and URLs."""

    name: str  # basename of the data URL, e.g. SMAP_L4_SM_gph_20230501T013000_Vv8010_001.h5
    url: str
    date: str  # UTC date of the granule's centre time
    size: int | None = None
    opendap: str | None = None  # OPeNDAP (Hyrax) URL of the granule, when CMR lists one
    provider: str = ""

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name else self.name


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


def url_basename(url: str) -> str:
    """The file name at the end of a URL (no query string)."""
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def _is_cloud_hosted(umm: dict) -> bool:
    """Whether a UMM-G record advertises Earthdata Cloud access (earthaccess's test: a direct-access link
    or a 'protected' bucket URL)."""
    return any(link.get("Type") == "GET DATA VIA DIRECT ACCESS" or "protected" in str(link.get("URL", ""))
               for link in umm.get("RelatedUrls", []) or [])


def _opendap_link(umm: dict) -> str | None:
    for link in umm.get("RelatedUrls", []) or []:
        url = str(link.get("URL", ""))
        if link.get("Subtype") == "OPENDAP DATA" and url.startswith("http"):
            return url
    return None


def search_granules(
    region: Region, short_name: str, version: str, cmr_url: str, http: Downloader, provider: str | None,
    cloud_hosted: bool,
) -> list[Granule]:
    """SMAP granules intersecting the region's bbox and period (earthaccess CMR query, UMM-JSON).

    provider: CMR provider to search (e.g. NSIDC_CPRD, Earthdata Cloud; NSIDC_ECS, on-premises; None: all).
    cloud_hosted: keep only granules that advertise Earthdata Cloud access.
    Granules are identified and deduplicated by the basename of their data URL."""
    from earthaccess.search import DataGranules  # slow import: only when searching

    base = cmr_url if cmr_url.endswith("/") else cmr_url + "/"

    def once():
        params = dict(short_name=short_name, version=str(version),
                      temporal=(f"{region.start}T00:00:00Z", f"{region.end}T23:59:59Z"),
                      bounding_box=tuple(region.bbox))
        if provider:
            params["provider"] = provider
        query = DataGranules().mode(base).parameters(**params)
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

    results = http.retry(f"SMAP search at {redact(base)}", once)
    found: dict[str, Granule] = {}
    duplicates = not_cloud = 0
    for result in results:
        umm = result["umm"]
        if cloud_hosted and not _is_cloud_hosted(umm):
            not_cloud += 1
            continue
        links = result.data_links(access="external")
        links = [u for u in links if u.startswith("http") and url_basename(u).endswith((".h5", ".hdf5", ".he5"))] or [
            u for u in links if u.startswith("http")]
        if not links:
            continue
        url = links[0]
        name = url_basename(url)
        extent = umm.get("TemporalExtent", {}).get("RangeDateTime", {})
        day = _granule_date(name, extent.get("BeginningDateTime"), extent.get("EndingDateTime"))
        if not region.start <= day <= region.end:
            continue
        size = None
        for info in umm.get("DataGranule", {}).get("ArchiveAndDistributionInformation", []) or []:
            if "SizeInBytes" in info and info.get("Name") == name:
                size = int(info["SizeInBytes"])
        meta = result.get("meta", {}) if hasattr(result, "get") else {}
        granule = Granule(name, url, day, size, _opendap_link(umm), str(meta.get("provider-id", "")))
        if name in found:
            duplicates += 1
            if found[name].opendap is None and granule.opendap is not None:
                found[name] = granule  # the copy that can be subset on the server
            continue
        found[name] = granule
    granules = sorted(found.values(), key=lambda g: (g.date, g.name))
    if duplicates:
        log.info("SMAP: %d duplicate granules (same file from another provider) dropped", duplicates)
    if not granules:
        where = f" from provider {provider}" if provider else ""
        extra = f"; {not_cloud} not cloud-hosted (acquire.smap.cloud_hosted)" if not_cloud else ""
        raise InputError(
            f"SMAP: no {short_name} v{version} granules in CMR{where} for {region.start}..{region.end} over bbox "
            f"{list(region.bbox)}{extra} (check acquire.start/end, acquire.smap.version, acquire.smap.provider "
            "and acquire.bbox)"
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
                    raise InputError(f"{path}: {_what_granule(h5)}, not an SPL4SMGP granule: it has no {dataset}. "
                                     f"{SUPPORTED}")
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


SUPPORTED = ("smdown reads SMAP L4 Global 3-hourly 9 km Geophysical Data granules (SPL4SMGP: "
             "Geophysical_Data/sm_surface, sm_rootzone, precipitation_total_surface_flux) only; "
             "set acquire.smap.short_name: SPL4SMGP")


def _what_granule(h5) -> str:
    """What an HDF5 file says it is: its Title attribute (SMAP L4 writes one) and its top-level groups."""
    title = h5.attrs.get("Title", b"")
    title = title.decode(errors="replace") if isinstance(title, bytes) else str(title)
    if "Analysis Update" in title:
        title += " (SPL4SMAU)"
    groups = sorted(k for k in h5.keys())
    return f"{title or 'an HDF5 file'} with {', '.join(groups[:6])}{' ...' if len(groups) > 6 else ''}"


def _check_coordinates(h5, path, row0: int, col0: int) -> None:
    """If the granule holds x/y cell-centre coordinates, they must be the EASE-2 9 km ones."""
    if "x" in h5 and "y" in h5:
        x = float(h5["x"][col0])
        y = float(h5["y"][row0])
        x_expected = EASE2_9KM_X0 + (col0 + 0.5) * EASE2_9KM_RES
        y_expected = EASE2_9KM_Y0 - (row0 + 0.5) * EASE2_9KM_RES
        if abs(x - x_expected) > 1.0 or abs(y - y_expected) > 1.0:
            raise InputError(f"{path}: x/y coordinates are not the EASE-Grid 2.0 9 km cell centres")


def opendap_request(opendap_url: str, grid: Grid) -> str:
    """The DAP4 request for the region's cells of the three variables, as netCDF-4.

    Hyrax (e.g. opendap.earthdata.nasa.gov) takes a constraint expression of index ranges
    ``/group/var[first:stride:last]`` (inclusive), separated by ';', on ``<granule URL>.dap.nc4``."""
    row0, col0 = global_offset(grid)
    ranges = f"[{row0}:1:{row0 + grid.height - 1}][{col0}:1:{col0 + grid.width - 1}]"
    ce = ";".join(f"/{dataset}{ranges}" for dataset in VARIABLES.values())
    return f"{opendap_url}.dap.nc4?dap4.ce={quote(ce, safe='/')}"


def read_opendap_subset(path: str | os.PathLike, grid: Grid) -> dict[str, np.ndarray]:
    """The variables of an OPeNDAP netCDF-4 subset (groups kept, or DAP2-style flattened names)."""
    out = {}
    try:
        with h5py.File(path, "r") as h5:
            for name, dataset in VARIABLES.items():
                group, _, var = dataset.partition("/")
                for candidate in (dataset, f"{group}_{var}", var):
                    if candidate in h5:
                        ds = h5[candidate]
                        break
                else:
                    raise InputError(f"{path}: the OPeNDAP subset has no variable {dataset}")
                if ds.shape != grid.shape:
                    raise TruncatedAnswer(f"{path}: {dataset} has shape {ds.shape}, not the requested {grid.shape} "
                                          "cells")
                data = ds[...].astype(np.float32)
                fill = float(np.asarray(ds.attrs.get("_FillValue", -9999.0)).ravel()[0])
                data[(data == fill) | (data <= -9999.0)] = np.nan
                out[name] = data
    except OSError as err:
        raise TruncatedAnswer(f"{path}: the OPeNDAP answer is not a readable netCDF-4 file ({err})") from None
    return out


class TruncatedAnswer(InputError):
    """An OPeNDAP answer shorter than asked for (its arrays smaller than the request, or the file cut): the answers
    carry no Content-Length, so this is how a cut transfer shows."""


@dataclass
class Fetcher:
    """Reads the region's cells of granules: the subset cache, else an OPeNDAP subset on the server, else the
    whole granule (~150 MB), for the granule whose subset failed only; whole-granule downloads stop at
    max_whole_bytes."""

    http: Downloader
    grid: Grid
    headers: dict
    keep: bool  # acquire.smap.keep_granules
    subset: str  # acquire.smap.subset: 'opendap', or 'none': always whole granules
    max_whole_bytes: float | None  # bound on the bytes of whole-granule downloads (acquire.smap.max_granule_gb)
    bytes_opendap: int = 0
    bytes_whole: int = 0
    count_opendap: int = 0
    count_whole: int = 0

    AUTH = "Check your Earthdata credentials and that your account may download NSIDC data."

    def __post_init__(self) -> None:
        if self.subset not in ("opendap", "none"):
            raise InputError(f"acquire.smap.subset: {self.subset!r} is not opendap or none")
        key = f"{self.grid.transform.c:.3f},{self.grid.transform.f:.3f},{self.grid.shape}"
        self.folder = self.http.cache_dir / "smap" / "subsets" / hashlib.sha1(key.encode()).hexdigest()[:12]

    def __call__(self, granule: Granule) -> dict[str, np.ndarray]:
        subset = self.folder / f"{granule.stem}.npz"
        if subset.exists():
            with np.load(subset) as npz:
                return {name: npz[name] for name in VARIABLES}
        arrays = None
        if self.subset == "opendap" and granule.opendap:
            arrays = self._opendap(granule)
        if arrays is None:
            arrays = self._whole(granule)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = subset.with_name(f".{subset.stem}.{uuid.uuid4().hex[:8]}.npz")
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, subset)
        finally:
            tmp.unlink(missing_ok=True)
        return arrays

    def _opendap(self, granule: Granule) -> dict[str, np.ndarray] | None:
        """The granule's cells from an OPeNDAP subset; a truncated answer is fetched again (up to the HTTP retries);
        None when the server fails, so that this granule alone is downloaded whole."""
        dest = self.folder / "opendap" / f"{granule.stem}.nc4"
        for attempt in range(self.http.retries + 1):
            try:
                path = self.http.fetch(opendap_request(granule.opendap, self.grid), dest=dest, headers=self.headers,
                                       auth_hint=self.AUTH)
                size = path.stat().st_size
                arrays = read_opendap_subset(path, self.grid)
            except TruncatedAnswer as err:
                dest.unlink(missing_ok=True)
                log.warning("SMAP: OPeNDAP answer for %s is truncated (%s); try %d/%d", granule.name, err,
                            attempt + 1, self.http.retries + 1)
                continue
            except InputError as err:
                dest.unlink(missing_ok=True)
                log.warning("SMAP: OPeNDAP subset of %s failed (%s); this granule is downloaded whole",
                            granule.name, err)
                return None
            dest.unlink(missing_ok=True)
            self.bytes_opendap += size
            self.count_opendap += 1
            return arrays
        log.warning("SMAP: OPeNDAP answers for %s stayed truncated; this granule is downloaded whole", granule.name)
        return None

    def _whole(self, granule: Granule) -> dict[str, np.ndarray]:
        size = granule.size or GRANULE_BYTES
        if self.max_whole_bytes is not None and self.bytes_whole + size > self.max_whole_bytes:
            raise InputError(
                f"SMAP: downloading {granule.name} whole ({size / 1e9:.2f} GB) would take the whole-granule downloads "
                f"past acquire.smap.max_granule_gb ({self.max_whole_bytes / 1e9:g} GB; "
                f"{self.bytes_whole / 1e9:.2f} GB so far). Raise acquire.smap.max_granule_gb, shorten the period, or "
                "retry later when the OPeNDAP service answers"
            )
        path = self.http.fetch(granule.url, dest=self.http.cache_dir / "smap" / granule.name, headers=self.headers,
                               expected_size=granule.size, auth_hint=self.AUTH)
        self.bytes_whole += path.stat().st_size
        self.count_whole += 1
        arrays = read_granule(path, self.grid)
        if not self.keep:
            path.unlink(missing_ok=True)
        return arrays

    def summary(self) -> str:
        return (f"{self.count_opendap} granules subset on the server ({self.bytes_opendap / 1e6:.3f} MB), "
                f"{self.count_whole} whole granules ({self.bytes_whole / 1e6:.1f} MB)")


def check_whole_volume(fetcher: Fetcher, granules: list[Granule]) -> None:
    """Before any download: stop when the granules to be downloaded whole (no OPeNDAP link, or subset: none; cached
    subsets left out) add up to more than acquire.smap.max_granule_gb."""
    if fetcher.max_whole_bytes is None:
        return
    whole = [g for g in granules if not (fetcher.folder / f"{g.stem}.npz").exists()
             and not (fetcher.subset == "opendap" and g.opendap)]
    total = sum(g.size or GRANULE_BYTES for g in whole)
    if total > fetcher.max_whole_bytes:
        raise InputError(
            f"SMAP: {len(whole)} granules would be downloaded whole ({total / 1e9:.1f} GB), more than "
            f"acquire.smap.max_granule_gb ({fetcher.max_whole_bytes / 1e9:g} GB): "
            + ("acquire.smap.subset is none. Set it to opendap (the region's cells only, a few kB a granule), "
               if fetcher.subset == "none" else "CMR lists no OPeNDAP link for them. ")
            + "Raise acquire.smap.max_granule_gb, or shorten the period"
        )


def check_access(http: Downloader, granule: Granule, headers: dict, origin: str) -> None:
    """One cheap authenticated request (the first byte of a granule) before any download, so that a refused token
    stops the run at once with the reason rather than after the first transfer."""
    from smdown.acquire.http import _HeaderAuth

    hint = (f"Earthdata refused the token (from {origin}): a token expires after 60 days; make a new one at "
            "https://urs.earthdata.nasa.gov (Generate Token), or unset EARTHDATA_TOKEN to log in with "
            "EARTHDATA_USERNAME/EARTHDATA_PASSWORD or ~/.netrc. Check your Earthdata credentials and that your "
            "account may download NSIDC data.")
    response = http.request("GET", granule.url, auth_hint=hint, headers={**headers, "Range": "bytes=0-0"},
                            auth=_HeaderAuth(), stream=True)
    response.close()


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
    if smap["short_name"] != "SPL4SMGP":
        raise InputError(f"acquire.smap.short_name: {smap['short_name']!r}. {SUPPORTED}")
    creds = credentials or find_credentials(earthdata["login"], earthdata["edl_url"])
    token = login(creds, http, earthdata["edl_url"])
    granules = search_granules(region, smap["short_name"], smap["version"], earthdata["cmr_url"], http,
                               provider=smap["provider"], cloud_hosted=bool(smap["cloud_hosted"]))
    headers = {"Authorization": f"Bearer {token}"}
    limit = smap["max_granule_gb"]
    fetcher = Fetcher(http, grid, headers, smap["keep_granules"], smap["subset"],
                      max_whole_bytes=None if limit is None else float(limit) * 1e9)
    check_whole_volume(fetcher, granules)
    todo = [g for g in granules if not (fetcher.folder / f"{g.stem}.npz").exists()]
    if creds.token and not creds.username and todo:  # a password was checked at login already; a token was not
        check_access(http, todo[0], headers, creds.origin)
    days, data = daily_means(granules, fetcher)
    log.info("SMAP: downloaded %s", fetcher.summary())
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
