"""The root zone's within-cell detail partly borrowed from the surface's (smdown.mapping.detail): every cell-day mean
kept, the share of the donor's pattern as asked, NaN pixels handled."""

from __future__ import annotations

import numpy as np
import pytest

from smdown.grid import block_mean
from smdown.mapping.detail import borrow_detail

FACTOR = 4


def _fields(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    levels = np.repeat(np.repeat(rng.uniform(0.1, 0.4, (3, 2, 3)), FACTOR, 1), FACTOR, 2)
    field = (levels + 0.02 * rng.standard_normal(levels.shape)).astype(np.float32)
    donor = (0.3 + 0.05 * rng.standard_normal(levels.shape)).astype(np.float32)
    return field, donor


def _anomaly(x: np.ndarray) -> np.ndarray:
    return x - np.repeat(np.repeat(block_mean(x, FACTOR), FACTOR, -2), FACTOR, -1)


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_every_cell_day_mean_is_kept(weight):
    field, donor = _fields()
    out = borrow_detail(field, donor, FACTOR, weight)
    assert out.dtype == np.float32
    np.testing.assert_allclose(block_mean(out, FACTOR), block_mean(field, FACTOR), atol=1e-6)


def test_no_share_keeps_the_field_and_a_whole_share_is_the_donors_pattern_at_the_fields_spread():
    field, donor = _fields()
    np.testing.assert_allclose(borrow_detail(field, donor, FACTOR, 0.0), field, atol=1e-6)
    whole = _anomaly(borrow_detail(field, donor, FACTOR, 1.0).astype(np.float64))
    theirs, own = _anomaly(donor.astype(np.float64)), _anomaly(field.astype(np.float64))
    for day in range(field.shape[0]):
        for r in range(0, field.shape[1], FACTOR):
            for c in range(0, field.shape[2], FACTOR):
                cell = (day, slice(r, r + FACTOR), slice(c, c + FACTOR))
                assert np.corrcoef(whole[cell].ravel(), theirs[cell].ravel())[0, 1] == pytest.approx(1.0, abs=1e-5)
                assert whole[cell].std() == pytest.approx(own[cell].std(), rel=1e-4)
    half = _anomaly(borrow_detail(field, donor, FACTOR, 0.5).astype(np.float64))
    assert 0.3 < np.corrcoef(half.ravel(), theirs.ravel())[0, 1] < 0.95


def test_nan_pixels_stay_nan_and_a_nan_in_the_donor_keeps_the_pixels_own_value_and_the_mean():
    field, donor = _fields(1)
    field[0, 1, 1] = np.nan
    donor[1, 2, 2] = np.nan
    donor[2, :FACTOR, :FACTOR] = np.nan  # a whole cell-day without donor: the field's own
    out = borrow_detail(field, donor, FACTOR, 0.5)
    assert np.isnan(out[0, 1, 1]) and np.isfinite(out[1, 2, 2])
    np.testing.assert_allclose(out[2, :FACTOR, :FACTOR], field[2, :FACTOR, :FACTOR], atol=1e-6)
    np.testing.assert_allclose(block_mean(out, FACTOR), block_mean(field, FACTOR), atol=1e-6)
    with pytest.raises(ValueError, match="share"):
        borrow_detail(field, donor, FACTOR, 1.5)
    with pytest.raises(ValueError, match="shape"):
        borrow_detail(field, donor[:, :4], FACTOR, 0.5)


@pytest.mark.parametrize("correction", ["additive", "smooth"])
def test_the_ensemble_of_a_tile_borrows_the_donor_tiles_detail_as_the_whole_region_does(tmp_path, correction):
    """predict_layer with `detail`: the ensemble is the one without it given the donor's detail (borrow_detail),
    the members and the spread unchanged; a tile's pixels equal the whole region's with the donor's tile."""
    from conftest import PREDICT_SETTINGS

    from mapping.test_blocks import _member, _smooth_world
    from smdown import io
    from smdown.grid import Tile
    from smdown.mapping.blocks import predict_layer
    from smdown.preparing.features import FeatureSpec

    rasters, coarse_path, coarse, factor = _smooth_world(tmp_path)
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    members = {"dnn": _member("dnn", seed=1), "cnn": _member("cnn", seed=2)}
    weights = {"dnn": 0.6, "cnn": 0.4}
    settings = {**PREDICT_SETTINGS, "correction": correction}
    donor = np.random.default_rng(7).uniform(0.1, 0.4, (4, 12, 16)).astype(np.float32)
    donor_path = str(tmp_path / "donor.tif")
    grid = io.read_grid(rasters["x1"])
    io.write_stack(donor_path, io.Stack(donor, grid, io.read_dates(rasters["x1"])))

    def run(folder, detail=None, tile=None):
        outputs = {name: str(tmp_path / folder / f"{name}.tif") for name in ("dnn", "ensemble", "ensemble_std")}
        predict_layer(members, weights, spec, rasters, coarse_path, factor, outputs, detail=detail, tile=tile,
                      **settings)
        return {name: io.read_stack(path).data for name, path in outputs.items()}

    plain, borrowed = run("plain"), run("borrowed", (donor_path, 0.5))
    lo, hi = settings["valid_range"]
    np.testing.assert_allclose(borrowed["ensemble"], np.clip(borrow_detail(plain["ensemble"], donor, factor, 0.5),
                                                              lo, hi), atol=1e-6)
    for name in ("dnn", "ensemble_std"):
        np.testing.assert_array_equal(borrowed[name], plain[name])
    if correction == "additive":  # a tile reads the donor's tile (rule predict: the surface's tile of the same cells)
        tile = Tile(1, 2, 2, 2)
        row, col, height, width = tile.fine(factor)
        tile_donor = str(tmp_path / "donor_tile.tif")
        io.write_stack(tile_donor, io.Stack(donor[:, row : row + height, col : col + width],
                                            grid.window(row, col, height, width), io.read_dates(rasters["x1"])))
        part = run("tile", (tile_donor, 0.5), tile)
        np.testing.assert_array_equal(part["ensemble"], borrowed["ensemble"][:, row : row + height, col : col + width])
