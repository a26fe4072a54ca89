"""The tiny run's outputs in the user's tools: a NetCDF-CF cube xarray opens with the maps' dates and values, maps
that are valid Cloud-Optimized GeoTIFFs, a STAC catalogue that validates (offline), and the `outputs` setting deciding
which maps are written, a change of it rerunning only the writing."""


import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import TINY_LAYERS, run_workflow, scheduled_jobs
from rio_cogeo.cogeo import cog_validate

from smdown import io
from smdown.publishing.catalog import validate

MAPS = ["dnn", "cnn", "lstm", "ensemble_raw", "ensemble", "ensemble_std", "rf", "cubic", "cubic_corrected",
        "uncertainty"]
# the area of applicability's dissimilarity index: a map of its own (not soil moisture), out of the cube and catalogue
AOA = "aoa"




@pytest.mark.workflow
def test_the_cube_opens_in_xarray_with_the_maps_dates_and_values(tiny_run):
    _, results, _ = tiny_run
    for layer in TINY_LAYERS:
        with xr.open_dataset(results / "cube" / f"{layer}.nc") as cube:
            assert sorted(cube.data_vars) == sorted(MAPS)
            assert cube["ensemble"].dims == ("time", "y", "x")
            assert cube["ensemble"].attrs["units"] == "m3 m-3"
            assert cube["ensemble"].attrs["grid_mapping"] == "spatial_ref"
            assert "crs_wkt" in cube["spatial_ref"].attrs
            for name in ("ensemble", "uncertainty", "dnn"):
                stack = io.read_stack(results / "downscaled" / layer / f"{name}.tif")
                assert [str(t)[:10] for t in cube["time"].values] == stack.dates
                assert np.array_equal(cube[name].values, stack.data, equal_nan=True), name
                t = stack.grid.transform
                assert np.allclose(cube["x"].values[[0, -1]], [t.c + t.a / 2, t.c + (stack.grid.width - 0.5) * t.a])
                assert np.allclose(cube["y"].values[[0, -1]], [t.f + t.e / 2, t.f + (stack.grid.height - 0.5) * t.e])


@pytest.mark.workflow
def test_every_map_is_a_valid_cog(tiny_run):
    _, results, _ = tiny_run
    maps = sorted((results / "downscaled").glob("*/*.tif"))
    assert sorted({path.stem for path in maps}) == sorted([*MAPS, AOA])
    assert len(maps) == len(TINY_LAYERS) * (len(MAPS) + 1)
    for path in maps:
        valid, errors, _ = cog_validate(str(path), quiet=True)
        assert valid, (path, errors)


@pytest.mark.workflow
def test_the_catalogue_validates_and_holds_every_map(tiny_run):
    import pystac

    _, results, _ = tiny_run
    assert validate(results / "stac" / "collection.json") == len(TINY_LAYERS) * len(MAPS)
    collection = pystac.read_file(str(results / "stac" / "collection.json"))
    item = collection.get_item("surface-ensemble", recursive=True)
    dates = io.read_dates(results / "downscaled" / "surface" / "ensemble.tif")
    assert item.properties["start_datetime"].startswith(dates[0])
    assert item.properties["end_datetime"].startswith(dates[-1])
    assert item.assets["ensemble"].href.startswith("../")  # relative to the catalogue
    assert item.assets["ensemble"].get_absolute_href() == str(results / "downscaled" / "surface" / "ensemble.tif")
    assert item.properties["proj:shape"] == list(io.read_grid(results / "downscaled" / "surface" / "ensemble.tif").shape)
    assert {a.href for a in collection.assets.values()} == {f"../cube/{layer}.nc" for layer in TINY_LAYERS}


@pytest.mark.workflow
def test_a_change_of_outputs_reruns_only_the_writing(tiny_run):
    workdir, _, _ = tiny_run
    # the product alone: the catalogue and cubes are rewritten, and the evaluation scores what is left (its figures
    # drawn again); no prediction, training or merge (the maps other rules read are there: they stay), nothing deleted
    jobs = scheduled_jobs(workdir, {"outputs": {"maps": ["ensemble", "uncertainty"]}})
    assert set(jobs) <= {"cube", "catalog", "evaluate_tile", "evaluate", "metric_figure", "reliability_figure",
                         "scatter", "station_figure", "maps", "all"}, jobs
    assert jobs["cube"] == 2 and jobs["catalog"] == 1
    # no cube: the catalogue alone
    assert set(scheduled_jobs(workdir, {"outputs": {"cube": False}})) == {"catalog", "all"}
    # int16: every written map merged again from its tiles, which a run does not keep, so predicted again; never
    # sampled, tuned, trained or weighted again
    jobs = scheduled_jobs(workdir, {"outputs": {"dtype": "int16"}})
    assert jobs["merge_tiles"] == 2 * len(MAPS) and {"cube", "catalog"} <= set(jobs), jobs
    assert not {"train", "tune", "samples", "ensemble", "train_rf", "split", "resample"} & set(jobs), jobs


@pytest.mark.workflow
def test_outputs_decide_which_maps_a_run_writes(tiny_run, tmp_path):
    """A fresh run on the same inputs: by default (a region of your own) it writes the product alone; the spread and
    the unrefined ensemble, which the uncertainty and the refinement read, are temporary files; no cubic baseline."""
    workdir, _, _ = tiny_run
    config = {**__import__("yaml").safe_load((workdir / "config.yaml").read_text())}
    config.pop("outputs")
    jobs = scheduled_jobs(tmp_path, None, config=config)
    assert jobs["merge_tiles"] == 3 * len(TINY_LAYERS), jobs  # ensemble, uncertainty and the aoa map
    assert jobs["merge_needed"] == 2 * len(TINY_LAYERS), jobs  # ensemble_std, ensemble_raw
    assert "cubic_baseline" not in jobs and "predict_rf" not in jobs, jobs
    # predict writes the ensemble and its spread alone: a member's map no rule reads is not written, even per tile
    assert predict_outputs(tmp_path, config) == {"ensemble_raw", "ensemble_std"}
    config["outputs"] = {"maps": ["product", "baselines"], "cube": False, "catalog": False}
    jobs = scheduled_jobs(tmp_path, None, config=config)
    assert jobs["merge_tiles"] == 4 * len(TINY_LAYERS) and jobs["cubic_baseline"] == len(TINY_LAYERS), jobs
    assert "cube" not in jobs and "catalog" not in jobs
    config["outputs"]["maps"] = ["product", "members"]
    assert predict_outputs(tmp_path, config) == {"dnn", "cnn", "lstm", "rf", "ensemble_raw", "ensemble_std"}


@pytest.mark.workflow
def test_maps_as_vrts_over_their_kept_tiles_equal_the_merged_maps(tiny_run, tmp_path):
    """outputs.mosaic vrt (a region a cluster maps): every map a VRT over its tiles, which stay; no merge job and
    nothing sampled or trained again; the maps equal the merged COGs bitwise, and a change of the refinement or the
    uncertainty then reruns no prediction (the tiles are there)."""
    workdir, results, _ = tiny_run
    copy = tmp_path / "tiny"
    shutil.copytree(workdir, copy, symlinks=True, ignore=shutil.ignore_patterns("report.html"))
    vrt = {"outputs": {"mosaic": "vrt"}}
    jobs = scheduled_jobs(copy, vrt)
    assert jobs["mosaic"] == len(TINY_LAYERS) * (len(MAPS) + 1), jobs
    assert not {"merge_tiles", "merge_needed", "samples", "train", "tune", "ensemble", "resample"} & set(jobs), jobs
    run_workflow(copy, None, override=vrt)  # every output: the evaluation, cubes and catalogue read the VRTs
    for layer in TINY_LAYERS:
        for name in [*MAPS, AOA]:
            mosaic = copy / "results" / "tiny" / "downscaled" / layer / f"{name}.vrt"
            merged = io.read_stack(results / "downscaled" / layer / f"{name}.tif")
            read = io.read_stack(mosaic)
            assert read.grid == merged.grid and read.dates == merged.dates, (layer, name)
            assert np.array_equal(read.data, merged.data, equal_nan=True), (layer, name)
    assert sorted(p.name for p in (copy / "results" / "tiny" / "tiles" / "surface").glob("*/ensemble.tif"))
    scores = pd.read_csv(copy / "results" / "tiny" / "evaluation" / "metrics.csv")
    pd.testing.assert_frame_equal(scores, pd.read_csv(results / "evaluation" / "metrics.csv"))
    assert validate(copy / "results" / "tiny" / "stac" / "collection.json") == len(TINY_LAYERS) * len(MAPS)
    changed = {**vrt, "uncertainty": {"detail_window": 5}}
    jobs = scheduled_jobs(copy, changed)
    assert "uncertainty" in jobs and not {"predict", "merge_tiles"} & set(jobs), jobs


def predict_outputs(workdir, config) -> set[str]:
    """The maps (file stems) the predict jobs of a dry run write."""
    text = run_workflow(workdir, config, "-n").stdout
    jobs = re.findall(r"^rule predict:\n(?:    .*\n)*?    output: (.*)$", text, flags=re.MULTILINE)
    assert jobs, text
    return {Path(path).stem for job in jobs for path in job.split(", ")}
