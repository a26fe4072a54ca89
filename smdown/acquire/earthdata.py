"""NASA Earthdata Login (EDL): find the user's credentials and turn them into a bearer token.

Credentials come, like earthaccess's login strategies, from the environment
(``EARTHDATA_TOKEN`` first, as earthaccess does, else ``EARTHDATA_USERNAME`` + ``EARTHDATA_PASSWORD``) or from ``~/.netrc``
(or the file named by ``NETRC``) with ``machine urs.earthdata.nasa.gov``. A username/password
pair is exchanged for a token at ``<edl_url>/api/users/find_or_create_token`` (the call
earthaccess makes), so wrong credentials fail once, early, with a clear message; downloads
then send ``Authorization: Bearer <token>``; a token is checked by one cheap authenticated request before the
first download (smdown.acquire.smap.check_access). Secrets never appear in logs or messages.
"""

from __future__ import annotations

import logging
import netrc
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from smdown.acquire.http import Downloader, redact
from smdown.io import InputError

log = logging.getLogger("smdown.acquire")

HELP = (
    "Put 'machine urs.earthdata.nasa.gov login <user> password <password>' in ~/.netrc (chmod 600), "
    "or set EARTHDATA_USERNAME and EARTHDATA_PASSWORD (or EARTHDATA_TOKEN); "
    "an account is free at https://urs.earthdata.nasa.gov"
)


@dataclass
class Credentials:
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    origin: str = ""


def netrc_path() -> Path:
    env = os.environ.get("NETRC")
    return Path(env) if env else Path.home() / ".netrc"


def find_credentials(strategy: str, edl_url: str) -> Credentials:
    """Credentials by strategy (acquire.earthdata.login): 'environment', 'netrc', or 'auto' (environment first,
    then netrc); edl_url (acquire.earthdata.edl_url) names the ~/.netrc machine."""
    if strategy not in ("auto", "environment", "netrc"):
        raise InputError(f"acquire.earthdata.login: {strategy!r} is not one of auto, environment, netrc")
    if strategy in ("auto", "environment"):
        token = os.environ.get("EARTHDATA_TOKEN")
        user, password = os.environ.get("EARTHDATA_USERNAME"), os.environ.get("EARTHDATA_PASSWORD")
        if token:  # as earthaccess: a token, when set, is used before a username/password pair
            return Credentials(None, None, token, "EARTHDATA_TOKEN")
        if user and password:
            return Credentials(user, password, None, "EARTHDATA_USERNAME/EARTHDATA_PASSWORD")
        if strategy == "environment":
            raise InputError(f"Earthdata credentials: EARTHDATA_USERNAME/EARTHDATA_PASSWORD are not set. {HELP}")
    host = urlsplit(edl_url).hostname or ""
    path = netrc_path()
    try:
        entry = netrc.netrc(str(path)).authenticators(host) if path.exists() else None
    except (netrc.NetrcParseError, OSError) as err:
        raise InputError(f"Earthdata credentials: cannot read {path} ({type(err).__name__}). {HELP}") from None
    if entry and entry[0] and entry[2]:
        return Credentials(entry[0], entry[2], None, str(path))
    raise InputError(f"Earthdata credentials: none found for {host} (environment or {path}). {HELP}")


def login(creds: Credentials, http: Downloader, edl_url: str) -> str:
    """A bearer token for the credentials; wrong credentials raise a clear InputError."""
    if creds.token and not creds.username:
        return creds.token
    url = edl_url.rstrip("/") + "/api/users/find_or_create_token"
    hint = f"Earthdata Login rejected user {creds.username!r} (credentials from {creds.origin}). {HELP}"
    response = http.request("POST", url, auth_hint=hint, auth=(creds.username, creds.password))
    try:
        token = response.json()["access_token"]
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"Earthdata Login at {redact(url)} gave no access_token") from err
    log.info("logged in to Earthdata as %s (credentials from %s)", creds.username, creds.origin)
    return token
