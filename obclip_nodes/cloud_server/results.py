"""The result store: latent payload bytes per prompt id, in memory only (never disk, never /history).

A result is bound to its requester: it is stored with the sha256 of the request's secret result key
(and the tenant that submitted it) and handed out once, to whoever presents the secret, then deleted.
A wrong key and a missing result get the same answer, so the store is no oracle for prompt ids.

Limits, and what is dropped first when one is reached (docs/deploy-cloud.md says the same):
1. age: a result unfetched for OBCLIP_SERVER_RESULT_TTL_S is dropped;
2. a client tenant's share (OBCLIP_SERVER_RESULT_TENANT_MB): a new result that would take the tenant
   over it drops that tenant's own oldest results, never another tenant's;
3. the whole store (OBCLIP_SERVER_RESULT_MAX_MB): over it, the oldest result of whichever tenant holds
   the most bytes is dropped, until it fits.
A client whose result was dropped gets 404 on the fetch ("expired ...") and runs again.
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Item:
    t: float
    raw: bytes
    key_sha256: str
    tenant: str | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


class ResultStore:
    """Payload bytes per prompt id, bounded by age and total size; one fetch per result."""

    MAX_TOMBSTONES = 10000

    def __init__(self, ttl_s: float = 600.0, max_bytes: int = 2048 * 2**20, tenant_bytes: int | None = None):
        self.ttl_s, self.max_bytes = ttl_s, max_bytes
        self.tenant_bytes = tenant_bytes if tenant_bytes is not None else max_bytes
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._bytes = 0
        self._held: dict[str | None, int] = {}   # tenant -> bytes it holds
        # prompt id -> key hash of results their client gave up on before they were produced: dropped on put
        self._discarded: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()  # put() runs on the prompt worker thread, take() on the server loop

    def _pop(self, prompt_id: str) -> _Item | None:
        item = self._items.pop(prompt_id, None)
        if item:
            self._bytes -= len(item.raw)
            self._held[item.tenant] -= len(item.raw)
            if not self._held[item.tenant]:
                del self._held[item.tenant]
        return item

    def _oldest_of(self, tenant: str | None) -> str | None:
        return next((pid for pid, item in self._items.items() if item.tenant == tenant), None)

    def _expire(self, now: float) -> None:
        while self._items:
            pid, item = next(iter(self._items.items()))
            if now - item.t <= self.ttl_s:
                break
            self._pop(pid)
        while self._bytes > self.max_bytes:  # the biggest holder gives up its oldest result
            biggest = max(self._held, key=lambda t: self._held[t])
            self._pop(self._oldest_of(biggest))
        while self._discarded and (len(self._discarded) > self.MAX_TOMBSTONES
                                   or now - next(iter(self._discarded.values()))[0] > self.ttl_s):
            self._discarded.popitem(last=False)

    def put(self, prompt_id: str, raw: bytes, key_sha256: str, tenant: str | None = None,
            share: bool = False) -> bool:
        """False when the requester already gave up on this result (it is dropped at once). `share`: the
        tenant is a client tenant, held to its share of the store."""
        if len(raw) > self.max_bytes:
            raise ValueError(f"a {len(raw)} byte result exceeds the server's result store "
                             f"(OBCLIP_SERVER_RESULT_MAX_MB={self.max_bytes / 2**20:g})")
        if share and len(raw) > self.tenant_bytes:
            raise ValueError(f"a {len(raw)} byte result exceeds one tenant's share of the result store "
                             f"(OBCLIP_SERVER_RESULT_TENANT_MB={self.tenant_bytes / 2**20:g}); lower N or the size")
        with self._lock:
            now = time.monotonic()
            gone = self._discarded.pop(prompt_id, None)
            if gone and hmac.compare_digest(gone[1], key_sha256):
                return False
            self._pop(prompt_id)
            if share:
                while self._held.get(tenant, 0) + len(raw) > self.tenant_bytes:
                    self._pop(self._oldest_of(tenant))
            self._items[prompt_id] = _Item(now, raw, key_sha256, tenant)
            self._bytes += len(raw)
            self._held[tenant] = self._held.get(tenant, 0) + len(raw)
            self._expire(now)
            return True

    def held(self) -> dict:
        """Bytes per tenant (for tests and the operator)."""
        with self._lock:
            return dict(self._held)

    def _match(self, prompt_id: str, secret: str, tenant: str | None) -> _Item | None:
        item = self._items.get(prompt_id)
        if item is None or not hmac.compare_digest(item.key_sha256, _hash(secret)):
            return None
        if item.tenant is not None and tenant is not None and item.tenant != tenant:
            return None
        return item

    def take(self, prompt_id: str, secret: str, tenant: str | None = None) -> bytes | None:
        """The bytes, once, for the holder of the request's secret; None otherwise."""
        with self._lock:
            self._expire(time.monotonic())
            if self._match(prompt_id, secret, tenant) is None:
                return None
            return self._pop(prompt_id).raw

    def discard(self, prompt_id: str, secret: str, tenant: str | None = None) -> bool:
        """Drop the result for the holder of its secret; if it is not there yet, drop it when it comes."""
        with self._lock:
            now = time.monotonic()
            self._expire(now)
            if prompt_id not in self._items:
                self._discarded[prompt_id] = (now, _hash(secret))
                return False
            if self._match(prompt_id, secret, tenant) is None:
                return False
            self._pop(prompt_id)
            return True

    def __len__(self) -> int:
        return len(self._items)
