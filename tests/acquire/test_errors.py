"""Clear messages: wrong or missing credentials, region outside coverage, no granules, unknown keys."""

from __future__ import annotations

import pytest

from smdown.acquire import acquire, run_source, settings
from smdown.acquire.earthdata import find_credentials
from smdown.acquire.region import make_region
from smdown.config import ConfigError
from smdown.io import InputError

from .conftest import PASSWORD, USER, add_smap

EDL = settings({})["earthdata"]["edl_url"]  # the schema's default: Earthdata Login's own server


def _smap_out(tmp_path):
    return {"coarse_surface": tmp_path / "s.tif", "coarse_rootzone": tmp_path / "r.tif", "precipitation": tmp_path / "p.tif"}


def _clean(tmp_path):
    return not [p for p in tmp_path.glob("*.tif")] and not list(tmp_path.rglob("*.part"))


def test_wrong_credentials_give_a_clear_message(world, monkeypatch, tmp_path):
    monkeypatch.setenv("EARTHDATA_PASSWORD", "not-the-password")
    with pytest.raises(InputError) as err:
        run_source("smap", settings(world), _smap_out(tmp_path))
    message = str(err.value)
    assert "Earthdata Login rejected user 'alice'" in message and "EARTHDATA_USERNAME/EARTHDATA_PASSWORD" in message
    assert "HTTP 401" in message and "~/.netrc" in message
    assert "not-the-password" not in message
    assert _clean(tmp_path)


def test_netrc_credentials(world, monkeypatch, tmp_path, server):
    for name in ("EARTHDATA_USERNAME", "EARTHDATA_PASSWORD"):
        monkeypatch.delenv(name)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password wrong-one\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    cfg = settings(world)
    cfg["earthdata"]["login"] = "netrc"
    with pytest.raises(InputError, match=f"rejected user 'alice' \\(credentials from {netrc}\\)"):
        run_source("smap", cfg, _smap_out(tmp_path))
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    paths = run_source("smap", cfg, _smap_out(tmp_path))
    assert paths["coarse_surface"].exists()


def test_missing_credentials(monkeypatch, tmp_path):
    for name in ("EARTHDATA_USERNAME", "EARTHDATA_PASSWORD", "EARTHDATA_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(InputError, match="none found for urs.earthdata.nasa.gov.*~/.netrc"):
        find_credentials("auto", EDL)
    with pytest.raises(InputError, match="EARTHDATA_USERNAME/EARTHDATA_PASSWORD are not set"):
        find_credentials("environment", EDL)


def test_a_bad_token_is_refused_at_download(world, monkeypatch, tmp_path):
    for name in ("EARTHDATA_USERNAME", "EARTHDATA_PASSWORD"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("EARTHDATA_TOKEN", "expired-token")
    with pytest.raises(InputError, match="HTTP 401 .*/smap/SMAP_L4_SM_gph_.*Earthdata credentials") as err:
        run_source("smap", settings(world), _smap_out(tmp_path))
    assert "expired-token" not in str(err.value)
    assert not list((tmp_path / "cache").rglob("*.h5")) and not list((tmp_path / "cache").rglob("*.part"))


@pytest.mark.parametrize("bbox, match", [
    ([-120.0, 86.0, -119.0, 87.0], "outside the coverage of the EASE-Grid 2.0"),
    ([-119.0, 37.0, -120.0, 38.0], "not a valid lon/lat box"),
    ([-120.0, 37.0, -119.0], r"expected \[west, south, east, north\]"),
])
def test_region_outside_coverage(bbox, match):
    with pytest.raises(InputError, match=f"acquire.bbox: .*{match}"):
        make_region(bbox, "2023-05-01", "2023-05-02")


def test_region_over_the_ocean_has_no_smap_data(server, tmp_path, credentials):
    ocean = make_region([-130.2, 37.2, -130.0, 37.3], "2023-05-01", "2023-05-01")
    add_smap(server, ocean, days=("2023-05-01",), ocean=True)
    cfg = settings({"acquire": {"bbox": list(ocean.bbox), "start": ocean.start, "end": ocean.end,
                                "cache_dir": str(tmp_path / "cache"), "http": {"retries": 1, "backoff": 0.01},
                                "earthdata": {"edl_url": server.url, "cmr_url": f"{server.url}/search/"}}})
    with pytest.raises(InputError, match="no valid soil moisture over acquire.bbox .*outside SMAP L4's land coverage"):
        run_source("smap", cfg, _smap_out(tmp_path))
    assert _clean(tmp_path)


def test_no_granules_in_the_period(world, tmp_path):
    cfg = settings(world)
    cfg.update(start="2022-01-01", end="2022-01-31")
    with pytest.raises(InputError, match="no SPL4SMGP v008 granules in CMR from provider NSIDC_CPRD for 2022-01-01..2022-01-31"):
        run_source("smap", cfg, _smap_out(tmp_path))
    cfg = settings(world)
    cfg["smap"]["version"] = "999"
    with pytest.raises(InputError, match="no SPL4SMGP v999 granules"):
        run_source("smap", cfg, _smap_out(tmp_path))


def test_no_stac_items_over_the_region(world, tmp_path):
    cfg = settings(world)
    cfg["bbox"] = [10.0, 45.0, 10.2, 45.1]
    with pytest.raises(InputError, match="Sentinel-2: no items of sentinel-2-c1-l2a .*region outside coverage"):
        run_source("sentinel2", cfg, {"ndvi": tmp_path / "ndvi.tif", "ndwi": tmp_path / "ndwi.tif"})
    with pytest.raises(InputError, match="DEM: no cop-dem-glo-30 tiles"):
        run_source("dem", cfg, {"dem": tmp_path / "dem.tif"})
    assert _clean(tmp_path)


def test_stac_server_errors_are_retried_then_reported(world, server, tmp_path):
    server.faults["/stac/search"] = ["500"] * 10
    cfg = settings(world)
    with pytest.raises(InputError, match="STAC search .*failed after 2 retries"):
        run_source("dem", cfg, {"dem": tmp_path / "dem.tif"})


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="config key acquire.smap: unknown key\\(s\\) 'verison'"):
        settings({"acquire": {"smap": {"verison": "008"}}})
    with pytest.raises(ConfigError, match="config key 'acquire.http.retries': -1 is less than the minimum of 0"):
        settings({"acquire": {"http": {"retries": -1}}})
    with pytest.raises(InputError, match="acquire.bbox: required"):
        acquire({"acquire": {"start": "2023-05-01", "end": "2023-05-02"}}, tmp_path)
    with pytest.raises(InputError, match="acquire.end: 2023-04-01 is before acquire.start"):
        make_region([-120, 37, -119, 38], "2023-05-01", "2023-04-01")


def test_the_schema_types_every_acquire_key():
    """The config schema, checked before any job runs, refuses a bad acquire value naming its key."""
    from smdown.config import validate

    with pytest.raises(ConfigError, match="acquire.sentinel1.enabled': 'yes' is not one of"):
        validate({"source": "earthdata", "acquire": {"sentinel1": {"enabled": "yes"}}})
