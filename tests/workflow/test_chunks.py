"""A run applying the tiny run's models, kept as a record in time chunks (config chunks): new days rerun only their
chunk, the older chunks keep their files, and the record's maps equal those of the trained run over the same days:
exactly where no memory is left to the lead-in (the antecedent precipitation indices are carried from chunk to chunk),
within the LSTM's fading memory otherwise."""

import re

import numpy as np
import pytest
from conftest import TINY_LAYERS, run_workflow, scheduled_jobs, tiny_config

from smdown import io

# the record's chunks are ISO weeks: the tiny world starts on Monday 1 May 2023 (week 18)
RECORD = {"by": "week", "lead_days": 3}
EXACT = ("dnn", "cnn", "rf", "cubic", "aoa")  # no memory but the carried indices
RECURRENT = ("lstm", "ensemble", "uncertainty")  # the LSTM's memory of the days before a 3-day lead-in


def write_days(source, target, days):
    stack = io.read_stack(source)
    io.write_stack(target, io.Stack(stack.data[:days], stack.grid, stack.dates[:days]))


def chunk_jobs(workdir):
    """The chunks a dry run schedules jobs for: a chunk's name where every job of the chunk is scheduled alike, else
    (rule, chunk) of each job of an older chunk."""
    dry = run_workflow(workdir, None, "-n").stdout
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:(?!(?:local)?rule ).*\n)*?\s*wildcards: [^\n]*chunk=([\w-]+)", dry,
                      flags=re.MULTILINE)
    assert jobs, dry[-3000:]
    newest = max(chunk for _, chunk in jobs)
    return {newest} | {(rule, chunk) for rule, chunk in jobs if chunk != newest}


def files_of(folder):
    return {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in folder.rglob("*.tif")}


@pytest.mark.workflow
def test_new_days_rerun_only_their_chunk_and_the_record_equals_the_whole_period(tiny_run, tmp_path):
    workdir, trained, _ = tiny_run
    inputs = workdir / "inputs"
    config = tiny_config(inputs)
    for layer in TINY_LAYERS:  # the first two weeks of the period
        write_days(inputs / f"coarse_{layer}.tif", tmp_path / f"coarse_{layer}.tif", 14)
        config["inputs"]["coarse"][layer] = str(tmp_path / f"coarse_{layer}.tif")
    config.update(run="record", chunks=RECORD)
    config["models"] = {**config["models"], "from": str(trained)}
    run_workflow(tmp_path, config)
    record = tmp_path / "results" / "record"
    assert sorted(p.name for p in (record / "chunks").iterdir()) == ["2023-W18", "2023-W19"]
    assert len(io.read_dates(record / "chunks" / "2023-W19" / "downscaled" / "surface" / "ensemble.tif")) == 7
    assert len(io.read_dates(record / "downscaled" / "surface" / "ensemble.vrt")) == 14
    old = files_of(record / "chunks")

    for layer in TINY_LAYERS:  # a third week arrives
        write_days(inputs / f"coarse_{layer}.tif", tmp_path / f"coarse_{layer}.tif", 21)
    jobs = scheduled_jobs(tmp_path)
    # the new week's jobs, and the indices the week before it carries into it (no chunk needed them before)
    assert chunk_jobs(tmp_path) == {"2023-W20"} | {("api_state", "2023-W19")}
    assert jobs["predict"] == jobs["chunk_coarse"] == len(TINY_LAYERS), jobs
    assert not {"samples", "train", "tune", "train_rf", "ensemble"} & set(jobs), jobs
    run_workflow(tmp_path, None)
    assert files_of(record / "chunks") | old == files_of(record / "chunks")  # the older chunks' bytes and times

    for layer in TINY_LAYERS:
        for name in EXACT + RECURRENT:
            ours = io.read_stack(record / "downscaled" / layer / f"{name}.vrt")
            theirs = io.read_stack(trained / "downscaled" / layer / f"{name}.tif")
            assert ours.dates == theirs.dates[:21]
            tolerance = 1e-6 if name in EXACT else 0.05
            np.testing.assert_allclose(ours.data, theirs.data[:21], atol=tolerance, rtol=0, err_msg=f"{layer} {name}")
        # the record's first week has no day before it: its maps are the whole period's, the LSTM's too
        first = io.read_stack(record / "chunks" / "2023-W18" / "downscaled" / layer / "lstm.tif")
        np.testing.assert_allclose(first.data, io.read_stack(trained / "downscaled" / layer / "lstm.tif").data[:7],
                                   atol=1e-6, rtol=0)
    # the indices a chunk carries are written when the next chunk needs them: the week before the newest's, not its own
    assert (record / "chunks" / "2023-W19" / "api_state_surface.tif").exists()
    assert not (record / "chunks" / "2023-W20" / "api_state_surface.tif").exists()
    assert (record / "cube" / "surface.nc").exists() and (record / "evaluation" / "applicability.csv").exists()

    # a changed value of the newest week reruns that week's chunk only
    stack = io.read_stack(tmp_path / "coarse_surface.tif")
    stack.data[-1, 0, 0] += 0.01
    io.write_stack(tmp_path / "coarse_surface.tif", stack)
    assert chunk_jobs(tmp_path) == {"2023-W20"}
