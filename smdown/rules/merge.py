"""Step of rules merge_tiles and merge_scale: one raster of the region from its tiles' rasters (rasterio only, so
the merges run in the light `gdal` environment)."""

from __future__ import annotations

import logging

from smdown import io

log = logging.getLogger(__name__)


def merge_tiles(parts: list[str], output: str) -> None:
    """One raster from its tiles' (predict, predict_rf, cubic_baseline and resample_tile run one job per tile)."""
    grid = io.merge(parts, output)
    log.info("%s: %d tiles merged, %d x %d pixels", output, len(parts), grid.height, grid.width)
