"""Which cloud server runs a request, and what happens when the one running it is lost.

Several URLs: each one's queue is probed (GET /prompt) and the shortest goes first; a URL that cannot be
reached is skipped for the next (`CloudUnreachable`). A run whose worker vanished (`CloudWorkerLost`:
the connection dropped, a load balancer answered 502/503/504, the server forgot our prompt) is retried
in a fresh session, so a balancer's stickiness cookie is gone and it picks a live worker, at most
`retries` times (OBCLIP_CLOUD_RETRIES), with a short pause that doubles each time.

A retry sends the same public request with fresh random ids and a fresh result key, so the server sees
nothing that depends on the real candidate, and the first attempt's prompt id is never reused. The
request is deterministic (same seed, same steps, same model), so the retried result equals the one
the lost worker would have returned.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from .endpoints import Endpoint
from .transport import CloudCancelled, CloudError, CloudUnreachable, CloudWorkerLost, Transport


async def queue_length(t: Transport, s, ep: Endpoint) -> int:
    info = await t.get(s, ep, "/prompt")
    try:
        return int(info["exec_info"]["queue_remaining"])
    except (KeyError, TypeError, ValueError):
        raise CloudError(f"{ep.base} answered GET /prompt without exec_info; is this a ComfyUI server?") from None


async def rank(t: Transport, s, eps: list[Endpoint]) -> tuple[list[Endpoint], list, dict]:
    """Shortest queue first (ties keep the given order); unreachable servers are left out."""
    if len(eps) == 1:
        return eps, [], {}
    results = await asyncio.gather(*(queue_length(t, s, ep) for ep in eps), return_exceptions=True)
    ok, failed, queues = [], [], {}
    for i, (ep, res) in enumerate(zip(eps, results)):
        if isinstance(res, BaseException):
            failed.append([ep.base, str(res)])
        else:
            ok.append((res, i, ep))
            queues[ep.base] = res
    return [ep for _, _, ep in sorted(ok, key=lambda t: t[:2])], failed, queues


@dataclass
class Outcome:
    result: object
    failed_over: list = field(default_factory=list)   # [url, error] of servers that could not be reached
    retried: list = field(default_factory=list)       # [url, error] of runs lost with their worker
    queues: dict = field(default_factory=dict)


async def run_with_failover(eps: list[Endpoint], retries: int, attempt: Callable[[Endpoint], Awaitable[object]],
                            ranker: Callable[[list[Endpoint]], Awaitable[tuple]],
                            cancelled: Callable[[], bool] | None = None, pause_s: float = 0.5,
                            out: Outcome | None = None) -> Outcome:
    """`attempt(ep)` runs the request once on `ep` in a fresh session; `ranker(eps)` orders the URLs.
    `out` (optional) is filled as it goes, so a caller whose deadline cuts this short can say what happened."""
    out = out if out is not None else Outcome(None)
    for round_ in range(retries + 1):
        order, failed, queues = await ranker(eps)
        out.failed_over += failed
        out.queues = queues
        lost = None
        for ep in order:
            try:
                out.result = await attempt(ep)
                return out
            except CloudWorkerLost as e:
                lost = [ep.base, str(e)]
                break
            except CloudUnreachable as e:
                out.failed_over.append([ep.base, str(e)])
            if cancelled and cancelled():
                raise CloudCancelled("cancelled")
        if lost is None:
            break  # every URL unreachable: nothing is running anywhere, nothing to retry
        out.retried.append(lost)
        if cancelled and cancelled():
            raise CloudCancelled("cancelled")
        if round_ < retries:
            await asyncio.sleep(pause_s * 2 ** round_)
    if out.retried and len(out.retried) > retries:
        raise CloudError(f"the run was lost with its worker {len(out.retried)} time(s) and was not retried again "
                         f"(OBCLIP_CLOUD_RETRIES={retries}); last: {out.retried[-1][1]}")
    tried = out.failed_over + out.retried
    if len(tried) == 1:
        raise CloudUnreachable(tried[0][1])
    raise CloudUnreachable("no cloud server could run the request: " + "; ".join(f"{u}: {m}" for u, m in tried))
