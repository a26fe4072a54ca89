"""Terrain derivatives on DEMs with known answers."""

import math
import time

import numpy as np
import pytest

from smdown.preparing import terrain


def plane(rows, cols, gx, gy, res=30.0):
    """z rising by gx per metre to the east and gy per metre to the north."""
    r, c = np.indices((rows, cols), dtype=np.float64)
    return 100.0 + gx * c * res + gy * (rows - 1 - r) * res


def v_valley(rows=8, cols=7, side=1.0, fall=0.1):
    """A V valley along the middle column, falling towards row 0 (north)."""
    r, c = np.indices((rows, cols), dtype=np.float64)
    return 50.0 + side * np.abs(c - cols // 2) + fall * r


def test_slope_of_plane_is_atan_of_gradient():
    z = plane(10, 12, 0.1, 0.05)
    expected = math.degrees(math.atan(math.hypot(0.1, 0.05)))
    np.testing.assert_allclose(terrain.slope(z, 30.0), expected, rtol=1e-5)


def test_slope_of_flat_is_zero():
    np.testing.assert_array_equal(terrain.slope(np.full((5, 5), 3.0), 30.0), 0.0)


@pytest.mark.parametrize(("gx", "gy", "facing"), [(-0.1, 0, 90), (0.1, 0, 270), (0, -0.1, 0), (0, 0.1, 180),
                                                   (-0.1, -0.1, 45)])
def test_aspect_faces_downslope_clockwise_from_north(gx, gy, facing):
    a = terrain.aspect(plane(6, 6, gx, gy), 30.0)
    np.testing.assert_allclose(np.cos(np.radians(a)), math.cos(math.radians(facing)), atol=1e-5)
    np.testing.assert_allclose(np.sin(np.radians(a)), math.sin(math.radians(facing)), atol=1e-5)
    assert ((a >= 0) & (a < 360)).all()


def test_flow_accumulation_on_tilted_plane_counts_cells_upstream():
    z = plane(4, 6, -0.01, 0.0)  # falls to the east: each row drains along itself
    acc = terrain.flow_accumulation(z)
    np.testing.assert_array_equal(acc, np.tile(np.arange(1, 7), (4, 1)))


def test_flow_accumulation_on_v_valley():
    rows, cols = 8, 7
    acc = terrain.flow_accumulation(v_valley(rows, cols))
    centre = cols // 2
    # hillside cells drain sideways into the channel: 1, 2, 3 towards it
    np.testing.assert_array_equal(acc[:, :centre], np.tile([1, 2, 3], (rows, 1)))
    np.testing.assert_array_equal(acc[:, centre + 1 :], np.tile([3, 2, 1], (rows, 1)))
    # the channel collects whole rows from downstream of it
    np.testing.assert_array_equal(acc[:, centre], (rows - np.arange(rows)) * cols)


def test_flow_accumulation_conserves_cells_and_handles_nan():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 50)).cumsum(axis=1)
    z[5, 7] = np.nan
    acc = terrain.flow_accumulation(z)
    assert np.isnan(acc[5, 7]) and np.isfinite(np.delete(acc.ravel(), 5 * 50 + 7)).all()
    outlets = terrain.d8_receivers(z) < 0
    outlets[5 * 50 + 7] = False
    assert np.nansum(acc.ravel()[outlets]) == np.isfinite(z).sum()
    assert np.nanmin(acc) >= 1


def test_flow_accumulation_is_fast():
    rng = np.random.default_rng(1)
    z = rng.normal(scale=0.3, size=(600, 600)) - np.arange(600)[None, :] * 1.0  # falls east
    t0 = time.perf_counter()
    acc = terrain.flow_accumulation(z)
    assert time.perf_counter() - t0 < 5.0
    assert acc.max() > 100


def test_twi_higher_in_valley_and_nan_propagates():
    z = v_valley(20, 11)
    w = terrain.twi(z, 30.0)
    assert w[5, 5] > w[5, 0] + 2.0
    z[3, 3] = np.nan
    w = terrain.twi(z, 30.0)
    assert np.isnan(w[3, 3]) and np.isfinite(w[4, 4])
    assert np.isnan(terrain.slope(z, 30.0)[3, 3]) and np.isnan(terrain.aspect(z, 30.0)[3, 3])


def _windowed(z, size, names=("slope", "aspect", "twi")):
    out = {name: np.full(z.shape, -999.0, dtype=np.float32) for name in names}
    for (r, c, h, w), values in terrain.windowed(lambda r, c, h, w: z[r : r + h, c : c + w], z.shape, 30.0,
                                                 list(names), size):
        for name, value in values.items():
            out[name][r : r + h, c : c + w] = value
    return out


@pytest.mark.parametrize("seed", range(4))
def test_windowed_terrain_equals_the_whole_dem(seed):
    """Slope, aspect and the wetness index (its flow accumulation across windows included) window by window are
    bitwise those of the whole DEM, with rivers crossing window edges back and forth, NaN holes, flats and ties."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(30, 70)), int(rng.integers(30, 70)))
    z = rng.normal(size=shape).cumsum(0).cumsum(1) * 0.3 + rng.normal(scale=2, size=shape)
    z[rng.random(shape) < 0.05] = np.nan
    if seed == 0:
        z = np.round(z)  # flats and ties
    whole = {"slope": terrain.slope(z, 30.0), "aspect": terrain.aspect(z, 30.0), "twi": terrain.twi(z, 30.0)}
    for size in (5, 16, 100):
        out = _windowed(z, size)
        for name, expected in whole.items():
            np.testing.assert_array_equal(out[name], expected, err_msg=f"{name}, windows of {size}")


def test_windowed_flow_crosses_many_windows():
    z = plane(12, 40, -0.01, 0.0)  # every row drains east through 8 windows of 5 columns
    acc = np.exp(_windowed(z, 5, ["twi"])["twi"]) * np.tan(np.radians(terrain.slope(z, 30.0))) / 30.0
    np.testing.assert_allclose(acc, np.tile(np.arange(1, 41), (12, 1)), rtol=1e-5)


def test_windows_cover_the_raster():
    wins = terrain.windows((5, 7), 3)
    assert wins == [(0, 0, 3, 3), (0, 3, 3, 3), (0, 6, 3, 1), (3, 0, 2, 3), (3, 3, 2, 3), (3, 6, 2, 1)]


def test_terrain_step_writes_the_whole_dem_result_window_by_window(tmp_path):
    from affine import Affine

    from smdown import io
    from smdown.grid import Grid
    from smdown.preparing.prepare_steps import terrain as terrain_step

    rng = np.random.default_rng(5)
    z = (rng.normal(size=(45, 38)).cumsum(0) + plane(45, 38, 0.01, 0.02)).astype(np.float32)
    z[10:13, 20:22] = np.nan
    io.write_stack(tmp_path / "dem.tif", io.Stack(z[np.newaxis], Grid("EPSG:32611", Affine(30, 0, 7e5, 0, -30, 4.2e6), 45, 38)))
    names = ["slope", "northness", "eastness", "twi"]
    terrain_step(str(tmp_path / "dem.tif"), {n: str(tmp_path / f"{n}.tif") for n in names}, ["slope", "aspect", "twi"],
                 window=16)
    z64 = z.astype(np.float64)
    radians = np.deg2rad(terrain.aspect(z64, 30.0))
    expected = {"slope": terrain.slope(z64, 30.0), "northness": np.cos(radians), "eastness": np.sin(radians),
                "twi": terrain.twi(z64, 30.0)}
    for name in names:
        np.testing.assert_array_equal(io.read_stack(tmp_path / f"{name}.tif", static=True).data[0],
                                      expected[name].astype(np.float32), err_msg=name)
