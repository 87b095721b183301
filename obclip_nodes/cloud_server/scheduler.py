"""Fair scheduling across tenants on one cloud worker: round-robin instead of first-in-first-out.

ComfyUI runs one prompt at a time, taking the lowest-numbered from its queue (PromptQueue.get, a heap),
so a tenant that queues 30 requests makes everyone else wait for all 30. Here the worker takes the
oldest request of the tenant served least recently instead: with one request running, another
tenant's request waits for at most that one and then runs, however many a heavy tenant has queued.
The operator's prompts are one more tenant in the rotation, and one it sends to the front of the
queue (ComfyUI's "front": a negative number) still goes first.

The seam: PromptQueue.get and its fields queue, not_empty, currently_running, task_counter and
server.queue_updated(), the same in every ComfyUI since 2023 (0.3.75 and 0.33.0 tested). If they are
missing, the queue stays first-in-first-out and the log says so; the per-tenant cap still holds.
"""
from __future__ import annotations

import copy
import heapq
import logging
import threading

log = logging.getLogger("obclip")
SEAM = ("queue", "not_empty", "currently_running", "task_counter", "server", "get")


class RoundRobin:
    """Which queued item runs next. `owner(prompt_id)` names its tenant (None: the operator)."""

    def __init__(self, owner):
        self.owner = owner
        self._served: dict[str, int] = {}   # tenant -> when it was last served (a counter)
        self._clock = 0
        self._lock = threading.Lock()

    def pick(self, queue: list) -> int:
        """The index in `queue` (ComfyUI's item tuples: number, prompt id, ...) of the item to run next."""
        with self._lock:
            front = min(range(len(queue)), key=lambda i: queue[i][0])
            if queue[front][0] < 0:   # the operator asked for the front of the queue
                return front
            oldest: dict[str, int] = {}   # tenant -> index of its lowest-numbered item
            for i, item in enumerate(queue):
                tenant = self.owner(item[1]) or ""
                if tenant not in oldest or item[0] < queue[oldest[tenant]][0]:
                    oldest[tenant] = i
            tenant = min(oldest, key=lambda t: (self._served.get(t, -1), queue[oldest[t]][0]))
            self._clock += 1
            self._served[tenant] = self._clock
            return oldest[tenant]


def install(prompt_queue, owner) -> bool:
    """Make `prompt_queue.get` round-robin across tenants. False (and a warning) when the seam moved."""
    missing = [name for name in SEAM if not hasattr(prompt_queue, name)]
    if missing:
        log.warning("obclip: fair scheduling NOT installed (ComfyUI's PromptQueue lacks %s); the queue stays "
                    "first-in-first-out, the per-tenant cap still holds", missing)
        return False
    rr = RoundRobin(owner)
    q = prompt_queue

    def get(timeout=None):  # PromptQueue.get, taking the fair pick instead of the heap's smallest
        with q.not_empty:
            while len(q.queue) == 0:
                q.not_empty.wait(timeout=timeout)
                if timeout is not None and len(q.queue) == 0:
                    return None
            i = rr.pick(q.queue)
            item = q.queue.pop(i)
            heapq.heapify(q.queue)
            task = q.task_counter
            q.currently_running[task] = copy.deepcopy(item)
            q.task_counter += 1
            q.server.queue_updated()
            return (item, task)

    q.get = get
    return True
