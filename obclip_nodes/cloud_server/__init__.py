"""The cloud's server side: what the pack adds to a ComfyUI that serves as a cloud.

Installed by the pack's node registration when it runs inside a ComfyUI server; plain imports (tests,
scripts, the device's in-process graphs) install nothing. One module a concern: auth.py (who asks),
tenants.py (who owns what, what each role sees), limits.py (what a request may ask for),
results.py (results bound to their requester). docs/deploy-cloud.md is the operator's view.

* **Auth** (when ``OBCLIP_SERVER_TOKEN(_FILE)`` or ``OBCLIP_SERVER_TENANTS_FILE`` is set): every request,
  API, WebSocket and static files alike, must carry ``Authorization: Bearer <token>``; 401 without,
  403 with an unknown token. The operator token reaches everything; a client token only the routes
  in tenants.CLIENT_ROUTES, and only its own prompts there.
* **Submit-time checks** (every role): strict JSON bodies (UTF-8, no NaN, bounded nesting and size),
  a prompt id is accepted once, ObCLIP requests within the operator's limits; a client may submit
  only the ObCLIP request graph. Refusals are 400 (413 for size) with a ComfyUI-shaped error.
* **Result store**: the Server Return node leaves the latent bytes here (memory only), bound to the
  hash of the request's secret key; ``GET /obclip/result/{prompt_id}`` with the secret hands them out
  once and deletes them; ``DELETE`` with the secret drops them (or drops them on arrival).

ComfyUI imports custom nodes after ``PromptServer.__init__`` builds the aiohttp app and before the
app starts (and freezes its middleware list), so appending a middleware at import time works; the
tests check it on a real server. If it ever cannot be installed while auth is configured, the
import fails loudly (fail closed) instead of serving without auth.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math

from .. import config
from ..protocol import routes
from ..protocol.errors import ProtocolError
from ..protocol.request import PACK_INFO, parse_server_prompt, sampler_requests
from .auth import ANONYMOUS, Principal, identify
from . import scheduler
from .limits import BadRequest, Limits, RejectLimiter, parse_json_body
from .results import ResultStore
from .tenants import ID_RE, Tenancy, api_path, client_may_call

log = logging.getLogger("obclip")
_store: ResultStore | None = None
_tenancy = Tenancy()
_clients: set[str] = set()   # names of the client tenants (the operator's results have no store share)
_installed = False
# POST routes whose body is JSON, checked strictly before any handler parses it.
JSON_POSTS = {"/prompt", "/queue", "/interrupt", "/history", "/free", routes.EXPAND}
EMPTY_OK = {"/interrupt", "/free"}


def result_store() -> ResultStore:
    """The process's store, sized from the configuration when first needed (never at import)."""
    global _store
    if _store is None:
        cfg = config.settings()
        _store = ResultStore(cfg.server_result_ttl_s, int(cfg.server_result_max_mb * 2**20),
                             int(cfg.server_result_tenant_mb * 2**20))
    return _store


def store_result(prompt_id: str | None, raw: bytes, key_sha256: str) -> bool:
    """Called by the Server Return node. False when no server route serves the store (local graph) or
    the request carries no result key (nothing is kept that nobody could fetch)."""
    if not (_installed and prompt_id and key_sha256):
        return False
    owner = _tenancy.owner(prompt_id)
    result_store().put(prompt_id, raw, key_sha256, owner, share=owner in _clients)
    return True


def serving() -> bool:
    """True inside a ComfyUI server where the result routes are installed."""
    return _installed


def _error(status: int, kind: str, message: str, extra=None, headers=None):
    from aiohttp import web
    return web.json_response({"error": {"type": kind, "message": f"ObCLIP server: {message}", "details": "",
                                         "extra_info": extra or {}}, "node_errors": {}}, status=status,
                             headers=headers)


def _refuse_all(message: str):
    from aiohttp import web

    @web.middleware
    async def obclip_misconfigured(request, handler):
        return _error(503, "obclip_misconfigured", message)
    return obclip_misconfigured


def _check_prompt_post(who: Principal, body: dict, limits: Limits, tenancy: Tenancy) -> str | None:
    """Submit-time checks of POST /prompt (nothing is recorded); -> the prompt id (None: ComfyUI draws one)."""
    graph, pid, cid = body.get("prompt"), body.get("prompt_id"), body.get("client_id")
    if not isinstance(graph, dict):
        raise BadRequest('send {"prompt": {...API graph...}}: the prompt is missing or not an object')
    for node_id, node in graph.items():
        if not (isinstance(node, dict) and isinstance(node.get("class_type"), str)
                and isinstance(node.get("inputs", {}), dict)):
            raise BadRequest(f"node {str(node_id)[:40]!r} must be an object with a class_type and an inputs object")
    if who.is_client:
        extra = sorted(set(body) - {"prompt", "prompt_id", "client_id"})
        if extra:
            raise BadRequest(f"a client may send only prompt, prompt_id and client_id; remove {extra}")
        if not (isinstance(pid, str) and ID_RE.fullmatch(pid)):
            raise BadRequest("send a fresh random prompt_id (letters, digits, '-', at most 128)")
        if not (isinstance(cid, str) and ID_RE.fullmatch(cid)):
            raise BadRequest("send the client_id of your WebSocket (letters, digits, '-', at most 128)")
        try:
            req, _ = parse_server_prompt(graph)
        except ProtocolError as e:
            raise BadRequest(f"invalid ObCLIP request: {e}") from None
        limits.check(req)
    else:
        if pid is not None and not (isinstance(pid, str) and ID_RE.fullmatch(pid)):
            raise BadRequest("prompt_id must be letters, digits or '-', at most 128")
        try:
            for req in sampler_requests(graph):
                limits.check(req)
        except ProtocolError as e:
            raise BadRequest(f"invalid ObCLIP request: {e}") from None
    if isinstance(cid, str) and not tenancy.socket_free_for(cid, who):
        raise BadRequest("this client_id belongs to another tenant; use your own random id", "obclip_forbidden", 403)
    return pid


def _duplicate(pid: str) -> BadRequest:
    return BadRequest(f"prompt_id {pid} was already used on this server; every request needs a fresh random id",
                      "obclip_duplicate_prompt_id")


def _queued(resp) -> bool:
    """ComfyUI answers 200 exactly when it put the prompt on its queue."""
    return resp.status == 200


def make_gate(tenants: dict, limits: Limits, tenancy: Tenancy, live_queue=lambda: ([], []),
              rejects: RejectLimiter | None = None):
    """One middleware: who asks, may they call this, is the body sane, and what may they see.
    `live_queue()` -> ComfyUI's (running, pending) items, for the per-tenant cap."""
    from aiohttp import web

    async def submit(request, handler, who: Principal, body: dict):
        pid = _check_prompt_post(who, body, limits, tenancy)
        if who.is_client:
            live = tenancy.live_counts(live_queue()).get(who.name, 0)
            if live >= limits.max_queued_per_tenant:
                return _error(429, "obclip_tenant_busy",
                              f"this tenant already has {live} requests queued or running; the cloud's operator "
                              f"allows {limits.max_queued_per_tenant} at once "
                              "(OBCLIP_SERVER_MAX_QUEUED_PER_TENANT). Wait for one to finish, then send again",
                              {"max_queued_per_tenant": limits.max_queued_per_tenant}, headers={"Retry-After": "1"})
        if pid is not None and not tenancy.reserve_prompt(pid, who.name):
            raise _duplicate(pid)
        try:
            resp = await handler(request)
        except BaseException:
            if pid is not None:
                tenancy.release_prompt(pid)
            raise
        if not _queued(resp):
            if pid is not None:
                tenancy.release_prompt(pid)
            if who.is_client and rejects:
                rejects.charge(who.name)
            return resp
        if pid is None:  # ComfyUI drew the id (an operator's request)
            try:
                pid = json.loads(resp.body).get("prompt_id")
            except (ValueError, TypeError, AttributeError):
                pid = None
            if isinstance(pid, str):
                tenancy.claim_prompt(pid, who.name)
        else:
            tenancy.commit_prompt(pid, who.name)
        if isinstance(body.get("client_id"), str):
            tenancy.claim_socket(body["client_id"], who)
        return resp

    @web.middleware
    async def obclip_gate(request, handler):
        who = ANONYMOUS
        if tenants:
            status, who = identify(request.headers.get("Authorization"), tenants)
            if status is not None:
                log.warning("obclip: refused %s %s from %s (HTTP %d)", request.method, request.path,
                            request.remote, status)
                reason = "missing bearer token" if status == 401 else "wrong bearer token"
                return _error(status, "unauthorized", reason, headers={"WWW-Authenticate": 'Bearer realm="comfyui"'})
        request["obclip_principal"] = who
        method, path = request.method, api_path(request.path)
        if who.is_client and not client_may_call(method, request.path):
            log.warning("obclip: refused operator route %s %s to client %s", method, path, who.name)
            return _error(403, "obclip_forbidden", f"{method} {path} is for the cloud's operator; a client token may "
                                                   "use only the ObCLIP request routes")
        if who.is_client and method == "POST" and rejects:
            wait = rejects.wait_s(who.name)
            if wait:  # not logged: a flood must not fill the log either
                return _error(429, "obclip_too_many_refusals",
                              f"this tenant sent more than {rejects.per_min} refused requests in a minute "
                              f"(OBCLIP_SERVER_MAX_REJECTS_PER_MIN); fix the request, then retry in "
                              f"{math.ceil(wait)} s or later", {"retry_after_s": round(wait, 1)},
                              headers={"Retry-After": str(math.ceil(wait))})
        try:
            if method == "POST" and path in JSON_POSTS:
                cap = limits.max_body_bytes
                if cap and (request.content_length or 0) > cap:
                    raise BadRequest(f"the request body is {request.content_length} bytes; this server accepts at "
                                     f"most {cap}", "obclip_too_large", 413)
                raw = await request.read()  # cached: the handler reads the same bytes
                if cap and len(raw) > cap:
                    raise BadRequest(f"the request body is over {cap} bytes", "obclip_too_large", 413)
                body = parse_json_body(raw, empty_ok=path in EMPTY_OK)
                if not isinstance(body, dict):
                    raise BadRequest("the request body must be a JSON object")
                if path == "/prompt":
                    return await submit(request, handler, who, body)
                if who.is_client and path == "/queue":
                    if set(body) - {"delete"} or not isinstance(body.get("delete", []), list):
                        raise BadRequest("a client may only delete its own prompts: send {\"delete\": [ids]}",
                                         "obclip_forbidden", 403)
                    if not all(tenancy.owns(who, pid) for pid in body.get("delete", [])):
                        raise BadRequest("a client may delete only its own prompts", "obclip_forbidden", 403)
                if who.is_client and path == "/interrupt" and not tenancy.owns(who, body.get("prompt_id")):
                    raise BadRequest("a client may interrupt only its own prompt: send {\"prompt_id\": id}",
                                     "obclip_forbidden", 403)
            elif method == "GET" and (path in ("/history", "/queue") or path.startswith("/history/")):
                for q in ("max_items", "offset"):
                    if q in request.query and not request.query[q].lstrip("-").isdigit():
                        raise BadRequest(f"{q} must be a whole number")
                resp = await handler(request)
                if not who.is_client or resp.status != 200:
                    return resp
                def only_own(body: bytes) -> bytes:  # a full history can be megabytes: off the event loop
                    data = json.loads(body)
                    data = tenancy.filter_queue(who, data) if path == "/queue" else tenancy.filter_history(who, data)
                    return json.dumps(data).encode()
                return web.Response(body=await asyncio.to_thread(only_own, resp.body), content_type="application/json")
            elif method == "GET" and path == "/ws":
                cid = request.query.get("clientId", "")
                if who.is_client and not ID_RE.fullmatch(cid):
                    raise BadRequest("a client must open the WebSocket with its own random clientId")
                if cid and not tenancy.claim_socket(cid, who):
                    raise BadRequest("this clientId belongs to another tenant; use your own random id",
                                     "obclip_forbidden", 403)
        except BadRequest as e:
            log.info("obclip: %d %s %s (%s): %s", e.status, method, path, who.name, e)
            if who.is_client and rejects:
                rejects.charge(who.name)
            return _error(e.status, e.kind, str(e), e.extra)
        return await handler(request)

    return obclip_gate


def _live_queue(srv):
    running, pending = srv.prompt_queue.get_current_queue_volatile()
    return running, pending


def _filter_broadcasts(srv, tenancy: Tenancy) -> None:
    """ComfyUI sends a prompt's events to its client id, but broadcasts some (sid None) to every socket.
    Deliver those only where the socket's tenant may see them. The `status` event (the queue length,
    sent whenever anyone's prompt is queued, started or finished) reaches a client tenant's socket only
    as the count of its own prompts, and only when that count changes: its timing follows the tenant's
    own prompts, never another tenant's. The seam: PromptServer.send(event, data, sid) and
    PromptServer.sockets (client id -> socket), both stable since 2023; tested on a real server."""
    original = srv.send
    last_sent: dict[str, int] = {}   # client socket -> the count it was last told

    async def send_status(data, sid):
        counts = tenancy.live_counts(_live_queue(srv))
        targets = [sid] if sid is not None else list(srv.sockets)
        for stale in set(last_sent) - set(srv.sockets):
            last_sent.pop(stale, None)
        for client_id in targets:
            tenant = tenancy.socket_tenant(client_id)
            if tenant is None:
                await original("status", data, client_id)
                continue
            mine = counts.get(tenant, 0)
            if sid is None and last_sent.get(client_id) == mine:
                continue
            last_sent[client_id] = mine
            own = {"status": {"exec_info": {"queue_remaining": mine}}}
            if isinstance(data, dict) and "sid" in data:
                own["sid"] = data["sid"]
            await original("status", own, client_id)

    async def send(event, data, sid=None):
        if event == "status":
            return await send_status(data, sid)
        if sid is not None:
            return await original(event, data, sid)
        for client_id in list(srv.sockets):
            if tenancy.may_receive(client_id, event, data):
                await original(event, data, client_id)
    srv.send = send


def install() -> bool:
    """Install the gate, the broadcast filter and the result routes on the running PromptServer, if any."""
    global _installed
    import sys
    srv = getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)
    if srv is None or _installed:
        return _installed  # not inside a ComfyUI server (plain tests, in-process graphs, scripts)
    from aiohttp import web
    try:
        cfg = config.settings().require(
            "server_token", "server_token_file", "server_tenants_file", "server_max_candidates", "server_max_steps",
            "server_max_pixels", "server_max_prompt_chars", "server_max_body_kb", "server_result_ttl_s",
            "server_result_max_mb", "server_result_tenant_mb", "server_max_queued_per_tenant",
            "server_max_ids_per_tenant", "server_max_rejects_per_min")
        tenants = cfg.server_tenants()
        import dataclasses

        import comfy.samplers
        limits = dataclasses.replace(Limits.from_settings(cfg, cloud=bool(tenants)),
                                     samplers=tuple(comfy.samplers.KSampler.SAMPLERS),
                                     schedulers=tuple(comfy.samplers.KSampler.SCHEDULERS))
    except config.ConfigError as e:
        # ComfyUI keeps serving when a pack fails to import, so raising here would serve without the
        # auth the operator asked for. Refuse every request instead, naming the setting to fix.
        srv.app.middlewares.append(_refuse_all(str(e)))
        log.error("obclip: server side NOT installed, every request is refused: %s", e)
        return False
    _tenancy.configure(cfg.server_max_ids_per_tenant)
    _clients.update(name for role, name in tenants.values() if role == "client")
    try:
        srv.app.middlewares.append(make_gate(tenants, limits, _tenancy, lambda: _live_queue(srv),
                                             RejectLimiter(cfg.server_max_rejects_per_min)))
    except RuntimeError as e:  # a frozen app: never serve without the auth the operator asked for
        raise RuntimeError(f"ObCLIP could not install its server middleware ({e}); refusing to load with "
                           "OBCLIP_SERVER_TOKEN set but not enforced") from None
    _filter_broadcasts(srv, _tenancy)
    fair = scheduler.install(srv.prompt_queue, _tenancy.owner)

    def key_of(request) -> str:
        secret = request.headers.get(routes.RESULT_KEY_HEADER, "")
        if not secret:
            raise BadRequest(f"present the request's secret result key in the {routes.RESULT_KEY_HEADER} header")
        return secret

    def tenant_of(request) -> str | None:
        who = request.get("obclip_principal", ANONYMOUS)
        return who.name if who.is_client else None

    @srv.routes.get(routes.INFO)
    async def get_info(request):
        return web.json_response(PACK_INFO)

    @srv.routes.get(routes.RESULT)
    async def get_result(request):
        try:
            secret = key_of(request)
        except BadRequest as e:
            return _error(400, e.kind, str(e))
        raw = result_store().take(request.match_info["prompt_id"], secret, tenant_of(request))
        if raw is None:
            return _error(404, "obclip_no_result", "no ObCLIP result for this prompt id and key (never produced, "
                                                   "already fetched, expired, or not yours)")
        return web.Response(body=raw, content_type="application/octet-stream")

    @srv.routes.delete(routes.RESULT)
    async def delete_result(request):
        try:
            secret = key_of(request)
        except BadRequest as e:
            return _error(400, e.kind, str(e))
        return web.json_response({"deleted": result_store().discard(request.match_info["prompt_id"], secret,
                                                                    tenant_of(request))})

    _installed = True
    clients = sum(1 for role, _ in tenants.values() if role == "client")
    log.info("obclip: server side installed (auth %s, %d client tenant(s), %s scheduling, limits %s, "
             "result store)", "on" if tenants else "off", clients, "fair" if fair else "FIFO",
             dataclasses.replace(limits, samplers=(), schedulers=()))
    return True
