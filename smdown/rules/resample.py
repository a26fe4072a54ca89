"""Steps of workflow/rules/resample.smk: terrain derivatives of the DEM, and each variable onto each scale."""

from __future__ import annotations

import logging

import numpy as np

from smdown import io
from smdown import resample as resampling
from smdown.rules import factor_of

log = logging.getLogger(__name__)


def terrain(dem: str, outputs: dict[str, str], names: list[str]) -> None:
    layers = resampling.terrain_layers(dem, names)
    for name, stack in layers.items():
        io.write_stack(outputs[name], stack)
        log.info("%s: %s range %.3g..%.3g", name, stack.grid.shape, np.nanmin(stack.data), np.nanmax(stack.data))


def resample_one(source: str, coarse: str, output: str, scale: str, static: bool, is_target: bool, max_gap: int) -> None:
    factor = factor_of(scale, coarse)
    missing = resampling.resample_variable(source, coarse, factor, static, output, fill=not is_target,
                                           max_gap_days=max_gap)
    grid = io.read_grid(output)
    log.info("%s -> scale %s (factor %s): %s x %d bands, %.1f%% NaN", source, scale, factor, grid.shape,
             io.band_count(output), 100 * missing)
