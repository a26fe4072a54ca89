"""The downloader against a real server on 127.0.0.1: resume with Range (across processes), retries with backoff,
clean cache."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
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
    http = Downloader(tmp_path / "cache", retries=3, backoff=0.01, timeout=10, chunk_size=1024)
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
    http = Downloader(tmp_path / "cache", retries=3, backoff=0.01, timeout=10, chunk_size=1024)
    path = http.fetch(f"{served.url}/data/granule.h5")
    assert path.read_bytes() == PAYLOAD
    assert len(served.hits("/data/granule.h5")) == 2


def test_http_500_is_retried_with_backoff_then_succeeds(served, tmp_path):
    served.faults["/data/granule.h5"] = ["500", "500"]
    http = Downloader(tmp_path / "cache", retries=3, backoff=0.05, timeout=10)
    t0 = time.monotonic()
    path = http.fetch(f"{served.url}/data/granule.h5")
    assert time.monotonic() - t0 >= 0.05 + 0.10  # backoff * 2**0 + backoff * 2**1
    assert path.read_bytes() == PAYLOAD
    assert len(served.hits("/data/granule.h5")) == 3


def test_persistent_500_fails_clearly_and_leaves_nothing(served, tmp_path):
    served.faults["/data/granule.h5"] = ["500"] * 10
    http = Downloader(tmp_path / "cache", retries=2, backoff=0.01, timeout=10)
    with pytest.raises(InputError, match=r"failed after 2 retries \(HTTP 500\)") as err:
        http.fetch(f"{served.url}/data/granule.h5")
    assert "/data/granule.h5" in str(err.value)
    assert len(served.hits("/data/granule.h5")) == 3
    assert _files(tmp_path / "cache") == []


def test_a_failed_download_keeps_its_part_and_the_next_asks_for_the_rest(served, tmp_path):
    served.faults["/data/granule.h5"] = ["cut"]
    url = f"{served.url}/data/granule.h5"
    with pytest.raises(InputError, match="failed after 0 retries"):
        Downloader(tmp_path / "cache", retries=0, backoff=0.01, timeout=10, chunk_size=1024).fetch(url)
    part = tmp_path / "cache" / "127.0.0.1_{}".format(served.url.rsplit(":", 1)[1]) / "granule.h5.part"
    assert _files(tmp_path / "cache") == [part.relative_to(tmp_path / "cache").as_posix()]  # no lock, no file
    assert part.read_bytes() == PAYLOAD[: len(PAYLOAD) // 2]
    # a new downloader (as in the job's next run) resumes the part: it asks for the rest only
    path = Downloader(tmp_path / "cache", retries=0, backoff=0.01, timeout=10).fetch(url)
    assert path.read_bytes() == PAYLOAD
    gets = served.hits("/data/granule.h5")
    assert [g["headers"].get("Range") for g in gets] == [None, f"bytes={len(PAYLOAD) // 2}-"]
    assert _files(tmp_path / "cache") == [path.relative_to(tmp_path / "cache").as_posix()]


def test_a_killed_download_is_resumed_by_another_process(served, tmp_path):
    """A process killed mid-body leaves its part; the next process asks for the bytes it lacks, and only those."""
    served.faults["/data/granule.h5"] = ["stall"]  # half the body, then the server waits: the client is killed there
    url, cache = f"{served.url}/data/granule.h5", tmp_path / "cache"
    script = ("import sys; from smdown.acquire.http import Downloader; "
              "Downloader(sys.argv[1], retries=0, backoff=0, timeout=60, chunk_size=1024).fetch(sys.argv[2])")
    child = subprocess.Popen([sys.executable, "-c", script, str(cache), url])
    try:
        deadline = time.monotonic() + 60
        parts = []
        while time.monotonic() < deadline and child.poll() is None:
            parts = list(cache.rglob("granule.h5.part"))
            if parts and parts[0].stat().st_size == len(PAYLOAD) // 2:
                break
            time.sleep(0.05)
        assert parts and parts[0].stat().st_size == len(PAYLOAD) // 2, "the child never wrote half the file"
    finally:
        child.kill()
        child.wait()
    served.release.set()
    assert not list(cache.rglob("granule.h5"))  # nothing that looks finished
    path = Downloader(cache, retries=0, backoff=0.01, timeout=10).fetch(url)
    assert path.read_bytes() == PAYLOAD
    gets = served.hits("/data/granule.h5")
    assert [g["headers"].get("Range") for g in gets] == [None, f"bytes={len(PAYLOAD) // 2}-"]
    assert _files(cache) == [path.relative_to(cache).as_posix()]  # the killed process's lock file is gone too


def test_a_part_the_server_cannot_resume_restarts_from_zero(served, tmp_path):
    """HTTP 416 (the part is as long as the file, or longer: complete or stale) restarts the file."""
    http = Downloader(tmp_path / "cache", retries=1, backoff=0.01, timeout=10)
    url = f"{served.url}/data/granule.h5"
    part = http.cache_path(url).with_name("granule.h5.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * (len(PAYLOAD) + 10))  # stale: another version of the file
    assert http.fetch(url).read_bytes() == PAYLOAD
    gets = served.hits("/data/granule.h5")
    assert [g["headers"].get("Range") for g in gets] == [f"bytes={len(PAYLOAD) + 10}-", None]


def test_two_downloads_of_one_file_take_turns(served, tmp_path):
    """A second downloader of the same file waits on the first's lock, then finds the file finished."""
    served.faults["/data/granule.h5"] = ["stall"]
    url = f"{served.url}/data/granule.h5"
    results = {}

    def fetch(name):
        http = Downloader(tmp_path / "cache", retries=2, backoff=0.01, timeout=30, chunk_size=1024)
        results[name] = http.fetch(url).read_bytes()

    first = threading.Thread(target=fetch, args=("first",))
    first.start()
    while not served.hits("/data/granule.h5"):
        time.sleep(0.01)
    second = threading.Thread(target=fetch, args=("second",))
    second.start()
    time.sleep(0.5)
    assert second.is_alive() and len(served.hits("/data/granule.h5")) == 1  # waiting, not writing the same part
    served.release.set()  # the first's body ends cut: it resumes and finishes
    first.join(30)
    second.join(30)
    assert results == {"first": PAYLOAD, "second": PAYLOAD}
    assert [g["headers"].get("Range") for g in served.hits("/data/granule.h5")] == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_not_found_and_forbidden_fail_at_once(served, tmp_path):
    http = Downloader(tmp_path / "cache", retries=3, backoff=0.01, timeout=10)
    with pytest.raises(InputError, match="HTTP 404"):
        http.fetch(f"{served.url}/data/missing.h5")
    assert len(served.hits("/data/missing.h5")) == 1
    served.protected["/data/"] = "secret"
    with pytest.raises(InputError, match="HTTP 401.*credentials"):
        http.fetch(f"{served.url}/data/granule.h5")
    assert _files(tmp_path / "cache") == []


def test_a_cached_file_is_never_fetched_again(served, tmp_path):
    http = Downloader(tmp_path / "cache", retries=1, backoff=0.01, timeout=10)
    first = http.fetch(f"{served.url}/data/granule.h5")
    second = http.fetch(f"{served.url}/data/granule.h5")
    assert first == second and len(served.hits("/data/granule.h5")) == 1


def test_size_checked_against_expected_size(served, tmp_path):
    http = Downloader(tmp_path / "cache", retries=1, backoff=0.01, timeout=10)
    with pytest.raises(InputError, match="differs from the catalogue"):
        http.fetch(f"{served.url}/data/granule.h5", expected_size=len(PAYLOAD) + 1)
    assert _files(tmp_path / "cache") == []


def test_credentials_never_logged(served, tmp_path, caplog):
    served.faults["/data/granule.h5"] = ["500"]
    http = Downloader(tmp_path / "cache", retries=2, backoff=0.01, timeout=10)
    with caplog.at_level(logging.DEBUG, logger="smdown.acquire"):
        http.fetch(f"{served.url}/data/granule.h5?token=SECRET", headers={"Authorization": "Bearer SECRET"})
    assert caplog.records and "SECRET" not in caplog.text
    assert redact("https://u:pw@host:8443/a/b.tif?sig=SECRET") == "https://host:8443/a/b.tif?..."
