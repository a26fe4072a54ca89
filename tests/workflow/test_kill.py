"""A run that survives a kill: SIGKILL in the middle of predict (Snakemake and its job, as when a node dies), then the
same command again, gives the outputs of an uninterrupted run and leaves no temporary `.part` file."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from conftest import TINY_LAYERS, run_workflow

from smdown import io


def part_files(results: Path) -> list[Path]:
    return sorted(results.rglob("*.part*"))


def snakemake_tree() -> list[psutil.Process]:
    """This test's Snakemake process and all its descendants (its jobs)."""
    for child in psutil.Process().children():
        if any("snakemake" in part for part in child.cmdline()[:2]):
            return [child, *child.children(recursive=True)]
    return []


def test_a_run_killed_in_predict_restarts_with_the_same_command_to_the_outputs_of_an_uninterrupted_run(
        tiny_run, tmp_path):
    source, uninterrupted, _ = tiny_run
    # The complete tiny run, copied (inputs stay where its config names them), without one of the root zone's
    # predictions: the same command then runs that layer's predict and what follows it, as a run that had got that
    # far (one layer only, to keep the test short; the surface's predict would rerun the root zone's too, which
    # borrows its detail).
    workdir = tmp_path / "killed"
    workdir.mkdir()
    shutil.copy2(source / "config.yaml", workdir / "config.yaml")
    for folder in ("results", ".snakemake"):
        shutil.copytree(source / folder, workdir / folder, symlinks=True,
                        ignore=shutil.ignore_patterns("locks", "incomplete"))
    results = workdir / "results" / uninterrupted.name
    # predict's own ensemble (ensemble_raw: the tiny run has stations, which refine it into ensemble.tif)
    # and its tiles, kept where the root zone borrows the surface's detail
    layer = TINY_LAYERS[1]
    (results / "downscaled" / layer / "ensemble_raw.tif").unlink()
    tiles = results / "tiles" / layer  # predict writes one tile's maps a job (merged by merge_tiles)
    for tile in tiles.glob("*/ensemble_raw.tif"):
        tile.unlink()

    # the run, in a thread, until predict is writing a tile's outputs (their temporary files exist); then SIGKILL to
    # Snakemake and every process under it at once
    first: dict = {}
    thread = threading.Thread(target=lambda: first.update(done=run_workflow(workdir, None, check=False)))
    thread.start()
    deadline = time.monotonic() + 900
    while not list(tiles.glob("*/.ensemble_raw.*.part.tif")):
        assert thread.is_alive() and time.monotonic() < deadline, "predict never started writing"
        time.sleep(0.05)
    processes = snakemake_tree()
    assert processes, "no Snakemake process found"
    for process in processes:
        process.send_signal(signal.SIGKILL)
    thread.join(timeout=120)
    assert first["done"].returncode == -signal.SIGKILL
    assert part_files(results), "the kill left no temporary file: it came too late to test anything"

    # The same command again. A killed Snakemake cannot remove its lock (.snakemake/locks), and Snakemake does not
    # tell a dead owner from a live one: the command stops at once, asking for `--unlock`. After that, the same
    # command reruns the job that was killed (rerun-incomplete is in both profiles) and finishes, with nothing
    # temporary left and the uninterrupted run's outputs.
    again = run_workflow(workdir, None, check=False)
    if again.returncode != 0:
        assert "Directory cannot be locked" in again.stdout + again.stderr, again.stderr[-4000:]
        run_workflow(workdir, None, "--unlock")
        run_workflow(workdir, None)
    assert part_files(results) == []
    for layer in TINY_LAYERS:
        for path in sorted((uninterrupted / "downscaled" / layer).glob("*.tif")):
            again, reference = io.read_stack(results / path.relative_to(uninterrupted)), io.read_stack(path)
            assert again.grid == reference.grid and again.dates == reference.dates
            np.testing.assert_array_equal(again.data, reference.data, err_msg=str(path))
    pd.testing.assert_frame_equal(pd.read_csv(results / "evaluation" / "metrics.csv"),
                                  pd.read_csv(uninterrupted / "evaluation" / "metrics.csv"))
