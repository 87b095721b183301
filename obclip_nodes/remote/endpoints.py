"""Cloud endpoints and their secrets: URLs, bearer/basic credentials, custom CA files.

Secrets never come from a widget (a widget value is saved into the workflow JSON and the PNG). They
come from, most specific first:

1. the local secrets file, entry for this URL (``OBCLIP_SECRETS_FILE``, default
   ``~/.config/obclip/secrets.json``)::

       {"servers": {"https://gpu-box:8188": {"token": "...", "ca_file": "/etc/obclip/ca.pem"},
                    "https://other:8443":   {"basic": "user:password"}},
        "default": {"token": "..."}}

2. the environment: ``OBCLIP_CLOUD_TOKEN`` (bearer), ``OBCLIP_CLOUD_BASIC`` (``user:password``),
   ``OBCLIP_CLOUD_CA_FILE`` (PEM bundle to trust for https/wss);
3. the file's ``"default"`` entry.

Client options that are not secrets but are not widgets either (to keep the shipped workflow
stable): ``OBCLIP_STOCK_FALLBACK`` (``1`` default: use stock nodes on a cloud without this pack;
``0``: fail), ``OBCLIP_STOCK_FAMILY`` (``SD15`` default, or ``SDXL``: the cloud model's family in
stock mode, which a cloud without the pack cannot report).
"""
from __future__ import annotations

import base64
import json
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .. import config

TOKEN_ENV, BASIC_ENV, CA_ENV = "OBCLIP_CLOUD_TOKEN", "OBCLIP_CLOUD_BASIC", "OBCLIP_CLOUD_CA_FILE"
SECRETS_ENV = "OBCLIP_SECRETS_FILE"
FALLBACK_ENV, FAMILY_ENV = "OBCLIP_STOCK_FALLBACK", "OBCLIP_STOCK_FAMILY"
DEFAULT_SECRETS = Path("~/.config/obclip/secrets.json")


class EndpointError(ValueError):
    pass


def normalise_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EndpointError(f"cloud URL {url!r} must look like http://host:port or https://host")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def split_urls(text: str) -> list[str]:
    """One or several URLs, separated by commas, spaces or new lines; duplicates dropped, order kept."""
    out = []
    for u in re.split(r"[\s,;]+", text.strip()):
        if u and normalise_url(u) not in out:
            out.append(normalise_url(u))
    if not out:
        raise EndpointError("server_url is empty: give the cloud ComfyUI's URL, e.g. http://gpu-box:8188")
    return out


def _secrets_file() -> dict:
    named = config.settings().secrets_file
    path = Path(named or DEFAULT_SECRETS).expanduser()
    if not path.is_file():
        if named:
            raise EndpointError(f"{SECRETS_ENV} points at {path}, which does not exist")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EndpointError(f"the secrets file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise EndpointError(f"the secrets file {path} must hold a JSON object")
    return data


def _lookup(entry: dict, key: str) -> str | None:
    v = entry.get(key) if isinstance(entry, dict) else None
    return str(v).strip() if v else None


@dataclass(frozen=True)
class Endpoint:
    base: str
    headers: dict = field(default_factory=dict, repr=False)   # Authorization only; never logged
    ca_file: str | None = None
    auth_source: str = "none"                                 # where the credential came from

    @property
    def ws_base(self) -> str:
        return "ws" + self.base[4:]

    @property
    def https(self) -> bool:
        return self.base.startswith("https://")

    def ssl_context(self):
        """None for http or the system trust store; an SSLContext trusting ca_file otherwise."""
        if not self.https or not self.ca_file:
            return None
        if not Path(self.ca_file).is_file():
            raise EndpointError(f"the CA file {self.ca_file} for {self.base} does not exist")
        return ssl.create_default_context(cafile=self.ca_file)


def resolve(url: str) -> Endpoint:
    base = normalise_url(url)
    data = _secrets_file()
    servers = data.get("servers") or {}
    specific = servers.get(base) or servers.get(urlsplit(base).netloc) or {}
    default = data.get("default") or {}
    cfg = config.settings()
    layers = [(specific, "secrets file"), ({"token": cfg.cloud_token, "basic": cfg.cloud_basic,
                                             "ca_file": cfg.cloud_ca_file}, "environment"),
              (default, "secrets file default")]
    headers, source, ca = {}, "none", None
    for layer, name in layers:
        token, basic = _lookup(layer, "token"), _lookup(layer, "basic")
        if not headers and token:
            headers, source = {"Authorization": f"Bearer {token}"}, name
        elif not headers and basic:
            if ":" not in basic:
                raise EndpointError(f"basic credentials from the {name} must be user:password")
            headers = {"Authorization": "Basic " + base64.b64encode(basic.encode()).decode("ascii")}
            source = name
        ca = ca or _lookup(layer, "ca_file")
    return Endpoint(base=base, headers=headers, ca_file=os.path.expanduser(ca) if ca else None, auth_source=source)


def stock_fallback_enabled() -> bool:
    return config.settings().require("stock_fallback").stock_fallback


def stock_family() -> str:
    return config.settings().require("stock_family").stock_family
