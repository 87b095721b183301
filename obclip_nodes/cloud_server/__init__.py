"""The cloud's server side: what the pack adds to a ComfyUI that serves as a cloud.

Installed by the pack's node registration when it runs inside a ComfyUI server; plain imports (tests,
scripts, the device's in-process graphs) install nothing. One module a concern: auth.py, limits.py,
results.py.

* **Token auth** (only when ``OBCLIP_SERVER_TOKEN`` or ``OBCLIP_SERVER_TOKEN_FILE`` is set): every
  request, API, WebSocket and static files alike, must carry ``Authorization: Bearer <token>``;
  anything else gets 401 (no header) or 403 (wrong token). ComfyUI itself has no authentication.
* **Candidate limit** (``OBCLIP_SERVER_MAX_CANDIDATES``): a POST /prompt whose ObCLIP Server Sampler
  carries more candidates is refused with 400 and a ComfyUI-shaped error naming the limit.
* **Result store**: the Server Return node leaves the latent bytes here (memory only, never disk,
  never /history); the client fetches them once with ``GET /obclip/result/{prompt_id}`` (binary, no
  base64) and deletes them. Unfetched results expire after ``OBCLIP_SERVER_RESULT_TTL_S`` (600 s);
  at most ``OBCLIP_SERVER_RESULT_MAX_MB`` (2048) are held, oldest dropped first.

ComfyUI imports custom nodes after ``PromptServer.__init__`` builds the aiohttp app and before the
app starts (and freezes its middleware list), so appending a middleware at import time works; the
tests check it on a real server. If it ever cannot be installed while a token is configured, the
import fails loudly (fail closed) instead of serving without auth.
"""
from __future__ import annotations

import json
import logging

from .. import config
from ..protocol import routes
from ..protocol.request import PACK_INFO
from .auth import check_authorization
from .limits import count_candidates
from .results import ResultStore

log = logging.getLogger("obclip")
_store: ResultStore | None = None


def result_store() -> ResultStore:
    """The process's store, sized from the configuration when first needed (never at import)."""
    global _store
    if _store is None:
        cfg = config.settings()
        _store = ResultStore(cfg.server_result_ttl_s, int(cfg.server_result_max_mb * 2**20))
    return _store


def store_result(prompt_id: str | None, raw: bytes) -> bool:
    """Called by the Server Return node. False when no server route serves the store (local graph)."""
    if not (_installed and prompt_id):
        return False
    result_store().put(prompt_id, raw)
    return True


_installed = False


def _refuse_all(message: str):
    from aiohttp import web

    @web.middleware
    async def obclip_misconfigured(request, handler):
        return web.json_response({"error": {"type": "obclip_misconfigured", "message": f"ObCLIP server: {message}",
                                            "details": "", "extra_info": {}}, "node_errors": {}}, status=503)
    return obclip_misconfigured


def make_middlewares(token: str | None, max_candidates: int | None) -> list:
    from aiohttp import web

    @web.middleware
    async def obclip_token_auth(request, handler):
        status = check_authorization(request.headers.get("Authorization"), token)
        if status is not None:
            log.warning("obclip: refused %s %s from %s (HTTP %d)", request.method, request.path,
                        request.remote, status)
            reason = "missing bearer token" if status == 401 else "wrong bearer token"
            return web.json_response({"error": {"type": "unauthorized", "message": f"ObCLIP server: {reason}",
                                                "details": "", "extra_info": {}}, "node_errors": {}},
                                     status=status, headers={"WWW-Authenticate": 'Bearer realm="comfyui"'})
        return await handler(request)

    @web.middleware
    async def obclip_candidate_limit(request, handler):
        if request.method == "POST" and request.path in ("/prompt", "/api/prompt"):
            try:
                body = json.loads(await request.read() or b"{}")  # read() is cached for the handler
            except ValueError:
                body = {}
            n = count_candidates(body)
            if n > max_candidates:
                msg = (f"this server accepts at most {max_candidates} ObCLIP candidates per request, got {n}; "
                       "restrict the attributes in the Candidate Expander")
                return web.json_response({"error": {"type": "obclip_too_many_candidates", "message": msg,
                                                    "details": "", "extra_info": {"max_candidates": max_candidates}},
                                          "node_errors": {}}, status=400)
        return await handler(request)

    out = []
    if token:
        out.append(obclip_token_auth)
    if max_candidates:
        out.append(obclip_candidate_limit)
    return out


def install() -> bool:
    """Install auth, the candidate limit and the result route on the running PromptServer, if any."""
    global _installed
    import sys
    srv = getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)
    if srv is None or _installed:
        return _installed  # not inside a ComfyUI server (plain tests, in-process graphs, scripts)
    from aiohttp import web
    try:
        cfg = config.settings().require("server_token", "server_token_file", "server_max_candidates",
                                        "server_result_ttl_s", "server_result_max_mb")
        token = cfg.server_token()
        limit = cfg.server_max_candidates
    except config.ConfigError as e:
        # ComfyUI keeps serving when a pack fails to import, so raising here would serve without the
        # auth the operator asked for. Refuse every request instead, naming the setting to fix.
        srv.app.middlewares.append(_refuse_all(str(e)))
        log.error("obclip: server side NOT installed, every request is refused: %s", e)
        return False
    try:
        for mw in make_middlewares(token, limit):
            srv.app.middlewares.append(mw)
    except RuntimeError as e:  # a frozen app: never serve without the auth the operator asked for
        raise RuntimeError(f"ObCLIP could not install its server middleware ({e}); refusing to load with "
                           "OBCLIP_SERVER_TOKEN set but not enforced") from None

    @srv.routes.get(routes.INFO)
    async def get_info(request):
        return web.json_response(PACK_INFO)

    @srv.routes.get(routes.RESULT)
    async def get_result(request):
        raw = result_store().get(request.match_info["prompt_id"])
        if raw is None:
            return web.json_response({"error": "no ObCLIP result for this prompt id (never produced, already "
                                               "fetched, or expired)"}, status=404)
        return web.Response(body=raw, content_type="application/octet-stream")

    @srv.routes.delete(routes.RESULT)
    async def delete_result(request):
        return web.json_response({"deleted": result_store().delete(request.match_info["prompt_id"])})

    _installed = True
    log.info("obclip: server side installed (token auth %s, candidate limit %s, result store)",
             "on" if token else "off", limit or "none")
    return True

