"""Evaluation of a run's 30 m outputs against truth, stations and the coarse input.

References (column ``reference`` of metrics.csv):

- ``truth``: a fine-scale truth raster (synthetic experiments), on the test cells x test dates of
  ``samples/split.json`` only, read one test cell at a time (memory bounded by one cell's series).
- ``stations``: in-situ series against the 30 m pixel holding each station, pooled over stations, on the
  test dates of the split. Stations are never used in training, but their days outside the test days may refine
  the ensemble (smdown.mapping.refine) and calibrate the uncertainty, so they are scored on the test days only (every
  method alike; all days without a split). A station outside the
  region, or without a finite observation on a date of the run, is logged and skipped. anomaly_r is NaN here (one pixel per
  station gives no within-cell pattern).
- ``coarse``: the 30 m output block-averaged back to the coarse grid against the coarse input,
  all cells and dates (the consistency / mass-conservation check). anomaly_r is NaN here.

Every row of metrics.csv carries a 95 % interval of r, bias, rmse and ubrmse (columns ``<m>_lo``,
``<m>_hi``): a bootstrap that resamples, with replacement, the spatial units (test cells for truth,
stations, tiles of coarse cells for coarse) and the blocks of ``block_days`` consecutive days
independently. The same resamples serve every method of a layer and reference, so the intervals
of differences (differences.csv: each method minus the ensemble) are paired.

Beside metrics.csv (all optional):

- seams.csv: the seam ratio (``smdown.evaluating.metrics.Seams``) of every method and of the truth, over all
  cells on the test dates (all dates without a split).
- uncertainty.csv: how well each standard deviation of ``SPREADS`` (the members' spread ``ensemble_std``
  and the calibrated ``uncertainty``, both of ``ensemble``; column ``spread``) describes the error against
  truth and stations (on the test days of the split only): coverage of the central normal intervals (coverage_90: ensemble +/- 1.645 std),
  spread-error correlation, mean std, MAE, RMSE, n, and the proper scores of ``Spread`` (the CRPS of N(ensemble, std)
  and the interval score of the 90 % interval, each beside a constant std of the same coverage, and their skills
  1 - score / constant's). reliability.csv: RMSE per bin of predicted std.
- differences.csv: paired bootstrap intervals of each method's metric minus the ensemble's.

The reads of every map (the coarse check and the seams) are cut into tiles of coarse cells (``check_tile``, rule
evaluate_tile: one JSON of sums per layer and tile); ``evaluate_run`` merges them (``merge_checks``: moments, bootstrap
sums and seam counts add up) or, given none, computes them over the whole region. The coarse pair sample is drawn per
coarse cell, so it is the same whatever the tiles.

All rasters are read through ``smdown.io``; metrics are streamed (``smdown.evaluating.metrics.Accumulator``).
Skipped methods, stations and references are reported through the ``smdown.evaluating.scores`` logger.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from smdown import io
from smdown.contract import METHODS
from smdown.evaluating.metrics import (
    CI_METRICS,
    NOMINAL,
    PROPER_SCORES,
    Accumulator,
    ClusterSums,
    Moments,
    Seams,
    Spread,
    bootstrap_weights,
    intervals,
    metrics_from_sums,
    resampled_sums,
)
from smdown.grid import Grid, Tile, block_mean
from smdown.stations import read_split, read_stations, station_series

log = logging.getLogger(__name__)

CI_COLUMNS = [f"{m}_{side}" for m in CI_METRICS for side in ("lo", "hi")]
COLUMNS = ["layer", "method", "reference", "r", "bias", "rmse", "ubrmse", "n", "anomaly_r", "kge", *CI_COLUMNS]
SEAM_COLUMNS = ["layer", "method", "seam_ratio", "across", "inside", "n_across", "n_inside"]
COVERAGE_COLUMNS = [f"coverage_{round(p * 100):02d}" for p in NOMINAL]
UNCERTAINTY_COLUMNS = ["layer", "method", "reference", "spread", "coverage_90", "spread_error_r", "mean_std", "mae",
                       "rmse", "n", *PROPER_SCORES, *[c for c in COVERAGE_COLUMNS if c != "coverage_90"]]
RELIABILITY_COLUMNS = ["layer", "method", "reference", "spread", "std_lo", "std_hi", "n", "rms_std", "rmse"]
DIFFERENCE_COLUMNS = ["layer", "reference", "method", "versus", "metric", "difference", "lo", "hi"]
#: spreads scored in uncertainty.csv: a standard deviation's file name (downscaled/<layer>/<name>.tif) -> the method
#: whose error it describes (ensemble_std: the members' spread; uncertainty: the calibrated uncertainty)
SPREADS = {"ensemble_std": "ensemble", "uncertainty": "ensemble"}
PAIR_COLUMNS = ["layer", "method", "reference", "pred", "ref"]

PathLike = str | os.PathLike


# ---------------------------------------------------------------- inputs


def method_paths(downscaled_dir: PathLike, layer: str, methods: Sequence[str] = METHODS,
                 suffix: str = ".tif") -> dict[str, Path]:
    """The existing ``downscaled/<layer>/<method><suffix>`` files (``.tif``, or ``.vrt`` for maps as VRTs over their
    tiles or time chunks); missing ones are logged and left out."""
    paths = {}
    for method in methods:
        path = Path(downscaled_dir) / layer / f"{method}{suffix}"
        if path.exists():
            paths[method] = path
        else:
            log.warning("%s: %s has no output (%s missing); skipped", layer, method, path)
    return paths


def _row(layer: str, method: str, reference: str, metrics: Mapping) -> dict:
    return {"layer": layer, "method": method, "reference": reference, **metrics}


def day_blocks(dates: Sequence[str], block_days: int) -> np.ndarray:
    """Time block of each date: whole periods of ``block_days`` days from the first date (the bootstrap's unit)."""
    if block_days < 1:
        raise ValueError(f"evaluate: block_days must be at least 1, got {block_days}")
    if not len(dates):
        return np.zeros(0, dtype=int)
    days = np.array([dt.date.fromisoformat(str(d)[:10]).toordinal() for d in dates])
    return (days - days.min()) // block_days


class _Stats:
    """What the intervals and the uncertainty table need, gathered while the references are read."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str], ClusterSums] = {}
        self.spread: dict[tuple[str, str], Spread] = {}

    def cluster_sums(self, reference: str, method: str) -> ClusterSums:
        return self.sums.setdefault((reference, method), ClusterSums())

    def spread_of(self, reference: str, name: str) -> Spread:
        """The calibration of the spread ``name`` (e.g. uncertainty) against ``reference``."""
        return self.spread.setdefault((reference, name), Spread())


def confidence(
    stats: _Stats, layer: str, replicates: int, seed: int, level: float = 0.95, versus: str = "ensemble"
) -> tuple[dict[tuple[str, str], dict], list[dict]]:
    """Bootstrap intervals {(reference, method): {<m>_lo, <m>_hi}} and rows of paired differences vs ``versus``.

    One set of resamples per reference (seeded by ``seed`` and the reference), shared by its methods.
    """
    cis: dict[tuple[str, str], dict] = {}
    diffs: list[dict] = []
    for reference in sorted({ref for ref, _ in stats.sums}):
        methods = [m for ref, m in stats.sums if ref == reference]
        clusters, blocks = set(), set()
        for m in methods:
            c, b = stats.sums[(reference, m)].keys()
            clusters |= c
            blocks |= b
        clusters, blocks = sorted(clusters, key=str), sorted(blocks, key=str)
        if replicates <= 0 or len(clusters) * len(blocks) < 2:
            continue
        key = sum(ord(ch) * 31**i for i, ch in enumerate(reference)) % 2**31
        weights = bootstrap_weights(len(clusters), len(blocks), replicates, [seed, key])
        values = {}
        for m in methods:
            values[m] = metrics_from_sums(resampled_sums(stats.sums[(reference, m)].table(clusters, blocks)[2], weights))
            cis[(reference, m)] = {f"{name}_{side}": v for name in CI_METRICS
                                   for side, v in zip(("lo", "hi"), intervals(values[m][name], level), strict=True)}
        if versus not in values:
            continue
        point_v = metrics_from_sums(stats.sums[(reference, versus)].table()[2].sum(axis=(0, 1)))
        for m in methods:
            if m == versus:
                continue
            point = metrics_from_sums(stats.sums[(reference, m)].table()[2].sum(axis=(0, 1)))
            for name in CI_METRICS:
                lo, hi = intervals(values[m][name] - values[versus][name], level)
                diffs.append({"layer": layer, "reference": reference, "method": m, "versus": versus, "metric": name,
                              "difference": float(point[name] - point_v[name]), "lo": lo, "hi": hi})
    return cis, diffs


# ---------------------------------------------------------------- references


def _draw(rate: float, key: Sequence[int], shape) -> np.ndarray | None:
    """A mask of ``shape`` keeping each value with probability ``rate``, seeded by ``key`` alone (so a sample is
    the same however the work is cut); None when nothing is kept."""
    if rate <= 0:
        return None
    return np.random.default_rng(list(key)).random(shape) < rate


def _kept(mask: np.ndarray, pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (pred, ref) pairs under ``mask`` where both are finite, as float64."""
    keep = mask & np.isfinite(pred) & np.isfinite(ref)
    return pred[keep].astype(float), ref[keep].astype(float)


class _Sampler:
    """Keeps about ``max_pairs`` (pred, ref) pairs per method against the truth, drawn per test cell."""

    def __init__(self, total: int, max_pairs: int, seed: int) -> None:
        self.rate = 0.0 if max_pairs <= 0 or total <= 0 else min(1.0, max_pairs / total)
        self.seed = seed
        self.rows: list[pd.DataFrame] = []

    def mask(self, shape, block: int) -> np.ndarray | None:
        return _draw(self.rate, (self.seed, block), shape)

    def add(self, layer, method, reference, pred, ref, mask) -> None:
        if mask is None:
            return
        kept_pred, kept_ref = _kept(mask, pred, ref)
        if len(kept_pred):
            self.rows.append(pd.DataFrame({"layer": layer, "method": method, "reference": reference,
                                           "pred": kept_pred, "ref": kept_ref}))

    def frame(self) -> pd.DataFrame:
        return pd.concat(self.rows, ignore_index=True) if self.rows else pd.DataFrame(columns=PAIR_COLUMNS)


def evaluate_truth(
    paths: Mapping[str, PathLike],
    truth_path: PathLike,
    factor: int,
    cells: Sequence[tuple[int, int]],
    dates: Sequence[str],
    layer: str = "",
    sampler: _Sampler | None = None,
    stats: _Stats | None = None,
    spreads: Mapping[str, tuple[str, PathLike]] | None = None,
    block_days: int = 3,
) -> list[dict]:
    """Metric rows of each method against truth on the given coarse cells x dates, one cell at a time.

    With ``stats``, the bootstrap sums (cluster: the test cell, block: ``block_days`` days) and, for
    the spreads in ``spreads`` (name -> (method, std file)), their calibration are gathered there.
    """
    truth_aligned = io.dated_bands(truth_path, dates)
    dates = [dates[i] for i in truth_aligned[1]]
    truth_aligned = (truth_aligned[0], np.arange(len(dates)))
    aligned = {m: io.dated_bands(p, dates) for m, p in paths.items()}
    spreads = {s: mp for s, mp in (spreads or {}).items() if mp[0] in paths} if stats is not None else {}
    spread_aligned = {s: io.dated_bands(p, dates) for s, (_, p) in spreads.items()}
    blocks = day_blocks(dates, block_days)[:, None, None]
    acc = {m: Accumulator(factor) for m in paths}
    if dates:
        for i, (row, col) in enumerate(cells):
            window = (row * factor, col * factor, factor, factor)
            ref = io.read_dated(truth_path, *window, dates, truth_aligned)
            mask = sampler.mask(ref.shape, i) if sampler else None
            for method, path in paths.items():
                pred = io.read_dated(path, *window, dates, aligned[method])
                acc[method].update(pred, ref)
                if sampler:
                    sampler.add(layer, method, "truth", pred, ref, mask)
                if stats is not None:
                    stats.cluster_sums("truth", method).add_many(np.array(i), blocks, pred, ref)
                for name, (of, std_path) in spreads.items():
                    if of == method:
                        std = io.read_dated(std_path, *window, dates, spread_aligned[name])
                        stats.spread_of("truth", name).update(pred, std, ref)
    return [_row(layer, m, "truth", a.result()) for m, a in acc.items()]


def _cell_windows(height: int, width: int, bands: int, factor: int, max_pixels: int) -> Iterator[tuple[int, ...]]:
    """Windows of whole coarse cells (row, col, rows, cols) whose fine stacks hold at most ~max_pixels values."""
    side = max(1, int(np.sqrt(max_pixels / max(1, bands * factor * factor))))
    for row in range(0, height, side):
        for col in range(0, width, side):
            yield row, col, min(side, height - row), min(side, width - col)


def _tile_windows(tile: Tile, bands: int, factor: int, max_pixels: int) -> Iterator[tuple[int, ...]]:
    """``_cell_windows`` of a tile, placed on the whole coarse grid."""
    for row, col, h, w in _cell_windows(tile.rows, tile.cols, bands, factor, max_pixels):
        yield tile.row + row, tile.col + col, h, w


def _cell_mask(rate: float, seed: int, days: int, row: int, col: int, rows: int, cols: int) -> np.ndarray | None:
    """A (days, rows, cols) sample of coarse pixel-days kept with probability ``rate``, drawn per coarse cell
    (seeded by the cell's place), so the sample is the same however the region is cut into windows or tiles."""
    if rate <= 0:
        return None
    draws = [[_draw(rate, (seed, r, c), days) for c in range(col, col + cols)] for r in range(row, row + rows)]
    return np.asarray(draws).reshape(rows, cols, days).transpose(2, 0, 1)


@dataclass
class TileCheck:
    """The fine-scale part of a layer's evaluation over one tile of coarse cells (rule evaluate_tile): per method,
    the coarse check's moments, its bootstrap sums and a sample of its (pred, ref) pairs; per 30 m file (methods,
    truth), the seams. Tiles merge exactly (sums and moments), so a region's evaluation is the merge of its
    tiles' checks, whatever the tiles (equal to one tile up to floating-point summation order)."""

    tile: Tile | None = None
    layer: str = ""  # the layer whose maps were checked (rule evaluate groups the tiles by it)
    coarse: dict[str, Moments] = field(default_factory=dict)
    sums: dict[str, ClusterSums] = field(default_factory=dict)
    seams: dict[str, Seams] = field(default_factory=dict)
    pairs: dict[str, tuple[list, list]] = field(default_factory=dict)

    def merge(self, other: TileCheck) -> None:
        for method, moments in other.coarse.items():
            self.coarse.setdefault(method, Moments()).merge(moments)
        for method, sums in other.sums.items():
            self.sums.setdefault(method, ClusterSums()).merge(sums)
        for name, seams in other.seams.items():
            self.seams.setdefault(name, Seams()).merge(seams)
        for method, (pred, ref) in other.pairs.items():
            mine = self.pairs.setdefault(method, ([], []))
            mine[0].extend(pred)
            mine[1].extend(ref)

    def to_json(self) -> dict:
        """A JSON-able dict (floats round-trip exactly)."""
        return {
            "tile": asdict(self.tile) if self.tile is not None else None,
            "layer": self.layer,
            "coarse": {m: asdict(v) for m, v in self.coarse.items()},
            "sums": {m: [[c, b, *map(float, row)] for (c, b), row in v.sums.items()] for m, v in self.sums.items()},
            "seams": {n: asdict(v) for n, v in self.seams.items()},
            "pairs": {m: {"pred": list(p), "ref": list(r)} for m, (p, r) in self.pairs.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping, source: PathLike = "") -> TileCheck:
        try:
            tile = Tile(**data["tile"]) if data["tile"] is not None else None
            check = cls(tile, str(data["layer"]), {m: Moments(**v) for m, v in data["coarse"].items()}, {},
                        {n: Seams(**v) for n, v in data["seams"].items()},
                        {m: (list(v["pred"]), list(v["ref"])) for m, v in data["pairs"].items()})
            for method, rows in data["sums"].items():
                sums = check.sums[method] = ClusterSums()
                sums.sums = {(int(row[0]), int(row[1])): np.asarray(row[2:], dtype=np.float64) for row in rows}
        except (KeyError, TypeError, ValueError) as err:
            raise io.InputError(f"{source}: not a tile check of rule evaluate_tile ({err!r})") from err
        return check

    @classmethod
    def read(cls, path: PathLike) -> TileCheck:
        with open(path) as f:
            return cls.from_json(json.load(f), path)

    def write(self, path: PathLike) -> None:
        io.write_json(path, self.to_json())


def check_tile(
    paths: Mapping[str, PathLike],
    coarse_path: PathLike,
    seam_files: Mapping[str, PathLike] | None = None,
    seam_dates: Sequence[str] | None = None,
    tile: Tile | Sequence[int] | None = None,
    max_pixels: int = 20_000_000,
    max_pairs: int = 20_000,
    seed: int = 0,
    block_days: int = 3,
    max_clusters: int = 256,
) -> TileCheck:
    """The coarse check of each method in ``paths`` and the seams of each file in ``seam_files`` (on
    ``seam_dates``) over the coarse cells of ``tile`` (None: the whole region), read in windows of whole cells.

    The coarse check: each method's 30 m output block-averaged back to the coarse grid against the coarse
    input, all dates; its bootstrap clusters are square tiles of coarse cells of the whole region (at most
    about ``max_clusters``), its pair sample about ``max_pairs`` of the whole region's coarse pixel-days. The
    seams: windows read with one more pixel row and column (from the neighbouring tile too), so the pairs
    between windows and tiles count once.
    """
    coarse = io.read_grid(coarse_path)
    tile = Tile(0, 0, coarse.height, coarse.width) if tile is None else Tile(*tile) if not isinstance(tile, Tile) \
        else tile
    dates = io.read_dates(coarse_path)
    factor = io.nest(io.read_grid(next(iter(paths.values()))), coarse) if paths else 1
    check = TileCheck(tile)
    all_bands = (np.arange(len(dates)), np.arange(len(dates)))
    aligned = {m: io.dated_bands(p, dates) for m, p in paths.items()}
    blocks = day_blocks(dates, block_days)[:, None, None]
    rate = min(1.0, max_pairs / max(1, coarse.height * coarse.width * len(dates))) if max_pairs > 0 else 0.0
    side = max(1, math.ceil(math.sqrt(coarse.height * coarse.width / max(1, max_clusters))))
    across = math.ceil(coarse.width / side)
    for row, col, h, w in _tile_windows(tile, len(dates), factor, max_pixels):
        ref = io.read_dated(coarse_path, row, col, h, w, dates, all_bands)
        mask = _cell_mask(rate, seed, len(dates), row, col, h, w)
        rows, cols = np.mgrid[row : row + h, col : col + w]
        clusters = (rows // side) * across + cols // side
        for method, path in paths.items():
            pred = block_mean(io.read_dated(path, row * factor, col * factor, h * factor, w * factor, dates,
                                          aligned[method]), factor)
            check.coarse.setdefault(method, Moments()).update(pred, ref)
            check.sums.setdefault(method, ClusterSums()).add_many(clusters[None], blocks, pred, ref)
            if mask is not None:
                kept_pred, kept_ref = _kept(mask, pred, ref)
                kept = check.pairs.setdefault(method, ([], []))
                kept[0].extend(kept_pred.tolist())
                kept[1].extend(kept_ref.tolist())
    for name, path in (seam_files or {}).items():
        check.seams[name] = _tile_seams(path, coarse, tile, seam_dates if seam_dates is not None else dates,
                                        max_pixels)
    return check


def _tile_seams(path: PathLike, coarse: Grid, tile: Tile, dates: Sequence[str], max_pixels: int) -> Seams:
    """The seams of one 30 m file over a tile's cells on ``dates``."""
    factor = io.nest(io.read_grid(path), coarse)
    height, width = coarse.height * factor, coarse.width * factor
    aligned = io.dated_bands(path, dates)
    seams = Seams()
    for row, col, h, w in _tile_windows(tile, len(dates), factor, max_pixels):
        r, c = row * factor, col * factor
        hh, ww = min(h * factor + 1, height - r), min(w * factor + 1, width - c)
        seams.update(io.read_dated(path, r, c, hh, ww, dates, aligned), factor, r, c, extent=(h * factor, w * factor))
    return seams


def merge_checks(parts: Sequence[PathLike | TileCheck], coarse: Grid) -> TileCheck:
    """One check of the region from its tiles' (``check_tile`` results or their files); an error names the part
    whose tile overlaps another or lies outside the grid, or the cells no tile covers."""
    covered = np.zeros((coarse.height, coarse.width), dtype=int)
    merged = TileCheck(Tile(0, 0, coarse.height, coarse.width))
    for part in parts:
        check = part if isinstance(part, TileCheck) else TileCheck.read(part)
        t = check.tile
        if t is None or t.row < 0 or t.col < 0 or t.row + t.rows > coarse.height or t.col + t.cols > coarse.width:
            raise io.InputError(f"{part}: tile {t} is not inside the {coarse.height} x {coarse.width}-cell region")
        if covered[t.row : t.row + t.rows, t.col : t.col + t.cols].any():
            raise io.InputError(f"{part}: tile {t} overlaps another tile's cells")
        covered[t.row : t.row + t.rows, t.col : t.col + t.cols] = 1
        merged.merge(check)
    if not covered.all():
        missing = np.argwhere(covered == 0)
        raise io.InputError(f"tile checks cover {int(covered.sum())} of {covered.size} coarse cells: no tile has "
                            f"(row, col) {[tuple(map(int, rc)) for rc in missing[:3]]}")
    return merged


def seam_dates_of(split: Mapping, coarse_path: PathLike) -> list[str]:
    """The dates the seams are measured on: the split's test dates, all the coarse input's without them."""
    return list(split.get("test_dates") or io.read_dates(coarse_path))


def checked_rows(check: TileCheck, layer: str, stats: _Stats | None = None) -> tuple[list[dict], list[dict], pd.DataFrame]:
    """The coarse metric rows, the seam rows and the coarse pairs of a layer's merged tile checks; the bootstrap
    sums go to ``stats``."""
    rows = []
    for method, moments in check.coarse.items():
        # one pixel per coarse cell: no within-cell pattern, so no anomaly_r (as Accumulator without a factor)
        rows.append(_row(layer, method, "coarse", {**moments.metrics(), "anomaly_r": float("nan")}))
        if stats is not None:
            stats.sums[("coarse", method)] = check.sums.get(method, ClusterSums())
    seams = [{"layer": layer, "method": name, **s.result()} for name, s in check.seams.items()]
    frames = [pd.DataFrame({"layer": layer, "method": m, "reference": "coarse", "pred": p, "ref": r})
              for m, (p, r) in check.pairs.items() if p]
    pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAIR_COLUMNS)
    return rows, seams, pairs


def evaluate_stations(
    series: pd.DataFrame,
    methods: Sequence[str],
    layer: str = "",
    stats: _Stats | None = None,
    spreads: Mapping[str, str] | None = None,
    block_days: int = 3,
    test_dates: Sequence[str] | None = None,
) -> list[dict]:
    """Metric rows of each method against the station observations of ``station_series``, pooled, on the
    ``test_dates`` only when given (the stations' other days may refine the ensemble and calibrate the uncertainty).

    With ``stats``: bootstrap sums (cluster: the station, block: ``block_days`` days) and the spread
    calibration of the spreads in ``spreads`` (a series column holding a std -> the method it describes).
    """
    rows = []
    if test_dates is not None:
        series = series[series["date"].isin(list(test_dates))]
    if not series.empty and stats is not None:
        clusters = pd.factorize(series["station"], sort=True)[0]
        blocks = day_blocks(series["date"].tolist(), block_days)
    for method in methods:
        if series.empty or method not in series.columns:
            continue
        pred = series[method].to_numpy(dtype=float)
        obs = series["observed"].to_numpy(dtype=float)
        acc = Accumulator(None)
        acc.update(pred, obs)
        rows.append(_row(layer, method, "stations", acc.result()))
        if stats is not None:
            stats.cluster_sums("stations", method).add_many(clusters, blocks, pred, obs)
            for column, of in (spreads or {}).items():
                if of == method and column in series.columns:
                    stats.spread_of("stations", column).update(pred, series[column].to_numpy(dtype=float), obs)
    return rows


# ---------------------------------------------------------------- the run


#: the tables evaluate_run can write: key of its `outputs` -> (columns, what it holds)
RUN_TABLES = {
    "metrics": COLUMNS,
    "pairs": PAIR_COLUMNS,
    "series": None,
    "seams": SEAM_COLUMNS,
    "uncertainty": UNCERTAINTY_COLUMNS,
    "reliability": RELIABILITY_COLUMNS,
    "differences": DIFFERENCE_COLUMNS,
}


@dataclass(frozen=True)
class Scoring:
    """How a run is scored: the bootstrap (`bootstrap` resamples of clusters x `block_days` day blocks, `level`
    intervals, seeded by `seed`; 0 resamples leaves the intervals NaN), the pairs kept for the scatter plots (about
    `max_pairs` per layer, method and reference for truth and coarse), the values held per read (`max_pixels`) and
    the spreads calibrated (`spreads`: the file name of a standard deviation -> the method it describes)."""

    seed: int = 0
    bootstrap: int = 1000
    block_days: int = 3
    level: float = 0.95
    max_pairs: int = 20_000
    max_pixels: int = 20_000_000
    spreads: Mapping[str, str] = field(default_factory=lambda: dict(SPREADS))


@dataclass
class _RunTables:
    """The rows of every table of a run, gathered layer by layer."""

    metrics: list[dict] = field(default_factory=list)
    pairs: list[pd.DataFrame] = field(default_factory=list)
    series: list[pd.DataFrame] = field(default_factory=list)
    seams: list[dict] = field(default_factory=list)
    uncertainty: list[dict] = field(default_factory=list)
    reliability: list[dict] = field(default_factory=list)
    differences: list[dict] = field(default_factory=list)

    def frame(self, name: str) -> pd.DataFrame:
        rows, columns = getattr(self, name), RUN_TABLES[name]
        if name in ("pairs", "series"):
            frames = [f for f in rows if not f.empty]
            if frames:
                return pd.concat(frames, ignore_index=True)
            return pd.DataFrame(columns=columns) if columns else pd.DataFrame()
        return pd.DataFrame(rows, columns=columns)

    def write(self, outputs: Mapping[str, PathLike]) -> None:
        for name, path in outputs.items():
            io.write_csv(path, self.frame(name))


def evaluate_run(
    downscaled_dir: PathLike,
    coarse: Mapping[str, PathLike],
    truth: Mapping[str, PathLike] | None = None,
    stations: PathLike | pd.DataFrame | None = None,
    split: PathLike | Mapping | None = None,
    methods: Sequence[str] = METHODS,
    outputs: Mapping[str, PathLike] | None = None,
    scoring: Scoring = Scoring(),  # noqa: B008 (frozen)
    tile_checks: Mapping[str, Sequence[PathLike | TileCheck]] | None = None,
    suffix: str = ".tif",
) -> pd.DataFrame:
    """Metrics of every method against every available reference, for each layer in ``coarse``.

    ``downscaled_dir`` holds ``<layer>/<method><suffix>``; ``coarse`` maps layer -> coarse input;
    ``truth`` (optional) maps layer -> 30 m truth; ``stations`` is stations.csv or its frame;
    ``split`` is samples/split.json or its dict (truth uses its test cells x test dates; without a
    split, all cells and dates, with a warning). Returns the metrics (columns ``COLUMNS``, with the bootstrap
    intervals of ``scoring``) and writes the tables named in ``outputs`` (keys of ``RUN_TABLES`` -> CSV path):
    metrics; a seeded sample of (pred, ref) pairs per layer, method and reference for the scatter plots (all station
    pairs); the station series (``station_series``, with a ``layer`` column); the seam ratios; the calibration of the
    spreads (uncertainty, reliability); the paired intervals of each method minus the ensemble (differences).
    The coarse check and the seams of a layer come from ``tile_checks`` (layer -> the ``check_tile`` results or
    files of its tiles, rule evaluate_tile) where given, else they are computed here over the whole region.
    """
    outputs = dict(outputs or {})
    unknown = sorted(set(outputs) - set(RUN_TABLES))
    if unknown:
        raise ValueError(f"unknown evaluation tables {unknown}; choose among {sorted(RUN_TABLES)}")
    split = read_split(split)
    station_df = read_stations(stations) if stations is not None else None
    tables = _RunTables()
    for layer, coarse_path in coarse.items():
        paths = method_paths(downscaled_dir, layer, methods, suffix)
        if not paths:
            log.warning("%s: no downscaled output found in %s; layer skipped", layer, downscaled_dir)
            continue
        checks = (tile_checks or {}).get(layer)
        _score_layer(layer, paths, _spread_paths(downscaled_dir, layer, paths, scoring.spreads, suffix), coarse_path,
                     (truth or {}).get(layer), station_df, split, checks, "seams" in outputs, scoring, tables)
    tables.write(outputs)
    return tables.frame("metrics")


def _spread_paths(downscaled_dir: PathLike, layer: str, paths: Mapping[str, Path],
                  spreads: Mapping[str, str], suffix: str = ".tif") -> dict[str, Path]:
    """The standard deviations of the layer's methods that exist (a missing one is logged and not scored)."""
    found = {}
    for name, method in spreads.items():
        path = Path(downscaled_dir) / layer / f"{name}{suffix}"
        if method not in paths:
            continue
        if path.exists():
            found[name] = path
        else:
            log.warning("%s: %s has no %s (%s missing); it is not scored", layer, method, name, path)
    return found


def _score_layer(layer: str, paths: dict[str, Path], std_paths: dict[str, Path], coarse_path: PathLike,
                 truth_path: PathLike | None, station_df: pd.DataFrame | None, split: dict,
                 checks: Sequence[PathLike | TileCheck] | None, seams: bool, scoring: Scoring,
                 tables: _RunTables) -> None:
    """One layer's rows of every table: against the truth, the stations and the coarse input, then the intervals
    and the spreads' calibration."""
    coarse_grid = io.read_grid(coarse_path)
    factor = io.nest(io.read_grid(next(iter(paths.values()))), coarse_grid)
    log.info("%s: %d method(s) %s, factor %d", layer, len(paths), list(paths), factor)
    stats = _Stats()
    rows: list[dict] = []
    seam_files = dict(paths)
    if truth_path is not None and Path(truth_path).exists():
        seam_files["truth"] = truth_path
        rows += _truth_rows(layer, paths, std_paths, truth_path, coarse_grid, factor, split, stats, scoring, tables)
    elif truth_path is not None:
        log.warning("%s: truth %s not found; skipped", layer, truth_path)
    if station_df is not None:
        rows += _station_rows(layer, paths, std_paths, coarse_path, station_df, split, stats, scoring, tables)
    if checks is not None:
        check = merge_checks(checks, coarse_grid)
    else:
        check = check_tile(paths, coarse_path, seam_files if seams else None, seam_dates_of(split, coarse_path), None,
                           scoring.max_pixels, scoring.max_pairs, scoring.seed, scoring.block_days)
    coarse_rows, layer_seams, coarse_pairs = checked_rows(check, layer, stats)
    rows += coarse_rows
    tables.pairs.append(coarse_pairs)
    tables.seams += layer_seams
    cis, diffs = confidence(stats, layer, scoring.bootstrap, scoring.seed, scoring.level)
    tables.metrics += [{**row, **cis.get((row["reference"], row["method"]), {})} for row in rows]
    tables.differences += diffs
    _spread_rows(layer, stats, scoring.spreads, tables)


def _truth_rows(layer: str, paths: dict[str, Path], std_paths: dict[str, Path], truth_path: PathLike,
                coarse_grid: Grid, factor: int, split: dict, stats: _Stats, scoring: Scoring,
                tables: _RunTables) -> list[dict]:
    """Rows against the 30 m truth on the split's test cells x test dates (all of them without a split)."""
    io.nest(io.read_grid(truth_path), coarse_grid)
    cells, dates = split.get("test_cells"), split.get("test_dates")
    if cells is None or dates is None:
        log.warning("%s: no split with test cells and dates; truth metrics use all cells and dates", layer)
        cells = cells if cells is not None else [
            (r, c) for r in range(coarse_grid.height) for c in range(coarse_grid.width)
        ]
        dates = dates if dates is not None else io.read_dates(truth_path)
    bad = [rc for rc in cells if not (0 <= rc[0] < coarse_grid.height and 0 <= rc[1] < coarse_grid.width)]
    if bad:
        log.warning("%s: %d test cell(s) outside the coarse grid ignored, e.g. %s", layer, len(bad), bad[:3])
        cells = [rc for rc in cells if rc not in bad]
    sampler = _Sampler(len(cells) * len(dates) * factor * factor, scoring.max_pairs, scoring.seed)
    rows = evaluate_truth(paths, truth_path, factor, cells, dates, layer, sampler, stats,
                          {name: (scoring.spreads[name], p) for name, p in std_paths.items()}, scoring.block_days)
    tables.pairs.append(sampler.frame())
    log.info("%s: truth on %d test cell(s) x %d test date(s)", layer, len(cells), len(dates))
    return rows


def _station_rows(layer: str, paths: dict[str, Path], std_paths: dict[str, Path], coarse_path: PathLike,
                  station_df: pd.DataFrame, split: dict, stats: _Stats, scoring: Scoring,
                  tables: _RunTables) -> list[dict]:
    """Rows against the stations on the split's test days; the series and the pairs kept for the figures."""
    # the spreads ride along as columns named by their file (ensemble_std, ...)
    series = station_series({**paths, **std_paths}, station_df, layer, coarse_path)
    if series.empty:
        log.warning("%s: no station overlaps the run; stations skipped", layer)
        return []
    station_spreads = {name: scoring.spreads[name] for name in std_paths}
    rows = evaluate_stations(series, list(paths), layer, stats, station_spreads, scoring.block_days,
                             split.get("test_dates"))
    long = series.melt(id_vars=["date", "observed"], value_vars=list(paths), var_name="method", value_name="pred")
    long = long[np.isfinite(long["pred"]) & np.isfinite(long["observed"])]
    tables.pairs.append(pd.DataFrame({"layer": layer, "method": long["method"], "reference": "stations",
                                      "pred": long["pred"], "ref": long["observed"]}))
    tables.series.append(series.assign(layer=layer))
    log.info("%s: %d station(s), %d station-day(s)", layer, series["station"].nunique(), len(series))
    return rows


def _spread_rows(layer: str, stats: _Stats, spreads: Mapping[str, str], tables: _RunTables) -> None:
    """The calibration of each spread against each reference: coverage, spread-error r, reliability bins."""
    for (reference, name), spread in sorted(stats.spread.items()):
        cover = {f"coverage_{round(c['nominal'] * 100):02d}": c["observed"] for c in spread.coverage()}
        result = spread.result()
        method = spreads[name]
        tables.uncertainty.append({"layer": layer, "method": method, "reference": reference, "spread": name,
                                   **{k: v for k, v in result.items() if k != "coverage90"}, **cover})
        tables.reliability += [{"layer": layer, "method": method, "reference": reference, "spread": name, **b}
                               for b in spread.reliability()]
        log.info("%s: %s %s vs %s: coverage of the 90%% interval %.3f, spread-error r %.3f, CRPS %.4f (skill %.3f "
                 "over a constant std of the same coverage), interval score %.4f (skill %.3f) (n %d)", layer, method,
                 name, reference, cover.get("coverage_90", float("nan")), result["spread_error_r"], result["crps"],
                 result["crps_skill"], result["interval_score_90"], result["interval_skill"], result["n"])


# ---------------------------------------------------------------- maps


def _decimation(factor: int, height: int, width: int, max_side: int) -> int:
    """The smallest divisor d of factor with both fine sides / d <= max_side (factor at most)."""
    for d in range(1, factor + 1):
        if factor % d == 0 and max(height, width) / d <= max_side:
            return d
    return factor


def map_panels(
    files: Mapping[str, PathLike],
    coarse_path: PathLike,
    dates: Sequence[str],
    window: tuple[int, int, int, int] | None = None,
    max_side: int = 600,
    max_pixels: int = 20_000_000,
) -> dict[str, dict[str, np.ndarray]]:
    """Map arrays for chosen dates: {date: {"coarse": coarse cells, name: fine field, ...}}.

    ``files`` maps a panel name (e.g. ensemble, ensemble_std, truth) to a 30 m file; ``window`` is
    (row, col, rows, cols) in coarse cells (default: the whole region). Fine fields are block-averaged
    by a divisor of the nesting factor so their longer side is at most ``max_side`` pixels; the coarse
    panel stays at the coarse resolution (plot it over the same extent). Dates the run lacks are dropped.
    """
    coarse_grid = io.read_grid(coarse_path)
    coarse_dates = io.read_dates(coarse_path)
    dates = [d for d in dates if d in coarse_dates]
    row0, col0, h, w = window if window is not None else (0, 0, coarse_grid.height, coarse_grid.width)
    factor = None
    fields: dict[str, np.ndarray] = {}
    for name, path in files.items():
        f = io.nest(io.read_grid(path), coarse_grid)
        factor = factor or f
        d = _decimation(f, h * f, w * f, max_side)
        out = np.full((len(dates), h * f // d, w * f // d), np.nan, dtype=np.float32)
        aligned = io.dated_bands(path, dates)
        for row, col, bh, bw in _cell_windows(h, w, len(dates), f, max_pixels):
            fine = io.read_dated(path, (row0 + row) * f, (col0 + col) * f, bh * f, bw * f, dates, aligned)
            out[:, row * f // d:(row + bh) * f // d, col * f // d:(col + bw) * f // d] = block_mean(fine, d)
        fields[name] = out
    coarse = io.read_dated(coarse_path, row0, col0, h, w, dates)
    return {date: {"coarse": coarse[i], **{k: v[i] for k, v in fields.items()}} for i, date in enumerate(dates)}
