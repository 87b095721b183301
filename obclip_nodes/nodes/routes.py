"""Two small routes on the LOCAL ComfyUI for the browser extension (web/obclip.js).

GET  /obclip/probe?url=...   the "test connection" button of the Cloud Partial Sampler: for each cloud URL,
                             is it reachable, does it have the pack (or stock nodes), its queue length and
                             checkpoints. The local server makes the calls, so the token (environment or
                             secrets file) never reaches the browser, and nothing but GETs of public server
                             state are sent: no prompt, no candidate.
POST /obclip/expand          {"prompt", "preset", "attributes", "max_candidates"} -> the candidates, N,
                             attribute types and leak warnings, for the live preview as the prompt is typed.
                             Computed here; the text goes browser -> local server only, and is not logged.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time

from .. import config
from ..protocol import routes

log = logging.getLogger("obclip")
_installed = False


async def probe_one(url: str, timeout: float = 8.0) -> dict:
    import aiohttp

    from ..protocol.request import SERVER_SAMPLER
    from ..remote.endpoints import EndpointError, resolve
    out: dict = {"url": url, "reachable": False}
    try:
        ep = resolve(url)
    except EndpointError as e:
        return {**out, "error": str(e)}
    out["url"], out["auth"] = ep.base, ep.auth_source
    t0 = time.monotonic()
    try:
        ssl_ctx = ep.ssl_context()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async def get(path):
                async with s.get(ep.base + path, headers=ep.headers, ssl=ssl_ctx) as r:
                    if r.status in (401, 403):
                        raise PermissionError(f"{r.status}: the server wants credentials (set OBCLIP_CLOUD_TOKEN "
                                              "or the secrets file on this machine)")
                    r.raise_for_status()
                    return await r.json(content_type=None)
            queue = await get("/prompt")
            out["reachable"] = True
            out["latency_ms"] = round((time.monotonic() - t0) * 1000)
            out["queue"] = int((queue.get("exec_info") or {}).get("queue_remaining", -1))
            out["pack"] = SERVER_SAMPLER in await get("/object_info/" + SERVER_SAMPLER)
            loader = await get("/object_info/CheckpointLoaderSimple")
            try:
                out["checkpoints"] = list(loader["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0])
            except (KeyError, IndexError, TypeError):
                out["checkpoints"] = []
    except PermissionError as e:
        out.update(reachable=True, error=str(e))
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as e:
        out["error"] = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return out


def expand_preview(body: dict) -> dict:
    from ..privacy import ExpansionError, expand_prompt
    attrs = [a.strip() for a in str(body.get("attributes") or "").split(",") if a.strip()] or None
    try:
        exp = expand_prompt(str(body.get("prompt") or ""), attrs, str(body.get("preset") or "default"),
                            max_candidates=int(body.get("max_candidates") or 32),
                            allow_unprotected=body.get("allow_unprotected") is True)
    except (ExpansionError, ValueError) as e:
        found = getattr(e, "findings", ())
        return {"error": str(e), "outcome": "refused",
                "unprotected": [{"word": f.word, "type": f.type} for f in found]}
    return {"n": exp.n, "attributes": list(exp.attributes), "candidates": list(exp.candidates),
            "leak_warnings": list(exp.leak_warnings), "server_learns": exp.server_learns,
            "outcome": exp.outcome, "normalisations": list(exp.normalisations),
            "unprotected": [{"word": f.word, "type": f.type} for f in exp.unprotected]}


LOOPBACK = {"127.0.0.1", "::1"}
PROBE_ANY_ENV = config.SETTINGS["probe_from_any_host"].env


def install() -> bool:
    global _installed
    srv = getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)
    if srv is None or _installed:
        return _installed
    from aiohttp import web
    from ..remote.endpoints import EndpointError, split_urls

    @srv.routes.get(routes.PROBE)
    async def probe(request):
        # The probe makes this server open connections to a URL it is given; on a cloud reachable by
        # others that would be a request-forgery surface, so it answers loopback callers only.
        if request.remote not in LOOPBACK and not config.settings().probe_from_any_host:
            return web.json_response({"error": "the connection probe answers only browsers on this machine; "
                                               f"set {PROBE_ANY_ENV}=1 on this ComfyUI to allow others"},
                                     status=403)
        try:
            urls = split_urls(request.query.get("url", ""))
        except EndpointError as e:
            return web.json_response({"error": str(e)}, status=400)
        own = {f"http://{h}:{srv.port}" for h in ("127.0.0.1", "localhost", str(srv.address))}
        results = await asyncio.gather(*(probe_one(u) for u in urls[:8]))
        for r in results:
            if r["url"].rstrip("/") in own:
                r["warning"] = "this is the same ComfyUI you are using; point server_url at the cloud"
        return web.json_response({"servers": results})

    @srv.routes.post(routes.EXPAND)
    async def expand(request):
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        return web.json_response(expand_preview(body if isinstance(body, dict) else {}))

    _installed = True
    return True
