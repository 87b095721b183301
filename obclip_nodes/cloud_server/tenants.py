"""Tenants of a shared cloud: who owns which prompt and which WebSocket, and what each role may see.

A client tenant sees only its own prompts in /history and /queue, receives only its own prompts'
WebSocket events (plus the queue length every ComfyUI broadcasts), may dequeue or interrupt only its
own prompts, and may call only the routes an ObCLIP client needs (CLIENT_ROUTES). The operator sees
everything. A prompt id is accepted once, whoever sends it, for as long as its owner's bounded memory
holds it (see Tenancy).
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


class _Remembered:
    """Ids per tenant, oldest first, at most `cap` per tenant: a tenant's flood forgets only its own."""

    def __init__(self, cap: int):
        self.cap = cap
        self.holder: dict[str, str] = {}                      # id -> tenant
        self.by_tenant: dict[str, OrderedDict[str, None]] = {}

    def add(self, key: str, tenant: str) -> None:
        mine = self.by_tenant.setdefault(tenant, OrderedDict())
        self.holder[key] = tenant
        mine[key] = None
        while len(mine) > self.cap:
            old, _ = mine.popitem(last=False)
            self.holder.pop(old, None)

    def __len__(self) -> int:
        return len(self.holder)


class Tenancy:
    """Prompt and socket ownership, bounded per tenant.

    A prompt id is reserved while its POST /prompt is being handled (a concurrent duplicate is refused)
    and recorded only when ComfyUI really queued it: a rejected request costs no memory. Each tenant
    keeps its newest `max_ids` prompt ids and client ids (OBCLIP_SERVER_MAX_IDS_PER_TENANT); its oldest
    are forgotten first, never another tenant's. The default (100,000) is ten times ComfyUI's history
    (10,000 entries), so an id is forgotten only long after its history entry is gone."""

    def __init__(self, max_ids: int = 100_000):
        self._prompts = _Remembered(max_ids)
        self._sockets = _Remembered(max_ids)
        self._pending: dict[str, str] = {}   # prompt id -> tenant, while its POST /prompt is handled
        self._lock = threading.Lock()

    def configure(self, max_ids: int) -> None:
        self._prompts.cap = self._sockets.cap = max_ids

    # ------------------------------------------------------------ prompts
    def reserve_prompt(self, prompt_id: str, tenant: str) -> bool:
        """Hold a new prompt id while it is submitted; False when it is in use or was used (by anyone)."""
        with self._lock:
            if prompt_id in self._prompts.holder or prompt_id in self._pending:
                return False
            self._pending[prompt_id] = tenant
            return True

    def commit_prompt(self, prompt_id: str, tenant: str) -> None:
        """ComfyUI queued it: remember its owner (evicting that tenant's oldest id beyond the bound)."""
        with self._lock:
            self._pending.pop(prompt_id, None)
            self._prompts.add(prompt_id, tenant)

    def release_prompt(self, prompt_id: str) -> None:
        """ComfyUI refused it: forget the reservation; nothing is remembered."""
        with self._lock:
            self._pending.pop(prompt_id, None)

    def claim_prompt(self, prompt_id: str, tenant: str) -> bool:
        """Reserve and record at once (an id ComfyUI drew and queued)."""
        if not self.reserve_prompt(prompt_id, tenant):
            return False
        self.commit_prompt(prompt_id, tenant)
        return True

    def owner(self, prompt_id) -> str | None:
        if not isinstance(prompt_id, str):
            return None
        return self._prompts.holder.get(prompt_id) or self._pending.get(prompt_id)

    def owns(self, who: Principal, prompt_id) -> bool:
        return not who.is_client or self.owner(prompt_id) == who.name

    def remembered(self) -> tuple[int, int]:
        """(prompt ids, client ids) held, all tenants together."""
        return len(self._prompts), len(self._sockets)

    # ------------------------------------------------------------ sockets
    def socket_free_for(self, client_id: str, who: Principal) -> bool:
        """True when the client id is unheld or held by this tenant (nothing is recorded)."""
        mine = who.name if who.is_client else ""
        return self._sockets.holder.get(client_id, mine) == mine

    def claim_socket(self, client_id: str, who: Principal) -> bool:
        """A client id belongs to the first tenant to use it; False when another tenant holds it."""
        mine = who.name if who.is_client else ""
        with self._lock:
            holder = self._sockets.holder.get(client_id)
            if holder is None:
                self._sockets.add(client_id, mine)
                return True
            return holder == mine

    def socket_tenant(self, client_id: str) -> str | None:
        """The client tenant behind a socket, or None for the operator's (and unclaimed) sockets."""
        return self._sockets.holder.get(client_id) or None

    def may_receive(self, client_id: str, event, data) -> bool:
        tenant = self.socket_tenant(client_id)
        if tenant is None:
            return True
        pid = data.get("prompt_id") if isinstance(data, dict) else None
        if pid is None:
            return event in PUBLIC_EVENTS
        return self.owner(pid) == tenant

    def live_counts(self, queue) -> dict[str, int]:
        """Queued and running prompts per owner, from (running, pending) lists of ComfyUI queue items."""
        counts: dict[str, int] = {}
        seen = set()
        for items in queue:
            for item in items:
                pid = item[1] if isinstance(item, (list, tuple)) and len(item) > 1 else None
                seen.add(pid)
                owner = self.owner(pid)
                if owner is not None:
                    counts[owner] = counts.get(owner, 0) + 1
        for pid, tenant in list(self._pending.items()):  # being submitted; counted once
            if pid not in seen:
                counts[tenant] = counts.get(tenant, 0) + 1
        return counts

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
