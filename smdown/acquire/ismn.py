"""In-situ soil moisture from an ISMN download (``.stm`` files, "header+values" format) -> stations.csv.

Each file holds one sensor: a header line ``<cse> <network> <station> <lat> <lon> <elevation>
<depth_from> <depth_to> <sensor>`` (depths in m), then ``YYYY/MM/DD HH:MM value flag orig_flag``
lines (UTC, m3/m3). Only ISMN quality flag ``G`` (good) is kept. Daily means per sensor, then per
station and day:

- surface: mean of the sensors lying within 0-0.05 m;
- rootzone: depth-weighted mean of the sensors within 0-1.0 m: each sensor depth (its interval's
  midpoint; sensors at one depth averaged) stands for the part of 0-1 m closer to it than to any
  other sensor depth (boundaries at midpoints between depths); a day needs at least
  ``min_rootzone_depths`` depths reporting, else rootzone is empty.
"""

from __future__ import annotations

import io
import logging
import os
import uuid
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from smdown.acquire.http import Downloader
from smdown.acquire.region import Region
from smdown.io import InputError

log = logging.getLogger("smdown.acquire")

COLUMNS = ["station", "lon", "lat", "date", "surface", "rootzone"]
SURFACE_BOTTOM_M = 0.05
ROOTZONE_BOTTOM_M = 1.0


@dataclass
class Sensor:
    network: str
    station: str
    lat: float
    lon: float
    depth_from: float
    depth_to: float
    sensor: str
    daily: pd.Series  # date (YYYY-MM-DD) -> mean of the G-flagged values


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def parse_header(line: str, name: str = "") -> dict:
    """The header of a header+values file: names, then lat lon elevation depth_from depth_to, then sensor."""
    tokens = line.split()
    starts = [i for i in range(1, len(tokens) - 4) if all(_is_float(t) for t in tokens[i:i + 5])]
    if not starts:
        raise InputError(f"{name}: not an ISMN header+values file (header {line.strip()[:80]!r})")
    i = starts[-1]
    names = tokens[:i]
    lat, lon, _elev, depth_from, depth_to = (float(t) for t in tokens[i:i + 5])
    return {
        "network": names[-2] if len(names) >= 2 else names[0],
        "station": names[-1],
        "lat": lat,
        "lon": lon,
        "depth_from": depth_from,
        "depth_to": depth_to,
        "sensor": " ".join(tokens[i + 5:]),
    }


def parse_stm(text: str, name: str = "") -> Sensor:
    """One .stm file: header and daily means of the values flagged G."""
    lines = text.splitlines()
    if not lines:
        raise InputError(f"{name}: empty ISMN file")
    header = parse_header(lines[0], name)
    dates, values = [], []
    for line in lines[1:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        day, _time, value, flag = parts[:4]
        if flag != "G":
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        if not np.isfinite(number) or number < 0:
            continue
        dates.append(day.replace("/", "-"))
        values.append(number)
    daily = pd.Series(values, index=dates, dtype="float64").groupby(level=0).mean()
    return Sensor(daily=daily, **header)


def _stm_texts(source: Path):
    if source.is_dir():
        for path in sorted(source.rglob("*.stm")):
            yield str(path), path.read_text(errors="replace")
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for member in sorted(archive.namelist()):
                if member.endswith(".stm"):
                    yield f"{source}:{member}", archive.read(member).decode(errors="replace")
    else:
        raise InputError(f"acquire.ismn.path: {source} is neither a folder nor a zip of an ISMN download")


def rootzone_weights(depths: list[float], bottom: float = ROOTZONE_BOTTOM_M) -> np.ndarray:
    """Weights of sorted sensor depths over 0..bottom (boundaries at midpoints between depths)."""
    d = np.asarray(depths, dtype=float)
    edges = np.concatenate([[0.0], (d[1:] + d[:-1]) / 2, [bottom]])
    w = np.diff(edges)
    return w / w.sum()


def station_days(sensors: list[Sensor], min_rootzone_depths: int = 2) -> pd.DataFrame:
    """Daily surface and rootzone values of one station from its sensors."""
    surface = [s.daily for s in sensors if s.depth_from >= 0 and s.depth_to <= SURFACE_BOTTOM_M]
    by_depth: dict[float, list[pd.Series]] = defaultdict(list)
    for s in sensors:
        if s.depth_from >= 0 and s.depth_to <= ROOTZONE_BOTTOM_M:
            by_depth[round((s.depth_from + s.depth_to) / 2, 4)].append(s.daily)
    frame = pd.DataFrame(index=sorted({d for s in sensors for d in s.daily.index}))
    frame["surface"] = pd.concat(surface, axis=1).mean(axis=1) if surface else np.nan
    if by_depth:
        depths = sorted(by_depth)
        levels = pd.concat([pd.concat(by_depth[d], axis=1).mean(axis=1) for d in depths], axis=1)
        levels = levels.reindex(frame.index)
        values = np.full(len(frame), np.nan)
        for k, (_, row) in enumerate(levels.iterrows()):
            ok = np.isfinite(row.to_numpy())
            if ok.sum() >= min_rootzone_depths:
                w = rootzone_weights([d for d, good in zip(depths, ok, strict=True) if good])
                values[k] = float(np.dot(w, row.to_numpy()[ok]))
        frame["rootzone"] = values
    else:
        frame["rootzone"] = np.nan
    return frame


def read_ismn(source: str | os.PathLike, region: Region, min_rootzone_depths: int = 2) -> pd.DataFrame:
    """stations.csv rows (station,lon,lat,date,surface,rootzone) inside the region and period."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"acquire.ismn.path: {source} not found")
    stations: dict[tuple[str, str], list[Sensor]] = defaultdict(list)
    for name, text in _stm_texts(source):
        if "_sm_" not in Path(name).name:
            continue  # other variables (ts, p, ...) share the download
        sensor = parse_stm(text, name)
        stations[(sensor.network, sensor.station)].append(sensor)
    west, south, east, north = region.bbox
    frames = []
    for (network, station), sensors in sorted(stations.items()):
        lon, lat = sensors[0].lon, sensors[0].lat
        if not (west <= lon <= east and south <= lat <= north):
            continue
        days = station_days(sensors, min_rootzone_depths)
        days = days[(days.index >= region.start) & (days.index <= region.end)]
        days = days.dropna(how="all", subset=["surface", "rootzone"])
        if days.empty:
            continue
        frames.append(pd.DataFrame({"station": f"{network}_{station}", "lon": lon, "lat": lat, "date": days.index,
                                    "surface": days["surface"].to_numpy(), "rootzone": days["rootzone"].to_numpy()}))
    if not frames:
        raise InputError(
            f"ISMN: no soil moisture stations with good (G) data in {source} inside acquire.bbox {list(region.bbox)} "
            f"in {region.start}..{region.end}"
        )
    table = pd.concat(frames, ignore_index=True)[COLUMNS].sort_values(["station", "date"], ignore_index=True)
    log.info("ISMN: %d stations, %d station-days", table["station"].nunique(), len(table))
    return table


def write_csv(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        buffer = io.StringIO()
        table.to_csv(buffer, index=False, float_format="%.5f")
        tmp.write_text(buffer.getvalue())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def acquire_ismn(region: Region, settings: dict, http: Downloader, stations: str | os.PathLike) -> dict[str, Path]:
    """Write stations.csv from acquire.ismn.path (folder or zip) or acquire.ismn.url (a zip, downloaded once)."""
    cfg = settings["ismn"]
    if cfg.get("url"):
        source = http.fetch(cfg["url"], dest=http.cache_dir / "ismn" / Path(cfg["url"].split("?")[0]).name)
    elif cfg.get("path"):
        source = Path(cfg["path"])
    else:
        raise InputError("acquire.ismn: set path (an ISMN download folder or zip) or url")
    table = read_ismn(source, region, cfg["min_rootzone_depths"])
    return {"stations": write_csv(table, stations)}
