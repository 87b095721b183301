"""What a user's ComfyUI gets from the shipped pack: product only, no lab code at node load, and no demo
models unless asked for."""
import json

import pytest

from obclip_nodes.harness.host import REPO, comfyui_dir
from obclip_nodes.harness.server_forker import run_python
from obclip_nodes.harness.servers import ComfyServer, prepare_base, running

LAB_MODULES = ("obclip_nodes.bench", "obclip_nodes.harness", "obclip_nodes.miniworld")


@pytest.mark.comfy
def test_node_load_imports_no_lab_code():
    """Import the pack the way ComfyUI does (its nodes package) in a fresh interpreter and list modules."""
    code = f"""
import json, sys
sys.path.insert(0, {str(comfyui_dir())!r}); sys.path.insert(0, {str(REPO)!r})
import comfy.cli_args; comfy.cli_args.args.cpu = True
import obclip_nodes.nodes
print(json.dumps(sorted(m for m in sys.modules if m.startswith("obclip_nodes"))))
"""
    out = run_python(code, root=comfyui_dir(), cwd=REPO, timeout=300)  # a fresh interpreter, forked
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "obclip_nodes.nodes" in loaded and "obclip_nodes.cloud_server" in loaded
    lab = [m for m in loaded if m.startswith(LAB_MODULES)]
    assert lab == [], f"node load imported lab code: {lab}"


@pytest.mark.servers
def test_stock_server_lists_no_demo_checkpoints_unless_opted_in(tmp_path):
    servers = {flag: ComfyServer(f"stock-{flag}", prepare_base(tmp_path / f"mw{flag}"), env={"OBCLIP_MINIWORLD": flag})
               for flag in ("0", "1")}
    names = {}
    with running(*servers.values()):
        for flag, srv in servers.items():
            srv.require_nodes("ObCLIPCandidateExpander")
            names[flag] = srv.get("/models/checkpoints")
    assert not any(n.startswith("obclip-mini") for n in names["0"]), names["0"]
    assert {"obclip-mini-cloud.safetensors", "obclip-mini-device.safetensors"} <= set(names["1"])


@pytest.mark.servers
def test_a_bad_server_setting_refuses_requests_instead_of_serving_without_auth(tmp_path):
    """ComfyUI keeps serving when a pack fails to load, so a bad cloud setting must refuse every request."""
    env = {"OBCLIP_SERVER_TOKEN": "tok", "OBCLIP_SERVER_MAX_CANDIDATES": "many"}
    with pytest.raises(RuntimeError, match=r"HTTP 503.*OBCLIP_SERVER_MAX_CANDIDATES='many' is not valid"):
        ComfyServer("badcfg", prepare_base(tmp_path / "bad"), env=env).start(timeout=120)
