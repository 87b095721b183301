"""Tenants of a shared cloud: who owns which prompt and which WebSocket, and what each role may see.

A client tenant sees only its own prompts in /history and /queue, receives only its own prompts'
WebSocket events (plus the queue length every ComfyUI broadcasts), may dequeue or interrupt only its
own prompts, and may call only the routes an ObCLIP client needs (CLIENT_ROUTES). The operator sees
everything. Every prompt id is accepted once per server lifetime, whoever sends it.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict

from .auth import Principal

# (method, path without the /api prefix) a client tenant may call; {x} is one path segment.
CLIENT_ROUTES = (
    ("GET", "/prompt"), ("POST", "/prompt"),
    ("GET", "/queue"), ("POST", "/queue"),
    ("GET", "/history"), ("GET", "/history/{x}"),
    ("POST", "/interrupt"),
    ("GET", "/object_info"), ("GET", "/object_info/{x}"),
    ("GET", "/models/checkpoints"),
    ("GET", "/ws"),
    ("GET", "/obclip/info"), ("GET", "/obclip/result/{x}"), ("DELETE", "/obclip/result/{x}"),
)
_CLIENT_RE = [(m, re.compile("^" + re.escape(p).replace(re.escape("{x}"), "[^/]+") + "$")) for m, p in CLIENT_ROUTES]
# Broadcast events without a prompt id that every socket may receive (the queue length).
PUBLIC_EVENTS = {"status"}
ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def api_path(path: str) -> str:
    """ComfyUI serves every API route at /x and /api/x."""
    return path[4:] if path.startswith("/api/") else path


def client_may_call(method: str, path: str) -> bool:
    p = api_path(path)
    return any(m == method and rx.match(p) for m, rx in _CLIENT_RE)


class Tenancy:
    """Prompt and socket ownership, and the set of prompt ids ever accepted (bounded)."""

    MAX_IDS = 100_000

    def __init__(self):
        self._owner: OrderedDict[str, str] = OrderedDict()    # prompt id -> tenant name
        self._sockets: OrderedDict[str, str] = OrderedDict()  # client id -> tenant name ("" operator)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ prompts
    def claim_prompt(self, prompt_id: str, tenant: str) -> bool:
        """Record a new prompt id; False when it was used before (by anyone)."""
        with self._lock:
            if prompt_id in self._owner:
                return False
            self._owner[prompt_id] = tenant
            while len(self._owner) > self.MAX_IDS:
                self._owner.popitem(last=False)
            return True

    def owner(self, prompt_id) -> str | None:
        return self._owner.get(prompt_id) if isinstance(prompt_id, str) else None

    def owns(self, who: Principal, prompt_id) -> bool:
        return not who.is_client or self.owner(prompt_id) == who.name

    # ------------------------------------------------------------ sockets
    def claim_socket(self, client_id: str, who: Principal) -> bool:
        """A client id belongs to the first tenant to use it; False when another tenant holds it."""
        mine = who.name if who.is_client else ""
        with self._lock:
            holder = self._sockets.setdefault(client_id, mine)
            while len(self._sockets) > self.MAX_IDS:
                self._sockets.popitem(last=False)
            return holder == mine

    def socket_tenant(self, client_id: str) -> str | None:
        """The client tenant behind a socket, or None for the operator's (and unclaimed) sockets."""
        return self._sockets.get(client_id) or None

    def may_receive(self, client_id: str, event, data) -> bool:
        tenant = self.socket_tenant(client_id)
        if tenant is None:
            return True
        pid = data.get("prompt_id") if isinstance(data, dict) else None
        if pid is None:
            return event in PUBLIC_EVENTS
        return self.owner(pid) == tenant

    # ------------------------------------------------------------ filtered views for a client
    def filter_history(self, who: Principal, history):
        if not who.is_client or not isinstance(history, dict):
            return history
        return {pid: entry for pid, entry in history.items() if self.owner(pid) == who.name}

    def filter_queue(self, who: Principal, queue):
        if not who.is_client or not isinstance(queue, dict):
            return queue
        return {key: [item for item in items if isinstance(item, list) and len(item) > 1
                      and self.owner(item[1]) == who.name] if isinstance(items, list) else items
                for key, items in queue.items()}
