"""The preparing stage's steps, one function per rule of workflow/rules/resample.smk and samples.smk: the terrain
derivatives of the DEM, each variable onto each nested scale, the train / validation / test split and the training
examples. Each takes file paths and the settings its rule passes as `params:` (never the whole config), calls the
stage's science modules and writes its outputs.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from smdown import io
from smdown.grid import Grid, Tile, nest_factor, nested_grid
from smdown.jobs import factor_of
from smdown.preparing import resample as resampling
from smdown.preparing import temporal
from smdown.preparing import terrain as terrain_lib
from smdown.preparing.features import FeatureSpec, derive
from smdown.preparing.samples import bag_samples, build_samples, draw_examples, group_masks, make_split

log = logging.getLogger(__name__)


# ------------------------------------------------------------ resample
def terrain(dem: str, outputs: dict[str, str], names: list[str], window: int = terrain_lib.WINDOW) -> None:
    """Terrain derivatives at the DEM's native resolution (slope, northness/eastness from aspect, twi), read and
    written window by window with a halo (smdown.preparing.terrain.windowed): memory bounded by a window, not the DEM."""
    grid = io.read_grid(dem)
    if io.band_count(dem) != 1:
        raise io.InputError(f"{dem}: a static predictor must have one band, found {io.band_count(dem)}")
    res_x, res_y = io.pixel_size_m(grid)
    res = float(np.sqrt(res_x * res_y))

    def read(row: int, col: int, height: int, width: int) -> np.ndarray:
        return io.read_window(dem, row, col, height, width, bands=[0])[0]

    ranges = {name: [np.inf, -np.inf] for name in outputs}
    with ExitStack() as stack:
        writers = {name: stack.enter_context(io.open_writer(path, grid, None, count=1)) for name, path in outputs.items()}
        for (row, col, _, _), values in terrain_lib.windowed(read, grid.shape, res, names, window):
            layers = {k: v for k, v in values.items() if k != "aspect"}
            if "aspect" in values:
                radians = np.deg2rad(values["aspect"])
                layers["northness"], layers["eastness"] = np.cos(radians), np.sin(radians)
            for name, value in layers.items():
                io.write_window(writers[name], value[np.newaxis], row, col)
                if np.isfinite(value).any():
                    ranges[name] = [min(ranges[name][0], np.nanmin(value)), max(ranges[name][1], np.nanmax(value))]
    for name, (low, high) in ranges.items():
        log.info("%s: %s range %.3g..%.3g (windows of %d pixels)", name, grid.shape, low, high, window)


def resample_one(source: str, coarse: str | dict, output: str, scale: str, static: bool, is_target: bool,
                 max_gap: int, tile: list[int] | None = None) -> None:
    """One variable onto one scale; `coarse`: the coarse raster, or its grid and dates (resample.coarse_params, the
    rules' params); `tile`: [first row, first col, rows, cols] of the coarse cells to write (the finest scale's daily
    variables run one job per tile, rule resample_tile), None: the whole region."""
    coarse_grid, _ = resampling.coarse_frame(coarse)
    factor = None if scale == "coarse" else nest_factor(coarse_grid.res, float(scale))
    missing = resampling.resample_variable(source, coarse, factor, static, output, fill=not is_target,
                                           max_gap_days=max_gap, tile=Tile(*tile) if tile else None)
    grid = io.read_grid(output)
    log.info("%s -> scale %s (factor %s), tile %s: %s x %d bands, %.1f%% NaN", source, scale, factor,
             tile or "whole region", grid.shape, io.band_count(output), 100 * missing)


# ------------------------------------------------------------ samples
def outage_dates(coarse_paths: list[str]) -> tuple[list[str], list[str]]:
    """The coarse dates, and those on which a coarse layer is NaN everywhere (a satellite outage)."""
    dates, outages = None, set()
    for path in coarse_paths:
        stack = io.read_stack(path)
        dates = stack.dates
        empty = ~np.isfinite(stack.data).any(axis=(1, 2))
        outages |= {d for d, e in zip(stack.dates, empty, strict=True) if e}
    return dates, sorted(outages)


def split(coarse_paths: list[str], output: str, settings: dict, seed: int) -> None:
    """split.json from the coarse layers; `settings`: the split keys of config `samples`."""
    dates, outages = outage_dates(coarse_paths)
    for day in outages:
        log.warning("coarse input is NaN everywhere on %s (outage): day left out of training", day)
    shape = io.read_grid(coarse_paths[0]).shape
    result = make_split(shape, dates, outages, settings, seed)
    for name in ("train", "val", "test"):
        log.info("%s: %d cells %s, %d days", name, len(result[f"{name}_cells"]), result[f"{name}_cells"],
                 len(result[f"{name}_dates"]))
    io.write_json(output, result)


def samples(rasters: dict[str, str], target: str, split_path: str, coarse: str, scale: str, output: str,
            features: dict, settings: dict, seed: int) -> None:
    """Training examples of one layer at one scale (`features`: FeatureSpec fields, `settings`: config samples).

    target "aggregate": bags of pixels of one coarse cell-day labelled with the coarse value (the
    models learn a fine field whose areal mean is the coarse value), read cell by cell; "cubic" /
    "coarse": each pixel labelled with the resampled coarse field at that scale; "truth": each pixel
    labelled with the fine truth (`target`) averaged onto the scale (truth_on_scale), an oracle for the
    skill panel's ceiling (the test cells and days are drawn as the test split, never trained on).
    """
    spec = FeatureSpec.from_dict(features)
    target_stack = io.read_stack(target)
    split_groups = json.loads(Path(split_path).read_text())
    rng = np.random.default_rng(seed)
    factor = factor_of(scale, coarse) or 1
    if settings["target"] == "truth":
        coarse_grid = io.read_grid(coarse)
        target_stack = truth_on_scale(target_stack, nested_grid(coarse_grid, factor), io.read_dates(coarse))
    try:
        if settings["target"] == "aggregate":
            result = _bag_samples(spec, rasters, target_stack, split_groups, factor, settings, rng)
        else:
            result = _pixel_samples(spec, rasters, target_stack, split_groups, factor, settings, rng)
    except ValueError as err:
        raise io.InputError(f"{target} at scale {scale}: {err}") from err
    counts = np.bincount(result["split"], minlength=2)
    log.info("scale %s: %d examples in %d bags (train %d, val %d), %d features", scale,
             len(result["target"]), result["bag"].max() + 1, *counts[:2], len(spec.names))
    with io.atomic_path(output) as tmp:
        np.savez(tmp, **result)


def truth_on_scale(truth: io.Stack, grid: Grid, dates: list[str]) -> io.Stack:
    """The truth on a training scale's grid and the coarse input's dates: as it is where it lies on that grid,
    else its area average there (GDAL's average warp: each pixel the mean of the truth under it); a date the truth
    lacks is NaN (no example is drawn there)."""
    same = (truth.grid.height, truth.grid.width) == (grid.height, grid.width) and np.allclose(
        truth.grid.transform, grid.transform)
    on_grid = truth if same else io.warp(truth, grid, "average")
    index = {date: i for i, date in enumerate(on_grid.dates)}
    data = np.full((len(dates), grid.height, grid.width), np.nan, dtype=np.float32)
    for i, date in enumerate(dates):
        if date in index:
            data[i] = on_grid.data[index[date]]
    return io.Stack(data, grid, list(dates))


def _bag_samples(spec: FeatureSpec, rasters: dict[str, str], coarse: io.Stack, split_groups: dict, factor: int,
                 settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Bags read cell by cell from windows of the scale's rasters (samples.bag_samples)."""
    shape = (coarse.grid.height * factor, coarse.grid.width * factor)

    def read_cell(row: int, col: int, size: int, halo: int) -> dict[str, np.ndarray]:
        return {name: io.read_block(rasters[name], row, col, size, size, halo, shape) for name in spec.rasters}

    masks = group_masks(split_groups, coarse.dates, coarse.grid.shape, 1)
    return bag_samples(spec, read_cell, coarse.data, coarse.dates, masks, factor, settings, rng)


def _pixel_samples(spec: FeatureSpec, rasters: dict[str, str], target: io.Stack, split_groups: dict, factor: int,
                   settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Pixels labelled with the resampled coarse field, drawn over the whole region (read at once)."""
    stacks = {name: io.read_stack(rasters[name], static=name in spec.static).data for name in spec.rasters}
    features = derive(spec, stacks, target.dates)
    masks = group_masks(split_groups, target.dates, target.grid.shape, factor)
    drawn = draw_examples(target.data, features, masks, settings["per_scale"], rng)
    return build_samples(spec, features, target.data, drawn, settings["patch"], settings["sequence_days"], masks)


# ------------------------------------------------------------ time chunks
def api_state(precipitation: str, previous: str | None, days: list[str], decays: list[float], output: str,
              max_pixels: int = 16_000_000) -> None:
    """Step of rule api_state: the antecedent precipitation indices (one band per decay) on a time chunk's last day,
    from the chunk's precipitation at the finest scale over its own `days` and the indices `previous` (the chunk
    before it) held on the day before them (zero for the record's first chunk): the recurrence predict runs over a
    whole period, so each chunk continues it exactly. Strip by strip of rows, at most `max_pixels` pixel-days."""
    grid = io.read_grid(precipitation)
    bands = io.bands_of_dates(precipitation, days)
    rows = max(1, max_pixels // max(1, len(days) * grid.width))
    with io.open_writer(output, grid, None, count=len(decays)) as dst:
        for top in range(0, grid.height, rows):
            height = min(rows, grid.height - top)
            series = io.read_window(precipitation, top, 0, height, grid.width, bands=bands)
            start = (io.read_window(previous, top, 0, height, grid.width) if previous
                     else np.zeros((len(decays), height, grid.width), dtype=np.float32))
            states = [temporal.antecedent_state(series, decay, start[i]) for i, decay in enumerate(decays)]
            io.write_window(dst, np.stack(states), top, 0)
    log.info("%s: the indices of decays %s on %s, carried from %s", output, decays, days[-1], previous or "zero")
