"""A real load balancer on loopback: Debian's haproxy in front of several cloud workers (lab code).

Operators scale ComfyUI as one process per GPU behind a router. A run is a conversation with one
worker (WebSocket, /history, the result it holds), so the router must keep it there: haproxy inserts
a cookie naming the worker on the first answer, and the client's per-run cookie jar sends it back on
every later request of the run, WebSocket included. docs/deploy-cloud.md shows the same configuration.

When a worker dies, haproxy marks it down after two failed checks (half a second apart) and sends
its cookie's requests elsewhere (redispatch); the client finds its prompt unknown there, or gets a
502/503 before that, and retries the run with a fresh session (remote/failover.py).
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from .servers import ManagedProcess, free_port

CONFIG = """global
    maxconn 1024
defaults
    mode http
    option http-keep-alive
    option redispatch
    retries 2
    default-server inter 500ms fall 2 rise 2
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
frontend cloud
    bind 127.0.0.1:{port}
    default_backend workers
backend workers
    balance roundrobin
    cookie OBCLIP_WORKER insert indirect nocache httponly
{servers}
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if not found:
        raise RuntimeError("haproxy is not installed; run scripts/setup.sh (it installs Debian's haproxy) or "
                           "apt-get install haproxy")
    return found


def haproxy_config(port: int, workers: list[str]) -> str:
    lines = []
    for i, url in enumerate(workers):
        hostport = url.split("://", 1)[1].rstrip("/")
        lines.append(f"    server w{i} {hostport} check cookie w{i}")  # check: TCP connect (auth stays on)
    return CONFIG.format(port=port, servers="\n".join(lines))


class HAProxy(ManagedProcess):
    """haproxy in the foreground (-db), stopped by its PID."""
    stop_timeout = 10.0

    def __init__(self, workers: list[str], directory: Path, port: int | None = None):
        self.workers, self.dir, self.port = workers, Path(directory), port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "HAProxy":
        cfg = self.dir / "haproxy.cfg"
        cfg.write_text(haproxy_config(self.port, self.workers))
        check = subprocess.run([haproxy_binary(), "-c", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode:
            raise RuntimeError(f"haproxy rejected its configuration: {check.stdout}{check.stderr}")
        self._log = open(self.dir / "haproxy.log", "ab")
        self.proc = subprocess.Popen([haproxy_binary(), "-db", "-f", str(cfg)], stdout=self._log,
                                     stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}: "
                                   f"{(self.dir / 'haproxy.log').read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"haproxy did not listen on port {self.port} within {timeout:.0f} s")



async def many_clients(url: str, requests_by_client: list[list], **settings) -> list[list]:
    """Each client runs its requests one after another; clients run concurrently. -> results or exceptions."""
    import asyncio

    from ..remote import RemoteSettings
    from ..remote.client import CloudClient

    async def one(reqs):
        out = []
        for req in reqs:
            try:
                out.append(await CloudClient(RemoteSettings(url, **settings)).run(req))
            except Exception as e:  # counted as a lost result by the caller
                out.append(e)
        return out
    return list(await asyncio.gather(*(one(r) for r in requests_by_client)))


def mini_plans(clients: int, runs: int, seed_base: int = 0, steps: int = 4) -> list[list]:
    """Distinct small requests on the demo's mini-world cloud model (fast on a CPU), N from 2 to 4:
    clients x runs CloudRequests. Needs OBCLIP_MINIWORLD=1 on the workers (the lab default)."""
    from ..miniworld.arch import checkpoint_name
    from ..miniworld.world import Portrait, caption
    from ..protocol import CloudRequest
    portraits = [caption(p) for p in Portrait.all()]
    return [[CloudRequest(candidates=tuple(portraits[(97 * c + 13 * r + 7 * i) % len(portraits)]
                                           for i in range(2 + (c % 3))),
                          checkpoint=checkpoint_name("cloud"), seed=seed_base + 1000 * c + r, width=64, height=64,
                          steps=steps, cloud_steps=max(1, steps // 2)) for r in range(runs)] for c in range(clients)]
