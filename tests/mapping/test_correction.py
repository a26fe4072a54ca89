"""Coarse-consistency corrections on a world with a known truth: 6 x 6 coarse cells, factor 12."""

import numpy as np
import pytest

from smdown.evaluating.metrics import seam_ratio
from smdown.grid import block_expand, block_mean
from smdown.mapping import correction

K = 12
CELLS = 6
DAYS = 3


@pytest.fixture
def world():
    """A smooth truth with pixel noise, its coarse mean, and a prediction with a scale error and a drift."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0 : CELLS * K, 0 : CELLS * K] / K
    truth = np.stack([0.25 + 0.05 * np.sin(0.9 * xx + t) + 0.04 * np.cos(0.7 * yy) for t in range(DAYS)])
    truth = (truth + 0.005 * rng.standard_normal(truth.shape)).astype(np.float32)
    coarse = block_mean(truth, K)
    pred = (0.7 * truth + 0.08 + 0.02 * np.sin(0.3 * yy)).astype(np.float32)
    return truth, coarse, pred


@pytest.mark.parametrize("method", ["additive", "smooth"])
def test_cell_means_equal_the_coarse_input(world, method):
    _, coarse, pred = world
    out = correction.correct(method, pred, coarse, K)
    assert out.dtype == np.float32 and out.shape == pred.shape
    assert np.abs(block_mean(out, K) - coarse).max() < 1e-4
    # the uncorrected prediction is far off, so the check above is not trivial
    assert np.abs(block_mean(pred, K) - coarse).max() > 0.01


def test_smooth_has_no_seams_and_beats_additive(world):
    truth, coarse, pred = world
    additive = correction.additive(pred, coarse, K)
    smooth = correction.smooth(pred, coarse, K)
    truth_ratio = seam_ratio(truth, K)
    assert seam_ratio(additive, K) > truth_ratio + 0.3
    assert seam_ratio(smooth, K) < seam_ratio(additive, K)
    assert seam_ratio(smooth, K) == pytest.approx(truth_ratio, abs=0.05)
    rmse = {name: np.sqrt(np.mean((out - truth) ** 2)) for name, out in (("additive", additive), ("smooth", smooth))}
    assert rmse["smooth"] < rmse["additive"]


def test_smooth_correction_of_a_ramp_is_continuous_and_monotone():
    """A residual rising cell by cell becomes a continuous rising field: no step at any cell edge."""
    coarse = np.arange(CELLS, dtype=np.float32)[None, None, :].repeat(CELLS, axis=1) * 0.01
    pred = np.zeros((1, CELLS * K, CELLS * K), dtype=np.float32)
    steps = np.diff(correction.smooth(pred, coarse, K)[0], axis=1)
    across = steps[:, K - 1 :: K]
    inside = np.delete(steps, np.s_[K - 1 :: K], axis=1)
    assert (steps > -1e-7).all()
    assert across.max() <= 1.01 * inside.max()
    assert across.max() < 0.2 * 0.01  # additive would step by the full 0.01


def test_additive_shifts_each_cell_by_one_constant(world):
    _, coarse, pred = world
    shift = correction.additive(pred, coarse, K) - pred
    assert np.allclose(shift, block_expand(block_mean(shift, K), K), atol=1e-6)


@pytest.mark.parametrize("method", ["additive", "smooth"])
def test_missing_coarse_cells_and_days_keep_the_estimate(world, method):
    _, coarse, pred = world
    coarse = coarse.copy()
    coarse[1] = np.nan  # an outage day
    coarse[0, 2, 3] = np.nan  # one cell without a value
    out = correction.correct(method, pred, coarse, K)
    np.testing.assert_array_equal(out[1], pred[1])
    np.testing.assert_array_equal(out[0, 2 * K : 3 * K, 3 * K : 4 * K], pred[0, 2 * K : 3 * K, 3 * K : 4 * K])
    ok = np.isfinite(coarse)
    assert np.abs(block_mean(out, K) - coarse)[ok].max() < 1e-4


def test_smooth_keeps_means_with_missing_pixels(world):
    _, coarse, pred = world
    pred = pred.copy()
    pred[:, 5:9, 14:30] = np.nan  # e.g. no predictor there
    pred[:, 0:K, 0:K] = np.nan  # a cell without any predicted pixel
    out = correction.smooth(pred, coarse, K)
    assert np.isnan(out[:, 5:9, 14:30]).all() and np.isnan(out[:, 0:K, 0:K]).all()
    means = block_mean(out, K)
    assert np.isnan(means[:, 0, 0]).all()
    means[:, 0, 0] = coarse[:, 0, 0]
    assert np.abs(means - coarse).max() < 1e-4


def test_blockwise_two_pass_equals_whole_region(world):
    _, coarse, pred = world
    whole = correction.smooth(pred, coarse, K)
    nodes = correction.smooth_nodes(correction.cell_residual(pred, coarse, K), K)
    parts = np.full_like(whole, np.nan)
    for r in range(0, CELLS, 2):
        for c in range(0, CELLS, 3):
            rows, cols = slice(r * K, (r + 2) * K), slice(c * K, (c + 3) * K)
            parts[:, rows, cols] = correction.smooth(pred[:, rows, cols], coarse[:, r : r + 2, c : c + 3], K,
                                                     nodes=nodes, offset=(r, c))
    np.testing.assert_allclose(parts, whole, atol=1e-7)


def test_float32_field_in_place_plus_additive_fix_equals_smooth(world):
    """What prediction runs block by block (add_smooth_field, then the additive fix) is `smooth` with the region's
    nodes, NaN pixels and a cell-day without a coarse value included."""
    _, coarse, pred = world
    pred, coarse = pred.copy(), coarse.copy()
    pred[0, :K, :K] = np.nan  # a cell without a finite pixel
    pred[1, 3, 40] = np.nan
    coarse[2, 4, 1] = np.nan
    residual = correction.cell_residual(pred, coarse, K)
    nodes = correction.smooth_nodes(residual, K)
    whole = correction.smooth(pred, coarse, K)
    parts = np.full_like(whole, np.nan)
    for r in range(0, CELLS, 2):
        for c in range(0, CELLS, 3):
            rows, cols = slice(r * K, (r + 2) * K), slice(c * K, (c + 3) * K)
            block = pred[:, rows, cols].copy()
            valid = np.isfinite(residual[:, r : r + 2, c : c + 3])
            out = correction.add_smooth_field(block, nodes, K, (r, c), valid)
            assert out is block and block.dtype == np.float32
            parts[:, rows, cols] = correction.additive(block, coarse[:, r : r + 2, c : c + 3], K)
    np.testing.assert_allclose(parts, whole, atol=1e-6)
    np.testing.assert_array_equal(np.isnan(parts), np.isnan(whole))
    ok = np.isfinite(coarse) & np.isfinite(block_mean(pred, K))
    assert np.abs(block_mean(parts, K) - coarse)[ok].max() < 1e-4
    np.testing.assert_array_equal(parts[2, 4 * K : 5 * K, K : 2 * K], pred[2, 4 * K : 5 * K, K : 2 * K])


def test_blockwise_with_a_halo_ring_matches_block_edges(world):
    truth, coarse, pred = world
    whole = correction.smooth(pred, coarse, K)
    res = correction.cell_residual(pred, coarse, K)
    errors = {}
    for ring in (0, 1, 3):
        parts = np.full_like(whole, np.nan)
        for r in range(0, CELLS, 2):
            for c in range(0, CELLS, 2):
                r0, r1 = max(0, r - ring), min(CELLS, r + 2 + ring)
                c0, c1 = max(0, c - ring), min(CELLS, c + 2 + ring)
                rows, cols = slice(r * K, (r + 2) * K), slice(c * K, (c + 2) * K)
                parts[:, rows, cols] = correction.smooth(pred[:, rows, cols], coarse[:, r : r + 2, c : c + 2], K,
                                                         residual=res[:, r0:r1, c0:c1], offset=(r - r0, c - c0))
        assert np.abs(block_mean(parts, K) - coarse).max() < 1e-4
        errors[ring] = float(np.abs(parts - whole).max())
    assert errors[3] < errors[1] < errors[0]
    assert errors[3] < 1e-4
    assert seam_ratio(parts, K) == pytest.approx(seam_ratio(whole, K), abs=0.01)


def test_bad_shapes_and_names_are_refused(world):
    _, coarse, pred = world
    with pytest.raises(ValueError, match="factor"):
        correction.smooth(pred[:, :-1], coarse, K)
    with pytest.raises(ValueError, match="does not hold the block"):
        correction.smooth(pred, coarse, K, residual=coarse[:, :2], offset=(0, 0))
    with pytest.raises(ValueError, match="unknown correction 'tobler'"):
        correction.correct("tobler", pred, coarse, K)
    assert correction.correct("none", pred, coarse, K) is pred
