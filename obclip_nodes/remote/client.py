"""Submit the public request to a remote ComfyUI, follow it, and fetch all N latents.

Everything sent is built by `protocol` from public data; this module only adds transport. The
client id and prompt id are fresh uuid4 values, drawn independently of the prompt. Every request
carries the same headers whichever candidate is real (credentials come from endpoints.py).

Transport, in order: (several URLs: probe each one's queue with GET /prompt, try the shortest first,
fail over on connection errors) -> preflight (/obclip/info or /object_info: the pack or stock nodes,
the checkpoint) -> open the WebSocket -> POST /prompt (any node_errors is a failure) -> follow the
WebSocket, relay progress, reconnect with the same client id when it drops, poll /history when it is
silent -> fetch the payload (one binary GET in pack mode, presenting the request's secret result key:
the server hands it out once and deletes it; /view per candidate in stock mode) -> verify checksum,
dtype, shape and the request digest (a result computed for any other request is refused).

Promises: the total timeout covers everything, downloads included; whenever the client gives up after
its prompt was accepted (timeout, cancel, error), it removes the prompt from the queue, interrupts it
if it runs, and deletes its result. No redirect is followed (a credential never leaves its server),
and a cookie the server sets (a load balancer's stickiness) lives for one run only.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlencode

import aiohttp

from ..protocol import CloudRequest, LatentPayload, ProtocolError, decode_payload
from ..protocol.payload import DEFAULT_MAX_BYTES, UI_FETCH, UI_NBYTES, UI_ROWS, UI_SHA256, decode_payload_bytes
from ..protocol import routes
from ..protocol.request import (SERVER_NODE_IDS, SERVER_RETURN, SERVER_SAMPLER, build_server_prompt,
                                build_stock_prompt, encode_body, new_result_key, stock_node_ids)
from . import endpoints as ep_mod
from .endpoints import Endpoint, EndpointError, TOKEN_ENV, URL_ENV

STOCK_NODES = ("CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSamplerAdvanced", "SaveLatent")


class CloudError(RuntimeError):
    """The cloud could not produce the latents; the message says what to change."""


class CloudUnreachable(CloudError):
    """A connection-level failure (refused, DNS, TLS, timeout, died mid-run): the next URL may work."""


class CloudCancelled(CloudError):
    pass


@dataclass(frozen=True)
class RemoteSettings:
    url: str                           # one URL, or several separated by commas / spaces / new lines
    request_timeout: float = 30.0      # connecting, and one HTTP call or one silence on the socket
    total_timeout: float = 600.0       # the whole remote run
    stall_timeout: float = 10.0        # WebSocket silent this long: check /history and /queue
    token_env: str = TOKEN_ENV         # kept for compatibility; endpoints.py reads the environment
    stock_fallback: bool | None = None  # None: OBCLIP_STOCK_FALLBACK (default on)
    stock_family: str | None = None     # None: OBCLIP_STOCK_FAMILY (default SD15)
    max_payload_bytes: int = DEFAULT_MAX_BYTES

    def urls(self) -> list[str]:
        try:
            return ep_mod.split_urls(self.url)
        except EndpointError as e:
            raise CloudError(str(e)) from None

    def base(self) -> str:
        return self.urls()[0]

    def ws_base(self) -> str:
        return "ws" + self.base()[4:]

    def endpoints(self) -> list[Endpoint]:
        try:
            return [ep_mod.resolve(u) for u in self.urls()]
        except EndpointError as e:
            raise CloudError(str(e)) from None

    def headers(self) -> dict:
        return self.endpoints()[0].headers

    def fallback(self) -> bool:
        return ep_mod.stock_fallback_enabled() if self.stock_fallback is None else self.stock_fallback

    def family(self) -> str:
        return self.stock_family or ep_mod.stock_family()


@dataclass
class CloudResult:
    payload: LatentPayload
    prompt_id: str
    sent_digest: str              # sha256 of the graph posted, random ids and key excluded: equal for every real candidate
    bytes_sent: int
    bytes_received: int
    timings: dict = field(default_factory=dict)
    server: str = ""              # the URL that ran it
    mode: str = "pack"            # "pack", or "stock" (a cloud without this pack)
    attempts: list = field(default_factory=list)  # [url, error] of servers tried before it
    reconnects: int = 0


ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass
class _Run:
    ep: Endpoint
    prompt_id: str
    client_id: str
    deadline: float
    on_progress: ProgressFn | None
    should_cancel: CancelFn | None
    return_ui: dict | None = None
    reconnects: int = 0
    result_key: str = ""          # the secret that fetches (and deletes) our result; never logged


class CloudClient:
    def __init__(self, settings: RemoteSettings, *, own_prompt_id: str | None = None):
        self.settings = settings
        self.base = settings.base()
        self.own_prompt_id = own_prompt_id  # the local prompt running us: used to spot a self-loop
        self.bytes_sent = self.bytes_received = 0

    # ---------------------------------------------------------------- HTTP with clear errors
    def _ssl(self, ep: Endpoint):
        try:
            return ep.ssl_context() or True
        except EndpointError as e:
            raise CloudError(str(e)) from None

    async def _request(self, s: aiohttp.ClientSession, ep: Endpoint, method: str, path: str, *,
                       body: bytes | None = None, max_bytes: int | None = None,
                       extra_headers: dict | None = None) -> tuple[int, bytes, dict]:
        headers = {**ep.headers, **(extra_headers or {})}
        if body is not None:
            headers["Content-Type"] = "application/json"
            self.bytes_sent += len(body)
        try:
            async with s.request(method, ep.base + path, data=body, headers=headers, ssl=self._ssl(ep),
                                 allow_redirects=False) as r:
                if 300 <= r.status < 400:
                    raise CloudError(f"the cloud at {ep.base} redirected {method} {path} to "
                                     f"{r.headers.get('Location', '?')}; redirects are not followed (credentials "
                                     "stay with their server): give the final URL as server_url")
                if max_bytes is not None and (r.content_length or 0) > max_bytes:
                    raise CloudError(f"the cloud's latent payload is {r.content_length} bytes, over the "
                                     f"{max_bytes} byte limit; refusing to download it")
                chunks, n = [], 0
                async for chunk in r.content.iter_chunked(1 << 16):
                    n += len(chunk)
                    if max_bytes is not None and n > max_bytes:
                        raise CloudError(f"the cloud's latent payload exceeds the {max_bytes} byte limit; "
                                         "download stopped")
                    chunks.append(chunk)
                data = b"".join(chunks)
                self.bytes_received += len(data)
                if r.content_length is not None and len(data) != r.content_length:
                    raise CloudUnreachable(f"the answer from {ep.base}{path} was cut off "
                                           f"({len(data)} of {r.content_length} bytes)")
                if r.status == 401 or (r.status == 403 and path != "/prompt"):
                    raise CloudError(
                        f"the cloud at {ep.base} refused us (HTTP {r.status}: "
                        f"{'no credentials accepted' if r.status == 401 else 'wrong credentials'}"
                        f"{_server_message(data)}); credentials used: {ep.auth_source}. Set the bearer token "
                        f"for this server in the secrets file ({ep_mod.SECRETS_ENV}, an entry under \"servers\") or "
                        f"in {TOKEN_ENV} together with {URL_ENV}={ep.base}")
                return r.status, data, dict(r.headers)
        except aiohttp.ClientConnectorCertificateError as e:
            raise CloudUnreachable(f"the TLS certificate of {ep.base} is not trusted ({e.certificate_error}); "
                                   f"give its CA bundle in {ep_mod.CA_ENV} or the secrets file's ca_file") from None
        except aiohttp.ClientConnectorDNSError:
            raise CloudUnreachable(f"cannot resolve the host of {ep.base} (DNS failure); check the server URL") \
                from None
        except aiohttp.ClientConnectorError as e:
            raise CloudUnreachable(f"cannot connect to the cloud at {ep.base} ({e.os_error.strerror or e}); "
                                   "is it running, and is the port right?") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as e:
            raise CloudUnreachable(f"the cloud at {ep.base} dropped the connection during {method} {path} "
                                   f"({type(e).__name__}); it may have crashed or restarted") from None
        except asyncio.TimeoutError:
            raise CloudUnreachable(f"the cloud at {ep.base} did not answer {method} {path} within "
                                   f"{self.settings.request_timeout:g} s (request timeout)") from None
        except aiohttp.ClientError as e:
            raise CloudUnreachable(f"cannot talk to the cloud at {ep.base}: {type(e).__name__}: {e}") from None

    async def _json(self, s, ep, method, path, body=None) -> tuple[int, dict]:
        status, data, _ = await self._request(s, ep, method, path, body=body)
        try:
            return status, (json.loads(data) if data else {})
        except ValueError:
            raise CloudError(f"the server at {ep.base} answered {method} {path} with HTTP {status} and "
                             f"non-JSON ({data[:120]!r}); is this a ComfyUI server?") from None

    async def _get_optional(self, s, path: str, ep: Endpoint) -> dict:
        """A GET whose absence (404 or non-JSON from an older server) is an answer, not an error."""
        status, data, _ = await self._request(s, ep, "GET", path)
        try:
            obj = json.loads(data) if status == 200 and data else {}
        except ValueError:
            return {}
        return obj if isinstance(obj, dict) else {}

    async def _get(self, s, path: str, ep: Endpoint | None = None) -> tuple[dict, int]:
        before = self.bytes_received
        _, obj = await self._json(s, ep or self._ep, "GET", path)
        return obj, self.bytes_received - before

    # ---------------------------------------------------------------- choosing a server
    async def _queue_length(self, s, ep: Endpoint) -> int:
        _, info = await self._json(s, ep, "GET", "/prompt")
        try:
            return int(info["exec_info"]["queue_remaining"])
        except (KeyError, TypeError, ValueError):
            raise CloudError(f"{ep.base} answered GET /prompt without exec_info; is this a ComfyUI server?") \
                from None

    async def _rank(self, s, eps: list[Endpoint]) -> tuple[list[Endpoint], list, dict]:
        """Shortest queue first (ties keep the given order); unreachable servers are left out."""
        if len(eps) == 1:
            return eps, [], {}
        results = await asyncio.gather(*(self._queue_length(s, ep) for ep in eps), return_exceptions=True)
        ok, failed, queues = [], [], {}
        for i, (ep, res) in enumerate(zip(eps, results)):
            if isinstance(res, BaseException):
                failed.append([ep.base, str(res)])
            else:
                ok.append((res, i, ep))
                queues[ep.base] = res
        return [ep for _, _, ep in sorted(ok, key=lambda t: t[:2])], failed, queues

    # ---------------------------------------------------------------- preflight
    async def _pack_mode(self, s, ep: Endpoint) -> str:
        """"pack" (the ObCLIP pack answers), "stock" (stock nodes only) or "none" (not a ComfyUI we can use)."""
        # The pack answers a tiny info route; only without it do we read the (larger) node definitions.
        info = await self._get_optional(s, routes.INFO, ep)
        if not info:
            info, _ = await self._get(s, "/object_info/" + SERVER_SAMPLER, ep)
        if info.get("pack") == "obclip" or SERVER_SAMPLER in info:
            return "pack"
        for name in STOCK_NODES:
            node, _ = await self._get(s, "/object_info/" + name, ep)
            if name not in node:
                return "none"
        return "stock"

    async def _checkpoints(self, s, ep: Endpoint) -> list | None:
        names, _ = await self._get(s, "/models/checkpoints", ep)  # just the file names
        return names if isinstance(names, list) else None

    async def preflight(self, s, req: CloudRequest, ep: Endpoint | None = None) -> str:
        """Fail before anything heavy is sent. -> "pack", or "stock" for a cloud without the pack."""
        ep = ep or self._ep
        if self.own_prompt_id:
            queue, _ = await self._get(s, "/queue", ep)
            running = [item[1] for item in queue.get("queue_running", []) if len(item) > 1]
            if self.own_prompt_id in running:
                raise CloudError(f"the Cloud Partial Sampler points at this same ComfyUI server ({ep.base}); "
                                 "it would wait for itself forever. Point it at the cloud server, or use the "
                                 "ObCLIP Server Sampler node for a local simulation.")
        mode = await self._pack_mode(s, ep)
        if mode == "none":
            raise CloudError(f"the cloud at {ep.base} has neither the ObCLIP pack nor the stock nodes "
                             f"{list(STOCK_NODES)}; is this a ComfyUI server?")
        if mode == "stock" and not self.settings.fallback():
            raise CloudError(f"the cloud at {ep.base} does not have the ObCLIP pack (no {SERVER_SAMPLER} node) "
                             f"and the stock-nodes fallback is disabled ({ep_mod.FALLBACK_ENV}=0); install the "
                             "pack on the cloud server and restart it, or enable the fallback")
        names = await self._checkpoints(s, ep)
        if names is not None and req.checkpoint not in names:
            raise CloudError(f"the cloud has no checkpoint {req.checkpoint!r}; available: "
                             f"{', '.join(names) if names else '(none)'}")
        return mode

    async def probe(self, url: str, timeout: float = 8.0) -> dict:
        """What the browser's "test connection" shows, with the same endpoint rules and the same checks
        as a run's preflight: reachable, credentials accepted, pack or stock nodes, queue, checkpoints.
        Sends only GETs of public server state; returns a dict, never raises."""
        out: dict = {"url": url, "reachable": False}
        try:
            ep = ep_mod.resolve(url)
        except EndpointError as e:
            return {**out, "error": str(e)}
        out.update(url=ep.base, auth=ep.auth_source)
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(timeout), self._session(timeout) as s:
                out["queue"] = await self._queue_length(s, ep)
                out["reachable"], out["latency_ms"] = True, round((time.monotonic() - t0) * 1000)
                mode = await self._pack_mode(s, ep)
                out["mode"], out["pack"] = mode, mode == "pack"
                out["checkpoints"] = await self._checkpoints(s, ep) or []
        except CloudUnreachable as e:
            out["error"] = str(e)
        except CloudError as e:
            out.update(reachable=True, error=str(e))
        except TimeoutError:
            out["error"] = f"no complete answer from {ep.base} within {timeout:g} s"
        return out

    def _session(self, request_timeout: float | None = None) -> aiohttp.ClientSession:
        t = request_timeout or self.settings.request_timeout
        # A load balancer's stickiness cookie must work for IP-address hosts too (unsafe=True); the jar
        # lives for this session (one run) only.
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=t, sock_read=t),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True))

    # ---------------------------------------------------------------- the run
    async def run(self, req: CloudRequest, *, on_progress: ProgressFn | None = None,
                  should_cancel: CancelFn | None = None) -> CloudResult:
        req.validate()
        t0 = time.monotonic()
        eps = self.settings.endpoints()
        attempts: list = []
        try:
            # The total timeout holds for everything, a slow download included; on expiry the run being
            # followed cleans up after itself (see _run_on) before the error is raised.
            async with asyncio.timeout(self.settings.total_timeout), self._session() as s:
                order, attempts, queues = await self._rank(s, eps)
                for ep in order:
                    try:
                        result = await self._run_on(s, ep, req, t0, on_progress, should_cancel)
                    except CloudUnreachable as e:
                        attempts.append([ep.base, str(e)])
                        if should_cancel and should_cancel():
                            raise CloudCancelled("cancelled") from None
                        continue
                    result.attempts, result.timings["queues"] = attempts, queues
                    return result
        except TimeoutError:
            raise CloudError(f"the cloud did not finish within the total timeout of "
                             f"{self.settings.total_timeout:g} s (download included); raise timeout_s or lower "
                             "N/steps") from None
        if len(attempts) == 1:
            raise CloudError(attempts[0][1])
        raise CloudError("no cloud server could run the request: " + "; ".join(f"{u}: {m}" for u, m in attempts))

    async def _run_on(self, s, ep: Endpoint, req: CloudRequest, t0, on_progress, should_cancel) -> CloudResult:
        self._ep = ep
        self.bytes_sent = self.bytes_received = 0
        timings: dict = {}
        t1 = time.monotonic()
        mode = await self.preflight(s, req, ep)
        timings["preflight_s"] = time.monotonic() - t1
        # Fresh random values per run, drawn independently of the prompt: ids, and the result key whose
        # hash goes with the request and whose secret alone fetches the result.
        secret, key_hash = new_result_key()
        graph = build_server_prompt(req, key_hash) if mode == "pack" else build_stock_prompt(req)
        client_id, prompt_id = uuid.uuid4().hex, str(uuid.uuid4())
        body = encode_body({"prompt": graph, "client_id": client_id, "prompt_id": prompt_id})
        run = _Run(ep, prompt_id, client_id, t0 + self.settings.total_timeout, on_progress, should_cancel,
                   result_key=secret)
        ws = await self._ws_connect(s, run)
        accepted = False
        try:
            status, answer = await self._json(s, ep, "POST", "/prompt", body)
            if status == 413:
                raise CloudError(f"the cloud refused a {len(body)} byte request (HTTP 413, too large for its "
                                 "--max-upload-size); raise that limit on the server or reduce N")
            if status != 200 or answer.get("node_errors") or "error" in answer:
                raise CloudError(f"the cloud rejected the request: {_describe_rejection(answer)}")
            accepted = True
            ws = await self._follow(s, ws, run)
            await ws.close()
            ws = None
            timings["remote_run_s"] = time.monotonic() - t1 - timings["preflight_s"]
            t2 = time.monotonic()
            if mode == "pack":
                payload = await self._fetch_pack(s, run, req)
            else:
                payload = await self._fetch_stock(s, run, req)
            timings["fetch_s"] = time.monotonic() - t2
        except BaseException:
            if accepted:  # we give up on an accepted prompt: leave nothing running or stored on the cloud
                await self._give_up(s, run)
            raise
        finally:
            if ws is not None:
                await ws.close()
        timings["total_s"] = time.monotonic() - t0
        public = build_server_prompt(req) if mode == "pack" else graph  # without the random result key
        return CloudResult(payload=payload, prompt_id=prompt_id, sent_digest=graph_digest(public),
                           bytes_sent=self.bytes_sent, bytes_received=self.bytes_received, timings=timings,
                           server=ep.base, mode=mode, reconnects=run.reconnects)

    async def _ws_connect(self, s, run: _Run):
        try:
            ws = await s.ws_connect(f"{run.ep.ws_base}/ws?clientId={run.client_id}", headers=run.ep.headers,
                                    ssl=self._ssl(run.ep), heartbeat=20, max_msg_size=0,
                                    timeout=aiohttp.ClientWSTimeout(ws_close=self.settings.request_timeout))
        except aiohttp.WSServerHandshakeError as e:
            if e.status in (401, 403):
                raise CloudError(f"the cloud at {run.ep.base} refused the WebSocket (HTTP {e.status}); set the "
                                 f"bearer token in {TOKEN_ENV} or the secrets file") from None
            raise CloudUnreachable(f"the cloud at {run.ep.base} refused the WebSocket (HTTP {e.status})") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise CloudUnreachable(f"cannot open the WebSocket of {run.ep.base}: {type(e).__name__}: {e}") from None
        return ws

    async def _follow(self, s, ws, run: _Run):
        """Wait for the real end of our prompt, relaying progress, reconnecting, honouring cancellation."""
        last_word = time.monotonic()
        down_since: float | None = None
        while True:
            if run.should_cancel and run.should_cancel():
                raise CloudCancelled("cancelled: the remote prompt was interrupted (only ours)")
            if time.monotonic() > run.deadline:
                raise CloudError(f"the cloud did not finish within the total timeout of "
                                 f"{self.settings.total_timeout:g} s; raise timeout_s or lower N/steps")
            if ws is None or ws.closed:
                # The socket dropped: reconnect with the same client id and resume by prompt id.
                try:
                    ws = await self._ws_connect(s, run)
                    run.reconnects += 1
                    down_since = None
                except CloudUnreachable as e:
                    down_since = down_since or time.monotonic()
                    if time.monotonic() - down_since > self.settings.request_timeout:
                        raise CloudUnreachable(f"the cloud at {run.ep.base} stopped answering while running our "
                                               f"prompt ({e}); it may have crashed or restarted. Run again.") \
                            from None
                    await asyncio.sleep(0.25)
                    continue
                if await self._check(s, run):
                    return ws
                last_word = time.monotonic()
                continue
            try:
                msg = await ws.receive(timeout=0.25)
            except asyncio.TimeoutError:
                if time.monotonic() - last_word > self.settings.stall_timeout:
                    if await self._check(s, run):  # a silent socket: ask over HTTP whether we are done
                        return ws
                    last_word = time.monotonic()
                continue
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSE,
                            aiohttp.WSMsgType.ERROR):
                await ws.close()
                ws = None
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                self.bytes_received += len(msg.data or b"")
                continue  # previews and other binary frames are not ours to interpret
            self.bytes_received += len(msg.data)
            try:
                m = json.loads(msg.data)
                data = m.get("data") or {}
            except (ValueError, AttributeError):
                continue
            if not isinstance(data, dict) or data.get("prompt_id") != run.prompt_id:
                continue
            last_word = time.monotonic()
            kind = m.get("type")
            if kind == "progress" and run.on_progress:
                run.on_progress(int(data.get("value", 0)), int(data.get("max", 1)))
            elif kind == "executed" and str(data.get("node")) == SERVER_NODE_IDS["return"]:
                run.return_ui = data.get("output")
            elif kind == "execution_error":
                raise CloudError(f"the cloud failed in {data.get('node_type')}: "
                                 f"{data.get('exception_type')}: {str(data.get('exception_message', '')).strip()}")
            elif kind == "execution_interrupted":
                raise CloudError("the cloud run was interrupted on the server (not by us)")
            elif kind == "executing" and data.get("node") is None:
                return ws

    async def _check(self, s, run: _Run) -> bool:
        """Over HTTP: True when our prompt is done; raises when it failed or the server lost it."""
        for attempt in range(2):
            history, _ = await self._get(s, f"/history/{run.prompt_id}", run.ep)
            entry = history.get(run.prompt_id)
            if entry:
                status = entry.get("status") or {}
                if status.get("status_str") == "error":
                    for event, data in status.get("messages", []):
                        if event == "execution_error":
                            raise CloudError(f"the cloud failed in {data.get('node_type')}: "
                                             f"{data.get('exception_type')}: {data.get('exception_message')}")
                        if event == "execution_interrupted":
                            raise CloudError("the cloud run was interrupted on the server (not by us)")
                    raise CloudError("the cloud run failed (no message in its history)")
                if status.get("completed"):
                    return True
            if attempt:
                break
            queue, _ = await self._get(s, "/queue", run.ep)
            ids = [item[1] for key in ("queue_running", "queue_pending") for item in queue.get(key, [])
                   if isinstance(item, list) and len(item) > 1]
            if run.prompt_id in ids:
                return False
            # not queued: finished between the two calls, or lost; look at the history once more
        raise CloudUnreachable(f"the cloud at {run.ep.base} no longer knows our prompt (it was restarted or "
                               "its queue was cleared); run again")

    # ---------------------------------------------------------------- fetching
    async def _fetch_pack(self, s, run: _Run, req: CloudRequest) -> LatentPayload:
        ui = run.return_ui
        if ui is None:
            history, _ = await self._get(s, f"/history/{run.prompt_id}", run.ep)
            entry = history.get(run.prompt_id, {})
            ui = entry.get("outputs", {}).get(SERVER_NODE_IDS["return"])
            if ui is None:
                raise CloudError(f"the cloud finished but kept no {SERVER_RETURN} result; status: "
                                 f"{entry.get('status', {}).get('status_str', 'unknown')}")
        hw = (req.height // 8, req.width // 8)
        try:
            if UI_FETCH not in ui:
                return decode_payload(ui, expected_rows=len(req.candidates), max_bytes=self.settings.max_payload_bytes,
                                      expected_hw=hw)
            path = routes.result_path(run.prompt_id)
            if ui[UI_FETCH] != [path]:
                raise CloudError(f"the cloud pointed at {ui[UI_FETCH]!r} for our result, expected {path}")
            try:
                sha, rows, announced = str(ui[UI_SHA256][0]), int(ui[UI_ROWS][0]), int(ui[UI_NBYTES][0])
            except (KeyError, IndexError, TypeError, ValueError):
                raise CloudError("the cloud's result lacks the checksum/rows/size of its payload") from None
            if announced > self.settings.max_payload_bytes:
                raise CloudError(f"the cloud announced a {announced} byte payload, over the "
                                 f"{self.settings.max_payload_bytes} byte limit; refusing to download it")
            status, raw, _ = await self._request(s, run.ep, "GET", path, max_bytes=self.settings.max_payload_bytes,
                                                 extra_headers={routes.RESULT_KEY_HEADER: run.result_key})
            if status == 404:
                raise CloudError("the cloud no longer holds our result (restarted, expired, or fetched already: "
                                 "only the first fetch with the request's key succeeds); run again")
            if status != 200:
                raise CloudError(f"the cloud answered HTTP {status} for our result")
            if len(raw) != announced:
                raise CloudError(f"the latent payload is truncated or padded: got {len(raw)} bytes, the cloud "
                                 f"announced {announced}")
            payload = decode_payload_bytes(raw, sha, rows, len(req.candidates),
                                           max_bytes=self.settings.max_payload_bytes, expected_hw=hw)
        except ProtocolError as e:
            raise CloudError(str(e)) from None
        if payload.handoff.request_digest != req.digest():
            raise CloudError("the cloud returned a result computed for a different request (its request digest "
                             f"{payload.handoff.request_digest[:12] or 'is missing'}, ours {req.digest()[:12]}): it "
                             "was swapped or the cloud runs an older ObCLIP pack. Nothing was used; run again, and "
                             "tell the cloud's operator if it repeats")
        return payload

    async def _fetch_stock(self, s, run: _Run, req: CloudRequest) -> LatentPayload:
        import torch
        from safetensors.torch import load as st_load
        from ..protocol.stock import stock_handoff
        history, _ = await self._get(s, f"/history/{run.prompt_id}", run.ep)
        outputs = history.get(run.prompt_id, {}).get("outputs", {})
        rows, digest, total = [], hashlib.sha256(), 0
        for node in stock_node_ids(len(req.candidates))["save"]:
            try:
                f = outputs[node]["latents"][0]
                query = urlencode({"filename": f["filename"], "subfolder": f["subfolder"], "type": f["type"]})
            except (KeyError, IndexError, TypeError):
                raise CloudError(f"the cloud finished but returned no latent file for node {node}") from None
            status, raw, _ = await self._request(s, run.ep, "GET", "/view?" + query,
                                                 max_bytes=self.settings.max_payload_bytes)
            if status != 200:
                raise CloudError(f"the cloud answered HTTP {status} for a latent file")
            try:
                t = st_load(raw)["latent_tensor"]
            except Exception as e:  # safetensors raises its own types
                raise CloudError(f"a latent file from the cloud is not valid safetensors: {e}") from None
            if t.ndim != 4 or t.shape[0] != 1 or tuple(t.shape[2:]) != (req.height // 8, req.width // 8):
                raise CloudError(f"a latent file from the cloud has shape {tuple(t.shape)}, expected "
                                 f"[1, C, {req.height // 8}, {req.width // 8}]")
            if not torch.isfinite(t).all():
                raise CloudError("the cloud returned latents with NaN or infinite values")
            rows.append(t.float())
            digest.update(raw)
            total += len(raw)
        try:
            handoff = stock_handoff(req, self.settings.family())
        except ProtocolError as e:
            raise CloudError(str(e)) from None
        latents = torch.cat(rows)
        if latents.shape[1] != handoff.latent_channels:
            raise CloudError(f"the cloud's latents have {latents.shape[1]} channels; stock mode assumed "
                             f"{handoff.family} with {handoff.latent_channels}")
        return LatentPayload(latents=latents, handoff=handoff, sha256=digest.hexdigest(), nbytes=total)

    async def _give_up(self, s, run: _Run) -> None:
        """Dequeue and interrupt our prompt (only ours: /interrupt with a prompt_id is a no-op for anyone
        else's) and delete its result, or tell the server to discard it should it still be produced.
        Bounded, and never raises: the error that made us give up is the one to report."""
        calls = (("POST", "/queue", encode_body({"delete": [run.prompt_id]}), None),
                 ("POST", "/interrupt", encode_body({"prompt_id": run.prompt_id}), None),
                 ("DELETE", routes.result_path(run.prompt_id), None, {routes.RESULT_KEY_HEADER: run.result_key}))

        async def all_calls():
            for method, path, body, extra in calls:
                try:
                    await self._request(s, run.ep, method, path, body=body, extra_headers=extra)
                except CloudError:
                    pass
        try:
            await asyncio.wait_for(all_calls(), timeout=min(5.0, self.settings.request_timeout))
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass


def _server_message(data: bytes) -> str:
    try:
        err = json.loads(data).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        return ""
    return f", {msg}" if isinstance(msg, str) and msg else ""


def graph_digest(graph: dict) -> str:
    return hashlib.sha256(encode_body(graph)).hexdigest()


def _describe_rejection(answer: dict) -> str:
    parts = []
    if isinstance(answer.get("error"), dict):
        parts.append(answer["error"].get("message", "") + " " + str(answer["error"].get("details", "")))
    elif answer.get("error"):
        parts.append(str(answer["error"]))
    for node_id, err in (answer.get("node_errors") or {}).items():
        for e in err.get("errors", []):
            parts.append(f"node {node_id} ({err.get('class_type')}): {e.get('message')} {e.get('details', '')}")
    return "; ".join(p.strip() for p in parts if p.strip()) or json.dumps(answer)[:300]
