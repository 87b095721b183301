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
