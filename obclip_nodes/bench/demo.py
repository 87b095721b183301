"""The main job: a "cloud" and a "device" ComfyUI on loopback, the shipped workflow queued on the
device through POST /prompt, the image saved, and a report of what the cloud received.

By default it runs the mini-world workflow on the pack's trained models (they ship in
obclip_nodes/miniworld/weights and every server with the pack lists them), and reads the image back
with the mini world's attribute reader: the report says whether the image shows the real prompt's
attributes."""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from ..harness.host import CACHE, REPO
from ..harness.queue import run_workflow
from ..harness.servers import ComfyServer, fresh_dir, prepare_base, start_together

WORKFLOW = REPO / "workflows" / "api" / "obclip_miniworld.json"
ENLARGE = 6  # the portraits are 64x64: a nearest-neighbour copy for looking at


def node_of(graph: dict, class_type: str) -> str:
    ids = [i for i, n in graph.items() if n["class_type"] == class_type]
    if len(ids) != 1:
        raise RuntimeError(f"the workflow must have exactly one {class_type} node, found {len(ids)}")
    return ids[0]


def cloud_view(cloud: ComfyServer, exclude=frozenset()) -> list[dict]:
    """What the cloud recorded, per prompt: its graph and extra data (from its own /history), but for the
    prompt ids in `exclude`."""
    history = cloud.get("/history")
    return [{"prompt": entry["prompt"][2], "extra_data": entry["prompt"][3]} for pid, entry in history.items()
            if pid not in exclude]


def view_digest(view: list[dict]) -> str:
    # client_id is a random uuid drawn per run, the result key's hash a random value drawn per request,
    # and create_time the server's clock: not part of the view
    from ..protocol.request import RESULT_KEY_INPUT

    def masked(prompt: dict) -> dict:
        return {nid: {**n, "inputs": {k: ("<random>" if k == RESULT_KEY_INPUT else x)
                                      for k, x in n.get("inputs", {}).items()}} for nid, n in prompt.items()}
    canon = [{"prompt": masked(v["prompt"]), "extra_data": {k: x for k, x in v["extra_data"].items()
                                                            if k not in ("client_id", "create_time")}}
             for v in view]
    return hashlib.sha256(json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def start_pair(run_dir: Path, cloud_ckpts=(), device_ckpts=()) -> tuple[ComfyServer, ComfyServer]:
    cloud = ComfyServer("cloud", prepare_base(fresh_dir(run_dir / "cloud"), cloud_ckpts))
    device = ComfyServer("device", prepare_base(fresh_dir(run_dir / "device"), device_ckpts))
    start_together(cloud, device)
    try:
        cloud.require_nodes("ObCLIPServerSampler", "ObCLIPServerReturn")
        device.require_nodes("ObCLIPCandidateExpander", "ObCLIPCloudPartialSampler", "ObCLIPDeviceFinisher")
    except Exception:
        cloud.stop(), device.stop()
        raise
    return cloud, device


def run(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser(prog="python -m obclip_nodes.bench demo")
    ap.add_argument("--prompt", action="append",
                    help="the real prompt (default: the workflow's); give it again to run several on one pair of "
                         "servers (the images: OUT with -1, -2, ... before its suffix)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--out", default=str(REPO / "demo-output" / "obclip-demo.png"))
    args = ap.parse_args(argv)
    prompts, out = args.prompt or [None], Path(args.out)
    outs = [out] if len(prompts) == 1 else [out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
                                            for i in range(len(prompts))]
    reports = run_prompts(prompts, seed=args.seed, outs=outs)
    return reports[0] if len(reports) == 1 else {"ok": all(r["ok"] for r in reports), "runs": reports}


def run_prompts(prompts: list, *, seed: int | None = None, outs: list) -> list[dict]:
    """The demo for each real prompt (None: the workflow's) in turn, on one cloud and device pair; each
    report holds what the cloud received for that prompt alone."""
    t0 = time.monotonic()
    ckpts = ((), ())  # the mini world's checkpoints ship with the pack
    t_models = time.monotonic() - t0
    cloud, device = start_pair(CACHE / "runs" / "demo", *ckpts)
    t_start = time.monotonic() - t0 - t_models
    try:
        return [_generate(cloud, device, prompt, seed, Path(out), {"models": round(t_models, 2),
                                                                   "servers_start": round(t_start, 2)})
                for prompt, out in zip(prompts, outs)]
    finally:
        cloud.stop(), device.stop()


def _generate(cloud: ComfyServer, device: ComfyServer, prompt: str | None, seed: int | None, out: Path,
              timings: dict) -> dict:
    t0 = time.monotonic()
    graph = json.loads(WORKFLOW.read_text())
    expander, sampler = node_of(graph, "ObCLIPCandidateExpander"), node_of(graph, "ObCLIPCloudPartialSampler")
    save = node_of(graph, "SaveImage")
    if prompt:
        graph[expander]["inputs"]["prompt"] = prompt
    if seed is not None:
        graph[sampler]["inputs"]["seed"] = seed
    graph[sampler]["inputs"]["server_url"] = cloud.url
    seen_before = set(cloud.get("/history"))  # the cloud's view of this prompt alone
    _, history = run_workflow(device.url, graph)
    t_run = time.monotonic() - t0
    images = history["outputs"][save]["images"]
    png = device.view(images[0]["filename"], images[0]["subfolder"], images[0]["type"])
    report = history["outputs"][sampler]["obclip_report"][0]
    view = cloud_view(cloud, exclude=seen_before)
    cloud_rss = cloud.rss_mib()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    looked = look(png, graph[expander]["inputs"]["prompt"], out)
    sent = view[0]["prompt"]
    cloud_candidates = json.loads(next(n for n in sent.values() if n["class_type"] == "ObCLIPServerSampler")
                                  ["inputs"]["candidates"])
    return {
        "ok": True,
        "image": str(out), "image_bytes": len(png),
        "real_prompt": graph[expander]["inputs"]["prompt"],
        "candidates": cloud_candidates, "n": len(cloud_candidates),
        "k": report["cloud_steps"], "T": report["steps"],
        "cloud_model": graph[sampler]["inputs"]["cloud_checkpoint"],
        "device_model": graph[node_of(graph, "CheckpointLoaderSimple")]["inputs"]["ckpt_name"],
        "latent_rows_fetched": report["rows_fetched"],
        "bytes_sent_to_cloud": report["bytes_sent"], "bytes_received_from_cloud": report["bytes_received"],
        "cloud_received": {
            "prompts": len(view),
            "node_types": sorted({n["class_type"] for v in view for n in v["prompt"].values()}),
            "extra_data_keys": sorted({k for v in view for k in v["extra_data"]}),
            "digest": view_digest(view),
        },
        "timings_s": {**timings, "workflow": round(t_run, 2), "cloud_call": report["timings"],
                      "total": round(sum(timings.values()) + time.monotonic() - t0, 2)},
        "cloud_peak_rss_mib": cloud_rss,
        "image_shows": looked,
    }


def look(png: bytes, prompt: str, out: Path) -> dict:
    """Read the portrait back with the mini world's exact reader; save an enlarged copy to look at."""
    import io

    import numpy as np
    from PIL import Image

    from ..miniworld import ATTRIBUTES, parse_caption, read
    img = Image.open(io.BytesIO(png)).convert("RGB")
    enlarged = out.with_name(f"{out.stem}-x{ENLARGE}.png")
    img.resize((img.width * ENLARGE, img.height * ENLARGE), Image.NEAREST).save(enlarged)
    got = read(np.asarray(img, np.float32) / 255.0)
    try:
        want = parse_caption(prompt)
    except ValueError:
        return {"read": {a: getattr(got, a) for a in ATTRIBUTES}, "note": "not a mini-world caption"}
    return {"read": {a: getattr(got, a) for a in ATTRIBUTES},
            "matches_real_prompt": {a: getattr(got, a) == getattr(want, a) for a in ATTRIBUTES},
            "all_match": got == want, "enlarged": str(enlarged)}


if __name__ == "__main__":
    sys.exit("run it as: python -m obclip_nodes.bench demo")
