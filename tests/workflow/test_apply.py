"""Operational use on the tiny run: a run applying it (config models.from) schedules no training and reproduces its
maps, a mismatched predictor is refused before any job, and a changed coarse value reruns no predictor's
resampling."""

import os
import shutil

import numpy as np
import pytest
from conftest import TINY_CONFIG, run_workflow, scheduled_jobs, tiny_config

from smdown import io

TRAINING = {"samples", "tune", "train", "train_rf", "ensemble", "sensitivity", "sensitivity_figure", "aoa_reference",
            "fit_refinement", "calibrate_uncertainty"}
APPLIED = {"run": "applied", "models": {"from": f"results/{TINY_CONFIG['run']}"}}




def mtimes(folder):
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


@pytest.mark.workflow
def test_an_applied_run_schedules_no_training_and_reproduces_the_trained_maps(tiny_run):
    workdir, results, _ = tiny_run
    before = mtimes(results / "models") | mtimes(results / "ensemble")
    jobs = scheduled_jobs(workdir, APPLIED)
    assert not TRAINING & set(jobs), jobs
    assert {"predict", "refine", "uncertainty", "aoa", "evaluate", "applicability"} <= set(jobs), jobs
    run_workflow(workdir, None, override=APPLIED)
    applied = workdir / "results" / "applied"
    assert not (applied / "models").exists() and not (applied / "samples" / "surface").exists()
    for layer in ("surface", "rootzone"):
        for name in ("ensemble", "uncertainty", "aoa"):
            ours, theirs = io.read_stack(applied / "downscaled" / layer / f"{name}.tif"), \
                io.read_stack(results / "downscaled" / layer / f"{name}.tif")
            # the same days and predictors through the same members, refinement and calibration
            np.testing.assert_array_equal(ours.data, theirs.data, err_msg=f"{layer} {name}")
    assert (applied / "evaluation" / "applicability.csv").exists()
    assert mtimes(results / "models") | mtimes(results / "ensemble") == before
    assert scheduled_jobs(workdir, APPLIED) == {}


@pytest.mark.workflow
@pytest.mark.parametrize("mistake", ["missing", "unit", "scale"])
def test_a_mismatched_predictor_is_refused_before_any_job(tiny_run, tmp_path, mistake):
    workdir, results, _ = tiny_run
    before = mtimes(results)
    config = tiny_config(workdir / "inputs")
    config["run"] = "mismatch"
    config["models"] = {**config["models"], "from": str(results)}
    if mistake == "missing":
        del config["inputs"]["predictors"]["ndwi"]
        expected = ["predictor 'ndwi' is missing"]
    elif mistake == "unit":  # sand as a fraction where the models learned percent
        sand = io.read_stack(config["inputs"]["predictors"]["sand"], static=True)
        io.write_stack(tmp_path / "sand.tif", io.Stack(sand.data / 100, sand.grid, sand.dates))
        config["inputs"]["predictors"]["sand"] = str(tmp_path / "sand.tif")
        expected = ["predictor 'sand'", "another unit"]
    else:
        config["scales"] = [3000, 1000]
        expected = ["scales:", "900"]
    done = run_workflow(tmp_path, config, check=False)
    assert done.returncode != 0
    for text in expected:
        assert text in done.stderr + done.stdout, (done.stdout + done.stderr)[-3000:]
    assert not (tmp_path / "results").exists()  # no job ran
    assert mtimes(results) == before  # the trained run intact


@pytest.mark.workflow
def test_a_changed_coarse_value_reruns_no_predictor_resampling(tiny_run):
    """One value of the last day of the coarse surface layer: only that layer's own resampling (at the training
    scale, and at the finest scale one job a tile, merged) and what follows; no predictor is resampled again, and a
    run applying the trained models schedules no training."""
    workdir, _, _ = tiny_run
    coarse = workdir / "inputs" / "coarse_surface.tif"
    saved = workdir / "coarse_surface.saved.tif"
    shutil.copy2(coarse, saved)
    try:
        stack = io.read_stack(coarse)
        stack.data[-1, 0, 0] += 0.01
        io.write_stack(coarse, stack)
        jobs = scheduled_jobs(workdir)
        # coarse_surface at 900 m (one tile under a VRT; the samples read the coarse input itself): no predictor
        assert jobs["resample_tile"] == jobs["mosaic_scale"] == 1 and jobs.get("resample", 0) <= 1, jobs
        assert "terrain" not in jobs
        applied = scheduled_jobs(workdir, APPLIED)
        assert not TRAINING & set(applied), applied
    finally:
        shutil.copy2(saved, coarse)
        os.utime(coarse, ns=(saved.stat().st_atime_ns, saved.stat().st_mtime_ns))
    assert scheduled_jobs(workdir) == {}
