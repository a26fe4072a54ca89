"""End to end: acquire() on fixtures served from 127.0.0.1 writes every contract file on the right grid and dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smdown.acquire import acquire, contract_inputs, run_source, settings
from smdown.acquire.region import coarse_grid, fine_grid
from smdown.grid import EASE2_9KM_RES
from smdown.io import read_stack, to_lonlat

from .conftest import END, SAS, START, TOKEN


def _pixel_lat(grid):
    rows = np.arange(grid.height) + 0.5
    cols = np.full_like(rows, grid.width / 2)
    x = grid.transform.c + cols * grid.transform.a
    y = grid.transform.f + rows * grid.transform.e
    return to_lonlat(grid.crs, x, y)[1]


def test_acquire_writes_the_contract(world, server, region, tmp_path):
    out = tmp_path / "inputs"
    paths = acquire(world, out)
    expected = {"coarse_surface", "coarse_rootzone", "precipitation", "ndvi", "ndwi", "dem", "sand", "clay",
                "sand_rootzone", "clay_rootzone", "s1_vv", "s1_vh", "stations"}
    assert set(paths) == expected
    assert all(p.exists() and p.parent == out for p in paths.values())
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left

    coarse = coarse_grid(region)
    # SMAP: daily means of the 3-hourly granules, EASE-2 9 km grid, fill -> NaN.
    surface = read_stack(paths["coarse_surface"])
    assert surface.grid == coarse and surface.grid.crs == "EPSG:6933" and surface.grid.res == EASE2_9KM_RES
    assert surface.dates == [START, END]
    assert np.isnan(surface.data[:, 0, 0]).all()
    np.testing.assert_allclose(surface.data[0, 1:, 1:], 0.2025, atol=1e-6)
    np.testing.assert_allclose(surface.data[1, 1:, 1:], 0.2125, atol=1e-6)
    rootzone = read_stack(paths["coarse_rootzone"])
    assert rootzone.dates == surface.dates and rootzone.grid == coarse
    np.testing.assert_allclose(rootzone.data[1, 1, 1], 0.31, atol=1e-6)
    precipitation = read_stack(paths["precipitation"])
    np.testing.assert_allclose(precipitation.data[0, 1, 1], 3.5e-5 * 86400, rtol=1e-5)  # mm/day

    fine = fine_grid(coarse, 1000)
    assert fine.height == coarse.height * 9 and fine.width == coarse.width * 9
    # Sentinel-2: two dates (cloudy item filtered out), zone 10 + zone 11 tiles mosaicked, SCL clouds NaN.
    ndvi, ndwi = read_stack(paths["ndvi"]), read_stack(paths["ndwi"])
    assert ndvi.grid == fine and ndvi.dates == [START, END] and ndwi.dates == ndvi.dates
    for cube in (ndvi.data, ndwi.data):
        assert np.isnan(cube[0]).any() and np.isfinite(cube[0]).mean() > 0.3
    np.testing.assert_allclose(ndvi.data[0][np.isfinite(ndvi.data[0])], 0.6, atol=1e-5)
    np.testing.assert_allclose(ndwi.data[0][np.isfinite(ndwi.data[0])], 1 / 3, atol=1e-5)
    np.testing.assert_allclose(ndvi.data[1][np.isfinite(ndvi.data[1])], 1 / 3, atol=1e-5)
    np.testing.assert_allclose(ndwi.data[1][np.isfinite(ndwi.data[1])], 0.0, atol=1e-5)
    clear = np.isfinite(ndvi.data[0])
    assert clear[-1, 0] and clear[-1, -1]  # both UTM zones contribute (west and east ends)
    assert np.isnan(ndvi.data[0][0]).all()  # the northern rows lie under the cloudy third

    # DEM: static, elevation = 100 + 1000 (lat - 37).
    dem = read_stack(paths["dem"], static=True)
    assert dem.grid == fine and dem.dates is None
    np.testing.assert_allclose(dem.data[0][:, fine.width // 2], 100 + 1000 * (_pixel_lat(fine) - 37), atol=3.0)

    # Soil texture: g/kg -> %, surface 0-5 cm, rootzone thickness-weighted 0-100 cm.
    for name, value in (("sand", 40.0), ("clay", 20.0), ("sand_rootzone", 49.95), ("clay_rootzone", 29.95)):
        stack = read_stack(paths[name], static=True)
        assert stack.grid == fine
        np.testing.assert_allclose(stack.data, value, atol=1e-3)

    # Sentinel-1: dB, dated, signed hrefs (SAS token appended).
    vv, vh = read_stack(paths["s1_vv"]), read_stack(paths["s1_vh"])
    assert vv.dates == [START, END] and vh.grid == fine
    np.testing.assert_allclose(vv.data[0], -10.0, atol=1e-4)
    np.testing.assert_allclose(vh.data[1], -10.0, atol=1e-4)
    s1_reads = [r for r in server.requests if r["path"].startswith("/s1/")]
    assert s1_reads and all("sig=fixture" in r["query"] for r in s1_reads)

    # COGs are read by windows (Range requests); SMAP: only the region's subsets (OPeNDAP), with the bearer token,
    # from the Earthdata Cloud provider, never a whole granule
    assert any("Range" in r["headers"] for r in server.requests if r["path"].startswith("/s2/"))
    subsets = [r for r in server.requests if r["path"].startswith("/opendap/")]
    assert len(subsets) == 4 and all(r["headers"].get("Authorization") == f"Bearer {TOKEN}" for r in subsets)
    assert not [r for r in server.requests if r["path"].startswith(("/smap/", "/smap-ecs/"))]
    assert all("provider=NSIDC_CPRD" in r["query"] for r in server.hits("/search/granules.umm_json"))

    # Stations: G flags only, layer-matched depths, daily means.
    table = pd.read_csv(paths["stations"])
    assert list(table.columns) == ["station", "lon", "lat", "date", "surface", "rootzone"]
    assert table["station"].unique().tolist() == ["SCAN_Fresno-Fixture"]
    np.testing.assert_allclose(table["surface"], [0.21, 0.18], atol=1e-5)
    np.testing.assert_allclose(table["rootzone"], [0.29, 0.2725], atol=1e-5)

    # The contract mapping for the run's config.
    inputs = contract_inputs(paths)
    assert inputs["coarse"]["rootzone"].endswith("coarse_rootzone.tif")
    assert set(inputs["predictors"]) == {"precipitation", "ndvi", "ndwi", "dem", "sand", "clay", "s1_vv", "s1_vh"}


def test_second_run_fetches_nothing_again(world, server, tmp_path):
    cfg = settings(world)
    cfg["smap"].update(keep_granules=True, subset="none")  # the whole-granule path
    out = {"coarse_surface": tmp_path / "a.tif", "coarse_rootzone": tmp_path / "b.tif",
           "precipitation": tmp_path / "c.tif"}
    run_source("smap", cfg, out)
    first = len([r for r in server.requests if r["path"].startswith("/smap/")])
    assert first == 4
    run_source("smap", cfg, out)
    assert len([r for r in server.requests if r["path"].startswith("/smap/")]) == first
    cached = sorted(p.name for p in (tmp_path / "cache" / "smap").glob("*.h5"))
    assert len(cached) == 4
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_granules_are_dropped_after_subsetting_by_default(world, server, tmp_path):
    cfg = settings(world)
    cfg["smap"]["subset"] = "none"
    out = {"coarse_surface": tmp_path / "a.tif", "coarse_rootzone": tmp_path / "b.tif",
           "precipitation": tmp_path / "c.tif"}
    run_source("smap", cfg, out)
    assert not list((tmp_path / "cache" / "smap").glob("*.h5"))
    assert len(list((tmp_path / "cache" / "smap" / "subsets").rglob("*.npz"))) == 4
    requests_before = len(server.requests)
    run_source("smap", cfg, out)
    assert not [r for r in server.requests[requests_before:] if r["path"].startswith("/smap/")]


@pytest.mark.parametrize("keys", [("red", "nir", "swir16", "scl"), ("B04", "B08", "B11", "SCL")])
def test_sentinel2_accepts_both_asset_namings(world, server, tmp_path, keys):
    import json

    route = server.routes["/stac/search"]

    def renamed(handler, parts, body):
        status, headers, data = route(handler, parts, body)
        collection = json.loads(data)
        for feature in collection["features"]:
            renamed_assets = {new: feature["assets"][old] for old, new in zip(("red", "nir", "swir16", "scl"), keys, strict=True)
                              if old in feature["assets"]}
            if renamed_assets and keys[0] == "B04":  # Planetary Computer style: plain DNs, baseline >= 04.00
                for asset in renamed_assets.values():
                    asset.pop("raster:bands", None)
                feature["properties"]["s2:processing_baseline"] = "05.09"
            feature["assets"] = renamed_assets or feature["assets"]
        return status, headers, json.dumps(collection).encode()

    server.routes["/stac/search"] = renamed
    cfg = settings(world)
    if keys[0] == "B04":  # and signed hrefs, as Planetary Computer assets need
        server.signed["/s2/"] = SAS
        cfg["sentinel2"].update(sign="planetary_computer", token_url=f"{server.url}/sas/token")
    paths = run_source("sentinel2", cfg, {"ndvi": tmp_path / "ndvi.tif", "ndwi": tmp_path / "ndwi.tif"})
    ndvi = read_stack(paths["ndvi"])
    np.testing.assert_allclose(ndvi.data[0][np.isfinite(ndvi.data[0])], 0.6, atol=1e-5)


def test_snakemake_entry_script(world, tmp_path):
    from types import SimpleNamespace

    from snakemake.iocontainers import Namedlist

    from smdown.acquire import params_for, run_script

    log = tmp_path / "logs" / "dem.log"
    log.parent.mkdir()
    params = Namedlist(fromdict={"acquire": params_for("dem", settings(world))})
    snakemake = SimpleNamespace(config={}, params=params, output=Namedlist(fromdict={"dem": str(tmp_path / "dem.tif")}),
                                log=Namedlist([str(log)]))
    run_script(snakemake, "dem")
    assert read_stack(tmp_path / "dem.tif", static=True).dates is None
    assert "DEM: 1 tiles" in log.read_text()


def test_each_source_gets_only_its_settings_in_a_canonical_order(world):
    from smdown.acquire import params_for

    given = settings(world)  # the validated config["acquire"] the rules read
    smap = params_for("smap", given)
    assert set(smap) == {"bbox", "start", "end", "cache_dir", "http", "earthdata", "smap"}
    assert set(params_for("sentinel2", given)) == {"bbox", "start", "end", "cache_dir", "http", "sentinel2"}
    reordered = {key: given[key] for key in reversed(list(given))}
    reordered["http"] = dict(reversed(list(given["http"].items())))
    assert repr(params_for("smap", reordered)) == repr(smap)  # Snakemake compares params as written
