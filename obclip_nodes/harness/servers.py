"""Real ComfyUI servers on loopback, each with its own --base-directory (the host tree stays pristine)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import server_forker
from .host import REPO, comfyui_dir

PACK_LINK = "obclip"  # the folder name ComfyUI imports the pack under


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_base(base: Path, checkpoints=(), *, install_pack: bool = True) -> Path:
    """A fresh base directory: models/checkpoints links, the pack linked into custom_nodes.

    checkpoints: paths (listed under their own names) or a {name: path} mapping (listed under the name a
    workflow uses)."""
    for sub in ("models/checkpoints", "custom_nodes", "input", "output", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    named = checkpoints.items() if isinstance(checkpoints, dict) else ((Path(c).name, c) for c in checkpoints)
    for name, ckpt in named:
        link = base / "models" / "checkpoints" / name
        if not link.exists():
            link.symlink_to(Path(ckpt).resolve())
    pack = base / "custom_nodes" / PACK_LINK
    if install_pack and not pack.exists():
        pack.symlink_to(REPO)
    return base


class ManagedProcess:
    """A child process the harness starts (self.proc, self._log) and always stops: as a context manager,
    terminate, then kill after `stop_timeout` seconds."""
    proc: subprocess.Popen | None = None
    stop_timeout = 15.0

    def start(self):
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_together(*procs: ManagedProcess) -> None:
    """Start every process at once (a ComfyUI start is mostly single-threaded imports, so two overlap well).
    If one fails, the others are stopped and the first error is raised."""
    errors: list[BaseException] = []

    def start(p):
        try:
            p.start()
        except BaseException as e:  # reported below, after every thread ended
            errors.append(e)
    threads = [threading.Thread(target=start, args=(p,)) for p in procs]
    [t.start() for t in threads]
    [t.join() for t in threads]
    if errors:
        for p in procs:
            p.stop()
        raise errors[0]


@contextlib.contextmanager
def running(*procs: ManagedProcess):
    """`with running(cloud, device):` starts them together and always stops them all."""
    start_together(*procs)
    try:
        yield procs
    finally:
        for p in reversed(procs):
            p.stop()


def lab_env() -> dict:
    """A lab server's environment before its own settings: lab servers list the demo's mini-world checkpoints
    (opt-in for users; a test passes OBCLIP_MINIWORLD=0 to see stock)."""
    return {"OBCLIP_MINIWORLD": "1", **os.environ, "PYTHONUNBUFFERED": "1"}


def prestart_forker() -> None:
    """Start this session's server forker now, in the background (its imports overlap whatever the session
    does first): a test session that starts lab servers calls this once it knows it will."""
    root = comfyui_dir()
    threading.Thread(target=server_forker.prestart, args=(sys.executable, str(root), lab_env()),
                     daemon=True).start()


# The test suite turns this off (tests/conftest.py): see comfy_main.py. The demo keeps a user's setting.
ONEDNN_CONVOLUTIONS = True


class ComfyServer(ManagedProcess):
    """One `main.py --cpu` process. Use as a context manager; it is always stopped by PID."""

    def __init__(self, name: str, base: Path, port: int | None = None, extra_args=(), env=None,
                 onednn: bool | None = None):
        self.name, self.base, self.port = name, Path(base), port or free_port()
        self.extra_args, self.env = list(extra_args), env
        self.onednn = ONEDNN_CONVOLUTIONS if onednn is None else onednn
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base / f"{name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "ComfyServer":
        root = comfyui_dir()
        front = self.base / "frontend"  # API-only servers need no frontend package
        main = "main.py" if self.onednn else str(Path(__file__).with_name("comfy_main.py"))
        cmd = [sys.executable, main, "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base), "--disable-auto-launch", "--disable-api-nodes",
               "--database-url", "sqlite:///:memory:", *self.extra_args]
        if not any(a.startswith("--front-end-root") for a in self.extra_args) and os.environ.get(
                "OBCLIP_FRONTEND", "") != "1":
            front.mkdir(exist_ok=True)
            cmd += ["--front-end-root", str(front)]
        base_env = lab_env()
        env = {**base_env, **(self.env or {})}
        self._log = open(self.log_path, "ab")
        t0 = time.monotonic()
        # a lab server is a fork of the session's server forker where its settings allow (server_forker.py)
        self.proc = server_forker.launch(cmd, str(root), env, self._log, base_env=base_env)
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} ComfyUI exited with {self.proc.returncode} during start-up; "
                                   f"log tail:\n{self.log_tail()}")
            try:
                self.get("/system_stats")
                self.start_s = time.monotonic() - t0
                return self
            except urllib.error.HTTPError as e:
                if e.code != 503:
                    time.sleep(0.25)
                    continue
                body = e.read().decode(errors="replace")
                self.stop()
                raise RuntimeError(f"{self.name} ComfyUI refuses requests (HTTP 503): {body}") from None
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} ComfyUI did not answer within {timeout:.0f} s; log tail:\n{self.log_tail()}")

    def require_nodes(self, *names: str) -> None:
        """Fail loudly when the pack did not load (ComfyUI only logs IMPORT FAILED)."""
        missing = [n for n in names if n not in self.get("/object_info/" + n)]
        if missing:
            raise RuntimeError(f"{self.name} ComfyUI lacks {missing}: the pack failed to load; log tail:\n"
                               f"{self.log_tail(60)}")

    def _headers(self) -> dict:
        """A server started with OBCLIP_SERVER_TOKEN answers only with it (the start-up probe included)."""
        token = (self.env or {}).get("OBCLIP_SERVER_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, timeout: float = 10.0):
        with urllib.request.urlopen(urllib.request.Request(self.url + path, headers=self._headers()),
                                    timeout=timeout) as r:
            return json.loads(r.read() or b"{}")

    def post(self, path: str, body: dict, timeout: float = 30.0):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **self._headers()})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes:
        from urllib.parse import urlencode
        q = urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
        with urllib.request.urlopen(f"{self.url}/view?{q}", timeout=30) as r:
            return r.read()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def rss_mib(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except (OSError, AttributeError):
            return None
        return None



def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
