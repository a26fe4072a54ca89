"""STAC item search (pystac-client) and asset helpers shared by the Sentinel-2/-1 and DEM sources."""

from __future__ import annotations

import datetime as dt
import logging
import os
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
    """All items of a collection intersecting bbox (and the period), retried on transient failures: network errors,
    HTTP 5xx and throttling (429, and Earth Search's 403 {"message":"Forbidden"}), with the downloader's backoff
    and bound (acquire.http.retries, acquire.http.backoff)."""

    def once() -> list[pystac.Item]:
        try:
            client = Client.open(catalog, timeout=http.timeout)
            search = client.search(collections=[collection], bbox=list(bbox), datetime=datetime)
            return list(search.items())
        except APIError as err:
            status = getattr(err, "status_code", None)
            if status is not None and (status >= 500 or status == 429 or (status == 403 and _throttled(err))):
                raise RetryableError(f"HTTP {status} (throttled)" if status in (403, 429) else f"HTTP {status}") \
                    from None
            raise InputError(f"{what}: STAC search at {redact(catalog)} failed (HTTP {status}): {str(err)[:200]}") from None
        except requests.RequestException as err:
            raise RetryableError(type(err).__name__) from None

    items = http.retry(f"{what}: STAC search {redact(catalog)} ({collection})", once)
    log.info("%s: %d items in %s over %s %s", what, len(items), collection, bbox, datetime or "")
    return items


def _throttled(err: APIError) -> bool:
    """Earth Search answers a burst of searches with HTTP 403 {"message":"Forbidden"} (its gateway's throttling),
    which a retry after a pause clears; other 403s (a real refusal) carry another message."""
    return str(err).strip().replace(" ", "") in ('{"message":"Forbidden"}', "Forbidden")


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


PC_HOST = "planetarycomputer.microsoft.com"
KEY_ENV = "PC_SDK_SUBSCRIPTION_KEY"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
# Planetary Computer collections whose SAS tokens are given only with a subscription key.
KEY_COLLECTIONS = {"sentinel-1-rtc"}
KEY_HELP = (f"Get a Planetary Computer subscription key (https://planetarycomputer.developer.azure-api.net/) and "
            f"export {KEY_ENV}=<key>")


def subscription_key() -> str | None:
    """The Planetary Computer subscription key from the environment (PC_SDK_SUBSCRIPTION_KEY), if any."""
    return os.environ.get(KEY_ENV) or None


class PlanetaryComputerSigner:
    """Appends a Planetary Computer SAS token (GET <token_url>/<collection>) to asset hrefs.

    The subscription key, when PC_SDK_SUBSCRIPTION_KEY holds one, goes with every token request
    (header Ocp-Apim-Subscription-Key); collections in KEY_COLLECTIONS refuse to sign without it."""

    MAX_AGE_S = 1800.0  # tokens last about an hour: refresh well before

    def __init__(self, http: Downloader, token_url: str, collection: str, key: str | None = None,
                 what: str = "STAC") -> None:
        self.http, self.url, self.collection = http, token_url.rstrip("/") + "/" + collection, collection
        self.key, self.what = key, what
        self._token: str | None = None
        self._since = 0.0

    def check(self) -> None:
        """A clear error, before any request, when the collection needs a key and none is set."""
        if self.collection in KEY_COLLECTIONS and not self.key:
            raise InputError(
                f"{self.what}: the Planetary Computer serves {self.collection} only with a subscription key, and "
                f"{KEY_ENV} is not set. {KEY_HELP}, or leave {self.what} out (acquire.sentinel1.enabled: false; "
                f"'auto' turns it on only when {KEY_ENV} is set)"
            )

    def token(self) -> str:
        self.check()
        if self._token is None or time.monotonic() - self._since > self.MAX_AGE_S:
            headers = {KEY_HEADER: self.key} if self.key else {}
            hint = (f"The Planetary Computer refused the subscription key in {KEY_ENV}." if self.key
                    else f"{self.collection} may need a subscription key: {KEY_HELP}.")
            answer = self.http.get_json(self.url, auth_hint=hint, headers=headers)
            if not isinstance(answer, dict) or "token" not in answer:
                raise InputError(f"SAS token endpoint {redact(self.url)} gave no token")
            self._token, self._since = answer["token"], time.monotonic()
        return self._token

    def sign(self, href: str) -> str:
        if not urlsplit(href).scheme.startswith("http"):
            return href
        return f"{href}{'&' if '?' in href else '?'}{self.token()}"


def signer_for(cfg: dict, http: Downloader, key: str, what: str) -> PlanetaryComputerSigner | None:
    """The signer of a STAC source's settings acquire.<key> (sign: auto | planetary_computer | none).

    auto signs when the catalog is the Planetary Computer's: its assets need a SAS token, whatever the collection."""
    sign = cfg["sign"]
    if sign not in ("auto", "planetary_computer", "none"):
        raise InputError(f"acquire.{key}.sign: {sign!r} is not one of auto, planetary_computer, none")
    if sign == "auto":
        sign = "planetary_computer" if urlsplit(cfg["catalog"]).hostname == PC_HOST else "none"
    if sign == "none":
        return None
    signer = PlanetaryComputerSigner(http, cfg["token_url"], cfg["collection"],
                                     subscription_key(), what)
    signer.check()
    return signer
