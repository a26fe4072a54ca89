"""The written maps' layout: Cloud-Optimized GeoTIFFs (rio-cogeo validates them) whose float32 values are the tiles'
bits, and the int16 choice within 1e-4 m3/m3, its nodata kept."""

import numpy as np
import pytest
from conftest import make_dates
from rio_cogeo.cogeo import cog_validate

from smdown import io
from smdown.grid import Grid


@pytest.fixture
def field(coarse_grid):
    """A 600 x 520 grid of 30 m pixels (larger than 512, so tiled) and 5 days of values with a NaN corner."""
    grid = Grid(coarse_grid.crs, coarse_grid.transform @ coarse_grid.transform.scale(30 / coarse_grid.res), 600, 520)
    rng = np.random.default_rng(3)
    data = (0.3 + 0.05 * rng.standard_normal((5, 600, 520))).astype(np.float32)
    data[:, :10, :10] = np.nan
    return grid, data, make_dates("2023-05-01", 5)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_a_lone_tile_and_two_tiles_merge_into_a_valid_cog_with_the_same_bits(tmp_path, field):
    grid, data, dates = field
    io.write_stack(tmp_path / "tile.tif", io.Stack(data, grid, dates))
    io.write_stack(tmp_path / "top.tif", io.Stack(data[:, :300], grid.window(0, 0, 300, 520), dates))
    io.write_stack(tmp_path / "bottom.tif", io.Stack(data[:, 300:], grid.window(300, 0, 300, 520), dates))
    for parts, name in (([tmp_path / "tile.tif"], "lone.tif"), ([tmp_path / "top.tif", tmp_path / "bottom.tif"], "two.tif")):
        io.merge(parts, tmp_path / name, cog=True)
        valid, errors, _ = cog_validate(str(tmp_path / name))
        assert valid, errors
        merged = io.read_stack(tmp_path / name)
        assert same_bits(merged.data, data) and merged.dates == dates and merged.grid == grid
    assert not list(tmp_path.glob(".*part*")), "a temporary file left behind"


@pytest.mark.parametrize("cog", [False, True])
def test_a_merge_in_threads_writes_the_same_bytes(tmp_path, field, cog):
    grid, data, dates = field
    parts = [tmp_path / "top.tif", tmp_path / "bottom.tif"]
    io.write_stack(parts[0], io.Stack(data[:, :300], grid.window(0, 0, 300, 520), dates))
    io.write_stack(parts[1], io.Stack(data[:, 300:], grid.window(300, 0, 300, 520), dates))
    for threads in (1, 3):
        io.merge(parts, tmp_path / f"threads{threads}.tif", cog=cog, threads=threads)
    assert (tmp_path / "threads1.tif").read_bytes() == (tmp_path / "threads3.tif").read_bytes()


def test_int16_maps_are_within_1e_4_keep_their_nodata_and_are_valid_cogs(tmp_path, field):
    grid, data, dates = field
    io.write_stack(tmp_path / "tile.tif", io.Stack(data, grid, dates))
    io.merge([tmp_path / "tile.tif"], tmp_path / "int16.tif", dtype="int16", cog=True)
    valid, errors, _ = cog_validate(str(tmp_path / "int16.tif"))
    assert valid, errors
    stored = io.read_stack(tmp_path / "int16.tif")
    assert np.array_equal(np.isnan(stored.data), np.isnan(data))
    assert np.nanmax(np.abs(stored.data - data)) <= io.INT16_SCALE / 2 + 1e-7
    # a window beyond the map's edge reads NaN there, as a float32 map does
    window = io.read_window(tmp_path / "int16.tif", 590, 510, 20, 20)
    assert np.isnan(window[:, 10:, :]).all() and np.allclose(window[:, :10, :10], data[:, 590:, 510:], atol=1e-4)
    assert (tmp_path / "int16.tif").stat().st_size < 0.6 * (tmp_path / "tile.tif").stat().st_size


@pytest.mark.parametrize("value", [4.0, -4.0, -0.9999])
def test_a_value_int16_cannot_hold_is_an_error_not_clipped(value):
    with pytest.raises(ValueError, match="int16"):
        io.encode(np.array([[[0.2, value]]], dtype=np.float32), "int16")
