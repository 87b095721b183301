"""What the pack adds to the cloud ComfyUI's web server, installed when the pack is imported.

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

import hmac
import json
import logging
import os
import threading
import time
from collections import OrderedDict

from ..protocol.request import INFO_ROUTE, PACK_INFO

TOKEN_ENV, TOKEN_FILE_ENV = "OBCLIP_SERVER_TOKEN", "OBCLIP_SERVER_TOKEN_FILE"
MAX_CANDIDATES_ENV = "OBCLIP_SERVER_MAX_CANDIDATES"
RESULT_TTL_ENV, RESULT_MAX_MB_ENV = "OBCLIP_SERVER_RESULT_TTL_S", "OBCLIP_SERVER_RESULT_MAX_MB"
RESULT_ROUTE = "/obclip/result/{prompt_id}"

log = logging.getLogger("obclip")


def server_token() -> str | None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    path = os.environ.get(TOKEN_FILE_ENV, "").strip()
    if not token and path:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    return token or None


def check_authorization(header: str | None, token: str) -> int | None:
    """-> None when allowed, else the HTTP status to answer (401 missing, 403 wrong)."""
    if not header:
        return 401
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return 401
    return None if hmac.compare_digest(value.strip().encode(), token.encode()) else 403


def count_candidates(body: dict) -> int:
    """The largest candidate list of any ObCLIP Server Sampler in a POST /prompt body (0 if none)."""
    from ..protocol.request import SERVER_SAMPLER
    most = 0
    graph = body.get("prompt") if isinstance(body, dict) else None
    for node in (graph or {}).values() if isinstance(graph, dict) else ():
        if isinstance(node, dict) and node.get("class_type") == SERVER_SAMPLER:
            value = (node.get("inputs") or {}).get("candidates")
            try:
                items = json.loads(value) if isinstance(value, str) else None
            except ValueError:
                items = None
            if isinstance(items, list):
                most = max(most, len(items))
    return most


class ResultStore:
    """Payload bytes per prompt id, in memory, bounded by age and total size."""

    def __init__(self, ttl_s: float = 600.0, max_bytes: int = 2048 * 2**20):
        self.ttl_s, self.max_bytes = ttl_s, max_bytes
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()  # put() runs on the prompt worker thread, get() on the server loop

    def _expire(self, now: float) -> None:
        for key in [k for k, (t, _) in self._items.items() if now - t > self.ttl_s]:
            del self._items[key]
        while self._items and sum(len(b) for _, b in self._items.values()) > self.max_bytes:
            self._items.popitem(last=False)

    def put(self, prompt_id: str, raw: bytes) -> None:
        if len(raw) > self.max_bytes:
            raise ValueError(f"a {len(raw)} byte result exceeds the server's result store "
                             f"({RESULT_MAX_MB_ENV}={self.max_bytes // 2**20})")
        with self._lock:
            now = time.monotonic()
            self._items[prompt_id] = (now, raw)
            self._items.move_to_end(prompt_id)
            self._expire(now)

    def get(self, prompt_id: str) -> bytes | None:
        with self._lock:
            self._expire(time.monotonic())
            item = self._items.get(prompt_id)
            return item[1] if item else None

    def delete(self, prompt_id: str) -> bool:
        with self._lock:
            return self._items.pop(prompt_id, None) is not None

    def __len__(self) -> int:
        return len(self._items)


STORE = ResultStore(float(os.environ.get(RESULT_TTL_ENV, "600")),
                    int(float(os.environ.get(RESULT_MAX_MB_ENV, "2048")) * 2**20))
_installed = False


def store_result(prompt_id: str | None, raw: bytes) -> bool:
    """Called by the Server Return node. False when no server route serves the store (local graph)."""
    if not (_installed and prompt_id):
        return False
    STORE.put(prompt_id, raw)
    return True


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
    if srv is None:
        return False  # not inside a ComfyUI server (plain tests, in-process graphs, scripts)
    from aiohttp import web
    token = server_token()
    limit = int(os.environ.get(MAX_CANDIDATES_ENV, "0") or 0) or None
    try:
        for mw in make_middlewares(token, limit):
            srv.app.middlewares.append(mw)
    except RuntimeError as e:  # a frozen app: never serve without the auth the operator asked for
        raise RuntimeError(f"ObCLIP could not install its server middleware ({e}); refusing to load with "
                           f"{TOKEN_ENV} set but not enforced") from None

    @srv.routes.get(INFO_ROUTE)
    async def get_info(request):
        return web.json_response(PACK_INFO)

    @srv.routes.get(RESULT_ROUTE)
    async def get_result(request):
        raw = STORE.get(request.match_info["prompt_id"])
        if raw is None:
            return web.json_response({"error": "no ObCLIP result for this prompt id (never produced, already "
                                               "fetched, or expired)"}, status=404)
        return web.Response(body=raw, content_type="application/octet-stream")

    @srv.routes.delete(RESULT_ROUTE)
    async def delete_result(request):
        return web.json_response({"deleted": STORE.delete(request.match_info["prompt_id"])})

    _installed = True
    log.info("obclip: server side installed (token auth %s, candidate limit %s, result store)",
             "on" if token else "off", limit or "none")
    return True


install()
