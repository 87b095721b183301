"""The result store: latent payload bytes per prompt id, in memory only (never disk, never /history)."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict


class ResultStore:
    """Payload bytes per prompt id, bounded by age and total size."""

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
                             f"(OBCLIP_SERVER_RESULT_MAX_MB={self.max_bytes // 2**20})")
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
