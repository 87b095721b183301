"""The shipped workflow on two real ComfyUI servers on loopback: a "cloud" and a "device".

What is asserted comes from what the servers themselves recorded (their /history), not from mocks.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load

sys.path.insert(0, str(Path(__file__).parent))  # siblings: the shared servers and their history helpers
from sd15_servers import cloud_entries, cloud_ids  # noqa: E402

from obclip_nodes.harness.host import REPO
from obclip_nodes.harness.queue import run_workflow
from obclip_nodes.harness.servers import ComfyServer

pytestmark = pytest.mark.servers

WORKFLOW = json.loads((REPO / "workflows" / "api" / "obclip_hybrid.json").read_text())
SIZE = dict(width=32, height=32, steps=4, cloud_steps=2)  # real SD1.5 / BK-SDM-Small: tiny latents, few steps
SERVER_NODES = {"CheckpointLoaderSimple", "ObCLIPServerSampler", "ObCLIPServerReturn"}
MARKER = "client-workflow-marker-7f3a"  # stands for the client's UI workflow / PNG info


@pytest.fixture(scope="module")
def servers(sd15_servers):
    """The shared SD1.5 pair's servers (tests/integration/sd15_servers.py); the device also lists the cloud
    model, only so the test can run the single-prompt baseline there."""
    return sd15_servers.cloud, sd15_servers.device


def obclip_graph(cloud_url: str, prompt: str) -> dict:
    g = copy.deepcopy(WORKFLOW)
    g["2"]["inputs"]["prompt"] = prompt
    g["4"]["inputs"].update(server_url=cloud_url, **SIZE)
    g["90"] = {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": "latents/obclip"}}
    return g


def baseline_graph(prompt: str) -> dict:
    """Hybrid SD with stock nodes, the real prompt alone: cloud model 0..k, device model k..T."""
    s = WORKFLOW["4"]["inputs"]
    common = dict(noise_seed=s["seed"], steps=SIZE["steps"], cfg=s["cfg"], sampler_name=s["sampler_name"],
                  scheduler=s["scheduler"])
    return {
        "c": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": s["cloud_checkpoint"]}},
        "d": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": WORKFLOW["1"]["inputs"]["ckpt_name"]}},
        "cp": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["c", 1]}},
        "cn": {"class_type": "CLIPTextEncode", "inputs": {"text": s["negative"], "clip": ["c", 1]}},
        "dp": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["d", 1]}},
        "dn": {"class_type": "CLIPTextEncode", "inputs": {"text": WORKFLOW["6"]["inputs"]["negative"],
                                                            "clip": ["d", 1]}},
        "e": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE["width"], "height": SIZE["height"],
                                                           "batch_size": 1}},
        "k1": {"class_type": "KSamplerAdvanced", "inputs": {
            "model": ["c", 0], "positive": ["cp", 0], "negative": ["cn", 0], "latent_image": ["e", 0],
            "add_noise": "enable", "start_at_step": 0, "end_at_step": SIZE["cloud_steps"],
            "return_with_leftover_noise": "enable", **common}},
        "k2": {"class_type": "KSamplerAdvanced", "inputs": {
            "model": ["d", 0], "positive": ["dp", 0], "negative": ["dn", 0], "latent_image": ["k1", 0],
            "add_noise": "disable", "start_at_step": SIZE["cloud_steps"], "end_at_step": 10000,
            "return_with_leftover_noise": "disable", **common}},
        "s": {"class_type": "SaveLatent", "inputs": {"samples": ["k2", 0], "filename_prefix": "latents/baseline"}},
    }


def fetch_latent(server: ComfyServer, ui: dict) -> torch.Tensor:
    f = ui["latents"][0]
    return st_load(server.view(f["filename"], f["subfolder"], f["type"]))["latent_tensor"]


def public_view(entry: dict) -> str:
    """The cloud's record of one request, minus the random client id, the random result key (its hash;
    fresh per request like the prompt id) and the server's timestamp."""
    extra = {k: v for k, v in entry["prompt"][3].items() if k not in ("client_id", "create_time")}
    graph = copy.deepcopy(entry["prompt"][2])
    key = graph["3"]["inputs"].pop("result_key_sha256")
    assert len(key) == 64
    return json.dumps({"prompt": graph, "extra": extra, "outputs": entry["prompt"][4]}, sort_keys=True)


def test_hybrid_workflow_end_to_end_and_what_the_cloud_saw(servers):
    cloud, device = servers
    real = "portrait photo of a young woman in a red coat"
    before = cloud_ids(cloud)  # the servers are shared: what other modules sent is not this run's
    _, hist = run_workflow(device.url, obclip_graph(cloud.url, real),
                           extra_data={"extra_pnginfo": {"workflow": {"note": MARKER}}})
    report = hist["outputs"]["4"]["obclip_report"][0]

    # 1. the cloud got exactly one request, made of the pack's server nodes only, with no client data
    entries = cloud_entries(cloud, since=before)
    assert len(entries) == 1
    graph, extra = entries[0]["prompt"][2], entries[0]["prompt"][3]
    assert {n["class_type"] for n in graph.values()} == SERVER_NODES
    assert set(extra) <= {"client_id", "create_time"}  # our random id, and the server's own clock
    recorded = json.dumps(entries[0]["prompt"])
    assert MARKER not in recorded and "extra_pnginfo" not in recorded
    candidates = json.loads(graph["2"]["inputs"]["candidates"])
    assert real in candidates and len(candidates) >= 2

    # 2. the device received every candidate's latent, and they differ from each other
    n = len(candidates)
    assert report["rows_fetched"] == n == entries[0]["outputs"]["3"]["obclip_rows"][0]
    # n float32 rows of 4 x h/8 x w/8 (the bound once assumed 8x8 latents and passed only thanks to the
    # cloud-info bytes a fresh device process fetches first)
    assert report["bytes_received"] > n * 4 * (SIZE["height"] // 8) * (SIZE["width"] // 8) * 4

    # 3. the finished latent is the real candidate's: equal to the single-prompt hybrid baseline
    final = fetch_latent(device, hist["outputs"]["90"])
    ref_real = fetch_latent(device, run_workflow(device.url, baseline_graph(real))[1]["outputs"]["s"])
    other = next(c for c in candidates if c != real)
    ref_other = fetch_latent(device, run_workflow(device.url, baseline_graph(other))[1]["outputs"]["s"])
    scale = ref_real.abs().max().item()
    assert scale > 0.1
    assert torch.allclose(final, ref_real, rtol=1e-4, atol=1e-4 * scale), (final - ref_real).abs().max()
    assert (final - ref_other).abs().max() > 1e-2 * scale

    # 4. another real candidate from the same set: the cloud's record is identical
    run_workflow(device.url, obclip_graph(cloud.url, other),
                 extra_data={"extra_pnginfo": {"workflow": {"note": MARKER + "-2"}}})
    entries = cloud_entries(cloud, since=before)
    assert len(entries) == 2
    assert public_view(entries[0]) == public_view(entries[1])
    assert entries[0]["prompt"][1] != entries[1]["prompt"][1]  # fresh random prompt ids, nothing else differs


def test_pointing_the_client_at_itself_fails_clearly(servers):
    _, device = servers
    g = obclip_graph(device.url, "a photo of a man")
    del g["90"]
    with pytest.raises(Exception, match="same ComfyUI server"):
        run_workflow(device.url, g, timeout=120)


def test_missing_cloud_checkpoint_lists_the_available_ones(servers):
    cloud, device = servers
    g = obclip_graph(cloud.url, "a photo of a man")
    g["4"]["inputs"]["cloud_checkpoint"] = "no-such-model.safetensors"
    with pytest.raises(Exception, match="v1-5-pruned-emaonly.safetensors"):
        run_workflow(device.url, g, timeout=120)


def test_bad_size_is_refused_before_anything_is_sent(servers):
    cloud, device = servers
    before = len(cloud_entries(cloud))
    g = obclip_graph(cloud.url, "a photo of a man")
    g["4"]["inputs"]["width"] = 60  # not a multiple of 8
    with pytest.raises(Exception, match="multiple of 8"):
        run_workflow(device.url, g, timeout=120)
    assert len(cloud_entries(cloud)) == before


def test_shipped_ui_workflow_matches_the_api_one_and_is_a_template(servers):
    from obclip_nodes.harness.ui_workflow import api_to_ui
    _, device = servers
    shipped = json.loads((REPO / "workflows" / "obclip_hybrid.json").read_text())
    assert shipped == api_to_ui(WORKFLOW, device.get("/object_info")), \
        "regenerate: python -m obclip_nodes.harness.ui_workflow workflows/api/obclip_hybrid.json workflows/obclip_hybrid.json"
    assert "obclip_hybrid" in device.get("/workflow_templates").get("obclip")
    assert "/extensions/obclip/obclip.js" in device.get("/extensions")


def test_server_sampler_in_a_purely_local_graph_matches_the_remote_path(servers):
    """Local simulation: the server node fed by the expander link, all on the device server."""
    cloud, device = servers
    real = "a photo of an old man reading"
    remote = obclip_graph(cloud.url, real)
    _, hist = run_workflow(device.url, remote)
    via_cloud = fetch_latent(device, hist["outputs"]["90"])
    local = copy.deepcopy(remote)
    s = local.pop("4")["inputs"]
    local["c"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": s["cloud_checkpoint"]}}
    local["4"] = {"class_type": "ObCLIPServerSampler", "inputs": {
        "model": ["c", 0], "clip": ["c", 1], "candidates": ["2", 0], "acceleration": ["3", 0],
        **{k: s[k] for k in ("negative", "seed", "steps", "cloud_steps", "cfg", "sampler_name", "scheduler",
                             "width", "height")}}}
    local["90"]["inputs"]["filename_prefix"] = "latents/local"
    _, hist = run_workflow(device.url, local)
    simulated = fetch_latent(device, hist["outputs"]["90"])
    assert simulated.abs().max() > 0.1
    assert torch.equal(simulated, via_cloud)  # same code, same floats: bit-identical
