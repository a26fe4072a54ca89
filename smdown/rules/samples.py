"""Steps of workflow/rules/samples.smk: the train / validation / test split, and the training examples."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from smdown import io
from smdown.features import FeatureSpec, derive
from smdown.rules import factor_of
from smdown.samples import bag_samples, build_samples, draw_examples, group_masks, make_split

log = logging.getLogger(__name__)


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
    "coarse": each pixel labelled with the resampled coarse field at that scale.
    """
    spec = FeatureSpec.from_dict(features)
    target_stack = io.read_stack(target)
    split_groups = json.loads(Path(split_path).read_text())
    rng = np.random.default_rng(seed)
    factor = factor_of(scale, coarse) or 1
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
