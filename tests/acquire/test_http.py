"""The downloader against a real server on 127.0.0.1: resume with Range, retries with backoff, clean cache."""

from __future__ import annotations

import logging
import time

import pytest

from smdown.acquire.http import Downloader, redact
from smdown.io import InputError

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


@pytest.fixture
def served(server):
    (server.root / "data").mkdir()
    (server.root / "data" / "granule.h5").write_bytes(PAYLOAD)
    return server


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_interrupted_download_is_resumed_with_range(served, tmp_path):
    served.faults["/data/granule.h5"] = ["cut"]
    http = Downloader(tmp_path / "cache", retries=3, backoff=0.01, chunk_size=1024)
    path = http.fetch(f"{served.url}/data/granule.h5")
    assert path.read_bytes() == PAYLOAD
    gets = served.hits("/data/granule.h5")
    assert len(gets) == 2
    assert "Range" not in gets[0]["headers"]
    start = int(gets[1]["headers"]["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= len(PAYLOAD) // 2  # resumed where the cut body stopped, not from scratch
    assert _files(tmp_path / "cache") == [path.relative_to(tmp_path / "cache").as_posix()]


def test_resume_restarts_when_the_server_ignores_range(served, tmp_path):
    served.faults["/data/granule.h5"] = ["cut", "ignore_range"]
    http = Downloader(tmp_path / "cache", retries=3, backoff=0.01, chunk_size=1024)
    path = http.fetch(f"{served.url}/data/granule.h5")
    assert path.read_bytes() == PAYLOAD
    assert len(served.hits("/data/granule.h5")) == 2


def test_http_500_is_retried_with_backoff_then_succeeds(served, tmp_path):
    served.faults["/data/granule.h5"] = ["500", "500"]
    http = Downloader(tmp_path / "cache", retries=3, backoff=0.05)
    t0 = time.monotonic()
    path = http.fetch(f"{served.url}/data/granule.h5")
    assert time.monotonic() - t0 >= 0.05 + 0.10  # backoff * 2**0 + backoff * 2**1
    assert path.read_bytes() == PAYLOAD
    assert len(served.hits("/data/granule.h5")) == 3


def test_persistent_500_fails_clearly_and_leaves_nothing(served, tmp_path):
    served.faults["/data/granule.h5"] = ["500"] * 10
    http = Downloader(tmp_path / "cache", retries=2, backoff=0.01)
    with pytest.raises(InputError, match=r"failed after 2 retries \(HTTP 500\)") as err:
        http.fetch(f"{served.url}/data/granule.h5")
    assert "/data/granule.h5" in str(err.value)
    assert len(served.hits("/data/granule.h5")) == 3
    assert _files(tmp_path / "cache") == []


def test_cut_every_time_fails_and_leaves_no_partial_file(served, tmp_path):
    served.faults["/data/granule.h5"] = ["cut", "500", "500"]
    http = Downloader(tmp_path / "cache", retries=2, backoff=0.01)
    with pytest.raises(InputError, match="failed after 2 retries"):
        http.fetch(f"{served.url}/data/granule.h5")
    assert _files(tmp_path / "cache") == []


def test_not_found_and_forbidden_fail_at_once(served, tmp_path):
    http = Downloader(tmp_path / "cache", retries=3, backoff=0.01)
    with pytest.raises(InputError, match="HTTP 404"):
        http.fetch(f"{served.url}/data/missing.h5")
    assert len(served.hits("/data/missing.h5")) == 1
    served.protected["/data/"] = "secret"
    with pytest.raises(InputError, match="HTTP 401.*credentials"):
        http.fetch(f"{served.url}/data/granule.h5")
    assert _files(tmp_path / "cache") == []


def test_a_cached_file_is_never_fetched_again(served, tmp_path):
    http = Downloader(tmp_path / "cache", retries=1, backoff=0.01)
    first = http.fetch(f"{served.url}/data/granule.h5")
    second = http.fetch(f"{served.url}/data/granule.h5")
    assert first == second and len(served.hits("/data/granule.h5")) == 1


def test_size_checked_against_expected_size(served, tmp_path):
    http = Downloader(tmp_path / "cache", retries=1, backoff=0.01)
    with pytest.raises(InputError, match="differs from the catalogue"):
        http.fetch(f"{served.url}/data/granule.h5", expected_size=len(PAYLOAD) + 1)
    assert _files(tmp_path / "cache") == []


def test_credentials_never_logged(served, tmp_path, caplog):
    served.faults["/data/granule.h5"] = ["500"]
    http = Downloader(tmp_path / "cache", retries=2, backoff=0.01)
    with caplog.at_level(logging.DEBUG, logger="smdown.acquire"):
        http.fetch(f"{served.url}/data/granule.h5?token=SECRET", headers={"Authorization": "Bearer SECRET"})
    assert caplog.records and "SECRET" not in caplog.text
    assert redact("https://u:pw@host:8443/a/b.tif?sig=SECRET") == "https://host:8443/a/b.tif?..."
