"""Two small routes on the LOCAL ComfyUI for the browser extension (web/obclip.js).

GET  /obclip/probe?url=...   the "test connection" button of the Cloud Partial Sampler: for each cloud URL,
                             is it reachable, does it have the pack (or stock nodes), its queue length and
                             checkpoints. The local server makes the calls with the client's own code
                             (CloudClient.probe: the same endpoint rules and checks as a run's preflight),
                             so a credential goes only to the server it is scoped to and never reaches the
                             browser. Nothing but GETs of public server state are sent.
POST /obclip/expand          {"prompt", "preset", "attributes", "max_candidates"} -> the candidates, N,
                             attribute types, leak warnings and the anonymity block (which of how many, and
                             what it tells the server), for the live preview as the prompt is typed.
                             Computed here, off the event loop and within a time limit; the text goes
                             browser -> local server only, and is not logged.

Both answer only the browser of this machine: a loopback peer that is not relayed by a proxy (no
X-Forwarded-For / Forwarded / X-Real-IP) and, when the browser says where the page came from
(Origin, Sec-Fetch-Site), a page of this same server. OBCLIP_PROBE_FROM_ANY_HOST=1 lifts the host
rule (never the origin rule).
"""
from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

from .. import config
from ..protocol import routes

_installed = False
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
PROBE_ANY_ENV = config.SETTINGS["probe_from_any_host"].env
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host")
EXPAND_MAX_CANDIDATES = 256       # the wire limit: a preview never shows more than a request could carry
EXPAND_MAX_PROMPT_CHARS = 4000
EXPAND_TIME_LIMIT_S = 5.0
EXPAND_CONCURRENCY = 2
MAX_PROBE_URLS = 8
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Refused(ValueError):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def browser_check(request, *, any_host: bool) -> None:
    """Raise Refused unless the caller is this machine's browser on a page of this server."""
    relayed = any(h in request.headers for h in PROXY_HEADERS)
    if not any_host and (request.remote not in LOOPBACK or relayed):
        raise Refused("this route answers only a browser on this machine (not a remote host, not through a "
                      f"proxy); set {PROBE_ANY_ENV}=1 on this ComfyUI to allow others", 403)
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refused(f"cross-site request refused (Sec-Fetch-Site: {site}); open the ComfyUI page itself", 403)
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
        raise Refused("cross-origin request refused; open the ComfyUI page itself", 403)
    if not own_host(request.host, any_host=any_host):
        # DNS rebinding: a foreign name that resolves to this machine sends Host and Origin both foreign
        raise Refused("this route answers only requests addressed to this server by localhost or an IP address "
                      "(Host header); open the ComfyUI page at http://127.0.0.1:PORT", 403)


def own_host(host: str | None, *, any_host: bool) -> bool:
    """A Host header naming this server: a loopback name or address; with any_host also any IP address or
    this machine's own name. A DNS name an attacker controls (DNS rebinding) is none of these."""
    import ipaddress
    import socket
    name = (urlsplit("//" + (host or "")).hostname or "").lower()
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if name == "localhost" or name.endswith(".localhost") or (ip is not None and ip.is_loopback):
        return True
    return any_host and (ip is not None or name in {socket.gethostname().lower(), socket.getfqdn().lower()})


def lexicon_for(preset) -> str | Path:
    """A bundled preset name, or NAME.json in OBCLIP_LEXICON_DIR; never a path from the caller."""
    from ..privacy import PRESETS
    name = preset if isinstance(preset, str) and preset else "default"
    if name in PRESETS:
        return name
    directory = config.settings().lexicon_dir
    if _NAME.fullmatch(name) and directory:
        path = Path(directory).expanduser() / f"{name}.json"
        if path.is_file():
            return path
    extra = " or a lexicon NAME.json in OBCLIP_LEXICON_DIR" if directory else ""
    raise Refused(f"unknown preset {name[:64]!r}; use one of {', '.join(PRESETS)}{extra}", 400)


def lexicon_in_folder(lexicon_path: str) -> Path:
    """The Candidate Expander's lexicon_path: a JSON file inside OBCLIP_LEXICON_DIR, else ValueError. Every
    refusal (no folder set, outside it, missing, not a file) has the same message, so a workflow cannot
    learn from it whether a file exists."""
    directory = config.settings().lexicon_dir
    try:
        if directory:
            root = Path(directory).expanduser().resolve()
            path = (root / Path(lexicon_path.strip()).expanduser()).resolve()
            if path.suffix == ".json" and path.is_relative_to(root) and path.is_file():
                return path
    except (OSError, ValueError):
        pass
    raise ValueError("ObCLIP Candidate Expander: lexicon_path must name a .json lexicon inside the folder set "
                     "in OBCLIP_LEXICON_DIR (a file name or a path relative to it); leave it empty to use the preset")


def parse_expand_body(body) -> dict:
    if not isinstance(body, dict):
        raise Refused("send a JSON object", 400)
    prompt, attributes, n = body.get("prompt") or "", body.get("attributes") or "", body.get("max_candidates", 40)
    if not isinstance(prompt, str) or len(prompt) > EXPAND_MAX_PROMPT_CHARS:
        raise Refused(f"prompt must be text of at most {EXPAND_MAX_PROMPT_CHARS} characters", 400)
    if not isinstance(attributes, str) or len(attributes) > 500:
        raise Refused("attributes must be comma-separated names (at most 500 characters)", 400)
    if isinstance(n, bool) or not isinstance(n, (int, float)) or n != n or not 1 <= n <= EXPAND_MAX_CANDIDATES:
        raise Refused(f"max_candidates must be a whole number from 1 to {EXPAND_MAX_CANDIDATES}", 400)
    return {"prompt": prompt, "attributes": attributes, "lexicon": lexicon_for(body.get("preset")),
            "max_candidates": int(n), "allow_unprotected": body.get("allow_unprotected") is True}


def expand_preview(args: dict) -> dict:
    from ..privacy import ExpansionError, expand_prompt
    from .expander import block_settings
    attrs = [a.strip() for a in args["attributes"].split(",") if a.strip()] or None
    try:
        exp = expand_prompt(args["prompt"], attrs, args["lexicon"], max_candidates=args["max_candidates"],
                            allow_unprotected=args["allow_unprotected"], **block_settings())
    except (ExpansionError, ValueError) as e:
        found = getattr(e, "findings", ())
        return {"error": str(e), "outcome": "refused",
                "unprotected": [{"word": f.word, "type": f.type} for f in found]}
    return {"n": exp.n, "attributes": list(exp.attributes), "candidates": list(exp.candidates),
            "leak_warnings": list(exp.leak_warnings), "server_learns": exp.server_learns,
            "outcome": exp.outcome, "normalisations": list(exp.normalisations),
            "unprotected": [{"word": f.word, "type": f.type} for f in exp.unprotected],
            "block": exp.public_view().get("block"), "block_learns": exp.block_learns,
            "block_worst_ratio": exp.block_worst_ratio}


async def probe_one(url: str, timeout: float = 8.0) -> dict:
    from ..remote import CloudClient, CloudError, RemoteSettings
    try:
        client = CloudClient(RemoteSettings(url, request_timeout=timeout))
    except CloudError as e:
        return {"url": url, "reachable": False, "error": str(e)}
    return await client.probe(url, timeout)


def install() -> bool:
    global _installed
    srv = getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)
    if srv is None or _installed:
        return _installed
    from aiohttp import web

    from ..cloud_server.limits import BadRequest, parse_json_body
    from ..remote.endpoints import EndpointError, split_urls
    busy = asyncio.Semaphore(EXPAND_CONCURRENCY)

    def refuse(message: str, status: int):
        return web.json_response({"error": message}, status=status)

    @srv.routes.get(routes.PROBE)
    async def probe(request):
        # The probe makes this server open connections to a URL it is given: answer this machine only.
        try:
            browser_check(request, any_host=config.settings().probe_from_any_host)
            urls = split_urls(request.query.get("url", ""))
        except Refused as e:
            return refuse(str(e), e.status)
        except EndpointError as e:
            return refuse(str(e), 400)
        if len(urls) > MAX_PROBE_URLS:
            return refuse(f"at most {MAX_PROBE_URLS} URLs per probe", 400)
        own = {f"http://{h}:{srv.port}" for h in ("127.0.0.1", "localhost", str(srv.address))}
        results = await asyncio.gather(*(probe_one(u) for u in urls))
        for r in results:
            if r["url"].rstrip("/") in own:
                r["warning"] = "this is the same ComfyUI you are using; point server_url at the cloud"
        return web.json_response({"servers": results})

    @srv.routes.post(routes.EXPAND)
    async def expand(request):
        try:
            browser_check(request, any_host=config.settings().probe_from_any_host)
            args = parse_expand_body(parse_json_body(await request.read()))
        except Refused as e:
            return refuse(str(e), e.status)
        except BadRequest as e:
            return refuse(str(e), e.status)
        if busy.locked():
            return refuse("the preview is busy with other requests; try again in a moment", 429)
        async with busy:
            try:  # the expansion is bounded by the caps above; the time limit is the last guard
                return web.json_response(await asyncio.wait_for(asyncio.to_thread(expand_preview, args),
                                                                EXPAND_TIME_LIMIT_S))
            except asyncio.TimeoutError:
                return refuse(f"the preview took over {EXPAND_TIME_LIMIT_S:g} s; restrict the attributes", 503)

    _installed = True
    return True
