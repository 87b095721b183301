"""Submit the public request to a remote ComfyUI, follow it, and fetch all N latents.

Everything sent is built by `protocol` from public data; this module only adds transport. The
client id and prompt id are fresh uuid4 values, drawn independently of the prompt.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..protocol import CloudRequest, LatentPayload, ProtocolError, decode_payload
from ..protocol.request import SERVER_NODE_IDS, SERVER_RETURN, SERVER_SAMPLER, build_server_prompt, encode_body

TOKEN_ENV = "OBCLIP_CLOUD_TOKEN"


class CloudError(RuntimeError):
    """The cloud could not produce the latents; the message says what to change."""


@dataclass(frozen=True)
class RemoteSettings:
    url: str
    request_timeout: float = 30.0      # one HTTP call
    total_timeout: float = 600.0       # the whole remote run
    token_env: str = TOKEN_ENV         # the bearer token is read from the environment, never a widget

    def base(self) -> str:
        parts = urlsplit(self.url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CloudError(f"cloud URL {self.url!r} must look like http://host:port or https://host")
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))

    def ws_base(self) -> str:
        base = self.base()
        return "ws" + base[4:] if base.startswith("http") else base

    def headers(self) -> dict:
        token = os.environ.get(self.token_env, "").strip()
        return {"Authorization": f"Bearer {token}"} if token else {}


@dataclass
class CloudResult:
    payload: LatentPayload
    prompt_id: str
    sent_digest: str              # sha256 of the graph posted, ids excluded: equal for every real candidate
    bytes_sent: int
    bytes_received: int
    timings: dict = field(default_factory=dict)


ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


class CloudClient:
    def __init__(self, settings: RemoteSettings, *, own_prompt_id: str | None = None):
        self.settings = settings
        self.base = settings.base()
        self.own_prompt_id = own_prompt_id  # the local prompt running us: used to spot a self-loop

    async def _json(self, resp: aiohttp.ClientResponse) -> dict:
        text = await resp.text()
        if resp.status in (401, 403):
            raise CloudError(f"the cloud at {self.base} refused us (HTTP {resp.status}); set the bearer "
                             f"token in the environment variable {self.settings.token_env}")
        try:
            return json.loads(text) if text else {}
        except ValueError:
            raise CloudError(f"the cloud at {self.base} answered HTTP {resp.status} with non-JSON "
                             f"({text[:120]!r}); is this a ComfyUI server?") from None

    async def _get(self, s: aiohttp.ClientSession, path: str) -> tuple[dict, int]:
        async with s.get(self.base + path) as r:
            body = await r.read()
            return (json.loads(body) if body else {}), len(body)

    async def preflight(self, s: aiohttp.ClientSession, req: CloudRequest) -> None:
        """Fail before anything heavy is sent: wrong server, missing pack, missing checkpoint."""
        if self.own_prompt_id:
            queue, _ = await self._get(s, "/queue")
            running = [item[1] for item in queue.get("queue_running", []) if len(item) > 1]
            if self.own_prompt_id in running:
                raise CloudError(f"the Cloud Partial Sampler points at this same ComfyUI server ({self.base}); "
                                 "it would wait for itself forever. Point it at the cloud server, or use the "
                                 "ObCLIP Server Sampler node for a local simulation.")
        info, _ = await self._get(s, "/object_info/" + SERVER_SAMPLER)
        if SERVER_SAMPLER not in info:
            raise CloudError(f"the cloud at {self.base} does not have the ObCLIP pack (no {SERVER_SAMPLER} "
                             "node); install the pack on the cloud server and restart it")
        loader, _ = await self._get(s, "/object_info/CheckpointLoaderSimple")
        try:
            names = loader["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
        except (KeyError, IndexError, TypeError):
            names = None
        if isinstance(names, list) and req.checkpoint not in names:
            raise CloudError(f"the cloud has no checkpoint {req.checkpoint!r}; available: "
                             f"{', '.join(names) if names else '(none)'}")

    async def run(self, req: CloudRequest, *, on_progress: ProgressFn | None = None,
                  should_cancel: CancelFn | None = None) -> CloudResult:
        graph = build_server_prompt(req)
        client_id, prompt_id = uuid.uuid4().hex, str(uuid.uuid4())
        body = encode_body({"prompt": graph, "client_id": client_id, "prompt_id": prompt_id})
        timings, t0 = {}, time.monotonic()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.settings.request_timeout,
                                        sock_read=self.settings.request_timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout, headers=self.settings.headers()) as s:
                await self.preflight(s, req)
                timings["preflight_s"] = time.monotonic() - t0
                ws = await s.ws_connect(f"{self.settings.ws_base()}/ws?clientId={client_id}", heartbeat=20)
                try:
                    async with s.post(self.base + "/prompt", data=body,
                                      headers={"Content-Type": "application/json"}) as r:
                        answer = await self._json(r)
                    if r.status != 200 or answer.get("node_errors") or "error" in answer:
                        raise CloudError(f"the cloud rejected the request: {_describe_rejection(answer)}")
                    await self._follow(s, ws, prompt_id, on_progress, should_cancel)
                finally:
                    await ws.close()
                timings["remote_run_s"] = time.monotonic() - t0 - timings["preflight_s"]
                history, nbytes = await self._get(s, f"/history/{prompt_id}")
        except aiohttp.ClientError as e:
            raise CloudError(f"cannot reach the cloud at {self.base}: {e}") from None
        except asyncio.TimeoutError:
            raise CloudError(f"the cloud at {self.base} did not answer within "
                             f"{self.settings.request_timeout:.0f} s") from None
        entry = history.get(prompt_id, {})
        ui = entry.get("outputs", {}).get(SERVER_NODE_IDS["return"])
        if ui is None:
            raise CloudError(f"the cloud finished but kept no {SERVER_RETURN} result; status: "
                             f"{entry.get('status', {}).get('status_str', 'unknown')}")
        try:
            payload = decode_payload(ui, expected_rows=len(req.candidates))
        except ProtocolError as e:
            raise CloudError(str(e)) from None
        timings["total_s"] = time.monotonic() - t0
        return CloudResult(payload=payload, prompt_id=prompt_id, sent_digest=graph_digest(graph),
                           bytes_sent=len(body), bytes_received=nbytes, timings=timings)

    async def _follow(self, s, ws, prompt_id: str, on_progress, should_cancel) -> None:
        """Wait for the real end of our prompt, relaying progress and honouring cancellation."""
        deadline = time.monotonic() + self.settings.total_timeout
        while True:
            if should_cancel and should_cancel():
                await self._cancel(s, prompt_id)
                raise CloudError("cancelled: the remote prompt was interrupted")
            if time.monotonic() > deadline:
                await self._cancel(s, prompt_id)
                raise CloudError(f"the cloud did not finish within {self.settings.total_timeout:.0f} s; "
                                 "raise the total timeout or lower N/steps")
            try:
                msg = await ws.receive(timeout=0.5)
            except asyncio.TimeoutError:
                continue
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                await self._poll_until_done(s, prompt_id, deadline, should_cancel)
                return
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue  # previews and other binary frames are not ours to interpret
            m = json.loads(msg.data)
            data = m.get("data") or {}
            if data.get("prompt_id") != prompt_id:
                continue
            kind = m.get("type")
            if kind == "progress" and on_progress:
                on_progress(int(data.get("value", 0)), int(data.get("max", 1)))
            elif kind == "execution_error":
                raise CloudError(f"the cloud failed in {data.get('node_type')}: "
                                 f"{data.get('exception_type')}: {data.get('exception_message', '').strip()}")
            elif kind == "execution_interrupted":
                raise CloudError("the cloud run was interrupted on the server")
            elif kind == "executing" and data.get("node") is None:
                return

    async def _poll_until_done(self, s, prompt_id, deadline, should_cancel) -> None:
        """The socket dropped: fall back to polling /history for our prompt id."""
        while time.monotonic() < deadline:
            if should_cancel and should_cancel():
                await self._cancel(s, prompt_id)
                raise CloudError("cancelled: the remote prompt was interrupted")
            history, _ = await self._get(s, f"/history/{prompt_id}")
            status = history.get(prompt_id, {}).get("status", {})
            if status.get("completed") or status.get("status_str") == "error":
                return
            await asyncio.sleep(0.25)
        raise CloudError("the cloud did not finish in time after the WebSocket dropped")

    async def _cancel(self, s, prompt_id: str) -> None:
        # Only our own prompt: /interrupt with a prompt_id is a no-op for anyone else's.
        for path, payload in (("/queue", {"delete": [prompt_id]}), ("/interrupt", {"prompt_id": prompt_id})):
            try:
                async with s.post(self.base + path, data=encode_body(payload),
                                  headers={"Content-Type": "application/json"}):
                    pass
            except aiohttp.ClientError:
                pass


def graph_digest(graph: dict) -> str:
    return hashlib.sha256(encode_body(graph)).hexdigest()


def _describe_rejection(answer: dict) -> str:
    parts = []
    if isinstance(answer.get("error"), dict):
        parts.append(answer["error"].get("message", "") + " " + str(answer["error"].get("details", "")))
    for node_id, err in (answer.get("node_errors") or {}).items():
        for e in err.get("errors", []):
            parts.append(f"node {node_id} ({err.get('class_type')}): {e.get('message')} {e.get('details', '')}")
    return "; ".join(p.strip() for p in parts if p.strip()) or json.dumps(answer)[:300]
