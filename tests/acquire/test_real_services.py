"""The services as they are (issue 14): SMAP granule identity across providers, OPeNDAP subsets with the
whole-granule fallback, Sentinel-2 offsets and reflectance range, Planetary Computer keys and signing,
POLARIS tiles that do not exist."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from smdown.acquire import outputs_for, run_source, settings
from smdown.acquire.region import coarse_grid
from smdown.io import InputError, read_stack

from .conftest import PC_KEY, S2_COLLECTION, SAS, add_polaris, rewrite_s2


def _smap_out(tmp_path):
    return {"coarse_surface": tmp_path / "s.tif", "coarse_rootzone": tmp_path / "r.tif", "precipitation": tmp_path / "p.tif"}


def _granule_gets(server, prefix):
    return [r["path"] for r in server.requests if r["path"].startswith(prefix) and r["method"] == "GET"]


def _check_smap_values(paths):
    surface = read_stack(paths["coarse_surface"])
    np.testing.assert_allclose(surface.data[0, 1:, 1:], 0.2025, atol=1e-6)  # mean of the 01:30 and 04:30 granules
    np.testing.assert_allclose(surface.data[1, 1:, 1:], 0.2125, atol=1e-6)
    assert np.isnan(surface.data[:, 0, 0]).all()


# ---------------------------------------------------------------- SMAP


def test_granules_from_two_providers_with_ecs_urs_are_one_granule_each(world, server, tmp_path):
    """CMR lists each granule twice (NSIDC_ECS and NSIDC_CPRD) under ECS-style GranuleURs 'SC:SPL4SMGP.008:<n>':
    identity and cache key are the basename of the data URL, so each file is read once and each cached subset
    is its own granule's."""
    cfg = settings(world)
    cfg["smap"].update(provider=None, subset="none")
    paths = run_source("smap", cfg, _smap_out(tmp_path))
    _check_smap_values(paths)
    gets = _granule_gets(server, "/smap")
    names = [p.rsplit("/", 1)[-1] for p in gets]
    assert len(gets) == 4 and len(set(names)) == 4, gets  # 4 files, not 8 downloads and not 1
    subsets = sorted(p.name for p in (tmp_path / "cache" / "smap" / "subsets").rglob("*.npz"))
    assert subsets == sorted(n.replace(".h5", ".npz") for n in names)


def test_search_by_provider(world, server, tmp_path):
    cfg = settings(world)
    cfg["smap"]["provider"] = "NSIDC_ECS"  # on-premises: no OPeNDAP links there, whole granules from its URLs
    run_source("smap", cfg, _smap_out(tmp_path))
    assert all("provider=NSIDC_ECS" in r["query"] for r in server.hits("/search/granules.umm_json"))
    assert len(_granule_gets(server, "/smap-ecs/")) == 4
    assert not _granule_gets(server, "/smap/") and not _granule_gets(server, "/opendap/")


def test_cloud_hosted_only(world, server, tmp_path):
    cfg = settings(world)
    cfg["smap"].update(provider=None, cloud_hosted=True, subset="none")
    _check_smap_values(run_source("smap", cfg, _smap_out(tmp_path)))
    assert len(_granule_gets(server, "/smap/")) == 4 and not _granule_gets(server, "/smap-ecs/")


def test_opendap_subset_gives_the_whole_granule_values_for_a_fraction_of_the_bytes(world, server, tmp_path, caplog):
    from smdown.acquire.smap import opendap_request

    caplog.set_level(logging.INFO, logger="smdown.acquire")
    cfg = settings(world)
    paths = run_source("smap", cfg, _smap_out(tmp_path / "opendap"))
    requests = [r for r in server.requests if r["path"].startswith("/opendap/")]
    assert len(requests) == 4 and not _granule_gets(server, "/smap")
    grid = coarse_grid(world_region(world))
    assert all(r["query"] == opendap_request("x", grid).split("?", 1)[1] for r in requests)
    cfg_whole = settings(world)
    cfg_whole["smap"]["subset"] = "none"
    cfg_whole["cache_dir"] = str(tmp_path / "cache-whole")
    whole = run_source("smap", cfg_whole, _smap_out(tmp_path / "whole"))
    for name in ("coarse_surface", "coarse_rootzone", "precipitation"):
        np.testing.assert_array_equal(read_stack(paths[name]).data, read_stack(whole[name]).data)
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SMAP: downloaded")]
    print("\n".join(summaries))
    assert "4 granules subset on the server" in summaries[0] and "4 whole granules" in summaries[1]


def world_region(world):
    from smdown.acquire import region_of

    return region_of(settings(world))


def test_opendap_failure_falls_back_to_whole_granules(server, region, tmp_path, credentials):
    from .conftest import add_smap

    add_smap(server, region, opendap="broken")
    cfg = settings({"acquire": {"bbox": list(region.bbox), "start": region.start, "end": region.end,
                                "cache_dir": str(tmp_path / "cache"), "http": {"retries": 1, "backoff": 0.01},
                                "earthdata": {"login": "environment", "edl_url": server.url,
                                              "cmr_url": f"{server.url}/search/"}}})
    _check_smap_values(run_source("smap", cfg, _smap_out(tmp_path)))
    # each granule tries its own subset (one try, one retry) before its whole file: a failure is not taken for all
    assert len([r for r in server.requests if r["path"].startswith("/opendap/")]) == 8
    assert len(_granule_gets(server, "/smap/")) == 4


# ---------------------------------------------------------------- Sentinel-2


def _s2_out(tmp_path):
    return {"ndvi": tmp_path / "ndvi.tif", "ndwi": tmp_path / "ndwi.tif"}


def test_default_collection_is_collection_1():
    assert settings({})["sentinel2"]["collection"] == "sentinel-2-c1-l2a"


def test_an_offset_already_applied_is_not_applied_again(world, server, tmp_path):
    """Earth Search sentinel-2-l2a items saying earthsearch:boa_offset_applied while their raster:bands still carry
    offset -0.1: reflectance = DN / 10000 (red 0.1, nir 0.4, swir16 0.2)."""
    rewrite_s2(server, {"red": 1000, "nir": 4000, "swir16": 2000}, {"earthsearch:boa_offset_applied": True},
               collection="sentinel-2-l2a")
    cfg = settings(world)
    cfg["sentinel2"]["collection"] = "sentinel-2-l2a"
    paths = run_source("sentinel2", cfg, _s2_out(tmp_path))
    ndvi, ndwi = read_stack(paths["ndvi"]), read_stack(paths["ndwi"])
    assert np.isfinite(ndvi.data[0]).mean() > 0.3
    np.testing.assert_allclose(ndvi.data[0][np.isfinite(ndvi.data[0])], 0.6, atol=1e-5)
    np.testing.assert_allclose(ndwi.data[0][np.isfinite(ndwi.data[0])], 1 / 3, atol=1e-5)


def test_an_offset_already_in_the_pixels_is_not_subtracted_twice(world, server, tmp_path, caplog):
    """An item whose COGs already carry the offset but say nothing of it (raster:bands offset -0.1, no
    earthsearch:boa_offset_applied): red DN 300 would give -0.07 on every land pixel; the pixels decide, and the
    reflectance is DN / 10000 in every band (red 0.03, nir 0.5, swir16 0.3)."""
    caplog.set_level(logging.INFO, logger="smdown.acquire")
    rewrite_s2(server, {"red": 300})
    cfg = settings(world)
    cfg["sentinel2"]["collection"] = S2_COLLECTION
    paths = run_source("sentinel2", cfg, _s2_out(tmp_path))
    ndvi = read_stack(paths["ndvi"]).data[0]
    assert np.isfinite(ndvi).mean() > 0.3
    np.testing.assert_allclose(ndvi[np.isfinite(ndvi)], (0.5 - 0.03) / (0.5 + 0.03), atol=1e-5)
    assert "S2A_10SGF_20230501: its pixels already carry the BOA offset" in caplog.text


def test_an_item_whose_pixels_still_carry_the_offset_gets_it(world, server, tmp_path):
    """earthsearch:boa_offset_applied: true while the pixels are raw (DN = 10000 reflectance + 1000): applied."""
    rewrite_s2(server, {"red": 2000, "nir": 5000, "swir16": 3000}, {"earthsearch:boa_offset_applied": True},
               collection="sentinel-2-l2a")
    cfg = settings(world)
    cfg["sentinel2"]["collection"] = "sentinel-2-l2a"
    ndvi = read_stack(run_source("sentinel2", cfg, _s2_out(tmp_path))["ndvi"]).data[0]
    np.testing.assert_allclose(ndvi[np.isfinite(ndvi)], (0.4 - 0.1) / (0.4 + 0.1), atol=1e-5)


def test_a_period_inside_the_collection_1_gap_stops_before_any_request(world, server, tmp_path, caplog):
    cfg = settings(world)
    cfg.update(start="2018-05-01", end="2018-06-30")
    with pytest.raises(InputError) as err:
        run_source("sentinel2", cfg, _s2_out(tmp_path))
    message = str(err.value)
    assert "acquire.start..end (2018-05-01..2018-06-30) lies inside a gap of sentinel-2-c1-l2a" in message
    assert "no items from 2016-11-01 to 2019-11-30" in message
    assert "acquire.sentinel2.collection: sentinel-2-l2a" in message
    assert not server.requests
    cfg.update(start="2022-03-01", end="2022-03-31")
    with pytest.raises(InputError, match="no items from 2022-01-01 to 2022-12-31"):
        run_source("sentinel2", cfg, _s2_out(tmp_path))
    assert not server.requests
    cfg["sentinel2"]["collection"] = "sentinel-2-l2a"  # the other collection is not stopped
    with pytest.raises(InputError, match="Sentinel-2: no items of sentinel-2-l2a"):
        run_source("sentinel2", cfg, _s2_out(tmp_path))


def test_nir08_is_not_taken_for_nir(world, server, tmp_path):
    import json

    route = server.routes["/stac/search"]

    def b8a_only(handler, parts, body):
        status, headers, data = route(handler, parts, body)
        found = json.loads(data)
        for feature in found["features"]:
            if "nir" in feature["assets"]:
                feature["assets"]["nir08"] = feature["assets"].pop("nir")
        return status, headers, json.dumps(found).encode()

    server.routes["/stac/search"] = b8a_only
    cfg = settings(world)
    cfg["sentinel2"]["collection"] = S2_COLLECTION
    with pytest.raises(InputError, match=r"none of the assets \['nir', 'B08', 'b08'\] \(has .*'nir08'"):
        run_source("sentinel2", cfg, _s2_out(tmp_path))


# ---------------------------------------------------------------- Planetary Computer


def test_sentinel1_without_a_key_stops_with_a_clear_message(world, server, tmp_path, monkeypatch):
    monkeypatch.delenv("PC_SDK_SUBSCRIPTION_KEY")
    before = len(server.requests)
    with pytest.raises(InputError, match=r"Sentinel-1: the Planetary Computer serves sentinel-1-rtc only with a "
                                         r"subscription key, and PC_SDK_SUBSCRIPTION_KEY is not set.*export "
                                         r"PC_SDK_SUBSCRIPTION_KEY=.*acquire.sentinel1.enabled: false"):
        run_source("sentinel1", settings(world), {"s1_vv": tmp_path / "vv.tif", "s1_vh": tmp_path / "vh.tif"})
    assert len(server.requests) == before  # nothing asked of any service
    assert not list(tmp_path.glob("*.tif"))


def test_sentinel1_key_goes_to_the_token_endpoint_and_never_to_the_log(world, server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="smdown.acquire")  # what the job's log receives
    paths = run_source("sentinel1", settings(world), {"s1_vv": tmp_path / "vv.tif", "s1_vh": tmp_path / "vh.tif"})
    np.testing.assert_allclose(read_stack(paths["s1_vv"]).data[0], -10.0, atol=1e-4)
    tokens = server.hits("/sas/token/sentinel-1-rtc")
    assert tokens and all(r["headers"].get("Ocp-Apim-Subscription-Key") == PC_KEY for r in tokens)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name == "smdown.acquire")
    assert "Sentinel-1" in ours and PC_KEY not in ours and SAS not in ours


def test_sentinel1_auto_is_on_only_with_a_key(world, monkeypatch, tmp_path):
    cfg = settings(world)
    cfg["sentinel1"]["enabled"] = "auto"
    assert {"s1_vv", "s1_vh"} <= set(outputs_for(cfg, tmp_path))
    monkeypatch.delenv("PC_SDK_SUBSCRIPTION_KEY")
    assert not {"s1_vv", "s1_vh"} & set(outputs_for(cfg, tmp_path))
    cfg["sentinel1"]["enabled"] = "yes"
    with pytest.raises(InputError, match="acquire.sentinel1.enabled: 'yes' is not true, false or auto"):
        outputs_for(cfg, tmp_path)


def test_planetary_computer_hrefs_are_signed_for_every_collection(world, server, tmp_path):
    server.signed["/s2/"] = SAS
    server.signed["/dem/"] = SAS
    cfg = settings(world)
    for key in ("sentinel2", "dem"):
        cfg[key].update(sign="planetary_computer", token_url=f"{server.url}/sas/token")
    run_source("sentinel2", cfg, _s2_out(tmp_path))
    run_source("dem", cfg, {"dem": tmp_path / "dem.tif"})
    assert server.hits("/sas/token/sentinel-2-c1-l2a") and server.hits("/sas/token/cop-dem-glo-30")
    reads = [r for r in server.requests if r["path"].startswith(("/s2/", "/dem/"))]
    assert reads and all(SAS in r["query"] for r in reads)


def test_sign_auto_signs_the_planetary_computer_catalog_only(world, server):
    from smdown.acquire import downloader
    from smdown.acquire.stac import signer_for

    http = downloader(settings(world))
    pc = {**settings(world)["sentinel2"], "catalog": "https://planetarycomputer.microsoft.com/api/stac/v1",
          "collection": "sentinel-2-l2a"}
    assert signer_for({**pc, "sign": "auto"}, http, "sentinel2", "Sentinel-2") is not None
    earth_search = {**pc, "catalog": "https://earth-search.aws.element84.com/v1", "collection": "sentinel-2-c1-l2a"}
    assert signer_for({**earth_search, "sign": "auto"}, http, "sentinel2", "Sentinel-2") is None
    with pytest.raises(InputError, match="acquire.dem.sign: 'sas' is not one of"):
        signer_for({**pc, "sign": "sas"}, http, "dem", "DEM")


# ---------------------------------------------------------------- POLARIS


def test_a_missing_polaris_tile_is_an_empty_tile(world, server, region, tmp_path):
    """The bbox spans the POLARIS tiles lon -121..-120 (served) and -120..-119 (HTTP 404)."""
    url = add_polaris(server, tiles=((37, -121),))
    cfg = settings(world)
    cfg["soil"].update(source="polaris", polaris_url=url, res=1000)
    paths = run_source("soil", cfg, {"sand": tmp_path / "sand.tif", "clay_rootzone": tmp_path / "clay_rz.tif"})
    assert server.hits("/polaris/sand/mean/0_5/lat3738_lon-120-119.tif")  # asked, 404
    sand = read_stack(paths["sand"], static=True).data[0]
    west, east = sand[:, : sand.shape[1] // 4], sand[:, -sand.shape[1] // 4:]
    np.testing.assert_allclose(west[np.isfinite(west)], 40.0, atol=1e-4)
    assert np.isfinite(west).all() and np.isnan(east).all()
    clay = read_stack(paths["clay_rootzone"], static=True).data[0]
    expected = 20 + (0 * 5 + 1 * 10 + 2 * 15 + 3 * 30 + 4 * 40) / 100  # thickness-weighted depths
    np.testing.assert_allclose(clay[np.isfinite(clay)], expected, atol=1e-4)


def test_no_polaris_tile_at_all_is_an_error(world, server, tmp_path):
    url = add_polaris(server, tiles=())
    cfg = settings(world)
    cfg["soil"].update(source="polaris", polaris_url=url, res=1000)
    with pytest.raises(InputError, match="soil: no polaris sand data over acquire.bbox"):
        run_source("soil", cfg, {"sand": tmp_path / "sand.tif"})


def test_the_reflectance_check_spares_water_and_catches_impossible_values():
    from smdown.acquire.remote import Raster
    from smdown.acquire.sentinel2 import check_reflectance

    raster = Raster("x.tif", scale=1e-4, offset=-0.1)
    water = np.full((10, 10), -0.01, dtype=np.float32)  # dark water: slightly negative, noise
    check_reflectance(water, np.zeros(water.shape, dtype=bool), raster, "swir16")
    with pytest.raises(InputError, match="100% of the clear land pixels negative"):
        check_reflectance(water, np.ones(water.shape, dtype=bool), raster, "swir16")
    impossible = np.full((2, 2), -0.15, dtype=np.float32)  # below DN 1 with the -0.1 offset
    with pytest.raises(InputError, match=r"reflectance -0\.1500\.\.-0\.1500"):
        check_reflectance(impossible, np.zeros(impossible.shape, dtype=bool), raster, "red")
