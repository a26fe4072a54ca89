"""In-situ soil moisture from an ISMN download (a folder or the zip ISMN gives) -> stations.csv.

The files are read with the ``ismn`` package (TU Wien's ISMN_Interface), which knows both formats ISMN
delivers: "header+values" (a header line, then ``date time value flag orig_flag`` lines) and "CEOP in
separate files" (every line repeats the station's network, name, coordinates and depths). Its metadata
are collected into a temporary folder, never into the user's download. A file it cannot read, and a
download in a format it no longer reads (the old CEOP format of one file per network), are refused by
name.

Only ISMN quality flag ``G`` (good) is kept. Daily means per sensor (UTC days), then per station and day:

- surface: mean of the sensors lying within 0-0.05 m (depths compared with a tolerance of
  DEPTH_TOLERANCE_M, so SCAN's 2-inch sensors at 0.0508 m are surface sensors);
- rootzone: depth-weighted mean of the sensors within 0-1.0 m: each sensor depth (its interval's
  midpoint; sensors at one depth averaged) stands for the part of 0-1 m closer to it than to any
  other sensor depth (boundaries at midpoints between depths); a day needs at least
  ``min_rootzone_depths`` depths reporting, else rootzone is empty.

A station no day of which is kept is dropped, and the reason is counted: outside acquire.bbox, no value
flagged G, no G value in the period, its depths (no surface sensor and fewer root-zone depths than
min_rootzone_depths, e.g. a cosmic-ray probe over 0-0.19 m), or too few root-zone depths reporting on the
same day. When no station is left, the error says how many were dropped for each reason.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import uuid
import warnings
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
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
DEPTH_TOLERANCE_M = 0.005  # sensor depths are written rounded or in inches (2 in = 0.0508 m)
SOIL_MOISTURE = "soil_moisture"


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
    path: str = ""
    values: int = 0  # values in the file
    good: int = 0  # of which flagged G
    flags: Counter = field(default_factory=Counter)


# ---------------------------------------------------------------- reading


def _stm_names(source: Path) -> list[str]:
    if source.is_dir():
        return sorted(p.relative_to(source).as_posix() for p in source.rglob("*.stm"))
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            return sorted(n for n in archive.namelist() if n.endswith(".stm"))
    raise InputError(f"acquire.ismn.path: {source} is neither a folder nor a zip of an ISMN download")


def _is_soil_moisture(name: str) -> bool:
    return "_sm_" in Path(name).name


def check_coordinates(lat: float, lon: float, where: str) -> None:
    """lat in [-90, 90] and lon in [-180, 180], else an InputError naming `where` (and a swap, when it looks like one)."""
    if -90 <= lat <= 90 and -180 <= lon <= 180:
        return
    swapped = " (lat and lon look swapped)" if (-90 <= lon <= 90 and -180 <= lat <= 180) else ""
    raise InputError(
        f"{where}: coordinates lat {lat:g}, lon {lon:g} are outside lat -90..90 / lon -180..180{swapped}. "
        "The file is not an ISMN download as ISMN writes it, or was edited: download it again from "
        "https://ismn.earth, or correct the station's coordinates"
    )


def _daily_good(frame: pd.DataFrame, name: str) -> tuple[pd.Series, int, int, Counter]:
    """Daily means of the G-flagged, finite, non-negative values; (daily, values, good, flag counts)."""
    value_col = next((c for c in frame.columns if not c.endswith("_flag")), None)
    flag_col = next((c for c in frame.columns if c.endswith("_flag") and not c.endswith("orig_flag")), None)
    if value_col is None or flag_col is None:
        raise InputError(f"{name}: the ISMN reader found columns {list(frame.columns)}, not a value and its flag")
    values = pd.to_numeric(frame[value_col], errors="coerce")
    flags = frame[flag_col].astype(str).str.strip()
    good = (flags == "G") & np.isfinite(values) & (values >= 0)
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    days = pd.Series(values[good].to_numpy(dtype=float), index=index[good.to_numpy()].strftime("%Y-%m-%d"))
    daily = days.groupby(level=0).mean() if len(days) else pd.Series(dtype="float64")
    return daily, int(len(frame)), int(good.sum()), Counter(flags.str[:1])


@contextlib.contextmanager
def _quiet(*names: str):
    """The ismn package's loggers kept out of ours while it runs (it warns, with tracebacks, about every station
    without a static_variables.csv, and sets its own levels), restored after."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, (level, propagate) in zip(loggers, saved, strict=True):
            logger.setLevel(level)
            logger.propagate = propagate


def read_sensors(source: str | os.PathLike) -> list[Sensor]:
    """Every soil moisture sensor of an ISMN download (folder or zip) with its G-flagged daily means."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"acquire.ismn.path: {source} not found")
    names = [n for n in _stm_names(source) if _is_soil_moisture(n)]
    if not names:
        raise InputError(
            f"acquire.ismn.path: {source} holds no soil moisture .stm files (names like "
            "<network>_<network>_<station>_sm_<from>_<to>_<sensor>_<start>_<end>.stm): not an ISMN download in "
            "the 'header+values' or 'CEOP in separate files' format. Download again from https://ismn.earth and "
            "choose one of these formats"
        )
    from ismn.interface import ISMN_Interface  # slow import: only when reading

    sensors: list[Sensor] = []
    with tempfile.TemporaryDirectory(prefix="smdown-ismn-") as tmp, _quiet("ismn", "ismn_meta_collector"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ismn package's own deprecation warnings (pandas' inplace=)
        chatter = io.StringIO()
        try:
            with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                data = ISMN_Interface(source, meta_path=tmp, parallel=False, temp_root=tmp)
        except Exception as err:  # the reader's own errors: name the download and the reason
            raise InputError(f"acquire.ismn.path: {source}: the ISMN reader (ismn package) cannot read this "
                             f"download ({type(err).__name__}: {str(err)[:300]})") from None
        for line in chatter.getvalue().splitlines():
            if line.strip() and "Processed" not in line:
                log.debug("ismn: %s", line.strip())
        for network in data.networks.values():
            for station in network.stations.values():
                for sensor in station.sensors.values():
                    if sensor.variable != SOIL_MOISTURE:
                        continue
                    path = str(getattr(sensor.filehandler, "file_path", "") or "")
                    where = f"{source}:{path}" if path else f"{source} ({network.name} {station.name})"
                    lat, lon = float(station.lat), float(station.lon)
                    check_coordinates(lat, lon, where)
                    try:
                        with contextlib.redirect_stdout(chatter):
                            frame = sensor.read_data()
                    except Exception as err:
                        raise InputError(f"{where}: the ISMN reader cannot read this file ({type(err).__name__}: "
                                         f"{str(err)[:300]})") from None
                    daily, n, good, flags = _daily_good(frame, where)
                    sensors.append(Sensor(network.name, station.name, lat, lon, float(sensor.depth.start),
                                          float(sensor.depth.end), str(sensor.instrument), daily, path, n, good, flags))
    read = {s.path for s in sensors}
    skipped = [n for n in names if not any(n.endswith(p) or p.endswith(n) for p in read)]
    if skipped and not sensors:
        raise InputError(
            f"acquire.ismn.path: {source}: none of its {len(names)} soil moisture files could be read "
            f"(e.g. {skipped[0]}); ISMN's reader reads the 'header+values' and 'CEOP in separate files' formats, "
            "not the old CEOP format of one file per network. Download again from https://ismn.earth in one of these"
        )
    for name in skipped:
        log.warning("ISMN: %s:%s could not be read by the ISMN reader (malformed?); skipped", source, name)
    log.info("ISMN: %d soil moisture sensors at %d stations read from %s", len(sensors),
             len({(s.network, s.station) for s in sensors}), source)
    return sensors


# ---------------------------------------------------------------- station days


def is_surface(sensor: Sensor) -> bool:
    return sensor.depth_from >= -DEPTH_TOLERANCE_M and sensor.depth_to <= SURFACE_BOTTOM_M + DEPTH_TOLERANCE_M


def in_rootzone(sensor: Sensor) -> bool:
    return sensor.depth_from >= -DEPTH_TOLERANCE_M and sensor.depth_to <= ROOTZONE_BOTTOM_M + DEPTH_TOLERANCE_M


def rootzone_weights(depths: list[float], bottom: float = ROOTZONE_BOTTOM_M) -> np.ndarray:
    """Weights of sorted sensor depths over 0..bottom (boundaries at midpoints between depths)."""
    d = np.asarray(depths, dtype=float)
    edges = np.concatenate([[0.0], (d[1:] + d[:-1]) / 2, [bottom]])
    w = np.diff(edges)
    return w / w.sum()


def station_days(sensors: list[Sensor], min_rootzone_depths: int) -> pd.DataFrame:
    """Daily surface and rootzone values of one station from its sensors."""
    surface = [s.daily for s in sensors if is_surface(s) and len(s.daily)]
    by_depth: dict[float, list[pd.Series]] = defaultdict(list)
    for s in sensors:
        if in_rootzone(s) and len(s.daily):
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


def _depths(sensors: list[Sensor]) -> str:
    return ", ".join(sorted({f"{s.depth_from:g}-{s.depth_to:g} m" for s in sensors}))


def drop_reason(sensors: list[Sensor], region: Region, min_rootzone_depths: int) -> tuple[str, str] | None:
    """Why a station gives no row (a short reason and its detail), or None when it gives some."""
    lon, lat = sensors[0].lon, sensors[0].lat
    west, south, east, north = region.bbox
    if not (west <= lon <= east and south <= lat <= north):
        return "outside acquire.bbox", f"at lon {lon:g}, lat {lat:g}"
    good = sum(s.good for s in sensors)
    if good == 0:
        flags = sum((s.flags for s in sensors), Counter())
        return "no value flagged G", f"flags {dict(flags.most_common(4))}"
    in_period = [s for s in sensors if ((s.daily.index >= region.start) & (s.daily.index <= region.end)).any()]
    if not in_period:
        first = min(s.daily.index.min() for s in sensors if len(s.daily))
        last = max(s.daily.index.max() for s in sensors if len(s.daily))
        return "no G value in acquire.start..end", f"G values {first}..{last}"
    rootzone_depths = {round((s.depth_from + s.depth_to) / 2, 4) for s in in_period if in_rootzone(s)}
    if not any(is_surface(s) for s in in_period) and len(rootzone_depths) < min_rootzone_depths:
        return "depth", (f"sensors at {_depths(in_period)}: none within 0-{SURFACE_BOTTOM_M:g} m and "
                         f"{len(rootzone_depths)} root-zone depth(s) within 0-{ROOTZONE_BOTTOM_M:g} m, fewer than "
                         f"acquire.ismn.min_rootzone_depths ({min_rootzone_depths})")
    days = station_days(in_period, min_rootzone_depths)
    days = days[(days.index >= region.start) & (days.index <= region.end)]
    if days.dropna(how="all", subset=["surface", "rootzone"]).empty:
        return "too few root-zone depths", (f"{len(rootzone_depths)} root-zone depths, but never "
                                            f"{min_rootzone_depths} reporting G values on the same day")
    return None


def read_ismn(source: str | os.PathLike, region: Region, min_rootzone_depths: int) -> pd.DataFrame:
    """stations.csv rows (station,lon,lat,date,surface,rootzone) inside the region and period."""
    stations: dict[tuple[str, str], list[Sensor]] = defaultdict(list)
    for sensor in read_sensors(source):
        stations[(sensor.network, sensor.station)].append(sensor)
    frames = []
    dropped: dict[str, list[str]] = defaultdict(list)
    for (network, station), sensors in sorted(stations.items()):
        reason = drop_reason(sensors, region, min_rootzone_depths)
        if reason is not None:
            dropped[reason[0]].append(f"{network}_{station} ({reason[1]})")
            continue
        lon, lat = sensors[0].lon, sensors[0].lat
        days = station_days(sensors, min_rootzone_depths)
        days = days[(days.index >= region.start) & (days.index <= region.end)]
        days = days.dropna(how="all", subset=["surface", "rootzone"])
        frames.append(pd.DataFrame({"station": f"{network}_{station}", "lon": lon, "lat": lat, "date": days.index,
                                    "surface": days["surface"].to_numpy(), "rootzone": days["rootzone"].to_numpy()}))
    summary = "; ".join(f"{len(names)} {reason}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                        for reason, names in dropped.items())
    if not frames:
        raise InputError(
            f"ISMN: no station of {source} is kept for acquire.bbox {list(region.bbox)} and "
            f"{region.start}..{region.end}: {len(stations)} station(s) read, dropped for: {summary}. Widen acquire.bbox "
            "or the period, download stations with sensors within 0-0.05 m or at two or more depths within 0-1 m, "
            "or lower acquire.ismn.min_rootzone_depths"
        )
    if dropped:
        log.info("ISMN: %d of %d stations dropped: %s", sum(map(len, dropped.values())), len(stations), summary)
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
    if cfg["url"]:
        source = http.fetch(cfg["url"], dest=http.cache_dir / "ismn" / Path(cfg["url"].split("?")[0]).name)
    elif cfg["path"]:
        source = Path(cfg["path"])
    else:
        raise InputError("acquire.ismn: set path (an ISMN download folder or zip) or url")
    table = read_ismn(source, region, cfg["min_rootzone_depths"])
    return {"stations": write_csv(table, stations)}
