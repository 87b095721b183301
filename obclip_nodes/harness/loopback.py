"""Loopback helpers for tests and the protocol bench (never used by the nodes).

* ``RecordingProxy``: a reverse proxy in front of a real ComfyUI that records every byte the cloud
  receives (method, path, query, headers, body, WebSocket frames from the client), and can drop the
  client's WebSocket on demand.
* ``ToyCloud``: a tiny aiohttp server speaking just enough of the ComfyUI API to produce faults a
  real ComfyUI cannot (bad payloads, stalls, 200 with node_errors, a long queue).
"""
from __future__ import annotations

import asyncio
import hashlib
import json

import aiohttp
from aiohttp import web

from ..protocol.payload import fetch_ui
from ..protocol import routes
from ..protocol.request import PACK_INFO, SERVER_NODE_IDS, SERVER_RETURN, SERVER_SAMPLER

HOP = {"host", "content-length", "transfer-encoding", "connection", "upgrade", "keep-alive",
       "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "accept-encoding"}


class _Site:
    async def start(self) -> "_Site":
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()


class RecordingProxy(_Site):
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.records: list[dict] = []      # in arrival order
        self.drop_ws_after: str | None = None  # a message type: close the client's socket once after it
        self.ws_connections = 0
        self.app = web.Application(client_max_size=1 << 30)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request):
        body = await request.read()
        self.records.append({"method": request.method, "path": request.path, "query": request.query_string,
                             "headers": [[k, v] for k, v in request.headers.items()], "body": body})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._ws(request, headers)
        async with aiohttp.ClientSession(auto_decompress=False) as s:
            async with s.request(request.method, self.upstream + request.path_qs, data=body or None,
                                 headers=headers, allow_redirects=False) as r:
                data = await r.read()
                out = {k: v for k, v in r.headers.items() if k.lower() not in HOP}
                return web.Response(status=r.status, body=data, headers=out)

    async def _ws(self, request, headers):
        self.ws_connections += 1
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)
        drop = self.drop_ws_after
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(self.upstream.replace("http", "ws", 1) + request.path_qs, headers=headers,
                                    max_msg_size=0) as up:
                async def up_to_client():
                    async for msg in up:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await client.send_str(msg.data)
                            if drop and json.loads(msg.data).get("type") == drop:
                                self.drop_ws_after = None
                                await client.close()
                                return
                        elif msg.type == aiohttp.WSMsgType.BINARY:
                            await client.send_bytes(msg.data)
                    await client.close()

                async def client_to_up():
                    async for msg in client:
                        self.records.append({"method": "WS", "path": request.path, "query": "",
                                             "headers": [], "body": msg.data if isinstance(msg.data, bytes)
                                             else str(msg.data).encode()})
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await up.send_str(msg.data)

                tasks = [asyncio.ensure_future(up_to_client()), asyncio.ensure_future(client_to_up())]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in tasks:
                    t.cancel()
        return client


class ToyCloud(_Site):
    """Answers like a ComfyUI with the ObCLIP pack; `fault` picks what goes wrong.

    faults: "none", "bad_sha", "truncated", "oversized", "wrong_shape", "malformed", "ws_stall",
    "http_stall", "node_errors_200", "balancer_503_once" (the first POST /prompt gets a load balancer's
    HTML 503, as when the worker behind it died); `queue` is what GET /prompt reports.
    """

    def __init__(self, fault: str = "none", *, payload: tuple[bytes, int] | None = None, queue: int = 0,
                 checkpoint: str = "toy.safetensors"):
        self.fault, self.queue, self.checkpoint = fault, queue, checkpoint
        self.payload = payload  # (raw safetensors bytes, rows) from encode_payload_bytes
        self.posts: list[dict] = []
        self.prompt_id = None
        self.app = web.Application(client_max_size=1 << 30)
        r = self.app.router
        r.add_get("/prompt", self.get_prompt)
        r.add_post("/prompt", self.post_prompt)
        r.add_get("/object_info/{name}", self.object_info)
        r.add_get(routes.INFO, self.pack_info)
        r.add_get("/models/checkpoints", self.checkpoints)
        r.add_get("/ws", self.ws)
        r.add_get("/history/{pid}", self.history)
        r.add_get("/queue", self.queue_info)
        r.add_post("/queue", self.ok)
        r.add_post("/interrupt", self.ok)
        r.add_get(routes.RESULT, self.result)
        r.add_delete(routes.RESULT, self.ok)

    async def ok(self, request):
        return web.json_response({})

    async def get_prompt(self, request):
        return web.json_response({"exec_info": {"queue_remaining": self.queue}})

    async def pack_info(self, request):
        return web.json_response(PACK_INFO)

    async def checkpoints(self, request):
        return web.json_response([self.checkpoint])

    async def object_info(self, request):
        name = request.match_info["name"]
        if name == "CheckpointLoaderSimple":
            return web.json_response({name: {"input": {"required": {"ckpt_name": [[self.checkpoint], {}]}}}})
        return web.json_response({name: {}} if name in (SERVER_SAMPLER, SERVER_RETURN) else {})

    async def post_prompt(self, request):
        body = await request.json()
        self.posts.append(body)
        if self.fault == "balancer_503_once" and len(self.posts) == 1:
            return web.Response(status=503, text="<html><body><h1>503 Service Unavailable</h1>No server is "
                                                 "available to handle this request.</body></html>",
                                content_type="text/html")
        self.prompt_id = body["prompt_id"]
        if self.fault == "node_errors_200":
            return web.json_response({"prompt_id": self.prompt_id, "number": 0, "node_errors": {
                "2": {"class_type": SERVER_SAMPLER, "errors": [{"message": "Value not in list",
                                                               "details": "sampler_name: 'bogus'"}]}}})
        return web.json_response({"prompt_id": self.prompt_id, "number": 0, "node_errors": {}})

    def _bytes(self) -> bytes:
        raw, _ = self.payload
        if self.fault == "malformed":  # consistent checksum, broken safetensors header
            return b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + raw[24:]
        return raw

    def _ui(self) -> dict:
        raw, rows = self._bytes(), self.payload[1]
        sha = hashlib.sha256(raw).hexdigest()
        if self.fault == "bad_sha":
            sha = "0" * 64
        nbytes = len(raw) * (1 << 20) if self.fault == "oversized" else len(raw)
        return fetch_ui(routes.result_path(self.prompt_id), sha, rows, nbytes)

    async def ws(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if self.fault in ("ws_stall", "http_stall"):
            async for _ in ws:  # silent until the client goes away
                pass
            return ws
        while self.prompt_id is None:
            await asyncio.sleep(0.02)
        pid = self.prompt_id
        await ws.send_str(json.dumps({"type": "execution_start", "data": {"prompt_id": pid}}))
        await ws.send_str(json.dumps({"type": "executed", "data": {"node": SERVER_NODE_IDS["return"],
                                                                  "output": self._ui(), "prompt_id": pid}}))
        await ws.send_str(json.dumps({"type": "executing", "data": {"node": None, "prompt_id": pid}}))
        async for _ in ws:
            pass
        return ws

    async def history(self, request):
        if self.fault == "http_stall":
            await asyncio.sleep(30)
        return web.json_response({})  # never finishes as far as /history goes

    async def queue_info(self, request):
        running = [[0, self.prompt_id, {}, {}, []]] if self.prompt_id else []
        return web.json_response({"queue_running": running, "queue_pending": []})

    async def result(self, request):
        raw = self._bytes()
        if self.fault == "truncated":
            resp = web.StreamResponse(headers={"Content-Length": str(len(raw))})
            await resp.prepare(request)
            await resp.write(raw[: len(raw) // 2])
            request.transport.close()  # the connection dies half-way
            return resp
        return web.Response(body=raw, content_type="application/octet-stream")
