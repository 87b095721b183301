"""The browser tests' shared fixtures: one device ComfyUI serving its own frontend and one Chromium for the
session (both modules open their own pages in it)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from obclip_nodes.harness.host import REPO
from obclip_nodes.harness.servers import ComfyServer, prepare_base

from .frontend import ARTIFACTS, CHROMIUM, FLAGS, controlnet_names, frontend_root


@pytest.fixture(scope="session")
def device(tmp_path_factory, workflow_checkpoints, workflow_diffusers):
    # every model the shipped workflows name is installed, as for a user who has them (newer frontends
    # flag a missing model on its loader node)
    base = prepare_base(tmp_path_factory.mktemp("browser-device"), workflow_checkpoints)
    (base / "models" / "diffusers").mkdir(parents=True, exist_ok=True)
    for name, folder in workflow_diffusers.items():
        (base / "models" / "diffusers" / name).symlink_to(folder)
    # ControlNet files the device-side workflow names: only listed here (never queued in the browser), and
    # there is no ControlNet test model, so an empty safetensors file stands in for the installed model
    import safetensors.torch
    for name in controlnet_names():
        (base / "models" / "controlnet").mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file({}, str(base / "models" / "controlnet" / name))
    # input images the shipped workflows load (LoadImage), as a user who has them would
    from PIL import Image
    for p in (REPO / "workflows" / "api").glob("*.json"):
        for n in json.loads(p.read_text()).values():
            if n["class_type"] == "LoadImage":
                Image.new("RGB", (64, 64), (128, 96, 64)).save(base / "input" / n["inputs"]["image"])
    settings = base / "user" / "default"
    settings.mkdir(parents=True, exist_ok=True)  # a returning user: no first-run template dialog
    # a returning user who keeps node text at every zoom (1.49 draws wide graphs fitted to the view
    # without text otherwise; 1.32 reads the older zoom-threshold key)
    (settings / "comfy.settings.json").write_text(json.dumps({
        "Comfy.TutorialCompleted": True, "LiteGraph.Canvas.MinFontSizeForLOD": 1,
        "LiteGraph.Canvas.LowQualityRenderingZoomThreshold": 0.1}))
    with ComfyServer("browser-device", base, extra_args=["--front-end-root", frontend_root()]) as s:
        s.require_nodes("ObCLIPCandidateExpander", "ObCLIPServerSampler")
        yield s


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium (scripts/setup.sh runs "
                    "'apt-get install -y chromium'; it failed or was skipped). Install it and re-run.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package 'playwright' is missing from the venv (requirements-dev.txt); "
                    "re-run scripts/setup.sh")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # this run's screenshots only
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()
