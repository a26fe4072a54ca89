"""The demo world: coarse consistency, files and georeference, physics, determinism."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import yaml

from smdown import io
from smdown.config import SCHEMA_PATH, ConfigError
from smdown.grid import block_mean
from smdown.preparing import demo

FACTOR = 30  # 300 m "fine" pixels keep the tests quick

CFG = dict(seed=7, coarse_rows=1, coarse_cols=2, days=20, start="2023-04-01", lon=-120.55, lat=37.25, stations=3,
           spinup_days=10, wet_day_probability=0.4)


@pytest.fixture(scope="module")
def world():
    return demo.make_world(CFG, fine_factor=FACTOR)


@pytest.fixture(scope="module")
def written(world, tmp_path_factory):
    return demo.write_world(world, tmp_path_factory.mktemp("demo"))


def test_coarse_is_block_mean_of_truth_plus_bias_and_noise(world):
    for layer in demo.LAYERS:
        truth_mean = block_mean(getattr(world, f"truth_{layer}"), world.factor)
        rebuilt = getattr(world, f"coarse_{layer}") - getattr(world, f"bias_{layer}") - getattr(world, f"noise_{layer}")
        np.testing.assert_allclose(truth_mean, rebuilt, atol=1e-5)
    assert 0.01 < abs(world.bias_surface.mean()) < 0.06
    assert 0.005 < world.noise_surface.std() < 0.04


def test_files_crs_and_dates(world, written):
    assert {p.name for p in written.values()} == set(demo.FILES.values())
    crs = {"coarse_surface": "EPSG:6933", "coarse_rootzone": "EPSG:6933", "truth_surface": "EPSG:6933",
           "truth_rootzone": "EPSG:6933", "precipitation": "EPSG:4326", "sand": "EPSG:4326", "clay": "EPSG:4326",
           "dem": "EPSG:32610", "ndvi": "EPSG:32610", "ndwi": "EPSG:32610"}
    for name, expected in crs.items():
        assert io.read_grid(written[name]).crs == expected, name
    for name in ("coarse_surface", "coarse_rootzone", "truth_surface", "truth_rootzone", "precipitation"):
        assert io.read_dates(written[name]) == world.dates
    assert world.dates[0] == CFG["start"] and len(world.dates) == CFG["days"]
    truth = io.read_stack(written["truth_surface"])
    assert truth.grid.res == pytest.approx(9008.055210146 / FACTOR)
    assert truth.data.dtype == np.float32 and truth.data.shape == (CFG["days"], FACTOR, 2 * FACTOR)
    np.testing.assert_array_equal(truth.data, world.truth_surface)
    for name in ("dem", "sand", "clay"):
        assert io.read_stack(written[name], static=True).data.shape[0] == 1


def test_ndvi_every_five_days_with_cloud_gaps(written):
    for name in ("ndvi", "ndwi"):
        stack = io.read_stack(written[name])
        days = [dt.date.fromisoformat(d) for d in stack.dates]
        assert {(b - a).days for a, b in zip(days, days[1:], strict=False)} == {5}
        nan = np.isnan(stack.data).mean(axis=(1, 2))
        assert nan.max() > 0.0 and nan.min() < 1.0
        assert io.read_grid(written[name]).res == 30.0


def test_products_cover_the_region(world, written):
    for name in ("precipitation", "ndvi", "dem", "sand", "clay"):
        stack = io.read_stack(written[name], static=name in ("dem", "sand", "clay"))
        if name == "ndvi":  # cloud-free view: the footprint, not the clouds
            stack.data = np.nan_to_num(stack.data, nan=0.5)
        on_fine = io.warp(stack, world.fine, "nearest")
        assert np.isfinite(on_fine.data).all(), name
        left, bottom, right, top = io.read_grid(written[name]).bounds
        if io.read_grid(written[name]).crs == "EPSG:4326":
            lon, lat = io.to_lonlat(world.fine.crs, [world.fine.bounds[0], world.fine.bounds[2]],
                                    [world.fine.bounds[1], world.fine.bounds[3]])
            assert left < lon[0] and right > lon[1] and bottom < lat[0] and top > lat[1]


def test_values_physical(world):
    for layer in demo.LAYERS:
        truth = getattr(world, f"truth_{layer}")
        assert np.isfinite(truth).all()
        assert (truth >= 0.3 * world.wilting_point - 1e-6).all()
        assert (truth <= world.porosity + 1e-6).all()
        assert 0.05 < truth.mean() < 0.45
    assert ((world.coarse_surface >= 0.01) & (world.coarse_surface <= 0.6)).all()
    assert (world.wilting_point < world.field_capacity).all() and (world.field_capacity < world.porosity).all()
    assert (world.precipitation >= 0).all() and world.precipitation.max() > 1.0
    ndvi = world.products["ndvi"].data
    assert np.nanmin(ndvi) >= -0.2 and np.nanmax(ndvi) <= 1.0
    for name in ("sand", "clay"):
        assert ((world.products[name].data >= 0) & (world.products[name].data <= 100)).all()


def test_within_cell_variability(world):
    truth = world.truth_surface
    sd = np.sqrt(np.maximum(block_mean(truth**2, FACTOR) - block_mean(truth, FACTOR) ** 2, 0))
    assert 0.015 < sd.mean() < 0.12


def test_same_seed_same_world_different_seed_different():
    cfg = dict(CFG, days=10, spinup_days=3, coarse_cols=1)
    a = demo.make_world(cfg, fine_factor=15)
    b = demo.make_world(cfg, fine_factor=15)
    c = demo.make_world(dict(cfg, seed=8), fine_factor=15)
    np.testing.assert_array_equal(a.truth_rootzone, b.truth_rootzone)
    np.testing.assert_array_equal(a.coarse_surface, b.coarse_surface)
    np.testing.assert_array_equal(a.products["ndvi"].data, b.products["ndvi"].data)
    pd.testing.assert_frame_equal(a.stations, b.stations)
    assert not np.array_equal(a.truth_rootzone, c.truth_rootzone)
    assert not np.array_equal(a.sand, c.sand)


def test_truth_responds_to_rain(world):
    rain = world.precipitation.mean(axis=(1, 2))
    sm = world.truth_surface.mean(axis=(1, 2))
    wet = [t for t in range(1, len(rain)) if rain[t] > 5.0 and rain[t - 1] < 1.0]
    assert wet, "test config should produce a storm after a dry day"
    for t in wet:
        assert sm[t] > sm[t - 1] + 0.01


def test_wetter_at_high_twi(world):
    rz = world.truth_rootzone.mean(axis=0)
    high = world.twi > np.quantile(world.twi, 0.9)
    low = world.twi < np.quantile(world.twi, 0.5)
    assert rz[high].mean() > rz[low].mean() + 0.01


def test_saxton_rawls_loam_matches_table():
    # Saxton & Rawls (2006) Table 3, loam: 40 % sand, 20 % clay, 2.5 % OM -> PWP 0.14, FC 0.28, SAT 0.46, Ks 14.7 mm/h
    sr = demo.saxton_rawls(np.array([40.0]), np.array([20.0]), 2.5)
    assert sr["wilting_point"][0] == pytest.approx(0.14, abs=0.01)
    assert sr["field_capacity"][0] == pytest.approx(0.28, abs=0.01)
    assert sr["porosity"][0] == pytest.approx(0.46, abs=0.01)
    assert sr["ksat"][0] == pytest.approx(14.7, rel=0.15)
    sand = demo.saxton_rawls(np.array([88.0]), np.array([5.0]), 2.5)
    assert sand["field_capacity"][0] == pytest.approx(0.10, abs=0.01)


def test_stations_csv(world, written):
    df = pd.read_csv(written["stations"])
    assert list(df.columns) == ["station", "lon", "lat", "date", "surface", "rootzone"]
    assert df["station"].nunique() == CFG["stations"]
    assert 0 < len(df) < CFG["stations"] * CFG["days"]  # some days missing
    x, y = io.lonlat_to(world.fine.crs, df["lon"].to_numpy(), df["lat"].to_numpy())
    left, bottom, right, top = world.fine.bounds
    assert ((x > left) & (x < right) & (y > bottom) & (y < top)).all()
    rows = ((top - y) / world.fine.res).astype(int)
    cols = ((x - left) / world.fine.res).astype(int)
    days = df["date"].map({d: i for i, d in enumerate(world.dates)}).to_numpy()
    error = df["surface"].to_numpy() - world.truth_surface[days, rows, cols]
    assert np.abs(error).mean() < 0.06


def test_irrigation_in_dry_spell_is_not_in_precipitation():
    cfg = dict(CFG, start="2023-07-01", days=10, spinup_days=30, wet_day_probability=0.0, coarse_cols=1)
    w = demo.make_world(cfg, fine_factor=FACTOR)
    assert w.precipitation.max() == 0.0 and w.irrigation.sum() > 0
    irrigated, rainfed = w.land_cover == 4, w.land_cover == 3
    assert w.truth_rootzone[:, irrigated].mean() > w.truth_rootzone[:, rainfed].mean() + 0.02


def test_unknown_key_or_bad_value_is_rejected_naming_the_key():
    with pytest.raises(ConfigError, match="unknown.*'bogus'"):
        demo.make_world(dict(CFG, bogus=1), fine_factor=FACTOR)
    with pytest.raises(ConfigError, match="demo.relief"):
        demo.make_world(dict(CFG, relief=-1.0), fine_factor=FACTOR)


def test_defaults_are_the_schemas():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["demo"]["properties"]
    cfg = demo.demo_config({})
    assert cfg == {key: spec["default"] for key, spec in schema.items()}
    assert demo.demo_config({"days": 12})["days"] == 12


# ---------------------------------------------------------------- the parts of make_world


def test_frame_nests_the_fine_grid_and_counts_the_days():
    cfg = demo.demo_config(dict(CFG, coarse_rows=2, coarse_cols=3, spinup_days=4, days=10))
    frame = demo.make_frame(cfg, 6)
    assert frame.coarse.shape == (2, 3) and frame.fine.shape == (12, 18)
    assert frame.fine.res == pytest.approx(frame.coarse.res / 6)
    assert frame.ext.shape == (12 + 2 * frame.margin, 18 + 2 * frame.margin)
    assert frame.ext.transform.c == pytest.approx(frame.fine.transform.c - frame.margin * frame.fine.res)
    assert len(frame.doys) == 14 and frame.dates[0] == CFG["start"] and len(frame.dates) == 10
    assert frame.doys[4] == dt.date.fromisoformat(CFG["start"]).timetuple().tm_yday


def test_relief_scales_the_terrain_only():
    cfg = demo.demo_config(dict(CFG, coarse_cols=1))
    frame = demo.make_frame(cfg, 20)
    flat = demo.make_landscape(dict(cfg, relief=0.5), frame)
    base = demo.make_landscape(cfg, frame)
    steep = demo.make_landscape(dict(cfg, relief=2.0), frame)
    relief = [np.ptp(land.dem) for land in (flat, base, steep)]
    assert relief[0] < relief[1] < relief[2]
    np.testing.assert_allclose(relief[2] / relief[1], 2.0, rtol=1e-4)  # every height difference doubles
    assert np.degrees(steep.slope).mean() > np.degrees(base.slope).mean() > np.degrees(flat.slope).mean()
    np.testing.assert_array_equal(base.sand, steep.sand)  # texture has its own random stream
    np.testing.assert_array_equal(base.unobserved, steep.unobserved)


def _soil(n: int = 3) -> demo.Soil:
    """A 3 x 3 loam column with a wetter (high TWI) corner."""
    sand, clay = np.full((n, n), 40.0), np.full((n, n), 20.0)
    twi = np.arange(n * n, dtype=np.float32).reshape(n, n)
    return demo.soil_column(sand, clay, 2.0, np.zeros((n, n), dtype=np.float32), twi)


def test_soil_column_bounds_and_hillslope_terms():
    soil = _soil()
    assert (soil.residual < soil.wilting_point).all() and (soil.wilting_point < soil.field_capacity).all()
    assert (soil.field_capacity < soil.porosity).all()
    np.testing.assert_allclose(soil.field_capacity, 0.28, atol=0.01)  # Saxton-Rawls loam
    assert soil.lateral_w.mean() == pytest.approx(1.0, rel=1e-6)
    assert soil.lateral_w[2, 2] > soil.lateral_w[0, 0] and soil.subsidy[0, 0] == 0 and soil.subsidy[2, 2] > 0
    assert soil.ksat_lower[2, 2] < soil.ksat_lower[0, 0]


@pytest.mark.parametrize("rain_mm", [0.0, 8.0, 60.0, 250.0])
def test_water_balance_conserves_mass_on_3x3(rain_mm):
    soil = _soil()
    rng = np.random.default_rng(3)
    th1 = (soil.wilting_point + rng.uniform(0, 1, (3, 3)) * (soil.porosity - soil.wilting_point)).astype(np.float32)
    thl = (soil.wilting_point + rng.uniform(0, 1, (3, 3)) * (soil.porosity - soil.wilting_point)).astype(np.float32)
    water = np.full((3, 3), rain_mm, dtype=np.float32)
    water[0, 0] = 0.0  # one dry pixel
    pet = np.full((3, 3), 6.0, dtype=np.float32)
    veg = np.linspace(0.0, 1.0, 9, dtype=np.float32).reshape(3, 3)
    before = demo.storage_mm(th1, thl)
    th1_new, thl_new, beta2, f = demo.water_balance_step(th1, thl, water, pet, veg, soil)
    after = demo.storage_mm(th1_new, thl_new)
    budget = (f["water"] - f["runoff"] - f["evaporation"] - f["transpiration"] - f["drainage"] + f["lateral"]
              + f["subsidy"] + f["clipped"])
    np.testing.assert_allclose(after - before, budget, atol=2e-3)  # mm, float32 storage of ~300 mm
    for name in ("runoff", "evaporation", "transpiration", "drainage", "lateral", "subsidy"):
        assert (f[name] >= 0).all(), name
    assert (f["runoff"] <= f["water"]).all()
    assert (f["evaporation"] + f["transpiration"]).max() <= 1.15 * 6.0 + 1e-5  # never above the demand
    assert np.abs(f["clipped"]).max() < 2e-3 or rain_mm >= 60.0  # bounds bind only in a downpour
    assert (th1_new <= soil.porosity).all() and (thl_new <= soil.porosity).all()
    assert ((beta2 >= 0) & (beta2 <= 1)).all()


def test_water_balance_without_inputs_only_loses_water():
    soil = _soil()
    soil.subsidy[:] = 0.0
    th1 = soil.field_capacity.copy()
    thl = soil.field_capacity.copy()
    zero = np.zeros((3, 3), dtype=np.float32)
    total = [demo.storage_mm(th1, thl).sum()]
    for _ in range(20):
        th1, thl, _, f = demo.water_balance_step(th1, thl, zero, np.full((3, 3), 5.0, np.float32),
                                                 np.full((3, 3), 0.5, np.float32), soil)
        total.append(demo.storage_mm(th1, thl).sum())
    assert np.all(np.diff(total) <= 1e-3) and total[-1] < total[0] - 20.0
    assert (th1 >= soil.residual - 1e-6).all()


def test_irrigation_waters_whole_dry_parcels_on_demanding_days():
    ids = np.array([[0, 1, 1], [0, 1, 1], [2, 2, 0]])
    rel = np.array([[0.1, 0.3, 0.6], [0.1, 0.4, 0.5], [0.8, 0.6, 0.1]])  # parcel 1 mean 0.45, parcel 2 mean 0.7
    add = demo.irrigation(rel, ids, pet=5.0)
    np.testing.assert_array_equal(add, np.where(ids == 1, 40.0, 0.0))
    assert not demo.irrigation(rel, ids, pet=2.5).any()  # no demand, no irrigation
    assert not demo.irrigation(rel, np.zeros_like(ids), pet=5.0).any()  # no irrigated parcel


def test_pet_scale_dries_the_soil():
    cfg = dict(CFG, coarse_cols=1, days=10, spinup_days=10, wet_day_probability=0.0, irrigated_fraction=0.0)
    base = demo.make_world(cfg, fine_factor=10)
    hot = demo.make_world(dict(cfg, pet_scale=1.5), fine_factor=10)
    np.testing.assert_allclose(hot.pet, 1.5 * base.pet, rtol=1e-5)
    assert hot.truth_rootzone.mean() < base.truth_rootzone.mean() - 0.003
    assert base.irrigation.sum() == 0.0
