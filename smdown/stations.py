"""In-situ stations and the run's split: reading stations.csv and split.json, and the stations' series at their
30 m pixels (for the scores, the refinement and the uncertainty's calibration)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from smdown import io
from smdown.contract import LAYERS, STATION_COLUMNS
from smdown.grid import Grid

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


def read_split(split: PathLike | Mapping | None) -> dict:
    """samples/split.json as a dict with cells as (row, col) tuples and dates as strings."""
    if split is None:
        return {}
    if not isinstance(split, Mapping):
        with open(split) as f:
            split = json.load(f)
    out = dict(split)
    for key in ("train_cells", "val_cells", "test_cells"):
        if key in out:
            out[key] = [(int(rc[0]), int(rc[1])) for rc in out[key]]
    for key in ("train_dates", "val_dates", "test_dates"):
        if key in out:
            out[key] = [str(d)[:10] for d in out[key]]
    return out


def read_stations(stations: PathLike | pd.DataFrame) -> pd.DataFrame:
    """stations.csv (station,lon,lat,date,surface,rootzone) with dates as YYYY-MM-DD; missing layers are NaN.
    Raises io.InputError naming the file for a missing column, a date that is not one, or a station with two rows
    on one day (which of them would the fits and the scores use?)."""
    source = "stations" if isinstance(stations, pd.DataFrame) else str(stations)
    df = stations.copy() if isinstance(stations, pd.DataFrame) else pd.read_csv(stations)
    missing = [c for c in ("station", "lon", "lat", "date") if c not in df.columns]
    if missing:
        raise io.InputError(f"{source}: missing column(s) {missing}; expected {STATION_COLUMNS}")
    unknown = [c for c in df.columns if c not in STATION_COLUMNS]
    if unknown:
        raise io.InputError(f"{source}: unknown column(s) {unknown}; expected {','.join(STATION_COLUMNS)} (soil "
                            f"moisture in m3/m3 under {' and '.join(LAYERS)}): rename the columns, or drop them")
    _check_coordinates(df, source)
    for layer in LAYERS:
        if layer not in df.columns:
            df[layer] = np.nan
        df[layer] = pd.to_numeric(df[layer], errors="coerce")
    df["station"] = df["station"].astype(str)
    dates = pd.to_datetime(df["date"], errors="coerce", format="ISO8601")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna())[0])
        raise io.InputError(f"{source}: row {row + 1} of the table: date {df['date'].iloc[row]!r} is not a date "
                            "(YYYY-MM-DD)")
    df["date"] = dates.dt.strftime("%Y-%m-%d")
    repeated = df.duplicated(["station", "date"])
    if repeated.any():
        first = df[repeated].iloc[0]
        count = int(((df["station"] == first["station"]) & (df["date"] == first["date"])).sum())
        raise io.InputError(f"{source}: station {first['station']!r} has {count} rows on {first['date']} "
                            f"({int(repeated.sum())} repeated station-day(s) in all); one row per station and day, "
                            "with repeated readings averaged first")
    return df


def _check_coordinates(df: pd.DataFrame, source: str) -> None:
    """lon in [-180, 180] and lat in [-90, 90] on every row, else an InputError naming the file and the first bad row
    (and saying so where lat and lon look swapped)."""
    lon = pd.to_numeric(df["lon"], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(df["lat"], errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90))
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    swapped = np.isfinite(lon[row]) and np.isfinite(lat[row]) and abs(lat[row]) > 90 and abs(lat[row]) <= 180 \
        and abs(lon[row]) <= 90
    hint = ("lat and lon look swapped: lat holds a longitude and lon a latitude; swap the two columns" if swapped
            else "lon must lie in -180..180 and lat in -90..90 (decimal degrees, WGS 84)")
    raise io.InputError(f"{source}: row {row + 1} of the table (station {df['station'].iloc[row]!r}): lon "
                        f"{df['lon'].iloc[row]}, lat {df['lat'].iloc[row]} are not coordinates: {hint} "
                        f"({int(bad.sum())} row(s) in all)")


def locate(grid: Grid, lon, lat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column (of the nearest pixel, i.e. the one holding the point) and an inside flag on a grid."""
    x, y = io.lonlat_to(grid.crs, np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    cols, rows = ~grid.transform @ (x, y)
    rows = np.floor(np.asarray(rows, dtype=float))
    cols = np.floor(np.asarray(cols, dtype=float))
    inside = np.isfinite(rows) & np.isfinite(cols) & (rows >= 0) & (rows < grid.height) & (cols >= 0)
    inside &= cols < grid.width
    return np.where(inside, rows, -1).astype(int), np.where(inside, cols, -1).astype(int), inside


def at_station_pixels(series: pd.DataFrame, dates: Sequence[str], pixel_values, static: bool = False,
                      dtype=np.float64) -> np.ndarray:
    """Spread a per-pixel read over the rows (station pixel ``row``, ``col`` and ``date``) of `series`:
    ``pixel_values(row, col)`` gives the pixel's values, one per date of `dates` (``static``: one value, for every
    date). Each station pixel is read once, whatever its rows."""
    index = {d: i for i, d in enumerate(dates)}
    out = np.full(len(series), np.nan, dtype)
    for (row, col), rows in series.groupby(["row", "col"]).indices.items():
        pixel = np.asarray(pixel_values(int(row), int(col)))
        out[rows] = pixel[0] if static else pixel[[index[d] for d in series["date"].iloc[rows]]]
    return out


def station_series(
    paths: Mapping[str, PathLike],
    stations: PathLike | pd.DataFrame,
    layer: str,
    coarse_path: PathLike | None = None,
    std_path: PathLike | None = None,
) -> pd.DataFrame:
    """Per station and date: ``observed``, ``coarse`` (the input's cell), each method and ``ensemble_std``.

    Rows are the station's dates with a finite observation of ``layer`` that the run has. Stations
    outside the region or without such a date are logged and left out. Columns: station, lon, lat,
    row, col, date, observed, coarse, <methods...>, ensemble_std (those whose file is given).
    """
    df = read_stations(stations)
    if not paths:
        return pd.DataFrame()
    first = next(iter(paths.values()))
    grid = io.read_grid(first)
    run_dates = io.read_dates(first)
    factor = io.nest(grid, io.read_grid(coarse_path)) if coarse_path is not None else None
    files = dict(paths)
    if coarse_path is not None:
        files["coarse"] = coarse_path
    if std_path is not None and Path(std_path).exists():
        files["ensemble_std"] = std_path
    aligned = {name: io.dated_bands(p, run_dates) for name, p in files.items()}
    frames = []
    for name, obs in df.groupby("station", sort=True):
        lon, lat = float(obs["lon"].iloc[0]), float(obs["lat"].iloc[0])
        rows, cols, inside = locate(grid, lon, lat)
        if not inside[0]:
            log.warning("%s: station %s at (%.5f, %.5f) is outside the region; skipped", layer, name, lon, lat)
            continue
        obs = obs[np.isfinite(obs[layer]) & obs["date"].isin(run_dates)].drop_duplicates("date")
        if obs.empty:
            log.warning("%s: station %s has no %s observation on a date of the run; skipped", layer, name, layer)
            continue
        row, col = int(rows[0]), int(cols[0])
        series = {}
        for key, path in files.items():
            if key == "coarse":
                values = io.read_dated(path, row // factor, col // factor, 1, 1, run_dates, aligned[key])
            else:
                values = io.read_dated(path, row, col, 1, 1, run_dates, aligned[key])
            series[key] = pd.Series(values[:, 0, 0].astype(float), index=run_dates)
        out = pd.DataFrame({"station": name, "lon": lon, "lat": lat, "row": row, "col": col,
                            "date": obs["date"].to_numpy(), "observed": obs[layer].to_numpy(dtype=float)})
        for key, s in series.items():
            out[key] = s.reindex(out["date"]).to_numpy()
        frames.append(out)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def fitting_series(paths: Mapping[str, PathLike], stations: PathLike, layer: str, split: PathLike | None,
                   coarse_path: PathLike | None = None) -> pd.DataFrame:
    """``station_series`` on the days the stations may fit the product (the refinement, the uncertainty): outside
    the test days of `split` (split.json; None: every day), rows where the first map of `paths` and the
    observation are finite, index reset."""
    test_dates = set(json.loads(Path(split).read_text()).get("test_dates", [])) if split else set()
    series = station_series(paths, stations, layer, coarse_path)
    if not len(series):
        return series
    first = next(iter(paths))
    series = series[~series["date"].isin(test_dates)]
    return series[np.isfinite(series[first]) & np.isfinite(series["observed"])].reset_index(drop=True)
