"""Shared tiny-raster fixtures: small georeferenced rasters with known values, written with smdown.io in tmp dirs.

The coarse grid is a 2 x 2 window of the global EASE-Grid 2.0 9 km grid (EPSG:6933) whose top-left cell holds
(LON, LAT) in California's Central Valley; predictors sit on grids of other CRSs (lon/lat, UTM 10N) that cover it.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from affine import Affine

from smdown import config as smconfig
from smdown import io
from smdown.grid import Grid, ease2_9km_grid

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
LON, LAT = -120.55, 37.25
UTM = "EPSG:32610"  # UTM zone 10N holds LON
LONLAT = "EPSG:4326"
START = "2023-05-01"
DAYS = 10


# The tiny run of the tests and CI (.test/config.yaml): training at 3000 m only, small models, a few epochs.
TINY_CONFIG = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
# its science settings, for runs on inputs of their own
TINY_SETTINGS = {key: value for key, value in TINY_CONFIG.items() if key not in ("run", "demo", "scales")}
TINY_LAYERS = ("surface", "rootzone")
# the schema's defaults of what predict_layer and refine_map take from config predict
PREDICT_SETTINGS = {key: smconfig.validate({})["predict"][key] for key in ("block_cells", "correction", "valid_range")}
PREDICT_SETTINGS["valid_range"] = tuple(PREDICT_SETTINGS["valid_range"])


def tiny_config(inputs: Path) -> dict:
    """The tiny run on the demo world written under `inputs` (write_tiny_world), given as the user's own rasters."""
    files = {name: str(inputs / f"{name}.tif") for name in ("precipitation", "ndvi", "ndwi", "dem", "sand", "clay")}
    return {
        "run": TINY_CONFIG["run"],
        "inputs": {
            "coarse": {layer: str(inputs / f"coarse_{layer}.tif") for layer in TINY_LAYERS},
            "predictors": files,
            "stations": str(inputs / "stations.csv"),
            "truth": {layer: str(inputs / f"truth_{layer}.tif") for layer in TINY_LAYERS},
        },
        "scales": [3000, 900],
        **TINY_SETTINGS,
    }


def write_tiny_world(directory: Path) -> None:
    """The demo world at 2x2 coarse cells, 24 days, with a fine grid of 10 subdivisions (about 900 m)."""
    from smdown.preparing.demo import make_world, write_world

    world = make_world({"coarse_rows": 2, "coarse_cols": 2, "days": 24, "spinup_days": 5, "stations": 4,
                        "optical_res": 300.0}, fine_factor=10)
    write_world(world, directory)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A complete tiny run through every rule, then `snakemake --report`: (workdir, results folder, report)."""
    import time

    workdir = tmp_path_factory.mktemp("tiny")
    write_tiny_world(workdir / "inputs")
    start = time.perf_counter()
    run_workflow(workdir, tiny_config(workdir / "inputs"))
    report = workdir / "report.html"
    run_workflow(workdir, None, "--report", str(report))
    print(f"tiny run + report: {time.perf_counter() - start:.0f} s")
    return workdir, workdir / "results" / TINY_CONFIG["run"], report


def run_workflow(workdir: Path, config: dict | None, *args: str, cores: int = 2, timeout: int = 1500,
                 env: dict | None = None, check: bool = True, override: dict | None = None) -> subprocess.CompletedProcess:
    """Run the workflow in `workdir` with `config` (written to workdir/config.yaml; None keeps the file there) and
    `override` (a second config file on top of it, as a user changes a setting).

    With check, a non-zero exit fails the test with the tail of Snakemake's output."""
    configfile = workdir / "config.yaml"
    if config is not None:
        configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    configfiles = [str(configfile)]
    if override is not None:
        configfiles.append(str(workdir / "override.yaml"))
        Path(configfiles[-1]).write_text(yaml.safe_dump(override, sort_keys=False))
    cmd = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", *configfiles,
           "--cores", str(cores), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    return done


def scheduled_jobs(workdir: Path, override: dict | None = None, config: dict | None = None) -> dict[str, int]:
    """Rule -> job count of a dry run of the workflow in `workdir` (`override`, `config`: as run_workflow's); empty
    where there is nothing to be done."""
    done = run_workflow(workdir, config, "-n", "--quiet", "rules", override=override)
    text = done.stdout + done.stderr
    if "Nothing to be done" in text:
        return {}
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", text[text.index("Job stats"):], flags=re.MULTILINE))
    counts.pop("total", None)
    return {rule: int(n) for rule, n in counts.items()}


def make_dates(start: str, n: int, step: int = 1) -> list[str]:
    """n dates (YYYY-MM-DD) from start, every `step` days."""
    first = dt.date.fromisoformat(start)
    return [(first + dt.timedelta(days=i * step)).isoformat() for i in range(n)]


def coarse_grid_at(lon: float = LON, lat: float = LAT, rows: int = 2, cols: int = 2) -> Grid:
    """The rows x cols EASE-Grid 2.0 9 km window whose top-left cell holds (lon, lat)."""
    x, y = io.lonlat_to("EPSG:6933", lon, lat)
    return ease2_9km_grid(float(x[0]), float(y[0]), rows, cols)


def grid_around(grid: Grid, crs: str, res: float, margin: float) -> Grid:
    """A north-up grid in `crs` with pixels of `res` (CRS units) covering `grid`'s footprint plus `margin` on each side."""
    left, bottom, right, top = grid.bounds
    xs = np.linspace(left, right, 21)
    ys = np.linspace(bottom, top, 21)
    ex = np.concatenate([xs, xs, np.full(21, left), np.full(21, right)])
    ey = np.concatenate([np.full(21, bottom), np.full(21, top), ys, ys])
    lons, lats = io.to_lonlat(grid.crs, ex, ey)
    px, py = io.lonlat_to(crs, lons, lats)
    x0 = math.floor((px.min() - margin) / res) * res
    y1 = math.ceil((py.max() + margin) / res) * res
    width = math.ceil((px.max() + margin - x0) / res)
    height = math.ceil((y1 - py.min() + margin) / res)
    return Grid(crs, Affine(res, 0.0, x0, 0.0, -res, y1), height, width)


def pixel_centres(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """x, y of every pixel centre of a grid (rows x cols arrays, in the grid's CRS)."""
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    t = grid.transform
    return t.c + cols * t.a, t.f + rows * t.e


def smooth_field(grid: Grid) -> np.ndarray:
    """A smooth positive field of lon/lat (so it means the same thing on every CRS), float32 rows x cols."""
    x, y = pixel_centres(grid)
    lon, lat = io.to_lonlat(grid.crs, x.ravel(), y.ravel())
    lon, lat = lon.reshape(x.shape), lat.reshape(x.shape)
    value = 0.3 + 0.1 * np.sin((lon - LON) * 40.0) * np.cos((lat - LAT) * 30.0) + 0.5 * (lat - LAT)
    return value.astype(np.float32)


@pytest.fixture(scope="session")
def coarse_grid() -> Grid:
    return coarse_grid_at()


@pytest.fixture
def write_raster(tmp_path: Path) -> Callable[..., Path]:
    """write_raster(name, data, grid, dates=None) -> path of a GeoTIFF written with smdown.io.write_stack."""

    def _write(name: str, data: np.ndarray, grid: Grid, dates: list[str] | None = None) -> Path:
        path = tmp_path / name
        io.write_stack(path, io.Stack(np.asarray(data, dtype=np.float32), grid, dates))
        return path

    return _write


def write_inputs(directory: Path, coarse: Grid) -> dict:
    """A complete, valid set of small local inputs (the data contract) for a run on `coarse`; returns the
    config's `inputs` mapping (absolute paths)."""
    directory.mkdir(parents=True, exist_ok=True)
    days = make_dates(START, DAYS)
    rng = np.random.default_rng(0)

    def write(name, data, grid, dates=None):
        path = directory / name
        io.write_stack(path, io.Stack(np.asarray(data, dtype=np.float32), grid, dates))
        return str(path)

    surface = 0.2 + 0.01 * np.arange(DAYS)[:, None, None] + 0.02 * rng.random((DAYS, *coarse.shape))
    rootzone = surface * 1.2
    lonlat_10km = grid_around(coarse, LONLAT, 0.1, 0.1)
    lonlat_soil = grid_around(coarse, LONLAT, 0.01, 0.01)
    utm_300m = grid_around(coarse, UTM, 300.0, 600.0)
    ndvi_dates = make_dates(START, 3, step=5)
    ndvi = np.stack([smooth_field(utm_300m)] * 3)
    ndvi[1, :5, :5] = np.nan  # a cloud
    return {
        "coarse": {
            "surface": write("coarse_surface.tif", surface, coarse, days),
            "rootzone": write("coarse_rootzone.tif", rootzone, coarse, days),
        },
        "predictors": {
            "precipitation": write("precipitation.tif", rng.gamma(0.5, 4.0, (DAYS, *lonlat_10km.shape)), lonlat_10km,
                                   days),
            "ndvi": write("ndvi.tif", ndvi, utm_300m, ndvi_dates),
            "dem": write("dem.tif", 100.0 + 1000.0 * smooth_field(utm_300m)[None], utm_300m),
            "sand": write("sand.tif", 40.0 + 10.0 * smooth_field(lonlat_soil)[None], lonlat_soil),
            "clay": write("clay.tif", 20.0 + 5.0 * smooth_field(lonlat_soil)[None], lonlat_soil),
        },
    }


@pytest.fixture
def local_inputs(tmp_path: Path, coarse_grid: Grid) -> dict:
    """The config `inputs` of a valid local run on the 2 x 2 coarse grid, files under tmp_path/inputs."""
    return write_inputs(tmp_path / "inputs", coarse_grid)
