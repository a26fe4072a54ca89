"""SMAP: a real granule of another product refused by name; an OPeNDAP failure falls back for that granule only; a
truncated OPeNDAP answer is fetched again; whole-granule volume bounded; Earthdata token first and checked before
the first download; STAC searches retried when throttled."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from smdown.acquire import run_source, settings
from smdown.acquire.earthdata import find_credentials
from smdown.acquire.region import coarse_grid, make_region
from smdown.acquire.smap import read_granule
from smdown.io import InputError

from .conftest import TOKEN

AUP = Path(__file__).resolve().parents[1] / "data" / "real" / "smap" / "SMAP_L4_SM_aup_dimension_list_input.h5"


def _out(tmp_path):
    return {"coarse_surface": tmp_path / "s.tif", "coarse_rootzone": tmp_path / "r.tif", "precipitation": tmp_path / "p.tif"}


def _gets(server, prefix):
    return [r for r in server.requests if r["path"].startswith(prefix) and r["method"] == "GET"]


def test_a_real_analysis_update_granule_is_refused_naming_the_product_read():
    with h5py.File(AUP) as h5:
        assert "Analysis_Data/sm_rootzone_analysis" in h5 and h5["Analysis_Data/sm_rootzone_analysis"].shape == (108, 33)
    grid = coarse_grid(make_region([-120.15, 37.2, -119.85, 37.32], "2015-04-01", "2015-04-01"))
    with pytest.raises(InputError) as err:
        read_granule(AUP, grid)
    message = str(err.value)
    assert str(AUP) in message and "SMAP L4_SM Analysis Update (AUP) Data Granule (SPL4SMAU)" in message
    assert "not an SPL4SMGP granule: it has no Geophysical_Data/sm_surface" in message
    assert "SPL4SMGP: Geophysical_Data/sm_surface, sm_rootzone, precipitation_total_surface_flux" in message
    assert "set acquire.smap.short_name: SPL4SMGP" in message


def test_another_short_name_is_refused_before_any_request(world, server, tmp_path):
    cfg = settings(world)
    cfg["smap"]["short_name"] = "SPL4SMAU"
    with pytest.raises(InputError, match="acquire.smap.short_name: 'SPL4SMAU'. smdown reads SMAP L4 .*SPL4SMGP"):
        run_source("smap", cfg, _out(tmp_path))
    assert not server.requests


def test_one_failed_subset_falls_back_for_that_granule_only(world, server, tmp_path):
    cfg = settings(world)
    entries = [e for e in server.routes if e.startswith("/opendap/")]
    broken = sorted(entries)[0]
    server.faults[broken] = ["500"] * 3  # every try of the first granule's subset
    run_source("smap", cfg, _out(tmp_path))
    whole = [r["path"] for r in _gets(server, "/smap/") if "Range" not in r["headers"]]
    assert [p.rsplit("/", 1)[-1] for p in whole] == [broken.rsplit("/", 1)[-1].replace(".dap.nc4", ".h5")]
    assert len({r["path"] for r in _gets(server, "/opendap/")}) == 4  # the three others were subset


def test_a_truncated_opendap_answer_is_fetched_again(world, server, tmp_path):
    cfg = settings(world)
    path = sorted(p for p in server.routes if p.startswith("/opendap/"))[0]
    good = server.routes[path]
    calls = []

    def cut(handler, parts, body):  # no Content-Length to compare with: the first answer holds half the file
        status, headers, data = good(handler, parts, body)
        calls.append(len(data))
        return (status, headers, data[: len(data) // 2]) if len(calls) == 1 else (status, headers, data)

    server.routes[path] = cut
    run_source("smap", cfg, _out(tmp_path))
    assert len(calls) == 2
    assert not [r for r in _gets(server, "/smap/") if "Range" not in r["headers"]]  # no whole granule


def test_whole_granules_beyond_the_bound_stop_before_the_first_download(world, server, tmp_path):
    cfg = settings(world)
    cfg["smap"].update(subset="none", max_granule_gb=1e-6)
    with pytest.raises(InputError) as err:
        run_source("smap", cfg, _out(tmp_path))
    message = str(err.value)
    assert "4 granules would be downloaded whole" in message and "acquire.smap.max_granule_gb (1e-06 GB)" in message
    assert "Set it to opendap" in message
    assert not _gets(server, "/smap/")


def test_the_token_comes_first_and_is_checked_before_any_download(world, server, tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHDATA_TOKEN", "expired-token")
    creds = find_credentials("auto", settings(world)["earthdata"]["edl_url"])
    assert (creds.origin, creds.username) == ("EARTHDATA_TOKEN", None)  # before EARTHDATA_USERNAME/PASSWORD
    with pytest.raises(InputError) as err:
        run_source("smap", settings(world), _out(tmp_path))
    message = str(err.value)
    assert "HTTP 401" in message and "Earthdata refused the token (from EARTHDATA_TOKEN)" in message
    assert "expired-token" not in message
    assert not server.hits("/api/users/find_or_create_token")
    checks = _gets(server, "/smap/")
    assert len(checks) == 1 and checks[0]["headers"]["Range"] == "bytes=0-0" and not _gets(server, "/opendap/")
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    assert run_source("smap", settings(world), _out(tmp_path))["coarse_surface"].exists()


@pytest.mark.parametrize("status, body", [(403, b'{"message":"Forbidden"}'), (429, b'{"message":"Too Many Requests"}')])
def test_stac_searches_are_retried_when_throttled(world, server, tmp_path, status, body):
    search = server.routes["/stac/search"]
    answers = []

    def throttled(handler, parts, b):
        answers.append(status)
        if len(answers) <= 2:
            return status, {"Content-Type": "application/json"}, body
        return search(handler, parts, b)

    server.routes["/stac/search"] = throttled
    assert run_source("dem", settings(world), {"dem": tmp_path / "dem.tif"})["dem"].exists()
    assert len(answers) == 3  # two throttled answers, then the search (acquire.http.retries: 2)


def test_a_real_refusal_is_not_retried(world, server, tmp_path):
    calls = []

    def refused(handler, parts, b):
        calls.append(1)
        return 403, {"Content-Type": "application/json"}, b'{"message":"Missing Authentication Token"}'

    server.routes["/stac/search"] = refused
    with pytest.raises(InputError, match=r"STAC search at .* failed \(HTTP 403\): .*Missing Authentication Token"):
        run_source("dem", settings(world), {"dem": tmp_path / "dem.tif"})
    assert len(calls) == 1
