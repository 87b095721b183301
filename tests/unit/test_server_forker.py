"""The suite's server forker (obclip_nodes/harness/server_forker.py): a forked server runs the launcher and the
main.py of its working directory as a fresh `python comfy_main.py ARGS` would (same argv, path, environment,
launcher settings, nothing of the pack imported), its exit status reads as Popen's, and a server whose
environment the preimported libraries could have read is a fresh process instead."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from obclip_nodes.harness import comfy_main, server_forker

PROBE = """import json, os, sys, time, torch
if os.environ.get("OBCLIP_PROBE_SLEEP"):
    time.sleep(600)
print(json.dumps({"name": __name__, "argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(),
                  "onednn": torch.backends.mkldnn.enabled, "conv2d": torch.nn.functional.conv2d.__module__,
                  "threads": torch.get_num_threads(), "setting": os.environ.get("OBCLIP_PROBE_SETTING"),
                  "obclip_modules": sorted(m for m in sys.modules if m.startswith("obclip")),
                  "harness_on_path": any(p.endswith("harness") for p in sys.path),
                  "stdin": sys.stdin.read()}))
sys.exit(int(os.environ.get("OBCLIP_PROBE_EXIT", "0")))
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A stand-in ComfyUI tree; its forker (one per tree) serves every test here."""
    path = tmp_path_factory.mktemp("tree")
    (path / "main.py").write_text(PROBE)
    yield path
    server_forker.stop_all()


def start(tree: Path, name: str, env: dict, base_env: dict):
    log = open(tree / f"{name}.log", "ab")
    proc = server_forker.launch([sys.executable, comfy_main.__file__, "--cpu", "--port", "1"], str(tree), env, log,
                                base_env=base_env)
    return proc, log


def test_a_forked_server_runs_main_py_as_a_fresh_launcher_process_would(tree: Path):
    base = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc, log = start(tree, "forked", {**base, "OBCLIP_PROBE_SETTING": "on", "OMP_NUM_THREADS": "1"}, base)
    assert isinstance(proc, server_forker.ForkedProcess)
    assert proc.wait(timeout=120) == 0
    log.close()
    seen = json.loads((tree / "forked.log").read_text().strip().splitlines()[-1])
    assert seen == {"name": "__main__", "argv": [str(tree / "main.py"), "--cpu", "--port", "1"],
                    "path0": str(tree), "cwd": str(tree), "onednn": False, "conv2d": "_obclip_lab_batched_conv",
                    "threads": 1, "setting": "on", "obclip_modules": [],
                    "harness_on_path": False, "stdin": ""}
    fresh = subprocess.run([sys.executable, comfy_main.__file__, "--cpu", "--port", "1"], cwd=tree, check=True,
                           env={**base, "OBCLIP_PROBE_SETTING": "on", "OMP_NUM_THREADS": "1"},
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert json.loads(fresh.stdout.strip().splitlines()[-1]) == seen


def test_exit_status_and_signals_read_as_popen(tree: Path):
    base = dict(os.environ)
    failed, log1 = start(tree, "exit3", {**base, "OBCLIP_PROBE_EXIT": "3"}, base)
    assert failed.wait(timeout=120) == 3 and failed.poll() == 3
    slow, log2 = start(tree, "slow", {**base, "OBCLIP_PROBE_SLEEP": "1"}, base)
    assert slow.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        slow.wait(timeout=0.5)
    killer = threading.Timer(0.5, slow.kill)  # while this thread waits without a timeout, as Popen allows
    killer.start()
    assert slow.wait() == -9
    killer.join()
    slow.kill()  # a second kill of an ended server is a no-op, as with Popen
    log1.close()
    log2.close()


def test_a_server_whose_environment_the_libraries_read_is_a_fresh_process(tree: Path):
    base = dict(os.environ)
    proc, log = start(tree, "proxy", {**base, "HTTPS_PROXY": "http://127.0.0.1:9"}, base)
    assert isinstance(proc, subprocess.Popen)
    assert proc.wait(timeout=120) == 0
    log.close()
    assert server_forker.env_forkable({"A": "1", "OBCLIP_X": "1", "OMP_NUM_THREADS": "1"}, {"A": "1"})
    assert not server_forker.env_forkable({"A": "2"}, {"A": "1"})
    assert not server_forker.env_forkable({}, {"PYTORCH_X": "1"})


def test_run_python_is_a_fork_with_separate_output_and_no_comfyui_or_pack_modules(tree: Path):
    code = ("import json, sys\nprint('to stderr', file=sys.stderr)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('obclip_nodes', 'comfy', "
            "'diffusers', 'torch'))))\nsys.exit(4)")
    out = server_forker.run_python(code, root=tree, cwd=tree, timeout=120)
    assert out.returncode == 4 and out.stderr == "to stderr\n"
    assert [m for m in json.loads(out.stdout) if not m.startswith("torch")] == []  # torch: preimported
    assert "torch" in json.loads(out.stdout)  # the forker's libraries: it really was a fork
