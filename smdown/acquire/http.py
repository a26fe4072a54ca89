"""Cached, resumable HTTP downloads.

- A file is fetched once: a finished file in the cache is never fetched again.
- It is streamed to ``<name>.part`` beside it and renamed into place (atomically) only when complete,
  so nothing half-written ever looks finished. The part is kept when a download fails or its process
  is killed, and the next try, in this process or another, resumes it with ``Range: bytes=<have>-``:
  a server answering 206 sends the rest only; 200 (Range ignored) restarts the file from zero; 416
  (the part is as long as the file, or longer: complete or stale) restarts it too. The final size is
  checked against Content-Length / Content-Range.
- Two processes never write the same part: a download holds an exclusive lock (``fcntl.flock``) on
  ``<name>.part.lock`` while it writes, and a second process fetching the same file waits for it, then
  finds the file finished. The kernel drops the lock of a killed process, so no stale lock blocks a rerun.
- Connection errors, timeouts, HTTP 408/429/5xx are retried with exponential backoff
  (``backoff * 2**attempt`` seconds); 401/403/404 fail at once with a clear message.
- Credentials (Authorization headers, tokens in query strings, user:password in URLs) are
  never logged: URLs are redacted to scheme://host/path in every message.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth

from smdown.io import InputError

log = logging.getLogger("smdown.acquire")

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class RetryableError(Exception):
    """A transient failure (network, timeout, 5xx, short body): worth another try."""


class NotFound(InputError):
    """HTTP 404: the server has no such file (for tiled sources, a tile that does not exist)."""


def redact(url: str) -> str:
    """scheme://host/path of a URL: no user:password, no query string (may hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    tail = "?..." if parts.query else ""
    return f"{parts.scheme}://{host}{parts.path}{tail}"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "file"


class Downloader:
    """HTTP client with a download cache, retries and resumable transfers.

    cache_dir: where downloads live (one sub-folder per host).
    retries: how many times a transient failure is retried (so retries + 1 attempts).
    backoff: base delay in seconds; the n-th retry waits backoff * 2**(n-1).
    timeout: connect/read timeout in seconds.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        *,
        retries: int,
        backoff: float,
        timeout: float,
        chunk_size: int = 1 << 20,
        session: requests.Session | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.timeout = float(timeout)
        self.chunk_size = int(chunk_size)
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "smdown-acquire")

    # ------------------------------------------------------------ retries

    def retry(self, what: str, func: Callable[[], Any]) -> Any:
        """Call func, retrying RetryableError (and network errors) with exponential backoff."""
        attempt = 0
        while True:
            try:
                return func()
            except (RetryableError, requests.ConnectionError, requests.Timeout) as err:
                attempt += 1
                reason = _reason(err)
                if attempt > self.retries:
                    raise InputError(f"{what}: failed after {self.retries} retries ({reason})") from None
                delay = self.backoff * 2 ** (attempt - 1)
                log.warning("%s: %s; retry %d/%d in %.2f s", what, reason, attempt, self.retries, delay)
                time.sleep(delay)

    def request(self, method: str, url: str, auth_hint: str = "", **kwargs) -> requests.Response:
        """A small (non-streamed) request with retries; errors as InputError naming the redacted URL."""
        kwargs.setdefault("timeout", self.timeout)

        def once() -> requests.Response:
            response = self.session.request(method, url, **kwargs)
            _check_status(response, url, auth_hint)
            return response

        return self.retry(f"{method} {redact(url)}", once)

    def get_json(self, url: str, auth_hint: str = "", **kwargs) -> Any:
        response = self.request("GET", url, auth_hint=auth_hint, **kwargs)
        try:
            return response.json()
        except ValueError as err:
            raise InputError(f"GET {redact(url)}: the answer is not JSON") from err

    # ------------------------------------------------------------ downloads

    def cache_path(self, url: str, subdir: str | None = None) -> Path:
        """Where a URL is cached: <cache_dir>/<subdir or host>/<file name>[_<hash of query>]."""
        parts = urlsplit(url)
        name = _safe_name(Path(parts.path).name)
        if parts.query:
            stem, dot, ext = name.rpartition(".")
            digest = hashlib.sha1(parts.query.encode()).hexdigest()[:12]
            name = f"{stem}_{digest}.{ext}" if dot else f"{name}_{digest}"
        folder = subdir or _safe_name(f"{parts.hostname}_{parts.port}" if parts.port else str(parts.hostname))
        return self.cache_dir / folder / name

    def fetch(
        self,
        url: str,
        dest: str | os.PathLike | None = None,
        headers: dict | None = None,
        expected_size: int | None = None,
        auth_hint: str = "",
    ) -> Path:
        """Download url to dest (default: its cache path) unless dest already exists; return dest."""
        final = Path(dest) if dest is not None else self.cache_path(url)
        if final.exists():
            log.info("cached: %s", final)
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        part = part_path(final)
        headers = {**(headers or {}), "Accept-Encoding": "identity"}
        with _exclusive(final.with_name(f"{part.name}.lock"), final):
            if final.exists():  # another process finished it while this one waited
                log.info("cached: %s", final)
                return final
            log.info("downloading %s -> %s", redact(url), final)
            self.retry(f"download {redact(url)}", lambda: self._stream(url, part, headers, expected_size, auth_hint))
            os.replace(part, final)
        return final

    def _stream(self, url: str, tmp: Path, headers: dict, expected_size: int | None, auth_hint: str) -> None:
        have = tmp.stat().st_size if tmp.exists() else 0
        request_headers = dict(headers)
        if have:
            request_headers["Range"] = f"bytes={have}-"
        expected = None
        try:
            auth = _HeaderAuth() if "Authorization" in request_headers else None
            with self.session.get(url, headers=request_headers, stream=True, timeout=self.timeout,
                                  auth=auth) as response:
                if response.status_code == 416 and have:
                    # the part is as long as the file or longer: complete, or left by another version of it;
                    # its bytes cannot be told apart, so the file starts again
                    tmp.unlink()
                    raise RetryableError(f"range from byte {have} not satisfiable; restarting from zero")
                _check_status(response, url, auth_hint)
                if response.status_code == 206:
                    start, total = _content_range(response.headers.get("Content-Range", ""))
                    if start != have:
                        tmp.unlink(missing_ok=True)
                        raise RetryableError(f"server resumed at byte {start}, not {have}; restarting")
                    mode, expected = "ab", total
                    log.info("resuming %s at byte %d", redact(url), have)
                else:
                    if have:
                        log.info("%s: the server ignored Range; restarting from zero", redact(url))
                    mode = "wb"
                    length = response.headers.get("Content-Length")
                    expected = int(length) if length and length.isdigit() else None
                with open(tmp, mode) as out:
                    for chunk in response.iter_content(self.chunk_size):
                        out.write(chunk)
                        out.flush()  # what arrived is in the part, should the process be killed
        except requests.RequestException as err:
            if isinstance(err, requests.HTTPError):
                raise
            raise RetryableError(_reason(err)) from None
        size = tmp.stat().st_size if tmp.exists() else 0
        if expected is not None and size != expected:
            raise RetryableError(f"incomplete body: {size} of {expected} bytes")
        if expected_size is not None and size != expected_size:
            tmp.unlink()
            raise RetryableError(f"size {size} bytes differs from the catalogue's {expected_size}")


def part_path(final: Path) -> Path:
    """Where a download to final is written until complete: <name>.part beside it (a name that derives from the
    target only, so a later process finds and resumes it)."""
    return final.with_name(f"{final.name}.part")


@contextlib.contextmanager
def _exclusive(lock: Path, final: Path) -> Iterator[None]:
    """Hold an exclusive flock on the lock file while the body runs; wait while another process holds it.

    The holder removes the file before it lets go, so a waiter that gets the lock checks that its file is still the
    one at that path (else it locks the new one): never two holders, never a lock file left behind."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("another process is downloading %s: waiting for it", final)
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                held = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                held = False
        except BaseException:
            os.close(fd)
            raise
        if held:
            break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


class _HeaderAuth(requests.auth.AuthBase):
    """Explicit 'auth' that keeps our Authorization header (requests would otherwise let ~/.netrc override it)."""

    def __call__(self, request):
        return request


def _reason(err: Exception) -> str:
    """A short reason without the URL (which may hold a token)."""
    if isinstance(err, RetryableError):
        return str(err)
    return type(err).__name__


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, total size) of 'bytes a-b/total' or 'bytes */total'."""
    match = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _check_status(response: requests.Response, url: str, auth_hint: str = "") -> None:
    code = response.status_code
    if code < 400:
        return
    if code in RETRY_STATUS:
        raise RetryableError(f"HTTP {code}")
    if code in (401, 403):
        hint = f" {auth_hint}" if auth_hint else ""
        raise InputError(f"HTTP {code} for {redact(url)}: access denied (wrong or missing credentials).{hint}")
    if code == 404:
        raise NotFound(f"HTTP 404 for {redact(url)}: not found")
    raise InputError(f"HTTP {code} for {redact(url)}")
