"""Bad input, end to end through Snakemake: each stops with one clear message naming the file or key, before any job
runs, and leaves what results/<run>/ already holds intact.

Snakemake runs from a temporary working directory (`--directory`) on the project's Snakefile with the user's config
(`--configfile`); its inputs are tiny rasters written there (conftest.write_inputs).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from conftest import LONLAT, ROOT, SNAKEMAKE, grid_around, make_dates, run_workflow, write_inputs

from smdown import io
from smdown.grid import Grid

RUN = "bad"
SENTINEL = f"results/{RUN}/downscaled/surface/ensemble.tif"

pytestmark = pytest.mark.workflow


def _snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    return run_workflow(workdir, config, *args, cores=1, timeout=120, check=False)


@pytest.fixture
def run_dir(tmp_path, coarse_grid):
    """A working directory with valid inputs, a config naming them, and a finished-looking result file."""
    inputs = write_inputs(tmp_path / "inputs", coarse_grid)
    sentinel = tmp_path / SENTINEL
    sentinel.parent.mkdir(parents=True)
    sentinel.write_bytes(b"a result from an earlier run")
    os.utime(sentinel, (1_600_000_000, 1_600_000_000))
    return tmp_path, {"run": RUN, "inputs": inputs}


def _assert_stops_cleanly(workdir: Path, result: subprocess.CompletedProcess, message: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert len(re.findall(message, output)) == 1, output  # one message, not repeated
    assert "Traceback" not in output, output
    assert not re.search(r"^\s*(local)?rule \w+:", output, re.MULTILINE), output  # no job started
    assert "Building DAG" not in output, output
    sentinel = workdir / SENTINEL
    assert sentinel.read_bytes() == b"a result from an earlier run" and sentinel.stat().st_mtime == 1_600_000_000
    written = sorted(str(p.relative_to(workdir)) for p in (workdir / "results").rglob("*") if p.is_file())
    assert written == [SENTINEL]
    assert not (workdir / "resources").exists() and not (workdir / "logs").exists()
    return output


def test_valid_inputs_pass_the_checks(run_dir):
    """The control: the same set-up with nothing wrong builds the whole DAG (so the failures below are the inputs')."""
    workdir, config = run_dir
    result = _snakemake(workdir, config, "-n")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for job in ("resample", "terrain", "samples", "train", "predict"):
        assert re.search(rf"^\s*rule {job}:", output, re.MULTILINE), output
    assert (workdir / SENTINEL).read_bytes() == b"a result from an earlier run"


def test_a_layer_specific_predictor_is_resampled_and_used_by_its_layer_only(run_dir):
    workdir, config = run_dir
    config["inputs"]["layer_predictors"] = {"rootzone": {"sand": config["inputs"]["predictors"]["sand"]}}
    result = _snakemake(workdir, config, "-n", "--forceall", f"results/{RUN}/samples/rootzone/100.npz",
                        f"results/{RUN}/samples/surface/100.npz")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    jobs = dict((out, inputs.split(", ")) for inputs, out in re.findall(r"rule samples:\n\s+input: (.*)\n\s+output: (.*)", output))
    rootzone, surface = jobs[f"results/{RUN}/samples/rootzone/100.npz"], jobs[f"results/{RUN}/samples/surface/100.npz"]
    assert f"results/{RUN}/scales/100/sand_rootzone.tif" in rootzone and f"results/{RUN}/scales/100/sand.tif" not in rootzone
    assert f"results/{RUN}/scales/100/sand.tif" in surface and f"results/{RUN}/scales/100/sand_rootzone.tif" not in surface
    assert f"results/{RUN}/scales/100/clay.tif" in rootzone  # the shared rasters stay shared


def _rewrite(path: str, data: np.ndarray, grid: Grid, dates: list[str] | None) -> None:
    io.write_stack(path, io.Stack(data.astype(np.float32), grid, dates))


def _wrong_type(workdir, config):
    config["samples"] = {"per_scale": "many"}
    return r"config key 'samples\.per_scale': 'many' is not of type 'integer'"


def _unknown_key(workdir, config):
    config["sclaes"] = [1000, 30]
    return r"unknown key\(s\) 'sclaes'"


def _unknown_nested_key(workdir, config):
    config["samples"] = {"pacth": 5}
    return r"config key samples: unknown key\(s\) 'pacth'"


def _missing_file(workdir, config):
    config["inputs"]["predictors"]["ndvi"] = str(workdir / "inputs" / "ndvi_2023.tif")
    return re.escape(str(workdir / "inputs" / "ndvi_2023.tif")) + ": input file not found"


def _no_crs(workdir, config):
    path = config["inputs"]["predictors"]["dem"]
    with rasterio.open(path) as src:
        data, transform = src.read(), src.transform
    os.remove(path)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=1,
                       dtype="float32", transform=transform) as dst:
        dst.write(data)
    return re.escape(path) + ": raster has no CRS"


def _bands_not_dates(workdir, config):
    path = config["inputs"]["predictors"]["ndvi"]
    stack = io.read_stack(path)
    _rewrite(path, stack.data, stack.grid, ["scene 1", "scene 2", "scene 3"])
    return re.escape(path) + r": band descriptions must be dates YYYY-MM-DD"


def _coarse_dates_differ(workdir, config):
    path = config["inputs"]["coarse"]["rootzone"]
    stack = io.read_stack(path)
    _rewrite(path, stack.data, stack.grid, make_dates("2023-05-02", len(stack.dates)))
    # the file of the layer whose dates differ from the surface layer's is named
    return (rf"{re.escape(path)}: coarse layer 'rootzone' has other dates than the surface layer "
            r"\(10 days 2023-05-02\.\.2023-05-11 vs 10 days 2023-05-01\.\.2023-05-10\)")


def _no_overlap(workdir, config):
    path = config["inputs"]["predictors"]["sand"]
    far = Grid(LONLAT, Affine(0.01, 0, 10.0, 0, -0.01, 46.0), 20, 20)  # the Alps, not California
    _rewrite(path, np.full((1, 20, 20), 40.0), far, None)
    return re.escape(path) + r": predictor 'sand' does not overlap the coarse grid"


def _no_common_dates(workdir, config):
    path = config["inputs"]["predictors"]["precipitation"]
    stack = io.read_stack(path)
    _rewrite(path, stack.data, stack.grid, make_dates("2022-01-01", len(stack.dates)))
    return re.escape(path) + r": predictor 'precipitation' dates 2022-01-01\.\.2022-01-10 do not overlap"


def _static_with_bands(workdir, config):
    path = config["inputs"]["predictors"]["clay"]
    stack = io.read_stack(path, static=True)
    _rewrite(path, np.concatenate([stack.data, stack.data]), stack.grid, None)
    return re.escape(path) + r": static predictor 'clay' must have one band, found 2"


def _layer_predictor_with_bands(workdir, config):
    sand = io.read_stack(config["inputs"]["predictors"]["sand"], static=True)
    path = str(workdir / "inputs" / "sand_0-100cm.tif")
    _rewrite(path, np.concatenate([sand.data, sand.data]), sand.grid, None)
    config["inputs"]["layer_predictors"] = {"rootzone": {"sand": path}}
    return re.escape(path) + r": static predictor 'sand' must have one band, found 2"


def _refine_by_no_predictor_of_the_run(workdir, config):
    stations = workdir / "inputs" / "stations.csv"
    stations.write_text("station,lon,lat,date,surface,rootzone\nS1,-120.0,37.0,2023-05-01,0.2,0.25\n")
    config["inputs"]["stations"] = str(stations)
    config["refine"] = {"predictors": ["lai"]}
    return r"none of refine\.predictors \['lai'\] is a predictor of this run"


def _station_read_twice_on_a_day(workdir, config):
    stations = workdir / "inputs" / "stations.csv"
    stations.write_text("station,lon,lat,date,surface,rootzone\nS1,-120.0,37.0,2023-05-01,0.2,0.25\n"
                        "S1,-120.0,37.0,2023-05-01,0.22,0.25\n")
    config["inputs"]["stations"] = str(stations)
    return re.escape(str(stations)) + r": station 'S1' has 2 rows on 2023-05-01"


def _coarse_in_percent(workdir, config):
    path = config["inputs"]["coarse"]["surface"]
    stack = io.read_stack(path)
    _rewrite(path, stack.data * 100.0, stack.grid, stack.dates)
    return (re.escape(path) + r": coarse layer 'surface' has values 2\d\.\d+\.\.3\d\.\d+ \(in its 10 bands\); volumetric "
            r"soil moisture in m3/m3 lies within \[0, 1\]: these look like percent \(%vol\)\. Divide them by 100")


def _coarse_nodata_undeclared(workdir, config):
    path = config["inputs"]["coarse"]["rootzone"]
    stack = io.read_stack(path)
    data = stack.data.copy()
    data[:, 0, 0] = -9999.0  # an ocean cell's fill value, not declared as the file's nodata
    _rewrite(path, data, stack.grid, stack.dates)
    return re.escape(path) + r": coarse layer 'rootzone' has values -9999\.\..*-9999 looks like a nodata value"


def _coarse_on_a_geographic_grid(workdir, config):
    """A SMAP export from Earth Engine: EPSG:4326, about 0.08 degree cells."""
    lonlat = grid_around(io.read_grid(config["inputs"]["coarse"]["surface"]), LONLAT, 0.08, 0.0)
    for path in config["inputs"]["coarse"].values():
        dates = io.read_dates(path)
        _rewrite(path, np.full((len(dates), *lonlat.shape), 0.25), lonlat, dates)
    path = config["inputs"]["coarse"]["surface"]
    return (re.escape(path) + r": the coarse soil moisture is on a geographic grid \(EPSG:4326, cells of 0\.08 degrees.*"
            r"EASE-Grid 2\.0 9 km grid \(EPSG:6933, 9008\.055 m\)\. Warp it there .*gdalwarp -t_srs EPSG:6933 "
            r"-tr 9008\.055210146 9008\.055210146 -tap -r near " + re.escape(path))


def _predictor_over_half_the_region(workdir, config):
    path = config["inputs"]["predictors"]["ndvi"]
    stack = io.read_stack(path)
    half = stack.grid.width // 2  # the western half: the first coarse column and the margin
    _rewrite(path, stack.data[:, :, :half], stack.grid.window(0, 0, stack.grid.height, half), stack.dates)
    return (re.escape(path) + r": predictor 'ndvi' covers 50 % of the coarse grid's extent: 2 of the 4 coarse cells "
            r"with soil moisture have no value in its 3 bands \(the first at row 0, col 1: lon -120\.\d+, lat 37\.\d+\)")


def _predictor_all_nan(workdir, config):
    path = config["inputs"]["predictors"]["sand"]
    stack = io.read_stack(path, static=True)
    _rewrite(path, np.full_like(stack.data, np.nan), stack.grid, None)
    return re.escape(path) + r": predictor 'sand' has no value over the coarse grid \(all NaN or nodata in its one band\)"


def _static_name_in_another_case(workdir, config):
    config["static"] = ["DEM", "sand", "clay"]
    return (r"config key 'static': 'DEM' is not among 'inputs\.predictors' \['clay', 'dem', 'ndvi', 'precipitation', "
            r"'sand'\]; names are case-sensitive: did you mean 'dem'\?")


def _static_predictor_not_called_static(workdir, config):
    config["inputs"]["predictors"]["elevation"] = config["inputs"]["predictors"].pop("dem")
    path = config["inputs"]["predictors"]["elevation"]
    return (re.escape(path) + r": predictor 'elevation' has one band without a date: if it is static \(as a DEM or "
            r"soil texture\), add 'elevation' to config key 'static' \(now \['sand', 'clay'\]\)")


def _station_columns_named_otherwise(workdir, config):
    stations = workdir / "inputs" / "stations.csv"
    stations.write_text("station,lon,lat,date,sm_surface,sm_rootzone\nS1,-120.0,37.0,2023-05-01,0.2,0.25\n")
    config["inputs"]["stations"] = str(stations)
    return (re.escape(str(stations)) + r": unknown column\(s\) \['sm_surface', 'sm_rootzone'\]; expected "
            r"station,lon,lat,date,surface,rootzone")


def _station_lat_and_lon_swapped(workdir, config):
    stations = workdir / "inputs" / "stations.csv"
    stations.write_text("station,lon,lat,date,surface,rootzone\nS1,37.0,-120.0,2023-05-01,0.2,0.25\n")
    config["inputs"]["stations"] = str(stations)
    return (re.escape(str(stations)) + r": row 1 of the table \(station 'S1'\): lon 37\.0, lat -120\.0 are not "
            r"coordinates: lat and lon look swapped")


CASES = {
    "config value of the wrong type": _wrong_type,
    "unknown top-level key": _unknown_key,
    "unknown nested key": _unknown_nested_key,
    "missing input file": _missing_file,
    "raster without CRS": _no_crs,
    "band descriptions are not dates": _bands_not_dates,
    "coarse layers with different dates": _coarse_dates_differ,
    "predictor does not overlap the coarse grid": _no_overlap,
    "predictor dates do not overlap the coarse dates": _no_common_dates,
    "static predictor with two bands": _static_with_bands,
    "root-zone texture with two bands": _layer_predictor_with_bands,
    "refinement by no predictor of the run": _refine_by_no_predictor_of_the_run,
    "a station read twice on one day": _station_read_twice_on_a_day,
    "coarse soil moisture in percent": _coarse_in_percent,
    "coarse fill value not declared as nodata": _coarse_nodata_undeclared,
    "coarse soil moisture on a geographic grid": _coarse_on_a_geographic_grid,
    "predictor covering half the region": _predictor_over_half_the_region,
    "predictor all NaN": _predictor_all_nan,
    "static name in another case": _static_name_in_another_case,
    "static predictor not listed in static": _static_predictor_not_called_static,
    "station columns named otherwise": _station_columns_named_otherwise,
    "station lat and lon swapped": _station_lat_and_lon_swapped,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_stops_before_any_job_with_one_message(run_dir, case):
    workdir, config = run_dir
    message = CASES[case](workdir, config)
    result = _snakemake(workdir, config)
    _assert_stops_cleanly(workdir, result, message)


def test_a_config_of_your_own_gets_the_schemas_defaults_not_the_demos(run_dir):
    """config/config.yaml (the demo's run) is read only where no --configfile is given: one in the working directory
    that the user's config could not run with (an even CNN patch) leaves `--configfile mine.yaml` untouched, and is
    the run's config without it."""
    workdir, config = run_dir
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(
        yaml.safe_dump({"run": "demo_settings", "inputs": config["inputs"], "samples": {"patch": 4}}))
    target = f"results/{RUN}/samples/surface/100.npz"
    mine = run_workflow(workdir, config, "-n", target, cores=1, timeout=120, check=False)
    assert mine.returncode == 0 and f"output: {target}" in mine.stdout, mine.stdout + mine.stderr
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    demo = subprocess.run([str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-n", "--cores", "1"], cwd=workdir,
                          capture_output=True, text=True, timeout=120, env=env)
    output = demo.stdout + demo.stderr
    assert demo.returncode != 0 and "config key 'samples.patch': must be odd, got 4" in output, output
    assert (workdir / SENTINEL).read_bytes() == b"a result from an earlier run"
