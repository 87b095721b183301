"""Issue 16 on two real ComfyUI servers: the shipped device-side workflows (ControlNet between Encode Real
Prompt and the Finisher; SamplerCustomAdvanced as the finisher) run end to end, equal the Finisher, and
leave the cloud's view unchanged. A CONDITIONING cannot be wired into the Cloud Partial Sampler."""
from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # siblings: the model builder, and the cloud-view helpers
from device_side_models import ensure as ensure_device_side_models  # noqa: E402
from sd15_servers import CLOUD_NAME, DEVICE_NAME, cloud_entries  # noqa: E402
from test_e2e_servers import MARKER, SERVER_NODES, fetch_latent, public_view  # noqa: E402

from obclip_nodes.harness.host import REPO
from obclip_nodes.harness.queue import WorkflowError, run_workflow
from obclip_nodes.harness.servers import ComfyServer

pytestmark = pytest.mark.servers

API = REPO / "workflows" / "api"
CONTROLNET_WF = json.loads((API / "obclip_device_controlnet.json").read_text())
CUSTOM_WF = json.loads((API / "obclip_device_custom_sampler.json").read_text())
# a 4x4 latent and few steps: a UNet call costs about the same at any size on a CPU (the weights dominate)
SIZE = dict(width=32, height=32, steps=6, cloud_steps=3)
DEVICE_STEPS = 10  # the sigma-matched mode's own device schedule, cut at the cloud's stop
REAL = "portrait photo of a young woman in a red coat"  # one cell of age x gender: N = 8
WIDGETS = {"OBCLIP_CANDIDATES", "OBCLIP_ACCELERATION", "STRING", "INT", "FLOAT", "BOOLEAN", "COMBO"}


def control_image(path) -> None:
    """A deterministic edge map (white lines on black), what a Canny preprocessor would hand over."""
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (64, 64), "black")
    d = ImageDraw.Draw(img)
    d.ellipse((14, 6, 50, 46), outline="white", width=2)
    d.line((4, 60, 60, 48), fill="white", width=2)
    img.save(path)


@pytest.fixture(scope="module")
def servers(sd15_servers):
    """The shared SD1.5 pair's servers (tests/integration/sd15_servers.py). The ControlNet needs the full SD1.5
    UNet's skip connections (BK-SDM-Small has one res block a stage), so its device model is the published
    SD1.5 architecture: the cloud's file, which the device lists under the cloud's name."""
    cloud, device = sd15_servers.cloud, sd15_servers.device
    control_image(device.base / "input" / CONTROLNET_WF["8"]["inputs"]["image"])
    return cloud, device, DEVICE_NAME, CLOUD_NAME, sd15_servers.controlnet


def prepared(wf: dict, cloud: ComfyServer, ckpt: str) -> dict:
    g = copy.deepcopy(wf)
    g["1"]["inputs"]["ckpt_name"] = ckpt
    g["2"]["inputs"]["prompt"] = REAL
    g["4"]["inputs"].update(server_url=cloud.url, cloud_checkpoint=CLOUD_NAME, **SIZE)  # the shared cloud's name
    return g


def save(g: dict, name: str, source: list) -> None:
    g[f"save_{name}"] = {"class_type": "SaveLatent", "inputs": {"samples": source,
                                                               "filename_prefix": f"latents/{name}"}}


def latents(device, hist: dict) -> dict[str, torch.Tensor]:
    return {k[len("save_"):]: fetch_latent(device, v) for k, v in hist["outputs"].items() if k.startswith("save_")}


def test_the_cloud_sampler_accepts_no_conditioning(servers):
    cloud, device, ckpt, _, _ = servers
    spec = device.get("/object_info/ObCLIPCloudPartialSampler")["ObCLIPCloudPartialSampler"]["input"]
    kinds = {name: ("COMBO" if isinstance(s[0], list) else s[0])
             for group in ("required", "optional") for name, s in spec.get(group, {}).items()}
    assert kinds["candidates"] == "OBCLIP_CANDIDATES" and set(kinds.values()) <= WIDGETS, kinds
    before = len(cloud_entries(cloud))
    for target in ("candidates", "negative", "cloud_checkpoint"):
        g = prepared(CUSTOM_WF, cloud, ckpt)
        g["4"]["inputs"][target] = ["6", 0]  # Encode Real Prompt's positive CONDITIONING
        with pytest.raises(WorkflowError, match=r"rejected the workflow.*return_type_mismatch.*CONDITIONING"):
            run_workflow(device.url, g, timeout=60)
    assert len(cloud_entries(cloud)) == before  # nothing went out


def test_custom_sampler_workflow_equals_the_finisher(servers):
    """SamplerCustomAdvanced from the hand-off sigmas, the Finisher with Encode Real Prompt's conditioning and
    today's Finisher (own CLIP encoding), all from one cloud run, in replay and sigma-matched modes."""
    cloud, device, ckpt, _, _ = servers
    g = prepared(CUSTOM_WF, cloud, ckpt)
    save(g, "custom", ["10", 0])
    fin = {"model": ["1", 0], "latent": ["5", 0], "selection": ["2", 1], "handoff": ["4", 1],
           "negative": CUSTOM_WF["6"]["inputs"]["negative"], "cfg": CUSTOM_WF["8"]["inputs"]["cfg"],
           "schedule": "replay cloud schedule", "device_steps": DEVICE_STEPS, "device_scheduler": "normal",
           "device_sampler": "same as cloud"}
    g["own"] = {"class_type": "ObCLIPDeviceFinisher", "inputs": {**fin, "clip": ["1", 1]}}
    g["wired"] = {"class_type": "ObCLIPDeviceFinisher", "inputs": {
        **fin, "positive_conditioning": ["6", 0], "negative_conditioning": ["6", 1]}}
    matched = "sigma-matched device schedule"
    g["7m"] = {"class_type": "ObCLIPHandoffSigmas", "inputs": {**CUSTOM_WF["7"]["inputs"], "schedule": matched,
                                                             "device_steps": DEVICE_STEPS}}
    g["10m"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        **CUSTOM_WF["10"]["inputs"], "sigmas": ["7m", 0], "latent_image": ["7m", 1], "noise": ["7m", 2]}}
    g["own_m"] = {"class_type": "ObCLIPDeviceFinisher", "inputs": {**fin, "clip": ["1", 1], "schedule": matched}}
    for name, node in (("own", "own"), ("wired", "wired"), ("custom_m", "10m"), ("own_m", "own_m")):
        save(g, name, [node, 0])
    _, hist = run_workflow(device.url, g, extra_data={"extra_pnginfo": {"workflow": {"note": MARKER}}})
    out = latents(device, hist)
    assert len(cloud_entries(cloud)) >= 1 and out["own"].abs().max() > 0.1
    assert torch.equal(out["wired"], out["own"])  # bit for bit
    diffs = {"replay": (out["custom"] - out["own"]).abs().max().item(),
             "sigma-matched": (out["custom_m"] - out["own_m"]).abs().max().item()}
    print("max |SamplerCustomAdvanced - Finisher| on the servers:", diffs)
    assert max(diffs.values()) <= 1e-5, diffs
    assert (out["own_m"] - out["own"]).abs().max() > 1e-3  # the two modes really differ
    assert hist["status"]["status_str"] == "success"


def test_controlnet_workflow_changes_the_latent_not_the_clouds_view(servers):
    cloud, device, _, full_device, controlnet = servers
    with_cn = prepared(CONTROLNET_WF, cloud, full_device)
    cloud_ckpt = with_cn["4"]["inputs"]["cloud_checkpoint"]
    with_cn["7"]["inputs"]["control_net_name"] = controlnet
    save(with_cn, "controlnet", ["10", 0])
    without = copy.deepcopy(with_cn)
    for nid in ("7", "8", "9"):
        del without[nid]
    without["10"]["inputs"].update(positive_conditioning=["6", 0], negative_conditioning=["6", 1])
    without["save_controlnet"]["inputs"]["filename_prefix"] = "latents/plain"
    # The device caches node outputs, so an unchanged Cloud Partial Sampler would not ask the cloud again.
    # timeout_s is a client-side limit that is never sent: changing it makes each run send its own request.
    with_cn["4"]["inputs"]["timeout_s"], without["4"]["inputs"]["timeout_s"] = 611, 612

    n0 = len(cloud_entries(cloud))
    _, hist_cn = run_workflow(device.url, with_cn, extra_data={"extra_pnginfo": {"workflow": {"note": MARKER}}})
    _, hist_plain = run_workflow(device.url, without, extra_data={"extra_pnginfo": {"workflow": {"note": MARKER}}})
    assert hist_cn["status"]["status_str"] == "success" and hist_cn["outputs"]["12"]["images"]  # image saved too
    a = fetch_latent(device, hist_cn["outputs"]["save_controlnet"])
    b = fetch_latent(device, hist_plain["outputs"]["save_controlnet"])
    scale = b.abs().max().item()
    effect = (a - b).abs().max().item()
    print(f"ControlNet effect on the finished latent: max |with - without| = {effect:.4g}, "
          f"mean = {(a - b).abs().mean().item():.4g}, latent scale {scale:.4g}")
    assert scale > 0.1 and effect > 1e-2 * scale
    # every residual fits the SD1.5 UNet (ComfyUI only logs a warning for one that does not)
    assert "control could not be applied" not in device.log_path.read_text(errors="replace")

    entries = cloud_entries(cloud)[n0:]
    assert len(entries) == 2  # one request per run, and the recorded views are byte-identical
    assert public_view(entries[0]) == public_view(entries[1])
    for e in entries:
        recorded = json.dumps(e["prompt"])
        assert {n["class_type"] for n in e["prompt"][2].values()} == SERVER_NODES
        assert MARKER not in recorded and "CONDITIONING" not in recorded and "ControlNet" not in recorded
        assert controlnet not in recorded
        # the device model file is the cloud's own here, so only the cloud's checkpoint name may appear
        assert recorded.count(full_device) == recorded.count(cloud_ckpt)


def test_the_test_controlnet_has_the_published_sd15_architecture():
    """Every key and shape equals diffusers' ControlNetModel built from the published config; norms are 1 and
    the zero convolutions are not zero (or the ControlNet would add nothing)."""
    from diffusers import ControlNetModel
    from device_side_models import CONTROLNET_CONFIG
    from safetensors import safe_open
    controlnet = ensure_device_side_models()
    with torch.device("meta"):
        reference = {k: tuple(v.shape) for k, v in ControlNetModel.from_config(CONTROLNET_CONFIG).state_dict().items()}
    with safe_open(str(controlnet), "pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        assert shapes == reference and len(shapes) > 300
        assert sum(math.prod(s) for s in shapes.values()) == sum(math.prod(s) for s in reference.values())
        assert torch.equal(f.get_tensor("down_blocks.0.resnets.0.norm1.weight"), torch.ones(320, dtype=torch.float16))
        assert f.get_tensor("controlnet_mid_block.weight").abs().max() > 0
        assert all(f.get_tensor(f"controlnet_down_blocks.{i}.weight").abs().max() > 0 for i in range(12))
