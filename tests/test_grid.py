"""Grids: the EASE-Grid 2.0 9 km window and the nested scales that average back exactly to the coarse cell."""

import numpy as np
import pytest

from smdown import io
from smdown.grid import (
    EASE2_9KM_RES,
    EASE2_9KM_X0,
    EASE2_9KM_Y0,
    block_expand,
    block_mean,
    ease2_9km_grid,
    nest_factor,
    nested_grid,
)

FACTORS = [9, 90, 180, 300]


def test_ease2_constants_match_the_projection():
    # the global EASE-Grid 2.0 spans -180..180 degrees; its top edge is at 85.0445664 N
    x, _ = io.lonlat_to("EPSG:6933", [-180.0, 180.0], [0.0, 0.0])
    np.testing.assert_allclose(x, [EASE2_9KM_X0, -EASE2_9KM_X0], atol=1e-3)
    _, y = io.lonlat_to("EPSG:6933", 0.0, 85.0445664)
    np.testing.assert_allclose(y, [EASE2_9KM_Y0], atol=0.5)
    # 3856 columns of 9 km span the globe
    assert 3856 * EASE2_9KM_RES == pytest.approx(-2 * EASE2_9KM_X0, abs=1e-3)


def test_ease2_window_holds_the_point_and_is_on_the_global_lattice(coarse_grid):
    x, y = io.lonlat_to("EPSG:6933", -120.55, 37.25)
    left, bottom, right, top = coarse_grid.window(0, 0, 1, 1).bounds
    assert left <= x[0] < right and bottom < y[0] <= top
    col = (coarse_grid.transform.c - EASE2_9KM_X0) / EASE2_9KM_RES
    row = (EASE2_9KM_Y0 - coarse_grid.transform.f) / EASE2_9KM_RES
    assert col == pytest.approx(round(col), abs=1e-9) and row == pytest.approx(round(row), abs=1e-9)
    assert (round(row), round(col)) == (320, 636)
    assert coarse_grid.shape == (2, 2) and coarse_grid.crs == "EPSG:6933"
    assert ease2_9km_grid(x[0] + 100.0, y[0] - 100.0, 2, 2) == coarse_grid


@pytest.mark.parametrize("nominal, factor", [(1000, 9), (100, 90), (50, 180), (30, 300)])
def test_nest_factor_of_the_nominal_scales(nominal, factor):
    assert nest_factor(EASE2_9KM_RES, nominal) == factor
    assert EASE2_9KM_RES / factor == pytest.approx(nominal, rel=0.01)


def test_nest_factor_rejects_a_scale_coarser_than_the_grid():
    with pytest.raises(ValueError, match="coarser"):
        nest_factor(EASE2_9KM_RES, 20000)


@pytest.mark.parametrize("factor", FACTORS)
def test_nested_grid_has_the_coarse_bounds(coarse_grid, factor):
    fine = nested_grid(coarse_grid, factor)
    assert fine.bounds == coarse_grid.bounds
    assert fine.shape == (2 * factor, 2 * factor)
    assert fine.res == pytest.approx(EASE2_9KM_RES / factor, rel=1e-12)
    assert fine.crs == coarse_grid.crs
    # the pixel at (factor, factor) starts exactly at the corner of coarse cell (1, 1)
    assert fine.window(factor, factor, 1, 1).transform.c == pytest.approx(coarse_grid.window(1, 1, 1, 1).transform.c)
    assert fine.window(factor, factor, 1, 1).transform.f == pytest.approx(coarse_grid.window(1, 1, 1, 1).transform.f)


def _zero_mean_pattern(factor: int) -> np.ndarray:
    """A pattern with mean exactly zero over each factor x factor block (antisymmetric about the block centre)."""
    offset = np.arange(factor) - (factor - 1) / 2
    block = 0.01 * offset[:, None] + 0.003 * offset[None, :] + 0.0007 * offset[:, None] * offset[None, :]
    return np.tile(block, (2, 2))


COARSE = np.array([[0.12, 0.25], [0.31, 0.44]], dtype=np.float32)


@pytest.mark.parametrize("factor", FACTORS)
def test_block_mean_of_coarse_plus_zero_mean_pattern_is_the_coarse_value(factor):
    fine = block_expand(COARSE, factor) + _zero_mean_pattern(factor)
    assert np.ptp(fine[:factor, :factor]) > 0.05  # the pattern is really there
    np.testing.assert_allclose(block_mean(fine, factor), COARSE, rtol=0, atol=1e-7)


@pytest.mark.parametrize("factor", FACTORS)
def test_average_warp_to_the_coarse_grid_equals_block_mean(coarse_grid, factor):
    fine_grid = nested_grid(coarse_grid, factor)
    fine = (block_expand(COARSE, factor) + _zero_mean_pattern(factor)).astype(np.float32)
    stack = np.stack([fine, 2.0 * fine])
    stack[:, : factor // 2, :factor] = np.nan  # NaN pixels (the same in every band) are left out of both means
    warped = io.warp(io.Stack(stack, fine_grid, ["2023-05-01", "2023-05-02"]), coarse_grid, "average")
    assert warped.grid == coarse_grid and warped.dates == ["2023-05-01", "2023-05-02"]
    np.testing.assert_allclose(warped.data, block_mean(stack, factor), rtol=1e-6, atol=0)
    assert warped.data[0, 0, 0] != pytest.approx(COARSE[0, 0], abs=1e-4)  # the NaN rows changed the mean
    np.testing.assert_allclose(warped.data[0].ravel()[1:], COARSE.ravel()[1:], rtol=0, atol=1e-6)


def test_block_mean_ignores_nan_and_gives_nan_for_an_empty_block():
    fine = np.array([[1.0, np.nan, 5.0, 5.0], [3.0, np.nan, 5.0, 5.0], [np.nan] * 4, [np.nan] * 4], dtype=np.float32)
    out = block_mean(fine, 2)
    np.testing.assert_array_equal(out[0], [2.0, 5.0])
    assert np.isnan(out[1]).all()
    with pytest.raises(ValueError, match="multiple"):
        block_mean(fine[:3], 2)


def test_block_expand_inverts_block_mean():
    np.testing.assert_array_equal(block_mean(block_expand(COARSE, 9), 9), COARSE)
    assert block_expand(COARSE, 3).shape == (6, 6)
    assert block_expand(COARSE, 3)[5, 0] == COARSE[1, 0]
