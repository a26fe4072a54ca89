"""The NetCDF-CF cube: xarray opens it as time x y x with the GeoTIFFs' dates, values, units and CRS."""

import numpy as np
import pytest
import xarray as xr
from conftest import make_dates
from pyproj import CRS

from smdown import io
from smdown.grid import Grid
from smdown.publishing import cube


@pytest.fixture
def maps(tmp_path, coarse_grid):
    """Two maps of 20 days on a 300 x 260 grid of 30 m pixels (chunks cut inside the days and rows)."""
    grid = Grid(coarse_grid.crs, coarse_grid.transform @ coarse_grid.transform.scale(30 / coarse_grid.res), 300, 260)
    rng = np.random.default_rng(5)
    dates = make_dates("2023-12-25", 20)
    paths = {}
    for name in ("ensemble", "uncertainty"):
        data = rng.uniform(0.0, 0.5, (20, 300, 260)).astype(np.float32)
        data[3, 100:120, 40:50] = np.nan
        paths[name] = tmp_path / f"{name}.tif"
        io.write_stack(paths[name], io.Stack(data, grid, dates))
    return paths, grid, dates


@pytest.mark.parametrize("dtype", ["float32", "int16"])
def test_xarray_reads_the_maps_dates_values_units_and_crs(tmp_path, maps, dtype):
    paths, grid, dates = maps
    summary = cube.write_cube(paths, tmp_path / "surface.nc", "surface", dtype=dtype)
    assert summary["bytes"] == (tmp_path / "surface.nc").stat().st_size
    with xr.open_dataset(tmp_path / "surface.nc") as ds:
        assert [str(t)[:10] for t in ds["time"].values] == dates
        assert ds["ensemble"].dims == ("time", "y", "x") and ds["ensemble"].dtype == np.float32
        assert ds["ensemble"].attrs["units"] == "m3 m-3"
        assert CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"]) == CRS.from_user_input(grid.crs)
        assert ds["spatial_ref"].attrs["grid_mapping_name"] == "lambert_cylindrical_equal_area"
        for name, path in paths.items():
            want = io.read_stack(path).data
            got = ds[name].values
            assert np.array_equal(np.isnan(got), np.isnan(want))
            if dtype == "float32":
                assert np.array_equal(got, want, equal_nan=True)
            else:
                assert np.nanmax(np.abs(got - want)) < 1e-4
        assert float(ds["x"][1] - ds["x"][0]) == grid.transform.a


def test_maps_on_other_grids_or_dates_are_refused(tmp_path, maps):
    paths, grid, dates = maps
    other = io.read_stack(paths["ensemble"])
    io.write_stack(tmp_path / "late.tif", io.Stack(other.data, other.grid, make_dates("2024-01-01", 20)))
    with pytest.raises(ValueError, match="not on the grid and dates"):
        cube.write_cube({"ensemble": paths["ensemble"], "late": tmp_path / "late.tif"}, tmp_path / "x.nc", "surface")
    assert not (tmp_path / "x.nc").exists()
