"""Shared fixtures. Plain-logic tests need nothing; `comfy` tests import ComfyUI in-process on the
CPU; `servers` tests start real ComfyUI servers on loopback."""
from __future__ import annotations

import pytest


def pytest_configure(config):
    """oneDNN convolutions off, here and in every server the harness starts: at the tests' 4x4 latents they
    spend most of a UNet call re-laying out weights (obclip_nodes/harness/comfy_main.py has the numbers)."""
    import torch
    from obclip_nodes.harness import servers
    torch.backends.mkldnn.enabled = False
    servers.ONEDNN_CONVOLUTIONS = False


@pytest.fixture(scope="session")
def comfy_root():
    from obclip_nodes.harness.host import import_comfy
    root = import_comfy()
    import comfy.utils
    comfy.utils.PROGRESS_BAR_ENABLED = False
    return root


@pytest.fixture(scope="session")
def sd15_pair():
    """(cloud, device) single files: SD1.5 and BK-SDM-Small, published architectures, seeded random weights."""
    from obclip_nodes.harness.pairs import SD15_PAIR, ensure
    return ensure(SD15_PAIR)


@pytest.fixture(scope="session")
def sdxl_pair():
    """(cloud, device) single files of the SDXL family: Segmind Vega and KOALA-700M (harness/pairs.py says why)."""
    from obclip_nodes.harness.pairs import SDXL_PAIR, ensure
    return ensure(SDXL_PAIR)


def _load(paths):
    import comfy.sd
    return tuple(comfy.sd.load_checkpoint_guess_config(str(p))[:3] for p in paths)


@pytest.fixture(scope="module")
def sd15_models(comfy_root, sd15_pair):
    """(cloud, device) as loaded by ComfyUI's own checkpoint loader: (model, clip, vae) each. Per module: the pair
    holds about 7 GB in float32, and the modules that start servers load their own copies there."""
    import gc
    models = _load(sd15_pair)
    yield models
    del models
    gc.collect()


@pytest.fixture(scope="module")
def sdxl_models(comfy_root, sdxl_pair):
    """Like sd15_models for the SDXL family (about 10 GB): only tests/integration/test_sdxl_family.py uses it."""
    import gc
    models = _load(sdxl_pair)
    yield models
    del models
    gc.collect()


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
    "v1-5-pruned-emaonly.safetensors": "sd15", "bk-sdm-small.safetensors": "bk-sdm-small",
    "sd_xl_base_1.0.safetensors": "sdxl-cloud", "lcm-sdxl.safetensors": "sdxl-cloud",
    "koala-700m.safetensors": "koala-700m",
}
SHIPPED_WITH_THE_PACK = {"obclip-mini-cloud.safetensors", "obclip-mini-device.safetensors"}
# diffusers folders (models/diffusers/NAME) the shipped workflows load with the ObCLIP Device Model Loader
WORKFLOW_DIFFUSERS = {"bk-sdm-small": "bk-sdm-small"}


def shipped_diffusers_names() -> set[str]:
    import json
    from obclip_nodes.harness.host import REPO
    return {node["inputs"]["model_folder"] for path in (REPO / "workflows" / "api").glob("*.json")
            for node in json.loads(path.read_text()).values() if isinstance(node["inputs"].get("model_folder"), str)}


@pytest.fixture(scope="session")
def workflow_diffusers():
    """{folder name a shipped workflow uses: the test model's diffusers folder}."""
    from obclip_nodes.harness import test_models
    unknown = shipped_diffusers_names() - set(WORKFLOW_DIFFUSERS)
    assert not unknown, f"add {sorted(unknown)} to tests/conftest.py WORKFLOW_DIFFUSERS"
    return {name: test_models.ensure_diffusers(model) for name, model in WORKFLOW_DIFFUSERS.items()}


@pytest.fixture(scope="session")
def workflow_checkpoints(sd15_pair, sdxl_pair):
    """{name a shipped workflow uses: a test model of that architecture (the SDXL-family cloud for an SDXL)}."""
    families = {"sd15": sd15_pair[0], "bk-sdm-small": sd15_pair[1], "sdxl-cloud": sdxl_pair[0],
                "koala-700m": sdxl_pair[1]}
    unknown = shipped_checkpoint_names() - set(WORKFLOW_MODEL_FAMILY) - SHIPPED_WITH_THE_PACK
    assert not unknown, f"add the family of {sorted(unknown)} to tests/conftest.py WORKFLOW_MODEL_FAMILY"
    return {name: families[fam] for name, fam in WORKFLOW_MODEL_FAMILY.items()}
