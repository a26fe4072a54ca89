"""The cubic baseline, raw and with the members' coarse correction, written block by block."""

import numpy as np
import pytest
from affine import Affine

from smdown import io
from smdown.evaluating.evaluate_steps import cubic_baselines
from smdown.grid import Grid, block_mean, nested_grid

COARSE = Grid("EPSG:6933", Affine(9000.0, 0, 0.0, 0, -9000.0, 900000.0), 3, 4)
DATES = ["2023-05-01", "2023-05-02"]
FACTOR = 5


@pytest.mark.parametrize("correction", ["additive", "smooth"])
@pytest.mark.parametrize("block_cells", [1, 2, 4])
def test_corrected_cubic_averages_back_to_coarse_and_raw_is_kept(tmp_path, correction, block_cells):
    rng = np.random.default_rng(1)
    coarse = rng.uniform(0.1, 0.4, (2, 3, 4)).astype(np.float32)
    coarse[1, 2, 3] = np.nan  # no coarse value: the cell keeps the cubic value
    fine_grid = nested_grid(COARSE, FACTOR)
    cubic = rng.uniform(0.1, 0.4, (2, *fine_grid.shape)).astype(np.float32)
    io.write_stack(tmp_path / "coarse.tif", io.Stack(coarse, COARSE, DATES))
    io.write_stack(tmp_path / "cubic_in.tif", io.Stack(cubic, fine_grid, DATES))
    outputs = {"cubic": str(tmp_path / "cubic.tif"), "cubic_corrected": str(tmp_path / "cubic_corrected.tif")}
    cubic_baselines(str(tmp_path / "cubic_in.tif"), str(tmp_path / "coarse.tif"), outputs, correction, block_cells)
    np.testing.assert_array_equal(io.read_stack(outputs["cubic"]).data, cubic)
    corrected = io.read_stack(outputs["cubic_corrected"])
    assert corrected.dates == DATES and corrected.grid.shape == fine_grid.shape
    means = block_mean(corrected.data, FACTOR)
    ok = np.isfinite(coarse)
    np.testing.assert_allclose(means[ok], coarse[ok], atol=1e-5)
    cell = (1, slice(2 * FACTOR, 3 * FACTOR), slice(3 * FACTOR, 4 * FACTOR))
    if correction == "additive":
        np.testing.assert_allclose(corrected.data[cell], cubic[cell], atol=1e-6)


def test_smooth_cubic_is_the_same_whatever_the_block_size(tmp_path):
    rng = np.random.default_rng(2)
    coarse = rng.uniform(0.1, 0.4, (2, 3, 4)).astype(np.float32)
    fine_grid = nested_grid(COARSE, FACTOR)
    io.write_stack(tmp_path / "coarse.tif", io.Stack(coarse, COARSE, DATES))
    io.write_stack(tmp_path / "in.tif", io.Stack(rng.uniform(0.1, 0.4, (2, *fine_grid.shape)).astype(np.float32),
                                                 fine_grid, DATES))
    results = []
    for cells in (1, 4):
        outputs = {"cubic": str(tmp_path / f"c{cells}.tif"), "cubic_corrected": str(tmp_path / f"cc{cells}.tif")}
        cubic_baselines(str(tmp_path / "in.tif"), str(tmp_path / "coarse.tif"), outputs, "smooth", cells)
        results.append(io.read_stack(outputs["cubic_corrected"]).data)
    np.testing.assert_allclose(results[0], results[1], atol=1e-6)


@pytest.mark.parametrize("correction", ["additive", "smooth"])
def test_with_the_smoothed_anchor_the_corrected_cubic_is_the_cubic_itself(tmp_path, correction):
    """The smoothed anchor is the cubic field's own cell means, so correcting the cubic field to it changes nothing."""
    rng = np.random.default_rng(3)
    coarse = rng.uniform(0.1, 0.4, (2, 3, 4)).astype(np.float32)
    fine_grid = nested_grid(COARSE, FACTOR)
    cubic = rng.uniform(0.1, 0.4, (2, *fine_grid.shape)).astype(np.float32)
    io.write_stack(tmp_path / "coarse.tif", io.Stack(coarse, COARSE, DATES))
    io.write_stack(tmp_path / "cubic_in.tif", io.Stack(cubic, fine_grid, DATES))
    outputs = {"cubic": str(tmp_path / "cubic.tif"), "cubic_corrected": str(tmp_path / "cubic_corrected.tif")}
    cubic_baselines(str(tmp_path / "cubic_in.tif"), str(tmp_path / "coarse.tif"), outputs, correction, 2,
                    anchor="smoothed")
    np.testing.assert_allclose(io.read_stack(outputs["cubic_corrected"]).data, cubic, atol=1e-5)
