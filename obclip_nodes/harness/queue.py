"""Queue an API-format graph on a ComfyUI server through POST /prompt and wait on the WebSocket."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp


class WorkflowError(RuntimeError):
    pass


async def _run(url: str, graph: dict, timeout: float, extra_data: dict | None) -> tuple[str, dict]:
    client_id = uuid.uuid4().hex
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"ws{url[4:]}/ws?clientId={client_id}") as ws:
            body = {"prompt": graph, "client_id": client_id, "extra_data": extra_data or {}}
            async with s.post(url + "/prompt", json=body) as r:
                answer = await r.json()
            if r.status != 200 or answer.get("node_errors"):
                raise WorkflowError(f"the server rejected the workflow: {json.dumps(answer)[:2000]}")
            prompt_id = answer["prompt_id"]
            deadline = time.monotonic() + timeout
            error = None
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WorkflowError(f"the workflow did not finish within {timeout:.0f} s")
                msg = await ws.receive(timeout=left)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        raise WorkflowError("the server closed the WebSocket")
                    continue
                m = json.loads(msg.data)
                data = m.get("data") or {}
                if data.get("prompt_id") != prompt_id:
                    continue
                if m["type"] == "execution_error":
                    error = f"{data.get('node_type')} (node {data.get('node_id')}): {data.get('exception_message')}"
                if m["type"] == "executing" and data.get("node") is None:
                    break
        async with s.get(f"{url}/history/{prompt_id}") as r:
            history = (await r.json()).get(prompt_id, {})
    if error:
        raise WorkflowError(error)
    return prompt_id, history


def run_workflow(url: str, graph: dict, *, timeout: float = 900.0, extra_data: dict | None = None):
    """-> (prompt_id, history entry). Raises WorkflowError with the server's message on failure."""
    return asyncio.run(_run(url, graph, timeout, extra_data))
