"""Raster I/O and warping: round trips, checks, where a raster in another CRS lands, and our cubic warp == gdalwarp."""

import os
import shutil
import subprocess

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import LONLAT, UTM, grid_around, make_dates, smooth_field

from smdown import io
from smdown.grid import Grid, nested_grid
from smdown.preparing import resample

# ---------------------------------------------------------------- round trips and checks


def test_write_read_round_trip_keeps_values_nan_grid_and_dates(tmp_path, coarse_grid, write_raster):
    data = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2) / 10
    data[1, 0, 1] = np.nan
    dates = make_dates("2023-05-30", 3)
    path = write_raster("stack.tif", data, coarse_grid, dates)
    stack = io.read_stack(path)
    np.testing.assert_array_equal(stack.data, data)
    assert stack.dates == ["2023-05-30", "2023-05-31", "2023-06-01"]
    assert stack.grid == coarse_grid and not stack.is_static
    assert io.read_dates(path) == dates and io.band_count(path) == 3 and io.read_grid(path) == coarse_grid
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]  # no temporary file left behind
    with rasterio.open(path) as src:
        assert src.dtypes == ("float32",) * 3 and np.isnan(src.nodata)
        assert src.compression is not None


def test_static_raster_round_trip(coarse_grid, write_raster):
    path = write_raster("dem.tif", np.full((1, 2, 2), 123.5), coarse_grid)
    stack = io.read_stack(path, static=True)
    assert stack.is_static and stack.data.shape == (1, 2, 2) and stack.data[0, 1, 1] == 123.5


def test_a_static_predictor_must_have_one_band(coarse_grid, write_raster):
    path = write_raster("two.tif", np.zeros((2, 2, 2)), coarse_grid, make_dates("2023-05-01", 2))
    with pytest.raises(io.InputError, match=r"two\.tif.*one band, found 2"):
        io.read_stack(path, static=True)


@pytest.mark.parametrize(
    "descriptions, message",
    [
        (["2023-05-01", "ndvi"], r"must be dates YYYY-MM-DD.*band\(s\) \[2\]"),
        (["2023-05-01", "2023-05-01"], "not unique"),
        (["2023-05-02", "2023-05-01"], "increasing order"),
    ],
)
def test_band_dates_are_checked(coarse_grid, write_raster, descriptions, message):
    path = write_raster("bad.tif", np.zeros((2, 2, 2)), coarse_grid, descriptions)
    with pytest.raises(io.InputError, match=message) as err:
        io.read_dates(path)
    assert str(path) in str(err.value)
    with pytest.raises(io.InputError, match=message):
        io.read_stack(path)


def test_missing_file_and_raster_without_crs_are_named(tmp_path):
    with pytest.raises(io.InputError, match=r"nowhere\.tif: input file not found"):
        io.read_grid(tmp_path / "nowhere.tif")
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=2, height=2, count=1, dtype="float32",
                       transform=Affine(1, 0, 0, 0, -1, 2)) as dst:
        dst.write(np.ones((1, 2, 2), dtype=np.float32))
    with pytest.raises(io.InputError, match=r"nocrs\.tif: raster has no CRS"):
        io.read_stack(path, static=True)
    text = tmp_path / "text.tif"
    text.write_text("not a raster")
    with pytest.raises(io.InputError, match=r"text\.tif: not a readable raster"):
        io.read_grid(text)


def test_integer_nodata_is_read_as_nan(tmp_path):
    path = tmp_path / "int.tif"
    with rasterio.open(path, "w", driver="GTiff", width=2, height=1, count=1, dtype="int16", nodata=-9999,
                       crs="EPSG:32610", transform=Affine(30, 0, 600000, 0, -30, 4100000)) as dst:
        dst.write(np.array([[[-9999, 250]]], dtype=np.int16))
    stack = io.read_stack(path, static=True)
    assert stack.data.dtype == np.float32
    assert np.isnan(stack.data[0, 0, 0]) and stack.data[0, 0, 1] == 250.0


def test_read_window_is_nan_outside_the_raster(coarse_grid, write_raster):
    path = write_raster("s.tif", np.array([[[1, 2], [3, 4]]]), coarse_grid)
    window = io.read_window(path, 1, 1, 2, 2)
    assert window.shape == (1, 2, 2) and window[0, 0, 0] == 4.0
    assert np.isnan(window[0, 1]).all() and np.isnan(window[0, :, 1]).all()


def test_read_window_selects_bands_in_the_order_asked(coarse_grid, write_raster):
    data = np.arange(3)[:, None, None] * np.ones((3, 2, 2))
    path = write_raster("d.tif", data, coarse_grid, make_dates("2023-05-01", 3))
    inside = io.read_window(path, 0, 0, 2, 2, bands=[2, 0])
    outside = io.read_window(path, 1, 1, 2, 2, bands=np.array([1]))
    assert inside.shape == (2, 2, 2) and (inside[0] == 2).all() and (inside[1] == 0).all()
    assert outside.shape == (1, 2, 2) and outside[0, 0, 0] == 1 and np.isnan(outside[0, 1]).all()


def test_failed_write_leaves_no_file(tmp_path, coarse_grid):
    path = tmp_path / "out.tif"
    with pytest.raises(RuntimeError), io.open_writer(path, coarse_grid, ["2023-05-01"]) as dst:
        io.write_window(dst, np.ones((1, 1, 1)), 0, 0)
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_overlaps(coarse_grid, write_raster):
    near = grid_around(coarse_grid, UTM, 300.0, 0.0)
    far = Grid(UTM, Affine(300.0, 0, 200000.0, 0, -300.0, 3000000.0), 10, 10)
    assert io.overlaps(write_raster("near.tif", np.zeros((1, *near.shape)), near), coarse_grid)
    assert not io.overlaps(write_raster("far.tif", np.zeros((1, 10, 10)), far), coarse_grid)


def test_pixel_size_in_metres():
    lonlat = Grid(LONLAT, Affine(0.01, 0, -121.0, 0, -0.01, 38.0), 100, 100)  # centre at 37.5 N
    width, height = io.pixel_size_m(lonlat)
    assert height == pytest.approx(1113.2)
    assert width == pytest.approx(1113.2 * np.cos(np.deg2rad(37.5)))
    assert io.pixel_size_m(Grid(UTM, Affine(30, 0, 0, 0, -30, 0), 1, 1)) == (30.0, 30.0)


# ---------------------------------------------------------------- a raster lands where its coordinates say

HOT_LON, HOT_LAT = -120.5861, 37.1409  # inside the 2 x 2 coarse window, near the centre of a 1 km pixel


def _hot_raster(grid: Grid, lon: float, lat: float, half: int) -> np.ndarray:
    """Zeros with a (2 half + 1)^2 block of ones centred on the source pixel holding (lon, lat)."""
    x, y = io.lonlat_to(grid.crs, lon, lat)
    col, row = (~grid.transform) @ (x[0], y[0])
    row, col = int(np.floor(row)), int(np.floor(col))
    data = np.zeros((1, *grid.shape), dtype=np.float32)
    data[0, row - half : row + half + 1, col - half : col + half + 1] = 1.0
    return data


def _expected_pixel(grid: Grid, lon: float, lat: float) -> tuple[int, int]:
    x, y = io.lonlat_to(grid.crs, lon, lat)
    col, row = (~grid.transform) @ (x[0], y[0])
    return int(np.floor(row)), int(np.floor(col))


@pytest.mark.parametrize("crs, res", [(LONLAT, 0.001), (UTM, 100.0)])
@pytest.mark.parametrize("method", ["average", "cubic", "nearest"])
def test_a_hot_block_lands_at_its_lon_lat(coarse_grid, crs, res, method):
    src_grid = grid_around(coarse_grid, crs, res, 5 * res)
    stack = io.Stack(_hot_raster(src_grid, HOT_LON, HOT_LAT, half=1), src_grid)
    fine = nested_grid(coarse_grid, 9)
    row, col = _expected_pixel(fine, HOT_LON, HOT_LAT)
    assert (row, col) == (11, 3)  # known position of the point on the 1 km grid of the window
    out = io.warp(stack, fine, method).data[0]
    assert np.unravel_index(np.nanargmax(out), out.shape) == (row, col)
    if method != "cubic":  # the whole 3 x 3 block (~300 m) falls inside one 1 km pixel, nothing elsewhere
        assert out[row, col] > 0.05
        assert np.count_nonzero(np.abs(out) > 1e-6) == 1
    # on the coarse grid, the block is in cell (1, 0)
    coarse = io.warp(stack, coarse_grid, "average").data[0]
    assert _expected_pixel(coarse_grid, HOT_LON, HOT_LAT) == (1, 0)
    assert np.unravel_index(np.nanargmax(coarse), coarse.shape) == (1, 0)


# ---------------------------------------------------------------- our cubic warp == gdalwarp -r cubic

GDALWARP = shutil.which("gdalwarp")
needs_gdalwarp = pytest.mark.skipif(
    GDALWARP is None and not os.environ.get("CI"), reason="gdalwarp not installed (CI installs gdal-bin)"
)


def _gdalwarp(src, dst, grid: Grid, method: str = "cubic") -> np.ndarray:
    left, bottom, right, top = grid.bounds
    cmd = [GDALWARP or "gdalwarp", "-q", "-overwrite", "-r", method, "-t_srs", grid.crs,
           "-te", repr(left), repr(bottom), repr(right), repr(top), "-ts", str(grid.width), str(grid.height),
           "-srcnodata", "nan", "-dstnodata", "nan", "-ot", "Float32", str(src), str(dst)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    with rasterio.open(dst) as ds:
        assert ds.transform.almost_equals(grid.transform) and (ds.height, ds.width) == grid.shape
        return ds.read()


def _smooth_with_hole(grid: Grid, bands: int = 2) -> np.ndarray:
    field = smooth_field(grid)
    data = np.stack([field * (1 + 0.5 * b) for b in range(bands)])
    r, c = grid.height // 3, grid.width // 2
    data[:, r : r + 6, c : c + 4] = np.nan  # a hole, the same in every band
    return data


@needs_gdalwarp
@pytest.mark.parametrize("crs, res", [(UTM, 250.0), (LONLAT, 0.0025)])
@pytest.mark.parametrize("factor", [9, 90])
def test_our_cubic_warp_equals_gdalwarp(tmp_path, coarse_grid, write_raster, crs, res, factor):
    src_grid = grid_around(coarse_grid, crs, res, 8 * res)
    data = _smooth_with_hole(src_grid)
    src = write_raster("src.tif", data, src_grid, make_dates("2023-05-01", 2))
    fine = nested_grid(coarse_grid, factor)
    expected = _gdalwarp(src, tmp_path / "gdal.tif", fine)
    ours = io.warp(io.read_stack(src), fine, "cubic").data
    assert np.isnan(ours).any() and np.isfinite(ours).mean() > 0.9  # the hole shows, the rest is filled
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


@needs_gdalwarp
@pytest.mark.parametrize("factor", [9, 180])
def test_resample_variable_of_a_static_raster_equals_gdalwarp(tmp_path, coarse_grid, write_raster, factor):
    src_grid = grid_around(coarse_grid, UTM, 100.0, 800.0)
    src = write_raster("dem.tif", _smooth_with_hole(src_grid, bands=1), src_grid)
    coarse = write_raster("coarse.tif", np.zeros((1, 2, 2)), coarse_grid, ["2023-05-01"])
    expected = _gdalwarp(src, tmp_path / "gdal.tif", nested_grid(coarse_grid, factor))
    missing = resample.resample_variable(str(src), str(coarse), factor, True, str(tmp_path / "ours.tif"), 45)
    ours = io.read_stack(tmp_path / "ours.tif", static=True)
    assert ours.grid == nested_grid(coarse_grid, factor) and ours.is_static
    assert missing == pytest.approx(np.isnan(expected).mean())
    np.testing.assert_array_equal(np.isnan(ours.data), np.isnan(expected))
    np.testing.assert_allclose(ours.data, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("factor", [None, 9, 90])
def test_resampling_block_by_block_equals_one_block(tmp_path, coarse_grid, write_raster, factor):
    """Blocks of one coarse cell (each read with its kernel's margin) give the whole grid's warp, with
    cloud gaps filled in time the same way. Not to the last bit: GDAL's warper places source pixels with
    an approximate transformer (error under 1/8 pixel, gdalwarp's default) fitted per chunk, so a
    block's values differ from the whole grid's by well under 0.1 % and an edge pixel of a hole may
    flip; gdalwarp's own chunks behave the same way."""
    src_grid = grid_around(coarse_grid, UTM, 250.0, 2000.0)
    data = _smooth_with_hole(src_grid, bands=3)
    data[1, :, : src_grid.width // 2] = np.nan  # the western half clouded on the second scene
    src = write_raster("ndvi.tif", data, src_grid, ["2023-05-01", "2023-05-04", "2023-05-07"])
    coarse = write_raster("coarse.tif", np.zeros((8, 2, 2)), coarse_grid, make_dates("2023-05-01", 8))
    outputs = {}
    for name, budget in (("blocks", 1), ("whole", 10**9)):
        outputs[name] = tmp_path / f"{name}.tif"
        resample.resample_variable(str(src), str(coarse), factor, False, str(outputs[name]), max_gap_days=7,
                                   block_pixel_days=budget)
    blocks, whole = io.read_stack(outputs["blocks"]), io.read_stack(outputs["whole"])
    assert blocks.dates == whole.dates == make_dates("2023-05-01", 8)
    assert np.isfinite(whole.data[1]).mean() > 0.9  # the cloud was filled from the scenes around it
    both = np.isfinite(blocks.data) & np.isfinite(whole.data)
    assert np.mean(np.isnan(blocks.data) != np.isnan(whole.data)) < 1e-3
    np.testing.assert_allclose(blocks.data[both], whole.data[both], rtol=1e-3)


def test_a_source_that_misses_a_block_gives_nan_there(tmp_path, coarse_grid, write_raster):
    half = coarse_grid.window(0, 0, 2, 1)  # covers the western coarse cells only
    src_grid = grid_around(half, UTM, 250.0, 0.0)
    src_grid = Grid(src_grid.crs, src_grid.transform, src_grid.height, src_grid.width - 8)
    src = write_raster("dem.tif", np.full((1,) + src_grid.shape, 100.0), src_grid)
    coarse = write_raster("coarse.tif", np.zeros((1, 2, 2)), coarse_grid, ["2023-05-01"])
    resample.resample_variable(str(src), str(coarse), 9, True, str(tmp_path / "out.tif"), 45, block_pixel_days=81)
    out = io.read_stack(tmp_path / "out.tif", static=True).data[0]
    assert np.isnan(out[:, 9:]).all()  # the eastern cells: no source pixel
    assert np.isfinite(out[2:-2, 2:7]).all()


@pytest.mark.parametrize("method", ["average", "cubic"])
def test_a_stack_warps_like_each_of_its_bands_alone(coarse_grid, method):
    """A cloud on one date must behave as it would in a one-band raster (which is what gdalwarp gives)."""
    src_grid = grid_around(coarse_grid, UTM, 250.0, 2000.0)
    field = smooth_field(src_grid)
    data = np.stack([field, 2.0 * field])
    data[1, 10:40, 10:40] = np.nan  # a cloud on the second date only
    fine = nested_grid(coarse_grid, 9)
    dates = ["2023-05-01", "2023-05-06"]
    together = io.warp(io.Stack(data, src_grid, dates), fine, method).data
    alone = np.concatenate([io.warp(io.Stack(data[b : b + 1], src_grid, dates[b : b + 1]), fine, method).data
                            for b in range(2)])
    assert np.isnan(alone[1]).any() and np.isfinite(alone[0]).all()
    np.testing.assert_array_equal(np.isnan(together), np.isnan(alone))
    np.testing.assert_allclose(together, alone, rtol=1e-6)


def test_a_write_removes_the_temporary_files_a_killed_writer_left_of_its_target_only(tmp_path, coarse_grid,
                                                                                     write_raster):
    """A job killed with SIGKILL leaves its `.part` file; the next write of the same target deletes it (and no other
    file: another target's temporary, a name that only looks alike, the target's own siblings)."""
    left = tmp_path / ".stack.0a1b2c3d.part.tif"  # what a killed writer of stack.tif left
    left.write_bytes(b"half a raster")
    keep = [tmp_path / name for name in (".stack.b.0a1b2c3d.part.tif", ".stacks.0a1b2c3d.part.tif",
                                         ".stack.0a1b2c3d.part.csv", ".stack.notahex!.part.tif", "stack.part.tif")]
    for path in keep:
        path.write_bytes(b"not stack.tif's")
    write_raster("stack.tif", np.ones((1, 2, 2)), coarse_grid, ["2023-05-01"])
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["stack.tif"] + [p.name for p in keep])
    with pytest.raises(RuntimeError), io.atomic_path(tmp_path / "stack.tif") as tmp:  # a failed write cleans up too
        tmp.write_bytes(b"half")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["stack.tif"] + [p.name for p in keep])
