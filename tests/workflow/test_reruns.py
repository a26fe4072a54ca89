"""Incremental reruns: after a complete tiny run, a dry run schedules exactly the jobs a change touches.

Every setting a job reads reaches it as a `params:` slice of its rule (or an input file), so Snakemake's
params trigger reruns that job and what depends on it, and nothing upstream or beside it.
"""

import os
import shutil

import numpy as np
import pytest
from conftest import run_workflow, scheduled_jobs

from smdown import io

# the tiny run has stations, so the stations refine its ensemble (fit_refinement, refine)
AFTER_REFINING = {"refine", "merge_tiles", "calibrate_uncertainty", "uncertainty", "evaluate_tile", "evaluate", "maps",
                  "scatter", "station_figure", "metric_figure", "reliability_figure", "cube", "catalog", "applicability",
                  "all"}
AFTER_PREDICT = AFTER_REFINING | {"predict", "fit_refinement"}
TILES = 1  # the tiny config's 2 x 2 cells in the default tiles of 2 x 2 cells
MAPS = ["dnn", "cnn", "lstm", "ensemble_raw", "ensemble", "ensemble_std", "rf", "cubic", "cubic_corrected",
        "uncertainty"]
# the area of applicability's reference weighs the predictors by the sensitivity's importance
AFTER_TRAINING = AFTER_PREDICT | {"ensemble", "sensitivity", "sensitivity_figure", "aoa_reference", "aoa"}




@pytest.mark.workflow
def test_nothing_to_do_after_a_complete_run(tiny_run):
    workdir, _, _ = tiny_run
    assert scheduled_jobs(workdir) == {}


@pytest.mark.workflow
def test_l2_reruns_the_deep_members_and_what_follows_only(tiny_run):
    workdir, _, _ = tiny_run
    jobs = scheduled_jobs(workdir, {"models": {"l2": 0.5}})
    assert set(jobs) == {"tune", "train", "training_figure"} | AFTER_TRAINING, jobs
    assert jobs["train"] == jobs["tune"] == 6  # 3 members x 2 layers; not the forest, samples or anything upstream


@pytest.mark.workflow
def test_weighting_reruns_the_ensemble_onward_not_training(tiny_run):
    workdir, _, _ = tiny_run
    # the root zone's changes (default inverse_mse in both layers)
    jobs = scheduled_jobs(workdir, {"ensemble": {"weighting": {"surface": "inverse_mse", "rootzone": "equal"}}})
    assert set(jobs) == AFTER_PREDICT | {"ensemble"}, jobs
    assert jobs["ensemble"] == 1 and jobs["predict"] == TILES, jobs
    # the root zone's members (the forest among them), ensemble before and after refining, spread, uncertainty
    assert jobs["merge_tiles"] == 8, jobs


@pytest.mark.workflow
def test_the_forest_leaving_the_ensemble_reruns_the_weights_onward_not_training(tiny_run):
    workdir, _, _ = tiny_run
    jobs = scheduled_jobs(workdir, {"ensemble": {"forest": False}})
    # the forest's map then comes from a job of its own (predict_rf), no longer from predict
    assert set(jobs) == AFTER_PREDICT | {"ensemble", "predict_rf"}, jobs
    assert jobs["ensemble"] == 2 and jobs["predict"] == jobs["predict_rf"] == 2 * TILES, jobs


@pytest.mark.workflow
def test_the_refinement_predictors_rerun_the_refinement_onward_not_predict(tiny_run):
    workdir, _, _ = tiny_run
    jobs = scheduled_jobs(workdir, {"refine": {"predictors": ["ndvi"]}})
    assert set(jobs) == AFTER_REFINING | {"fit_refinement"}, jobs
    assert jobs["fit_refinement"] == 2 and jobs["refine"] == 2 * TILES
    assert jobs["merge_tiles"] == 2 * 2, jobs  # each layer's ensemble and uncertainty


@pytest.mark.workflow
@pytest.mark.parametrize("change", [{"correction": "none"}, {"anchor": "coarse"}])
def test_correction_reruns_predict_onward(tiny_run, change):
    workdir, _, _ = tiny_run
    jobs = scheduled_jobs(workdir, {"predict": change})
    # cubic_corrected follows the correction too (the forest's map is predict's: it joins the ensemble)
    assert set(jobs) == AFTER_PREDICT | {"cubic_baseline"}, jobs
    assert jobs["predict"] == jobs["cubic_baseline"] == 2 * TILES
    assert jobs["merge_tiles"] == 2 * len(MAPS)


@pytest.mark.workflow
def test_other_tiles_rerun_the_tiled_jobs_and_the_merges_only(tiny_run):
    """Four tiles of one cell instead of one: the tiled jobs and the merges run again, nothing upstream of them. (That
    the merged maps are bitwise those of one tile is shown block by block in tests/test_tiles.py, and on the demo
    in the README; running it here too took CI past its time.)"""
    workdir, _, _ = tiny_run
    jobs = scheduled_jobs(workdir, {"tiles": {"cells": 1}})
    assert {"predict", "cubic_baseline", "merge_tiles", "resample_tile"} <= set(jobs), jobs
    assert "train" not in jobs and "samples" not in jobs and "resample" not in jobs, jobs
    assert jobs["predict"] == jobs["cubic_baseline"] == 2 * 4 and "predict_rf" not in jobs
    # and the area of applicability, mapped one job a tile too
    assert jobs["aoa"] == 2 * 4 and jobs["merge_tiles"] == 2 * (len(MAPS) + 1)
    assert jobs["resample_tile"] == 4 * jobs["mosaic_scale"]
    assert jobs["evaluate_tile"] == 2 * 4 and jobs["evaluate"] == 1


@pytest.mark.workflow
def test_new_ndvi_content_reruns_ndvi_resampling_and_what_depends_on_it(tiny_run):
    workdir, _, _ = tiny_run
    ndvi = workdir / "inputs" / "ndvi.tif"
    saved = workdir / "ndvi.saved.tif"
    shutil.copy2(ndvi, saved)
    try:
        stack = io.read_stack(ndvi)
        io.write_stack(ndvi, io.Stack(np.clip(stack.data * 0.9, -1, 1), stack.grid, stack.dates))
        jobs = scheduled_jobs(workdir)
        # ndvi at 3000 m, and at the finest scale (1000 m) one job per tile under a VRT; no other variable
        assert jobs["resample"] == jobs["resample_tile"] == jobs["mosaic_scale"] == 1, jobs
        assert {"samples", "train", "train_rf"} <= set(jobs) and "split" not in jobs and "cubic_baseline" not in jobs
    finally:
        shutil.copy2(saved, ndvi)
        os.utime(ndvi, ns=(saved.stat().st_atime_ns, saved.stat().st_mtime_ns))
    assert scheduled_jobs(workdir) == {}


@pytest.mark.workflow
def test_a_failing_job_logs_its_traceback(tiny_run, tmp_path):
    """A job made to fail (one bag per scale leaves no validation example) writes the exception and its
    traceback to its rule's log, not only to the console."""
    workdir, _, _ = tiny_run
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy, symlinks=True)
    done = run_workflow(copy, None, check=False, override={"samples": {"per_scale": 100, "bag_size": 100}})
    assert done.returncode != 0
    failed = [path for path in (copy / "results").rglob("*.log") if "job failed" in path.read_text()]
    assert failed, "no rule log holds the failure"
    text = failed[0].read_text()
    assert "Traceback (most recent call last)" in text and "Error" in text, text[-2000:]
