"""Submit the public request to a remote ComfyUI, follow it, and fetch all N latents.

Everything sent is built by `protocol` from public data; this module only adds transport. The
client id and prompt id are fresh uuid4 values, drawn independently of the prompt. Every request
carries the same headers whichever candidate is real (credentials come from endpoints.py).

One attempt, in order: preflight (/obclip/info or /object_info: the pack or stock nodes, the
checkpoint) -> open the WebSocket -> POST /prompt (any node_errors is a failure) -> follow the
WebSocket, relay progress, reconnect with the same client id when it drops, poll /history when it is
silent -> fetch the payload (one binary GET in pack mode, presenting the request's secret result key:
the server hands it out once and deletes it; /view per candidate in stock mode) -> verify checksum,
dtype, shape and the request digest (a result computed for any other request is refused). Which
server, and retrying a run lost with its worker: failover.py. HTTP, WebSocket and errors: transport.py.

Promises: the total timeout covers everything, retries and downloads included; whenever the client
gives up after its prompt was accepted (timeout, cancel, error, lost worker), it removes the prompt from
the queue, interrupts it if it runs, and deletes its result.
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

from .. import config
from ..protocol import CloudRequest, LatentPayload, ProtocolError, decode_payload
from ..protocol.payload import DEFAULT_MAX_BYTES, UI_FETCH, UI_NBYTES, UI_ROWS, UI_SHA256, decode_payload_bytes
from ..protocol import routes
from ..protocol.request import (SERVER_NODE_IDS, SERVER_RETURN, SERVER_SAMPLER, build_server_prompt,
                                build_stock_prompt, encode_body, new_result_key, stock_node_ids)
from . import endpoints as ep_mod
from . import failover
from .endpoints import TOKEN_ENV, Endpoint, EndpointError
from .transport import CloudCancelled, CloudError, CloudUnreachable, CloudWorkerLost, Transport

__all__ = ["CloudClient", "CloudError", "CloudUnreachable", "CloudWorkerLost", "CloudCancelled", "CloudResult",
           "RemoteSettings", "graph_digest"]

STOCK_NODES = ("CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSamplerAdvanced", "SaveLatent")


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
    retries: int | None = None          # runs lost with their worker, retried elsewhere; None: OBCLIP_CLOUD_RETRIES

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

    def retry_count(self) -> int:
        if self.retries is not None:
            return max(0, int(self.retries))
        try:
            return config.settings().require("cloud_retries").cloud_retries
        except config.ConfigError as e:
            raise CloudError(str(e)) from None


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
    attempts: list = field(default_factory=list)  # [url, error] of servers that could not be reached
    reconnects: int = 0
    retried: list = field(default_factory=list)   # [url, error] of earlier attempts lost with their worker


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
        self.t = Transport(settings.request_timeout)  # a fresh one per attempt: the byte counts are per attempt

    # ---------------------------------------------------------------- preflight
    async def _pack_mode(self, s, ep: Endpoint) -> str:
        """"pack" (the ObCLIP pack answers), "stock" (stock nodes only) or "none" (not a ComfyUI we can use)."""
        # The pack answers a tiny info route; only without it do we read the (larger) node definitions.
        info = await self.t.get_optional(s, ep, routes.INFO)
        if not info:
            info = await self.t.get(s, ep, "/object_info/" + SERVER_SAMPLER)
        if info.get("pack") == "obclip" or SERVER_SAMPLER in info:
            return "pack"
        for name in STOCK_NODES:
            node = await self.t.get(s, ep, "/object_info/" + name)
            if name not in node:
                return "none"
        return "stock"

    async def _checkpoints(self, s, ep: Endpoint) -> list | None:
        names = await self.t.get(s, ep, "/models/checkpoints")  # just the file names
        return names if isinstance(names, list) else None

    async def preflight(self, s, req: CloudRequest, ep: Endpoint) -> str:
        """Fail before anything heavy is sent. -> "pack", or "stock" for a cloud without the pack."""
        if self.own_prompt_id:
            queue = await self.t.get(s, ep, "/queue")
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
            async with asyncio.timeout(timeout), self.t.session(timeout) as s:
                out["queue"] = await failover.queue_length(self.t, s, ep)
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

    # ---------------------------------------------------------------- the run
    async def run(self, req: CloudRequest, *, on_progress: ProgressFn | None = None,
                  should_cancel: CancelFn | None = None) -> CloudResult:
        """Run `req` on the best server; a run lost with its worker is retried (failover.py)."""
        req.validate()
        t0 = time.monotonic()
        eps = self.settings.endpoints()
        retries = self.settings.retry_count()

        async def ranker(eps):
            async with self.t.session() as s:
                return await failover.rank(self.t, s, eps)

        async def attempt(ep):
            self.t = Transport(self.settings.request_timeout)
            async with self.t.session() as s:  # fresh cookies: a balancer may send a retry to a live worker
                return await self._run_on(s, ep, req, t0, on_progress, should_cancel)
        out = failover.Outcome(None)
        try:
            # The total timeout holds for everything, retries and a slow download included; on expiry the
            # run being followed cleans up after itself (see _run_on) before the error is raised.
            async with asyncio.timeout(self.settings.total_timeout):
                await failover.run_with_failover(eps, retries, attempt, ranker, should_cancel, out=out)
        except TimeoutError:
            lost = (f"; {len(out.retried)} earlier attempt(s) were lost with their worker, last: "
                    f"{out.retried[-1][1]}") if out.retried else ""
            raise CloudError(f"the cloud did not finish within the total timeout of "
                             f"{self.settings.total_timeout:g} s (download included{', retries included' if lost else ''})"
                             f"; raise timeout_s or lower N/steps{lost}") from None
        result = out.result
        result.attempts, result.retried, result.timings["queues"] = out.failed_over, out.retried, out.queues
        return result

    async def _run_on(self, s, ep: Endpoint, req: CloudRequest, t0, on_progress, should_cancel) -> CloudResult:
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
        ws = await self.t.ws_connect(s, ep, client_id)
        accepted = False
        try:
            status, answer = await self.t.json(s, ep, "POST", "/prompt", body)
            if status == 413:
                raise CloudError(f"the cloud refused a {len(body)} byte request (HTTP 413, too large for its "
                                 "--max-upload-size); raise that limit on the server or reduce N")
            if status == 429:
                raise CloudError(f"the cloud is busy with this tenant's other requests (HTTP 429): "
                                 f"{_describe_rejection(answer)}")
            if status != 200 or answer.get("node_errors") or "error" in answer:
                raise CloudError(f"the cloud rejected the request: {_describe_rejection(answer)}")
            accepted = True
            try:
                ws = await self._follow(s, ws, run)
            except CloudWorkerLost:
                raise
            except CloudUnreachable as e:  # our accepted prompt went with its worker: retry elsewhere
                raise CloudWorkerLost(str(e)) from None
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
                           bytes_sent=self.t.bytes_sent, bytes_received=self.t.bytes_received, timings=timings,
                           server=ep.base, mode=mode, reconnects=run.reconnects)

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
                    ws = await self.t.ws_connect(s, run.ep, run.client_id)
                    run.reconnects += 1
                    down_since = None
                except CloudWorkerLost:
                    raise  # a balancer has no live worker for our session: the prompt is gone with it
                except CloudUnreachable as e:
                    down_since = down_since or time.monotonic()
                    if time.monotonic() - down_since > self.settings.request_timeout:
                        raise CloudWorkerLost(f"the cloud at {run.ep.base} stopped answering while running our "
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
                self.t.bytes_received += len(msg.data or b"")
                continue  # previews and other binary frames are not ours to interpret
            self.t.bytes_received += len(msg.data)
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
            history = await self.t.get(s, run.ep, f"/history/{run.prompt_id}")
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
            queue = await self.t.get(s, run.ep, "/queue")
            ids = [item[1] for key in ("queue_running", "queue_pending") for item in queue.get(key, [])
                   if isinstance(item, list) and len(item) > 1]
            if run.prompt_id in ids:
                return False
            # not queued: finished between the two calls, or lost; look at the history once more
        raise CloudWorkerLost(f"the cloud at {run.ep.base} no longer knows our prompt (it was restarted or "
                               "its queue was cleared); run again")

    # ---------------------------------------------------------------- fetching
    async def _fetch_pack(self, s, run: _Run, req: CloudRequest) -> LatentPayload:
        ui = run.return_ui
        if ui is None:
            history = await self.t.get(s, run.ep, f"/history/{run.prompt_id}")
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
            status, raw, _ = await self.t.request(s, run.ep, "GET", path, max_bytes=self.settings.max_payload_bytes,
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
        history = await self.t.get(s, run.ep, f"/history/{run.prompt_id}")
        outputs = history.get(run.prompt_id, {}).get("outputs", {})
        rows, digest, total = [], hashlib.sha256(), 0
        for node in stock_node_ids(len(req.candidates))["save"]:
            try:
                f = outputs[node]["latents"][0]
                query = urlencode({"filename": f["filename"], "subfolder": f["subfolder"], "type": f["type"]})
            except (KeyError, IndexError, TypeError):
                raise CloudError(f"the cloud finished but returned no latent file for node {node}") from None
            status, raw, _ = await self.t.request(s, run.ep, "GET", "/view?" + query,
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
                    await self.t.request(s, run.ep, method, path, body=body, extra_headers=extra)
                except CloudError:
                    pass
        try:
            await asyncio.wait_for(all_calls(), timeout=min(5.0, self.settings.request_timeout))
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass


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
