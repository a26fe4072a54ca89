"""experiments.lines: a run's benchmark files sized as the workflow sizes their jobs, beside the projection's lines."""

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from experiments import lines
from smdown import io
from smdown import resources as res
from smdown.grid import Grid


def _benchmark(path, cpu):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"s": [1.0], "cpu_time": [cpu]}).to_csv(path, sep="\t", index=False)


def test_each_job_is_sized_as_the_workflow_sizes_it(tmp_path):
    region = res.Region(3, 2, 9000.0, 10)  # tiles of 2 x 2 cells: r0c0 (4 cells) and r2c0 (2 cells)
    bench = tmp_path / "benchmarks"
    _benchmark(bench / "predict" / "surface" / "r0c0.tsv", 10.0)
    _benchmark(bench / "predict" / "surface" / "r2c0.tsv", 5.0)
    _benchmark(bench / "resample" / "30" / "ndvi" / "r2c0.tsv", 1.0)  # resample_tile
    _benchmark(bench / "resample" / "100" / "dem.tsv", 0.5)  # static (one band), the whole region
    grid = Grid("EPSG:32610", Affine(100.0, 0.0, 500000.0, 0.0, -100.0, 4000000.0), 270, 180)
    io.write_stack(tmp_path / "scales" / "100" / "dem.tif", io.Stack(np.zeros((1, 270, 180), np.float32), grid, None))
    _benchmark(bench / "samples" / "surface" / "30.tsv", 2.0)
    _benchmark(bench / "merge_tiles" / "surface" / "ensemble.tsv", 1.5)
    _benchmark(bench / "tune" / "surface" / "dnn.tsv", 9.0)  # not a raster step: left out
    table = lines.compare(tmp_path, region, tile_cells=2, fine=30.0, bags=4).set_index(["rule", "work"])
    cell = 300 * 300 * 10
    expected = {("predict", 4 * cell): "predict_forest", ("predict", 2 * cell): "predict_forest",
                ("resample_tile", 2 * cell): "resample", ("resample", 6 * 90 * 90): "resample",
                ("samples", 4 * cell): "samples", ("merge_tiles", 6 * cell): "merge_tiles"}
    assert dict(table["line"]) == expected
    for (_, work), row in table.iterrows():
        assert row["projected_cpu_s"] == pytest.approx(res.MODELS[row["line"]].cpu_s(work))
