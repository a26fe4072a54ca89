"""STAC item search (pystac-client) and asset helpers shared by the Sentinel-2/-1 and DEM sources."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from urllib.parse import urlsplit

import pystac
import requests
from pystac_client import Client
from pystac_client.exceptions import APIError

from smdown.acquire.http import Downloader, RetryableError, redact
from smdown.io import InputError

log = logging.getLogger("smdown.acquire")


def search_items(
    http: Downloader, catalog: str, collection: str, bbox, datetime: str | None = None, what: str = "STAC"
) -> list[pystac.Item]:
    """All items of a collection intersecting bbox (and the period), retried on transient failures."""

    def once() -> list[pystac.Item]:
        try:
            client = Client.open(catalog, timeout=http.timeout)
            search = client.search(collections=[collection], bbox=list(bbox), datetime=datetime)
            return list(search.items())
        except APIError as err:
            status = getattr(err, "status_code", None)
            if status is not None and status >= 500:
                raise RetryableError(f"HTTP {status}") from None
            raise InputError(f"{what}: STAC search at {redact(catalog)} failed (HTTP {status}): {str(err)[:200]}") from None
        except requests.RequestException as err:
            raise RetryableError(type(err).__name__) from None

    items = http.retry(f"{what}: STAC search {redact(catalog)} ({collection})", once)
    log.info("%s: %d items in %s over %s %s", what, len(items), collection, bbox, datetime or "")
    return items


def asset_href(item: pystac.Item, keys: list[str]) -> tuple[str, pystac.Asset]:
    """The first asset of item named by one of keys."""
    for key in keys:
        if key in item.assets:
            return item.assets[key].href, item.assets[key]
    raise InputError(f"STAC item {item.id}: none of the assets {keys} (has {sorted(item.assets)})")


def raster_scaling(asset: pystac.Asset) -> tuple[float, float, float | None]:
    """(scale, offset, nodata) from the asset's raster:bands, defaults (1, 0, None)."""
    bands = asset.extra_fields.get("raster:bands") or []
    info = bands[0] if bands else {}
    return float(info.get("scale", 1.0)), float(info.get("offset", 0.0)), info.get("nodata")


def item_date(item: pystac.Item) -> str:
    """The UTC acquisition date of an item (YYYY-MM-DD)."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise InputError(f"STAC item {item.id} has no datetime")
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc)
    return when.date().isoformat()


def by_date(items: list[pystac.Item], start: str, end: str) -> dict[str, list[pystac.Item]]:
    """Items grouped by acquisition date within [start, end], dates sorted."""
    groups: dict[str, list[pystac.Item]] = defaultdict(list)
    for item in items:
        day = item_date(item)
        if start <= day <= end:
            groups[day].append(item)
    return {day: groups[day] for day in sorted(groups)}


class PlanetaryComputerSigner:
    """Appends a Planetary Computer SAS token (GET <token_url>/<collection>) to asset hrefs."""

    MAX_AGE_S = 1800.0  # tokens last about an hour: refresh well before

    def __init__(self, http: Downloader, token_url: str, collection: str) -> None:
        self.http, self.url, self.collection = http, token_url.rstrip("/") + "/" + collection, collection
        self._token: str | None = None
        self._since = 0.0

    def token(self) -> str:
        if self._token is None or time.monotonic() - self._since > self.MAX_AGE_S:
            answer = self.http.get_json(self.url)
            if not isinstance(answer, dict) or "token" not in answer:
                raise InputError(f"SAS token endpoint {redact(self.url)} gave no token")
            self._token, self._since = answer["token"], time.monotonic()
        return self._token

    def sign(self, href: str) -> str:
        if not urlsplit(href).scheme.startswith("http"):
            return href
        return f"{href}{'&' if '?' in href else '?'}{self.token()}"
