"""Lab only: the test suite's ComfyUI servers, forked from one process that imported their libraries once.

A lab server start took 6-7 s on the 2-core test machine, 5 of them importing the same third-party libraries
(torch, transformers, scipy, kornia, sqlalchemy, ...: `python -X importtime main.py`), and the suite starts
about twenty servers a host. The forker imports those libraries once per test session; each server is then a
fork of it that runs comfy_main.py (and so ComfyUI's own main.py: its argument parsing, folder setup, custom
nodes, routes) exactly as a fresh process would. Nothing of ComfyUI or of the pack is imported before the fork.

Only a server whose environment differs from the forker's in settings the libraries do not read at import
(OBCLIP_*, and OMP_NUM_THREADS, which the child applies with torch.set_num_threads) is forked; any other
server is started as a fresh process (launch()). Users' servers and the demo never run this file.

run_python() gives the tests that check what a fresh interpreter imports (no lab code, no diffusers) the same
start-up: its child imported only the third-party libraries above.

Two halves in one file: launch(), run_python() and ForkedProcess run in the test process; serve() runs when
this file is the program (`python server_forker.py`, cwd = the ComfyUI tree): run as a file, so it imports
nothing of the pack.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# what a ComfyUI server imports that reads no ComfyUI setting: imported once, before any fork (a library one
# host lacks is skipped). ComfyUI's own modules and the pack are never here.
PREIMPORT = (
    "torch", "torchvision", "torchaudio", "numpy", "safetensors.torch", "einops", "torchsde", "transformers",
    "transformers.models.clip", "tokenizers", "scipy.signal", "scipy.ndimage", "scipy.stats", "scipy.optimize",
    "scipy.interpolate", "scipy.spatial", "kornia", "spandrel", "av", "PIL.Image", "PIL.PngImagePlugin",
    "aiohttp.web", "yaml", "psutil", "requests", "pydantic", "pydantic_settings", "sqlalchemy.orm",
    "alembic.command", "alembic.config", "mako.template", "huggingface_hub", "blake3", "simpleeval", "sqlite3",
    "comfy_kitchen", "comfy_aimdo", "OpenGL.GL", "comfyui_workflow_templates", "comfyui_embedded_docs",
    "comfyui_frontend_package",
)
# what a server's environment may set differently from the forker's: nothing the libraries above read at import
FORKABLE_ENV_PREFIX = "OBCLIP_"
THREADS_ENV = "OMP_NUM_THREADS"
FORKABLE_ENV = {THREADS_ENV, "PYTEST_CURRENT_TEST"}  # pytest sets the latter for every test
# main.py sets these before its first import; the forker imports first, so it sets them as main.py would
MAIN_PY_ENV = {"HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}


def env_forkable(server_env: dict, forker_env: dict) -> bool:
    """True when a server with `server_env` may be a fork of a forker started with `forker_env`."""
    keys = set(server_env) | set(forker_env)
    return all(server_env.get(k) == forker_env.get(k) for k in keys
               if not k.startswith(FORKABLE_ENV_PREFIX) and k not in FORKABLE_ENV)


class ForkedProcess:
    """What the harness uses of subprocess.Popen (pid, returncode, poll, wait, terminate, kill) for a server
    forked by the forker: the forker reaps it and reports its exit status on this connection."""

    def __init__(self, conn: socket.socket, pid: int, args):
        self._conn, self.pid, self.args = conn, pid, args
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def _read_status(self, timeout: float | None) -> None:
        # wait outside the lock: a kill() from another thread must not queue behind a wait() in this one
        if self.returncode is not None or not select.select([self._conn], [], [], timeout)[0]:
            return
        with self._lock:
            if self.returncode is not None:  # another thread read it meanwhile
                return
            data = b""
            while not data.endswith(b"\n"):
                chunk = self._conn.recv(64)
                if not chunk:  # the forker is gone (it kills its servers when it ends)
                    break
                data += chunk
            self._conn.close()
            self.returncode = int(data.split()[1]) if data.startswith(b"exit ") else -signal.SIGKILL

    def poll(self) -> int | None:
        self._read_status(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self._read_status(left)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Forker:
    """One forker process for one Python and ComfyUI tree; it ends when the test process does (its stdin)."""

    def __init__(self, python: str, root: str, env: dict):
        self.python, self.root, self.env = python, root, dict(env)
        self.dir = tempfile.mkdtemp(prefix="obclip-forker-")
        self.sock_path = os.path.join(self.dir, "socket")
        log_path = os.path.join(self.dir, "forker.log")
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([python, os.path.abspath(__file__), self.sock_path], cwd=root,
                                     env={**self.env, **MAIN_PY_ENV},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        line = self.proc.stdout.readline()  # "ready" once the libraries are imported
        if line.strip() != b"ready":
            self.proc.kill()
            with open(log_path, errors="replace") as f:
                tail = f.read()[-3000:]
            raise RuntimeError(f"the server forker did not start (exit {self.proc.wait()}):\n{tail}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def spawn(self, cmd: list, cwd: str, env: dict, stdout_fd: int, stderr_fd: int) -> ForkedProcess:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.sock_path)
        request = {"argv": cmd[1:], "cwd": cwd, "env": env}
        # the output files travel as descriptors (SCM_RIGHTS): the child writes where a Popen'd one would
        socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [stdout_fd, stderr_fd])
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(64)
            if not chunk:
                conn.close()
                raise RuntimeError("the server forker closed the connection without forking")
            reply += chunk
        return ForkedProcess(conn, int(reply.split()[1]), cmd)

    def stop(self) -> None:
        if self.alive():
            self.proc.stdin.close()  # the forker stops its servers and exits
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_forkers: dict[tuple, _Forker] = {}
_forkers_lock = threading.Lock()


def _forker(python: str, root: str, base_env: dict, env: dict) -> _Forker | None:
    """This session's forker for that Python and ComfyUI tree (started with `base_env` on first use), or None
    where a child with `env` must be a fresh process (OBCLIP_LAB_FORK=0, or settings the libraries read)."""
    if os.environ.get("OBCLIP_LAB_FORK", "1") == "0":
        return None
    with _forkers_lock:
        forker = _forkers.get((python, root))
        if forker is None or not forker.alive():
            forker = _forkers[(python, root)] = _Forker(python, root, base_env)
    return forker if env_forkable(env, forker.env) else None


def prestart(python: str, root: str, base_env: dict) -> None:
    """Start the forker for that Python and tree now (its imports take seconds), unless forking is off."""
    _forker(python, root, base_env, base_env)


def launch(cmd: list, cwd: str, env: dict, log, *, base_env: dict):
    """Start `cmd` (python comfy_main.py ARGS, cwd = the ComfyUI tree) with stdout and stderr to the open file
    `log`: a fork of the session's forker where `env` allows, else a fresh process."""
    forker = _forker(cmd[0], cwd, base_env, env) if cmd[1].endswith("comfy_main.py") else None
    if forker is None:
        return subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
    return forker.spawn(cmd, cwd, env, log.fileno(), log.fileno())


def run_python(code: str, *, root, cwd, timeout: float) -> subprocess.CompletedProcess:
    """`python -c code` (this Python, the test process's environment, cwd) as a fork of the session's forker
    for the ComfyUI tree `root`: an interpreter that imported third-party libraries only, none of ComfyUI or
    the pack (what a test of 'a fresh interpreter imports X' needs). A fresh process where forking is off."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    forker = _forker(sys.executable, str(root), env, env)
    if forker is None:
        return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    with tempfile.TemporaryDirectory(prefix="obclip-run-") as tmp:
        script = os.path.join(tmp, "code.py")
        with open(script, "w") as f:
            f.write(code)
        with open(os.path.join(tmp, "out"), "w+") as out, open(os.path.join(tmp, "err"), "w+") as err:
            cmd = [sys.executable, script]
            proc = forker.spawn(cmd, str(cwd), env, out.fileno(), err.fileno())
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


def stop_all() -> None:
    with _forkers_lock:
        for forker in _forkers.values():
            forker.stop()
        _forkers.clear()


atexit.register(stop_all)


# ----- the forker itself (this file as the program) -----

def _run_child(request: dict, out_fds: list, close_fds: list) -> None:
    """In the forked child: become the server a fresh `python comfy_main.py ARGS` would have been."""
    for fd in close_fds:
        os.close(fd)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # replaces the forker's stdin (its lifeline to the test process)
    os.dup2(out_fds[0], 1)
    os.dup2(out_fds[1], 2)
    os.close(devnull)
    for fd in set(out_fds):
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.update({k: v for k, v in MAIN_PY_ENV.items() if k not in request["env"]})
    import numpy
    import torch
    numpy.random.seed()  # a fresh process's state (Python's random reseeds itself at fork)
    if os.environ.get(THREADS_ENV):
        torch.set_num_threads(int(os.environ[THREADS_ENV]))
    sys.argv = list(request["argv"])
    import runpy
    runpy.run_path(sys.argv[0], run_name="__main__")


def serve(sock_path: str) -> None:
    sys.path[0] = os.getcwd()  # as comfy_main.py: the ComfyUI tree first, never this folder (its queue.py)
    os.environ.update(MAIN_PY_ENV)
    import importlib
    for name in PREIMPORT:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - a library this host lacks or cannot import is left to ComfyUI
            print(f"forker: not preimported {name}: {e!r}", file=sys.stderr, flush=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(16)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, socket.socket] = {}
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    lifeline = sys.stdin.fileno()
    while True:
        try:
            readable, _, _ = select.select([listener, lifeline, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in readable:
            os.read(wake_r, 512)
        while children:  # reap every child that ended and report its status as Popen's returncode
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass
                conn.close()
        if lifeline in readable and not os.read(lifeline, 512):
            break  # the test process is gone
        if listener in readable:
            conn, _ = listener.accept()
            msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 2)
            while not msg.endswith(b"\n"):
                more = conn.recv(1 << 20)
                if not more:
                    break
                msg += more
            request = json.loads(msg)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                try:
                    _run_child(request, fds, [listener.fileno(), wake_r, wake_w, conn.fileno(),
                                                 *(c.fileno() for c in children.values())])
                    code = 0
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                except BaseException:  # noqa: BLE001 - printed to the server's log, as a fresh process would
                    import traceback
                    traceback.print_exc()
                    code = 1
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            for fd in fds:
                os.close(fd)
            conn.sendall(f"pid {pid}\n".encode())
            children[pid] = conn
    for pid in list(children):  # the session ended: its servers end with it
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(0)


if __name__ == "__main__":
    serve(sys.argv[1])
