"""Cloud endpoints and their secrets: URLs, bearer/basic credentials, custom CA files.

A credential is scoped to the server it is for, and goes nowhere else: not to another URL typed into a
workflow someone shared, not to the browser's connection probe, not over a redirect.

Secrets never come from a widget (a widget value is saved into the workflow JSON and the PNG). They
come from:

1. the local secrets file (``OBCLIP_SECRETS_FILE``, default ``~/.config/obclip/secrets.json``), entry
   for this server: the key is the URL's origin (``https://gpu-box:8443``) or ``host:port``::

       {"servers": {"https://gpu-box:8443": {"token": "...", "ca_file": "/etc/obclip/ca.pem"},
                    "http://10.0.0.5:8188": {"basic": "user:password", "allow_http": true}},
        "default": {"ca_file": "/etc/obclip/ca.pem"}}

   ``"default"`` may hold only a CA file: a credential there would go to every URL, so it is refused;

2. the environment: ``OBCLIP_CLOUD_TOKEN`` (bearer) or ``OBCLIP_CLOUD_BASIC`` (``user:password``), which
   apply only to the URL(s) in ``OBCLIP_CLOUD_URL`` (same origin); ``OBCLIP_CLOUD_CA_FILE`` (PEM
   bundle to trust for https/wss) applies everywhere.

A credential is never sent over plain http to a host that is not loopback unless the entry says
``"allow_http": true`` or ``OBCLIP_CLOUD_ALLOW_HTTP=1`` is set.

Client options that are not secrets but are not widgets either (to keep the shipped workflow
stable): ``OBCLIP_STOCK_FALLBACK`` (``1`` default: use stock nodes on a cloud without this pack;
``0``: fail), ``OBCLIP_STOCK_FAMILY`` (``SD15`` default, or ``SDXL``: the cloud model's family in
stock mode, which a cloud without the pack cannot report).
"""
from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .. import config

TOKEN_ENV, BASIC_ENV, CA_ENV = "OBCLIP_CLOUD_TOKEN", "OBCLIP_CLOUD_BASIC", "OBCLIP_CLOUD_CA_FILE"
URL_ENV, ALLOW_HTTP_ENV = "OBCLIP_CLOUD_URL", "OBCLIP_CLOUD_ALLOW_HTTP"
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


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL: the boundary a credential is scoped to."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise EndpointError(f"cloud URL {url!r} has an invalid port") from None
    return parts.scheme, (parts.hostname or "").lower(), port or (443 if parts.scheme == "https" else 80)


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _entry_for(servers, base: str) -> tuple[dict, str]:
    """The secrets-file entry for this server: keyed by its origin URL or by host:port."""
    if not isinstance(servers, dict):
        raise EndpointError('the secrets file\'s "servers" must be an object of URL -> entry')
    want = origin(base)
    netloc = f"{want[1]}:{want[2]}"
    for key, entry in servers.items():
        k = str(key).strip()
        try:
            match = (origin(normalise_url(k)) == want) if "://" in k else (k.lower() in (netloc, urlsplit(base).netloc))
        except EndpointError:
            match = False
        if match:
            if not isinstance(entry, dict):
                raise EndpointError(f"the secrets file entry for {k} must be an object")
            return entry, f"secrets file entry {k}"
    return {}, ""


def _credential(layer: dict, name: str) -> dict:
    token, basic = _lookup(layer, "token"), _lookup(layer, "basic")
    if token:
        return {"Authorization": f"Bearer {token}"}
    if basic:
        if ":" not in basic:
            raise EndpointError(f"basic credentials from the {name} must be user:password")
        return {"Authorization": "Basic " + base64.b64encode(basic.encode()).decode("ascii")}
    return {}


def resolve(url: str) -> Endpoint:
    """The endpoint for `url`, with the credential scoped to it (if any). Raises EndpointError when the
    configuration is ambiguous or would send a credential where it must not go."""
    base = normalise_url(url)
    data = _secrets_file()
    default = data.get("default") or {}
    if _lookup(default, "token") or _lookup(default, "basic"):
        raise EndpointError('the secrets file\'s "default" entry holds a credential, which would go to every '
                            'server; move it under "servers": {"https://your-cloud:port": {...}}')
    entry, entry_name = _entry_for(data.get("servers") or {}, base)
    cfg = config.settings().require("cloud_token", "cloud_basic", "cloud_url", "cloud_allow_http", "cloud_ca_file")
    env_cred = {"token": cfg.cloud_token, "basic": cfg.cloud_basic}
    headers, source, allow_http = _credential(entry, entry_name), entry_name or "none", bool(entry.get("allow_http"))
    if not headers and (cfg.cloud_token or cfg.cloud_basic):
        if not cfg.cloud_url:
            raise EndpointError(f"{TOKEN_ENV if cfg.cloud_token else BASIC_ENV} is set but {URL_ENV} is not: a "
                                f"credential goes only to the server it is for; set {URL_ENV} to that cloud's "
                                "URL (several: comma-separated)")
        scoped = [origin(u) for u in split_urls(cfg.cloud_url)]
        if origin(base) in scoped:
            headers, source = _credential(env_cred, "environment"), "environment"
    if headers and base.startswith("http://") and not is_loopback(origin(base)[1]) \
            and not (allow_http or cfg.cloud_allow_http):
        raise EndpointError(f"refusing to send the credential for {base} over plain http, where anyone on the "
                            "path can read it; use https://, or allow it explicitly with \"allow_http\": true "
                            f"in that secrets-file entry or {ALLOW_HTTP_ENV}=1")
    ca = _lookup(entry, "ca_file") or cfg.cloud_ca_file or _lookup(default, "ca_file")
    return Endpoint(base=base, headers=headers, ca_file=os.path.expanduser(ca) if ca else None, auth_source=source)


def stock_fallback_enabled() -> bool:
    return config.settings().require("stock_fallback").stock_fallback


def stock_family() -> str:
    return config.settings().require("stock_family").stock_family
