"""Shared fixtures. Plain-logic tests need nothing; `comfy` tests import ComfyUI in-process on the
CPU; `servers` tests start real ComfyUI servers on loopback."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def comfy_root():
    from obclip_nodes.harness.host import import_comfy
    root = import_comfy()
    import comfy.utils
    comfy.utils.PROGRESS_BAR_ENABLED = False
    return root


@pytest.fixture(scope="session")
def sd15_pair():
    from obclip_nodes.harness.smoke_models import SD15_PAIR, ensure
    return ensure(SD15_PAIR)


@pytest.fixture(scope="session")
def sd15_models(comfy_root, sd15_pair):
    """(cloud, device) as loaded by ComfyUI's own checkpoint loader: (model, clip, vae) each."""
    import comfy.sd
    return tuple(comfy.sd.load_checkpoint_guess_config(str(p))[:3] for p in sd15_pair)


@pytest.fixture(scope="session")
def sdxl_models(comfy_root):
    """SDXL-detectable cloud and KOALA-700M-shaped device, built on first use (about 1.7 GB each)."""
    import comfy.sd
    from obclip_nodes.harness.smoke_models import SDXL_PAIR, ensure
    return tuple(comfy.sd.load_checkpoint_guess_config(str(p))[:3] for p in ensure(SDXL_PAIR))


def shipped_checkpoint_names() -> set[str]:
    """Every checkpoint name the shipped API workflows use (Load Checkpoint and the cloud's checkpoint)."""
    import json
    from obclip_nodes.harness.host import REPO
    names = set()
    for path in (REPO / "workflows" / "api").glob("*.json"):
        for node in json.loads(path.read_text()).values():
            for key in ("ckpt_name", "cloud_checkpoint"):
                if isinstance(node["inputs"].get(key), str):
                    names.add(node["inputs"][key])
    return names


# The test model standing in for each checkpoint a shipped workflow names (same family, so the frontend
# and the server see an installed model of the right kind). The mini world's files ship with the pack.
WORKFLOW_MODEL_FAMILY = {
    "obclip-smoke-sd15-cloud.safetensors": "sd15", "obclip-smoke-sd15-device.safetensors": "sd15",
    "sd_xl_base_1.0.safetensors": "sdxl", "lcm-sdxl.safetensors": "sdxl", "koala-700m.safetensors": "sdxl",
}
SHIPPED_WITH_THE_PACK = {"obclip-mini-cloud.safetensors", "obclip-mini-device.safetensors"}


@pytest.fixture(scope="session")
def workflow_checkpoints(sd15_pair):
    """{name a shipped workflow uses: a test model file of that family}, for servers a user would run them on."""
    from obclip_nodes.harness.smoke_models import SDXL_PAIR, ensure
    families = {"sd15": sd15_pair[0], "sdxl": ensure(SDXL_PAIR)[0]}
    unknown = shipped_checkpoint_names() - set(WORKFLOW_MODEL_FAMILY) - SHIPPED_WITH_THE_PACK
    assert not unknown, f"add the family of {sorted(unknown)} to tests/conftest.py WORKFLOW_MODEL_FAMILY"
    return {name: families[fam] for name, fam in WORKFLOW_MODEL_FAMILY.items()}
