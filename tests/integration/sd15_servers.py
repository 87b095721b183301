"""One cloud and one device ComfyUI server for the SD1.5 pair, shared by the end-to-end modules
(test_e2e_servers, test_device_side_servers, test_device_loader_e2e) through the `sd15_servers` fixture in
tests/conftest.py: started once, stopped after the last of them (a start costs about 6 s of one core, and each
server loads its models once instead of once a module).

The cloud lists the SD1.5 file under the name the shipped hybrid workflow uses. The device lists the same
file under that name (the single-prompt baselines, and the ControlNet test's full-SD1.5 device model),
BK-SDM-Small under the workflow's device name, the test ControlNet, and BK-SDM-Small's diffusers folder.

The servers outlive a module, so a module never assumes a fresh history: it compares the cloud's /history
before and after its own runs (cloud_ids, cloud_entries(since=...)).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from obclip_nodes.harness import test_models
from obclip_nodes.harness.host import REPO
from obclip_nodes.harness.servers import ComfyServer, prepare_base, start_together

HYBRID = json.loads((REPO / "workflows" / "api" / "obclip_hybrid.json").read_text())
CLOUD_NAME = HYBRID["4"]["inputs"]["cloud_checkpoint"]
DEVICE_NAME = HYBRID["1"]["inputs"]["ckpt_name"]
DIFFUSERS_NAME = "bk-sdm-small"


@dataclass
class SD15Servers:
    cloud: ComfyServer
    device: ComfyServer
    controlnet: str  # its file name in the device's models/controlnet


def start(root: Path, sd15_pair) -> SD15Servers:
    from device_side_models import ensure as ensure_controlnet  # tests/integration, on sys.path (conftest)
    cloud_ckpt, device_ckpt = sd15_pair
    controlnet = ensure_controlnet()
    folder = test_models.ensure_diffusers(DIFFUSERS_NAME)
    cloud = ComfyServer("cloud", prepare_base(root / "cloud", {CLOUD_NAME: cloud_ckpt}))
    base = prepare_base(root / "device", {CLOUD_NAME: cloud_ckpt, DEVICE_NAME: device_ckpt})
    for sub, name, target in (("controlnet", controlnet.name, controlnet), ("diffusers", DIFFUSERS_NAME, folder)):
        (base / "models" / sub).mkdir(parents=True, exist_ok=True)
        (base / "models" / sub / name).symlink_to(target)
    device = ComfyServer("device", base)
    start_together(cloud, device)
    try:
        cloud.require_nodes("ObCLIPServerSampler", "ObCLIPServerReturn")
        device.require_nodes("ObCLIPCandidateExpander", "ObCLIPCloudPartialSampler", "ObCLIPDeviceFinisher",
                             "ObCLIPEncodeRealPrompt", "ObCLIPHandoffSigmas", "ObCLIPDeviceModelLoader",
                             "ControlNetApplyAdvanced", "SamplerCustomAdvanced")
    except BaseException:
        stop(SD15Servers(cloud, device, controlnet.name))
        raise
    return SD15Servers(cloud, device, controlnet.name)


def stop(servers: SD15Servers) -> None:
    servers.device.stop()
    servers.cloud.stop()


def cloud_ids(cloud: ComfyServer) -> frozenset:
    """The prompt ids the cloud has recorded so far."""
    return frozenset(cloud.get("/history"))


def cloud_entries(cloud: ComfyServer, since: frozenset = frozenset()) -> list[dict]:
    """The cloud's records (oldest first), minus those of the prompt ids in `since`."""
    return [entry for pid, entry in cloud.get("/history").items() if pid not in since]
