"""What a job asks a cluster for (`mem_mb`, `runtime`), as functions of the job's size.

A job's size is two numbers, both known when the DAG is built (from the config and the inputs' headers):
`work`, what it processes (pixel-days for the raster steps, examples x epochs for the training steps) and
`held`, what it holds in memory at once (a prediction block, a resampling block, one coarse cell, the whole
region where a step still reads it whole). For each rule

    CPU seconds = start_s + s_per_unit * work
    peak RSS MB = base_mb + mb_per_unit * held

fitted on the rules' own Snakemake `benchmark:` files (columns cpu_time and max_rss) from runs of two sizes:
the tiny test config (.test/config.yaml: 2 x 2 coarse cells, 16 days, 1000 m finest scale) and the demo (4 x 4
or 3 x 3 cells, 40 days, 30 m), as listed in CALIBRATION with the file each number comes from. The fit is the
line through the largest measurement at the smallest and at the largest size (an upper envelope, not a mean; its
intercept at least the smallest size's measurement).
CPU time, not wall time, is fitted: the measuring machine (2 cores) was shared with other work at load 5-15, so
its wall times measure the load. The requests then add margins:

    runtime (min) = max(MIN_RUNTIME, RUNTIME_MARGIN * CPU seconds / 60) x attempt
    mem_mb        = max(MIN_MEM_MB, MEM_MARGIN * peak RSS MB) x attempt        (rounded up to 100 MB)

so a job killed for memory or time is retried (the SLURM profile's `retries: 1`) with twice the request.

Bytes follow the work too: each step writes BYTES[rule] bytes per unit of work (WRITTEN: the file sizes of a demo
run's outputs, the maps as written today: float32, ZSTD level 1, floating-point predictor), and `project` adds up
what each step writes, what the run holds at the end and the most it holds at once (a step's tiles and their merged
maps lie on disk together until the merge ends).

Where memory does not follow the size today, the model says so (`held` is then a constant or the whole input):
- predict, predict_rf, uncertainty, cubic_baseline, resample, samples, evaluate read block by block: their memory is set by
  the block (`predict.block_cells`, the resampling block of resample.BLOCK_PIXEL_DAYS pixel-days, one coarse
  cell, uncertainty's 8 M and evaluate's 20 M-value windows), not by the region; their time grows with the region's pixel-days.
- terrain reads its DEM window by window with a halo (smdown.preparing.terrain.windowed): memory is a window's (before,
  the whole DEM, 122 MB + 313 bytes a pixel by the same measurements: 11.4 GB for 36 M pixels, 1.3 GB measured).
- demo builds the whole synthetic world in memory (it is meant for small worlds): memory grows with the region.
- train, tune, train_rf, ensemble, sensitivity work on the training examples (`samples.per_scale` per training
  scale), not on the region: their size is the number of examples, which the region does not change.
- split, the figures and the acquire rules (network-bound) have fixed requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from smdown.grid import nest_factor

# The cells around a refine tile whose predictor cell means it reads (smdown.mapping.refine.HALO: the smooth field
# of the cell means is then the region's), so a tile's refine reads (side + 2 x REFINE_HALO)^2 cells at most
REFINE_HALO = 5

# Request margins and floors (a request at least this large; small jobs still get a few minutes).
RUNTIME_MARGIN = 3.0
MEM_MARGIN = 1.5
MIN_RUNTIME = 10  # minutes
MIN_MEM_MB = 1000
# What a typical HPC partition grants one job (one node, a 2-day limit); `exceeds` flags requests above it.
GRANT_MEM_MB = 250_000
GRANT_RUNTIME = 2 * 24 * 60


@dataclass(frozen=True)
class Region:
    """The run's region: coarse cells, coarse cell size (m) and output days."""

    rows: int
    cols: int
    res: float
    days: int

    def factor(self, scale: float | None) -> int:
        """Fine pixels per coarse cell side at a nominal scale in metres (None: the coarse grid)."""
        return 1 if scale is None else nest_factor(self.res, float(scale))

    def pixels(self, scale: float | None) -> int:
        return self.rows * self.cols * self.factor(scale) ** 2

    def pixel_days(self, scale: float | None, static: bool = False) -> int:
        return self.pixels(scale) * (1 if static else self.days)

    def cell_pixel_days(self, scale: float | None, cells: int = 1, static: bool = False) -> int:
        """Pixel-days of a block of cells x cells coarse cells (all days), bounded by the region."""
        side = self.factor(scale) * cells
        return min(side * side, self.pixels(scale)) * (1 if static else self.days)

    def visited_pixel_days(self, scale: float | None, bags: int | None) -> int:
        """Pixel-days the samples step reads at a scale: the series of the cells its `bags` bags fall in (each bag one
        cell-day, so at most `bags` cells; the whole region where `bags` is None: targets read whole)."""
        cells = self.rows * self.cols if bags is None else min(self.rows * self.cols, bags)
        return cells * self.factor(scale) ** 2 * self.days

    def halo_pixel_days(self, scale: float | None, row: int, col: int, rows: int, cols: int,
                        halo: int = 0) -> int:
        """Pixel-days of the cells `rows` x `cols` from (`row`, `col`) grown by `halo` cells on each side, cut to the
        region: what a refine tile reads (REFINE_HALO)."""
        height = min(self.rows, row + rows + halo) - max(0, row - halo)
        width = min(self.cols, col + cols + halo) - max(0, col - halo)
        return height * width * self.factor(scale) ** 2 * self.days

    def budget_block(self, scale: float | None, budget: float, static: bool = False) -> int:
        """Pixel-days of the largest square block of whole coarse cells within `budget` pixel-days (one cell at
        least), as resample and evaluate cut their work; bounded by the region."""
        per_cell = self.factor(scale) ** 2 * (1 if static else self.days)
        cells = max(1, int(math.sqrt(budget / per_cell)))
        return min(cells * cells * per_cell, self.pixel_days(scale, static))


@dataclass(frozen=True)
class Point:
    """One benchmark measurement: a rule's job of a given size, and where the number comes from."""

    rule: str
    work: float
    held: float
    cpu_s: float
    rss_mb: float
    source: str


_TINY = "the tiny config's SLURM check (/tmp/smdown-slurm.CoKPaU/{local,slurm}/results/tiny/benchmarks)"
_DEMO3 = "demo 3 x 3 cells, 40 days (/tmp/simpanel/wet_winter_rainfed/results/demo/benchmarks)"
_DEMO4 = "demo 4 x 4 cells, 40 days (/tmp/fresh_run and /tmp/panel_run/.../hot_dry_irrigated benchmarks)"
_DEMO4X = "demo 10 x 8 cells, 40 days, tiles of 2 x 2 cells (/tmp/demo4x: python -m experiments.lines, 2026-12-07)"
_BENCH = "python -m experiments.bench predict, demo 4 x 4 cells (README, Speed: predict_rf, root zone)"

# Sizes: tiny fine scale 1000 m = 9 x 9 pixels a cell, 18 x 18 pixels, 16 days -> 5184 pixel-days, a
# one-cell block 1296; demo 30 m = 300 x 300 pixels a cell: 4 x 4 cells x 40 days = 57.6 M pixel-days,
# 3 x 3 = 32.4 M, a one-cell block 3.6 M. Training examples: tiny 1000 (one scale), demo 24000 x 3 scales.
CALIBRATION: tuple[Point, ...] = (
    # predict: the deep members, correction, ensemble, spread; work = fine pixel-days, held = one block
    Point("predict", 5184, 1296, 13.52, 862.6, _TINY),
    Point("predict", 32.4e6, 3.6e6, 143.33, 2459.4, _DEMO3),
    # predict with the random forest joining the ensemble (ensemble.forest, the default): the deep members by ONNX
    # Runtime and the forest in one job; work = the tile's fine pixel-days, held = one block
    Point("predict_forest", 5184, 1296, 5.44, 842.07, "the tiny config's SLURM check, this code (CI on a fresh clone, "
          "/tmp/smdown-slurm.mkRKDD/{local,slurm}/results/tiny/benchmarks)"),
    Point("predict_forest", 14.4e6, 3.6e6, 24.10, 2160.83, "demo 5 x 4 cells, 40 days, a 2 x 2-cell tile, the largest "
          "of 12 jobs (make run, results/demo/benchmarks/predict)"),
    Point("predict_forest", 72e6, 3.6e6, 52.16, 1979.73, "demo 5 x 4 cells, 40 days, one tile, the LSTM and the forest "
          "compiled by numba, the larger of the two layers (make run of 2026-12-07, results/demo/benchmarks/predict)"),
    # predict_rf: the random forest's map
    Point("predict_rf", 5184, 1296, 4.34, 222.5, _TINY),
    Point("predict_rf", 57.6e6, 3.6e6, 72.1, 1236.0, _BENCH),
    # cubic_baseline: the cubic map read again and corrected, tile by tile; work = the tile's fine pixel-days, held =
    # one block
    Point("cubic_baseline", 5184, 1296, 0.24, 76.17, "the tiny config, both layers' tile (snakemake the tile's "
          "cubic.tif, results/tiny/benchmarks/cubic_baseline)"),
    Point("cubic_baseline", 14.4e6, 3.6e6, 1.88, 354.86, "demo 5 x 4 cells, 40 days, the 2 x 2-cell tiles of both "
          "layers, the largest of 8 jobs (results/demo/benchmarks/cubic_baseline)"),
    # uncertainty: one tile's map, the merged ensemble and spread read again (and, for station_fit learned, the
    # surface's default, the predictors on the 30 m grid); held = its block of whole cells (8 M pixel-days at most,
    # one cell at least)
    Point("uncertainty", 5184, 1296, 0.49, 129.89, "the tiny config in the test suite, the rootzone's tile "
          "(pytest tiny run, results/tiny/benchmarks/uncertainty)"),
    Point("uncertainty", 14.4e6, 3.6e6, 4.82, 588.09, "demo 5 x 4 cells, 40 days, a 2 x 2-cell tile of the surface "
          "(learned), the largest of 12 jobs (results/demo/benchmarks/uncertainty)"),
    # calibrate_uncertainty: the stations' pixels (and the detail's halo) over every day; work and held = one coarse
    # cell's pixel-days at 30 m (a proxy: the days count, the region does not)
    # (with a refinement also fit_refinement's table of held-out shifts, a row a station-day)
    Point("calibrate_uncertainty", 1296, 1296, 1.44, 200.86, "the tiny config in the test suite, the surface "
          "(learned; results/tiny/benchmarks/calibrate_uncertainty)"),
    Point("calibrate_uncertainty", 3.6e6, 3.6e6, 4.24, 208.58, "demo 5 x 4 cells, 40 days, 12 stations, the surface "
          "(learned, refined: the held-out shifts read from fit_refinement's table; "
          "results/demo/benchmarks/calibrate_uncertainty)"),
    # fit_refinement: the merged ensemble_raw at the stations' pixels and each refine predictor over the stations'
    # cells, every day; work and held = one coarse cell's pixel-days at 30 m (a proxy, as calibrate_uncertainty's)
    Point("fit_refinement", 1296, 1296, 1.40, 219.77, "the tiny config (.test/config.yaml), the surface, 4 stations "
          "(results/tiny/benchmarks/fit_refinement)"),
    Point("fit_refinement", 3.6e6, 3.6e6, 5.35, 340.77, "demo 5 x 4 cells, 40 days, 12 stations, the root zone, "
          "with the held-out shifts (results/demo/benchmarks/fit_refinement)"),
    Point("fit_refinement", 3.6e6, 3.6e6, 5.39, 338.87, "the same, the surface"),
    # refine: one tile's refined ensemble from the merged ensemble_raw and the predictors; work = the pixel-days of
    # the tile and the REFINE_HALO cells around it (Region.halo_pixel_days: their predictors' cell means are read),
    # held = its block of whole cells (8 M pixel-days at most, one cell at least)
    Point("refine", 5184, 1296, 0.46, 128.76, "the tiny config (.test/config.yaml), the surface's tile "
          "(results/tiny/benchmarks/refine)"),
    Point("refine", 2.88e8, 3.6e6, 15.14, 273.34, "demo 10 x 8 cells, 40 days, 2 x 2-cell tiles whose halo covers the "
          "region, the largest CPU and RSS of 80 jobs (" + _DEMO4X + ")"),
    # merge_tiles (and merge_scale, the same io.merge): one map written strip by strip from its tiles; held = a strip
    # of whole cell rows (32 M pixel-days at most)
    Point("merge_tiles", 5184, 5184, 0.23, 90.07,
          "the tiny config's SLURM check (/tmp/smdown-slurm.*/slurm/results/tiny)"),
    Point("merge_tiles", 72e6, 14.4e6, 2.37, 258.3, "demo 5 x 4 cells, 40 days, every merge_tiles and merge_scale job "
          "(/tmp/fresh3, make run)"),
    # 40 tiles merged into a COG on 2 threads (tiles.merge_threads; CPU of both threads): the largest of 8 merge_tiles
    Point("merge_tiles", 2.88e8, 14.4e6, 22.55, 363.88, _DEMO4X + ", downscaled/surface/uncertainty"),
    # resample: one variable onto one scale (the heaviest, daily 30 m precipitation / NDVI / NDWI / coarse SM);
    # held = its block (resample.BLOCK_PIXEL_DAYS at most): memory is bounded, the line is nearly flat
    Point("resample", 5184, 5184, 1.85, 213.6, _TINY),
    Point("resample", 57.6e6, 2**23, 18.01, 633.0, _DEMO4),
    # the whole region at 50 m, a daily variable (NDWI): the largest of the 27 whole-region resample jobs
    Point("resample", 1.037e8, 5.18e6, 13.56, 539.86, _DEMO4X + ", scales/50/ndwi"),
    # samples: one layer x scale; work = the pixel-days of the cells it visits (Region.visited_pixel_days: the
    # series of the cells its bags fall in, every cell of these small regions), held = one coarse cell's pixel-days
    Point("samples", 576, 144, 0.92, 94.0, _TINY),
    Point("samples", 57.6e6, 3.6e6, 8.22, 399.5, _DEMO4),
    Point("samples", 2.88e8, 3.6e6, 15.24, 391.87, _DEMO4X + ", samples/surface/30 (80 cells, each with bags)"),
    # evaluate: both layers' maps; work = fine pixel-days x layers, held = its windows (20 M values at most)
    Point("evaluate", 10368, 10368, 3.24, 186.0, _TINY),
    Point("evaluate", 115.2e6, 20e6, 84.34, 588.2, _DEMO4),
    # demo: the whole synthetic world at 30 m over days + 30 spin-up days (tiny 600 x 600 x 46; 4 x 4: 1200^2 x 70)
    Point("demo", 16.56e6, 16.56e6, 6.20, 331.8, _TINY),
    Point("demo", 100.8e6, 100.8e6, 57.63, 1838.0, _DEMO4),
    # training family: work = examples x epochs (x trials), held = examples
    Point("train", 2000, 1000, 9.01, 748.3, _TINY),
    Point("train", 1.8e6, 72000, 72.87, 1861.8, _DEMO3 + "; " + _DEMO4),
    Point("tune", 2000, 1000, 22.18, 804.1, _TINY),
    Point("tune", 1.728e6, 72000, 105.21, 2385.3, _DEMO3),
    Point("train_rf", 1000, 1000, 8.70, 750.6, _TINY),
    Point("train_rf", 72000, 72000, 35.48, 1120.9, _DEMO4),
    # sensitivity: work and held = examples (its samples are drawn from them)
    Point("sensitivity", 1000, 1000, 22.10, 787.2, _TINY),
    Point("sensitivity", 72000, 72000, 34.94, 1235.6, _DEMO4),
    # terrain: work = DEM pixels, held = one window and its halo (smdown.preparing.terrain.WINDOW_PIXELS) or the whole DEM
    # where smaller; /usr/bin/time on smdown.preparing.prepare_steps.terrain (windowed code): slope on the tiny demo's DEM
    # (708 x 611 at 30 m); slope, aspect and twi on the demo's (1374 x 1183, one window) and on a synthetic
    # 6000 x 6000 DEM (9 windows of 2048 x 2048)
    Point("terrain", 432588, 432588, 1.47, 120.6, "/usr/bin/time, tiny demo DEM (/tmp/smdown-slurm.CoKPaU/local)"),
    Point("terrain", 1625442, 1625442, 4.03, 480.5, "/usr/bin/time, demo DEM (/tmp/fresh_run/resources/demo)"),
    Point("terrain", 36e6, 4210704, 75.84, 1329.1, "/usr/bin/time, synthetic 6000 x 6000 DEM"),
)


_CHECK = "python -m experiments.bench predict --jobs predict on the 3 x 3 demo (/tmp/simpanel/wet_winter_rainfed), this code"
# Checks, not fitted: the predict job alone at other shapes of the same size. The region 4 x larger at 10 days
# (32.4 M pixel-days, one block 0.9 M) took about what the region at 40 days did (175.7 against 161.6 wall s,
# load 6-8): time follows the pixel-days. It peaked at 1331 MB against 1213 MB for the region itself at 10 days,
# and at 1069 MB with GDAL_CACHEMAX=64: the growth was GDAL's block cache, which by default takes up to 5 % of the
# machine's memory (12.8 GB on a 256 GB node, whatever the job asked for). So the workflow caps it at 256 MB
# where unset (workflow/rules/common.smk), and memory follows the block. The requests cover every check.
CHECKS: tuple[Point, ...] = (
    Point("predict", 8.1e6, 0.9e6, 27.18, 1213.0, _CHECK + ", 10 days"),
    Point("predict", 32.4e6, 3.6e6, 88.43, 1840.0, _CHECK + ", 40 days"),
    Point("predict", 32.4e6, 0.9e6, math.nan, 1331.0, _CHECK + ", the region tiled 2 x 2, 10 days (CPU not printed)"),
    Point("predict", 32.4e6, 0.9e6, 76.64, 1069.0, _CHECK + ", the region tiled 2 x 2, 10 days, GDAL_CACHEMAX=64"),
)

@dataclass(frozen=True)
class Model:
    start_s: float
    s_per_unit: float
    base_mb: float
    mb_per_unit: float

    def cpu_s(self, work: float) -> float:
        return self.start_s + self.s_per_unit * work

    def rss_mb(self, held: float) -> float:
        return self.base_mb + self.mb_per_unit * held


def fit(points: list[Point]) -> Model:
    """The line through the largest measurement at the smallest and at the largest size (CPU on work, RSS on held)."""

    def line(pairs: list[tuple[float, float]]) -> tuple[float, float]:
        x0, x1 = min(x for x, _ in pairs), max(x for x, _ in pairs)
        y0 = max(y for x, y in pairs if x == x0)
        y1 = max(y for x, y in pairs if x == x1)
        slope = 0.0 if x1 == x0 else max(0.0, (y1 - y0) / (x1 - x0))
        return max(y0, y1 - slope * x1), slope

    start, per_unit = line([(p.work, p.cpu_s) for p in points])
    base, per_held = line([(p.held, p.rss_mb) for p in points])
    return Model(start, per_unit, base, per_held)


# The fitted coefficients (fit() on CALIBRATION; tests/test_resources.py checks they agree): CPU seconds at no
# size, CPU seconds per unit of work, MB at no size, MB per unit held. Units: pixel-days for the raster rules,
# examples (x epochs, x trials) for the training rules.
MODELS: dict[str, Model] = {
    "predict": Model(13.52, 4.007e-06, 862.6, 4.437e-04),
    "predict_forest": Model(5.44, 6.489e-07, 842.07, 3.665e-04),
    "predict_rf": Model(4.34, 1.176e-06, 222.5, 2.816e-04),
    "cubic_baseline": Model(0.24, 1.139e-07, 76.17, 7.744e-05),
    "resample": Model(1.85, 1.129e-07, 213.6, 5.003e-05),
    "samples": Model(0.92, 4.972e-08, 94.0, 8.486e-05),
    "uncertainty": Model(0.49, 3.008e-07, 129.89, 1.273e-04),
    "calibrate_uncertainty": Model(1.44, 7.781e-07, 200.86, 2.145e-06),
    "fit_refinement": Model(1.40, 1.109e-06, 219.77, 3.362e-05),
    "refine": Model(0.46, 5.097e-08, 128.76, 4.018e-05),
    "merge_tiles": Model(0.23, 7.750e-08, 90.07, 1.902e-05),
    "evaluate": Model(3.24, 7.041e-07, 186.0, 2.012e-05),
    "demo": Model(6.2, 6.105e-07, 331.8, 1.788e-05),
    "train": Model(9.01, 3.552e-05, 748.3, 1.568e-02),
    "tune": Model(22.18, 4.811e-05, 804.1, 2.227e-02),
    "train_rf": Model(8.7, 3.772e-04, 750.6, 5.215e-03),
    "sensitivity": Model(22.1, 1.808e-04, 787.2, 6.315e-03),
    "terrain": Model(1.47, 2.091e-06, 120.6, 3.199e-04),
}
# Not benchmarked (no `benchmark:` in its rule): ensemble loads the members and the validation examples, as
# sensitivity does.
# evaluate_tile does the reads of every map that the evaluate rule did whole (the coarse check, the seams), so
# evaluate's line bounds it; the evaluate job now reads the test cells only.
MODELS["evaluate_tile"] = MODELS["evaluate"]
MODELS["ensemble"] = MODELS["sensitivity"]
MODELS["resample_tile"] = MODELS["resample"]  # the same step on a tile's cells


@dataclass(frozen=True)
class Written:
    """One measurement of what a step writes: the bytes of its outputs for `work` units (30 m pixel-days of a
    layer's maps, pixel-days of a variable at its scale, pixels of a static raster, training examples), and where
    the number comes from."""

    rule: str
    work: float
    nbytes: float
    source: str


_FILES = ("the file sizes (du -b) of the demo run made by `make run` (5 x 4 cells, 40 days, 30 m: 1.8 M pixels, "
          "72 M pixel-days a layer; float32, ZSTD level 1, floating-point predictor, 256 x 256 tiles)")
# The maps as written today (float32, NaN nodata, ZSTD level 1 with the floating-point predictor): 3-4 bytes a
# pixel-day for a model's map (its low mantissa bits are noise to ZSTD), under 0.4 for the smooth cubic ones. Each
# measured on both layers; the larger is kept (an upper envelope, as the CPU lines).
WRITTEN: tuple[Written, ...] = (
    # predict: the tile's dnn, cnn, lstm, rf, ensemble (ensemble_raw where stations refine it) and ensemble_std
    Written("predict", 72e6, 1_185_037_317, _FILES + ", downscaled/surface/{dnn,cnn,lstm,rf,ensemble_raw,ensemble_std} "
            "(make run of 2026-12-07)"),
    Written("predict", 72e6, 1_166_984_643, _FILES + ", the same of the root zone"),
    # predict writing the product alone (outputs.maps auto on a region of your own): ensemble_raw and ensemble_std
    Written("predict_product", 72e6, 425_732_168, _FILES + ", downscaled/surface/{ensemble_raw,ensemble_std}"),
    Written("predict_product", 72e6, 430_082_270, _FILES + ", the same of the root zone"),
    Written("cubic_baseline", 72e6, 55_141_648, _FILES + ", downscaled/surface/cubic{,_corrected}.tif"),
    Written("refine", 72e6, 207_305_261, _FILES + ", downscaled/surface/ensemble.tif (refined)"),
    Written("uncertainty", 72e6, 210_240_602, _FILES + ", downscaled/surface/uncertainty.tif"),
    # resample: one daily variable at one scale (its pixel-days at that scale): precipitation, NDVI, NDWI at 30 m
    Written("resample", 3 * 72e6, 478_124_318, _FILES + ", scales/30/{ndvi,ndwi,precipitation}.tif"),
    Written("resample_coarse", 72e6, 27_570_824, _FILES + ", scales/30/coarse_surface.tif"),
    # a static raster at one scale (its pixels): dem, sand, clay and the terrain rasters at 30 m
    Written("resample_static", 7 * 1.8e6, 35_708_909, _FILES + ", scales/30/{dem,sand,clay,slope,northness,eastness,twi}"),
    Written("terrain", 1.8e6, 24_915_692, _FILES + ", derived/{slope,northness,eastness,twi}.tif (30 m)"),
    # samples: one layer's examples at its three scales (24 000 each)
    Written("samples", 72000, 269_368_648, _FILES + ", samples/surface/{100,50,30}.npz"),
)
# Bytes written per unit of work (the largest measurement's ratio: the files grow with the pixel-days); merge_tiles
# writes what its tiles hold.
BYTES: dict[str, float] = {w.rule: max(x.nbytes / x.work for x in WRITTEN if x.rule == w.rule) for w in WRITTEN}


@dataclass(frozen=True)
class Request:
    mem_mb: int
    runtime: int  # minutes

    def exceeds(self) -> list[str]:
        """What a typical partition would refuse (GRANT_MEM_MB, GRANT_RUNTIME)."""
        out = []
        if self.mem_mb > GRANT_MEM_MB:
            out.append(f"mem_mb {self.mem_mb} > {GRANT_MEM_MB}")
        if self.runtime > GRANT_RUNTIME:
            out.append(f"runtime {self.runtime} min > {GRANT_RUNTIME}")
        return out


def request(rule: str, work: float, held: float, attempt: int = 1) -> Request:
    """The request of one job of `rule` processing `work` and holding `held` (units as in MODELS), on try `attempt`."""
    model = MODELS[rule]
    attempt = max(1, int(attempt))
    minutes = max(MIN_RUNTIME, math.ceil(RUNTIME_MARGIN * model.cpu_s(work) / 60.0))
    mem = max(MIN_MEM_MB, 100 * math.ceil(MEM_MARGIN * model.rss_mb(held) / 100.0))
    return Request(mem_mb=mem * attempt, runtime=minutes * attempt)


@dataclass(frozen=True)
class Stage:
    """Jobs of one step on the DAG's critical path: how many, the CPU seconds of each, the cores each holds."""

    name: str
    jobs: int
    cpu_s: float
    threads: int = 1
    written: float = 0.0  # bytes each job writes (BYTES)
    temporary: bool = False  # its outputs are tiles, removed once the next merge has merged them
    speedup: float = 1.0  # its wall time is cpu_s / speedup (the merges' threads)

    @property
    def wall_s(self) -> float:
        return self.cpu_s / self.speedup


# A merge on 2 threads (config tiles.merge_threads, GDAL_NUM_THREADS: GDAL compresses the blocks in threads, the
# bytes unchanged): a demo map of 20 one-cell tiles (72 M pixel-days) merged as a COG in 3.94 s on one thread and
# 2.62 s on two, as a plain GeoTIFF in 2.49 and 1.67 s (means of 2 runs, smdown.io.merge, idle 2-core machine), its
# CPU time 1.17 x one thread's
MERGE_THREADS, MERGE_SPEEDUP = 2, 1.5


def _merge_stage(name: str, jobs: int, pixel_days: float, written: float) -> Stage:
    """`jobs` merges of one map of `pixel_days` each (merge_tiles), each writing `written` bytes."""
    return Stage(name, jobs, MODELS["merge_tiles"].cpu_s(pixel_days), MERGE_THREADS, written=written,
                 speedup=MERGE_SPEEDUP)


def stages(pixels: float, days: int, layers: int = 2, scales: tuple[int, ...] = (100, 50, 30), dynamic: int = 3,
           static: int = 7, examples: int = 72000, epochs: int = 25, trials: int = 4, tune_epochs: int = 6,
           tiles: int = 1, test_share: float = 0.15 * 0.17, forest: bool = True, refine: bool = True,
           product: bool = False, bags: int = 375, mosaic: str = "cog", detail: bool = True) -> list[Stage]:
    """The run's heavy jobs, step by step in DAG order, for a region of `pixels` 30 m pixels a day over `days`, with
    the config's defaults (3 scales, precipitation/NDVI/NDWI, dem/sand/clay + 4 terrain rasters, 24000 examples per
    scale). `tiles`: the tiles a layer's prediction is split into (config tiles.cells): predict, predict_rf and
    cubic_baseline run one job per tile, and merge_tiles one per map (8 a layer); so do the 30 m resample jobs of the
    daily variables (kept, read through a VRT), the evaluation's reads of every map (evaluate_tile) and the uncertainty
    (after its calibration, one job a layer that reads the stations' pixels, bounded here by one coarse cell's map;
    its map merged by merge_tiles, `merge_uncertainty` here); the evaluation's last job reads the test cells x test
    days (`test_share` of the pixel-days: samples.test_cells x samples.test_days). `bags`: samples.per_scale / samples.bag_size,
    the cell-days the samples step draws (it reads those cells' series alone). `forest`: the random forest joins the ensemble
    (ensemble.forest), so predict predicts it and predict_rf does not run. `refine`: stations refine the ensemble
    (config refine, with stations): one fit a layer (fit_refinement, bounded like the calibration), one refine job a
    tile, the raw ensemble merged too (9 maps a layer) and the refined one after (`merge_refined`). `product`: the run
    writes the product alone (outputs.maps auto on a region of your own): predict writes the ensemble and its spread
    (BYTES predict_product), merge_tiles merges those two a layer (the spread and the raw ensemble are temporary
    files, counted here as kept: an upper bound) and no cubic baseline runs. `mosaic`: outputs.mosaic, cog (the maps
    merged, their tiles removed) or vrt (no merge: each map a VRT over its tiles, which are kept; a VRT takes
    seconds, not counted). `detail`: the root zone borrows the surface's detail (ensemble.rootzone_from_surface > 0),
    so its predict of a tile is a step after the surface's (`predict_rootzone`). CPU seconds from MODELS; the 2-thread jobs (predict, predict_rf, train_rf) hold 2 cores."""
    merges = mosaic == "cog"
    fine = min(scales)
    px_days = pixels * days
    out = [Stage("terrain", 1, MODELS["terrain"].cpu_s(1.25 * pixels), written=BYTES["terrain"] * pixels)]
    resample = []
    for scale in scales:
        share = (fine / scale) ** 2
        split = tiles if scale == fine else 1
        resample.append(Stage(f"resample {scale} m", dynamic * split,
                              MODELS["resample"].cpu_s(pixels * share * days / split),
                              written=BYTES["resample"] * pixels * share * days / split))
        resample.append(Stage(f"resample {scale} m static", static, MODELS["resample"].cpu_s(pixels * share),
                              written=BYTES["resample_static"] * pixels * share))
    resample.append(Stage("resample coarse SM", layers * tiles, MODELS["resample"].cpu_s(pixels * days / tiles),
                          written=BYTES["resample_coarse"] * px_days / tiles))
    out += resample
    predicted = BYTES["predict_product" if product else "predict"]  # predict's maps of a layer, a pixel-day
    baselines = [] if product else [Stage("cubic_baseline", layers * tiles,
                                          MODELS["cubic_baseline"].cpu_s(pixels * days / tiles),
                                          written=BYTES["cubic_baseline"] * px_days / tiles, temporary=merges)]
    merged = 2 if product else 9 if refine else 8  # merge_tiles' maps of a layer
    # the root zone's predict of a tile waits for the surface's where it borrows the surface's detail
    predict_jobs = [("predict", 1), ("predict_rootzone", 1)] if detail and layers == 2 else [("predict", layers)]
    maps = predicted + (0 if product else BYTES["cubic_baseline"])  # the bytes merge_tiles writes, a pixel-day
    cell = (9000 / fine) ** 2  # a 9 km cell's pixels at the finest scale
    # a refine tile reads its cells and REFINE_HALO cells around them (a square region of square tiles)
    side, region_side = math.sqrt(pixels / cell / tiles), math.sqrt(pixels / cell)
    refine_read = min(region_side, side + 2 * REFINE_HALO) ** 2 * cell * days
    visited = min(pixels / cell, bags) * cell * days  # at the finest scale: the cells the bags fall in (at most bags)
    out += [*[Stage(f"samples {scale} m", layers, MODELS["samples"].cpu_s(visited * (fine / scale) ** 2),
                    written=BYTES["samples"] * examples / len(scales)) for scale in scales],
            Stage("tune", layers * 3, MODELS["tune"].cpu_s(examples * trials * tune_epochs)),
            Stage("train", layers * 3, MODELS["train"].cpu_s(examples * epochs)),
            Stage("train_rf", layers, MODELS["train_rf"].cpu_s(examples), 2),
            Stage("ensemble", layers, MODELS["ensemble"].cpu_s(examples)),
            *[Stage(name, jobs * tiles, MODELS["predict_forest" if forest else "predict"].cpu_s(pixels * days / tiles), 2,
                    written=predicted * px_days / tiles, temporary=merges) for name, jobs in predict_jobs],
            *([] if forest or product else [
                Stage("predict_rf", layers * tiles, MODELS["predict_rf"].cpu_s(pixels * days / tiles), 2,
                      written=BYTES["predict"] / 6 * px_days / tiles, temporary=merges)]),
            *baselines,
            *([_merge_stage("merge_tiles", layers * merged, px_days, maps * px_days / merged)] if merges else []),
            *([Stage("fit_refinement", layers, MODELS["fit_refinement"].cpu_s(90_000 * days)),
               Stage("refine", layers * tiles, MODELS["refine"].cpu_s(refine_read),
                     written=BYTES["refine"] * px_days / tiles, temporary=merges),
               *([_merge_stage("merge_refined", layers, px_days, BYTES["refine"] * px_days)] if merges else [])]
              if refine else []),
            Stage("calibrate_uncertainty", layers, MODELS["calibrate_uncertainty"].cpu_s(90_000 * days)),
            Stage("uncertainty", layers * tiles, MODELS["uncertainty"].cpu_s(pixels * days / tiles),
                  written=BYTES["uncertainty"] * px_days / tiles, temporary=merges),
            *([_merge_stage("merge_uncertainty", layers, px_days, BYTES["uncertainty"] * px_days)] if merges else []),
            Stage("evaluate_tile", layers * tiles, MODELS["evaluate_tile"].cpu_s(pixels * days / tiles)),
            Stage("evaluate", 1, MODELS["evaluate"].cpu_s(layers * pixels * days * test_share)),
            Stage("sensitivity", layers, MODELS["sensitivity"].cpu_s(examples))]
    return out


# The steps that wait for each other (a later group starts when the earlier ones end); within a group all jobs
# may run at once. Wall time per job = its CPU time (predict's CPU/wall ratio on a quiet machine: 0.98).
_GROUPS = (("terrain",), ("resample",), ("samples",), ("tune",), ("train", "train_rf"), ("ensemble",),
           ("predict", "predict_rf", "cubic_baseline", "sensitivity"), ("predict_rootzone",), ("merge_tiles",), ("fit_refinement",), ("refine",),
           ("merge_refined",), ("calibrate_uncertainty",),
           ("uncertainty", "evaluate_tile"), ("merge_uncertainty",), ("evaluate",))


def project(plan: list[Stage], nodes: int, cores: int = 32) -> dict:
    """Jobs, CPU core-hours, core-hours held (cores x wall) and the wall time (hours) on `nodes` nodes of `cores`
    cores: each group of steps takes max(its longest job, its held core-seconds / all cores). Bytes: `written_gb`,
    all the jobs write; `disk_gb`, what the run holds at the end; `peak_gb`, the most it holds at once (the tiles
    of a step are removed once the next merge has merged them, so they and their merged maps are on disk together
    during the merge); `steps`, per group: its wall hours, bytes written and the disk peak while it runs."""
    wall, disk, peak, waiting = 0.0, 0.0, 0.0, 0.0
    steps = []
    for group in _GROUPS:
        members = [s for s in plan if s.name.split()[0] in group]
        if members:
            longest = max(s.wall_s for s in members)
            held = sum(s.jobs * s.wall_s * s.threads for s in members)
            hours = max(longest, held / (nodes * cores)) / 3600
            wall += hours * 3600
            written = sum(s.jobs * s.written for s in members)
            disk += written
            peak = max(peak, disk)
            steps.append({"step": "/".join(group), "jobs": sum(s.jobs for s in members), "wall_h": hours,
                          "written_gb": written / 1e9, "disk_peak_gb": disk / 1e9})
            waiting += sum(s.jobs * s.written for s in members if s.temporary)
            if any(s.name.startswith("merge") for s in members):  # the merged tiles are removed
                disk -= waiting
                waiting = 0.0
    return {"jobs": sum(s.jobs for s in plan), "cpu_core_h": sum(s.jobs * s.cpu_s for s in plan) / 3600,
            "held_core_h": sum(s.jobs * s.wall_s * s.threads for s in plan) / 3600, "wall_h": wall / 3600,
            "written_gb": sum(s.jobs * s.written for s in plan) / 1e9, "disk_gb": disk / 1e9, "peak_gb": peak / 1e9,
            "steps": steps}


def summarise_dry_run(text: str) -> list[dict]:
    """Per rule of a `snakemake -n` printout: its jobs and their largest mem_mb and runtime requests, with what a
    typical partition would refuse (Request.exceeds)."""
    rows: dict[str, dict] = {}
    rule = None
    for line in text.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.rstrip().endswith(":"):
            rule = line.split()[1].rstrip(":")
            rows.setdefault(rule, {"rule": rule, "jobs": 0, "mem_mb": 0, "runtime": 0})["jobs"] += 1
        elif rule and line.strip().startswith("resources:"):
            values = dict(item.split("=", 1) for item in line.split(":", 1)[1].replace(" ", "").split(",") if "=" in item)
            row = rows[rule]
            row["mem_mb"] = max(row["mem_mb"], int(values.get("mem_mb", 0)))
            row["runtime"] = max(row["runtime"], int(values.get("runtime", 0)))
            rule = None
    for row in rows.values():
        row["exceeds"] = "; ".join(Request(row["mem_mb"], row["runtime"]).exceeds())
    return [rows[r] for r in sorted(rows)]


def main() -> None:
    """`snakemake -n ... | python -m smdown.resources`: the requests per rule, as a Markdown table.
    `python -m smdown.resources project PIXELS DAYS [NODES ...] [--product] [--vrt]`: the projection on 10 and 100
    (or NODES) nodes of 32 cores: time, core-hours, bytes written and on disk, per step, and the largest jobs'
    requests; `--product`: a run that writes the product alone (outputs.maps auto on a region of your own), else
    every map; `--vrt`: the maps as VRTs over their kept tiles (outputs.mosaic vrt), else merged COGs."""
    import sys

    if sys.argv[1:2] == ["project"]:
        product = "--product" in sys.argv
        mosaic = "vrt" if "--vrt" in sys.argv else "cog"
        numbers = [a for a in sys.argv[2:] if not a.startswith("--")]
        pixels, days = float(numbers[0]), int(numbers[1])
        nodes_list = [int(n) for n in numbers[2:]] or [10, 100]
        print(f"maps written: {'the product alone (outputs.maps: auto, a region of your own)' if product else 'all'}; "
              f"{'VRTs over their kept tiles (outputs.mosaic: vrt)' if mosaic == 'vrt' else 'merged COGs'}\n")
        print("| jobs as | nodes | jobs | CPU core-hours | core-hours held | wall hours | written TB | peak on disk TB "
              "| kept TB |")
        print("|---|---|---|---|---|---|---|---|---|")
        for tiles, label in ((1, "one tile (tiles.cells: 0)"), (pixels / 90000 / 4, "tiles of 2 x 2 cells (default)"),
                             (pixels / 90000 / 16, "tiles of 4 x 4 cells")):
            plan = stages(pixels, days, tiles=max(1, round(tiles)), product=product, mosaic=mosaic)
            for nodes in nodes_list:
                p = project(plan, nodes)
                print(f"| {label} | {nodes} | {p['jobs']} | {p['cpu_core_h']:.0f} | {p['held_core_h']:.0f} | "
                      f"{p['wall_h']:.1f} | {p['written_gb'] / 1e3:.1f} | {p['peak_gb'] / 1e3:.1f} | "
                      f"{p['disk_gb'] / 1e3:.1f} |")
        tiles = max(1, round(pixels / 90000 / 4))
        for nodes in nodes_list:
            p = project(stages(pixels, days, tiles=tiles, product=product, mosaic=mosaic), nodes)
            print(f"\nsteps on {nodes} nodes of 32 cores, tiles of 2 x 2 cells ({tiles} a layer):")
            print("| step | jobs | wall hours | written GB | on disk at its peak GB |")
            print("|---|---|---|---|---|")
            for row in p["steps"]:
                print(f"| {row['step']} | {row['jobs']} | {row['wall_h']:.2f} | {row['written_gb']:.0f} | "
                      f"{row['disk_peak_gb']:.0f} |")
        block = 90000 * days  # one coarse cell at 30 m, all days: predict's block
        largest = {"predict (a 2 x 2-cell tile)": request("predict_forest", 4 * block, block),
                   **({"merge_tiles (a layer's map)": request("merge_tiles", pixels * days, min(32e6, pixels * days))}
                      if mosaic == "cog" else {}),
                   "resample (30 m, a 2 x 2-cell tile)": request("resample", 4 * block, 2**23),
                   "resample (50 m, a daily variable, the whole region)": request(
                       "resample", pixels * (30 / 50) ** 2 * days, 2**23),
                   "samples (30 m, a layer: the cells its 375 bags fall in)": request(
                       "samples", min(pixels, 375 * 90000) * days, block),
                   "evaluate_tile (a 2 x 2-cell tile)": request("evaluate_tile", 4 * block, 20e6),
                   "evaluate (the test cells and days)": request("evaluate", 2 * pixels * days * 0.15 * 0.17, 20e6)}
        print("\n| largest job | mem_mb | runtime min | beyond 48 h / 256 GB |")
        print("|---|---|---|---|")
        for name, asked in largest.items():
            print(f"| {name} | {asked.mem_mb} | {asked.runtime} | {'; '.join(asked.exceeds()) or '-'} |")
        return
    rows = [r for r in summarise_dry_run(sys.stdin.read()) if r["rule"] != "all"]
    print("| rule | jobs | mem_mb (largest) | runtime min (largest) | beyond a typical partition |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rule']} | {r['jobs']} | {r['mem_mb']} | {r['runtime']} | {r['exceeds'] or '-'} |")
    print(f"\n{sum(r['jobs'] for r in rows)} jobs")


if __name__ == "__main__":
    main()
