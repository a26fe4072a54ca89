"""What every job shares, whatever its stage: its log (tracebacks included), the factor of a scale, and the merge of
a map's tiles. The stages' own steps live in each stage's *_steps module."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from smdown import io
from smdown.grid import nest_factor

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(path: str | None) -> None:
    """Log to the rule's log file (and stderr), one line per event; an uncaught exception is logged there
    too, with its traceback, before the job fails."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)

    def log_uncaught(kind, value, traceback):
        logging.getLogger("smdown").critical("job failed: %s", value, exc_info=(kind, value, traceback))
        sys.__excepthook__(kind, value, traceback)

    sys.excepthook = log_uncaught


def factor_of(scale: str, coarse_path: str) -> int | None:
    """Integer factor of a scale name in the coarse cell; None for the coarse grid itself."""
    if scale == "coarse":
        return None
    return nest_factor(io.read_grid(coarse_path).res, float(scale))


def mosaic(parts: list[str], output: str, days: list[str] | None = None) -> None:
    """Step of rules mosaic and mosaic_scale: a VRT over a map's or a daily predictor's tiles (io.write_mosaic_vrt),
    the region read as one raster without writing its values again. `days`: the dates to keep (a time chunk's own)."""
    grid = io.write_mosaic_vrt(parts, output, days=days)
    log.info("%s: a VRT over %d tiles, %d x %d pixels", output, len(parts), grid.height, grid.width)


def merge_tiles(parts: list[str], output: str, dtype: str = "float32", cog: bool = False,
                days: list[str] | None = None, threads: int = 1) -> None:
    """Step of rules merge_tiles, merge_needed and merge_scale: one raster of the region from its tiles' (predict,
    predict_rf, cubic_baseline, resample_tile, refine and uncertainty run one job per tile), its values stored as
    `dtype` (smdown.io.DTYPES), with `cog` as a Cloud-Optimized GeoTIFF (the maps a run writes). rasterio only, so
    the merges run in the light `gdal` environment. `days`: the dates to keep (a time chunk's own), all where None.
    `threads`: GDAL's compression threads (the job's; the bytes are the same whatever their number)."""
    grid = io.merge(parts, output, dtype=dtype, cog=cog, days=days, threads=threads)
    log.info("%s: %d tiles merged, %d x %d pixels, %s, %d thread(s)", output, len(parts), grid.height, grid.width,
             dtype, threads)
