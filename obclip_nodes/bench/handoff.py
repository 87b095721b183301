"""Hand-off exactness: the real candidate's final latent via ObCLIP against single-prompt runs.

For each family (the SD1.5 -> BK-SDM-Small and Vega -> KOALA-700M test-model pairs, harness/pairs.py), sampler and N, the ObCLIP path (N candidates in one cloud
batch, the real row selected, device finish) is compared with the Hybrid SD baseline run with stock
KSamplerAdvanced on the real prompt alone. `vs_uninterrupted` compares the split itself with one
uninterrupted cloud run (device model = cloud model), where multistep and noisy samplers deviate.
`sigma_matched` measures a few-step cloud handing off to a 25-step device schedule.
"""
from __future__ import annotations

import argparse
import time

import torch

PROMPTS = ["a photo of a young woman", "a photo of a young man", "a photo of an old woman",
           "a photo of an old man", "a photo of a middle-aged woman", "a photo of a middle-aged man"]
NEGATIVE = "blurry"


def _diff(a: torch.Tensor, b: torch.Tensor) -> dict:
    d = (a - b).abs().max().item()
    return {"max_abs_diff": d, "rel_diff": d / max(b.abs().max().item(), 1e-12)}


def stock_run(cloud, device, prompt, s, *, split=True):
    """KSamplerAdvanced, one prompt: cloud 0..k then device k..T (or cloud 0..T when not split)."""
    import nodes
    (cm, cc, _), (dm, dc, _) = cloud, device
    enc = nodes.CLIPTextEncode()
    empty = nodes.EmptyLatentImage().generate(s["width"], s["height"], 1)[0]
    ks = nodes.KSamplerAdvanced()
    common = dict(noise_seed=s["seed"], steps=s["steps"], cfg=s["cfg"], sampler_name=s["sampler"],
                  scheduler=s["scheduler"])
    pos_c, neg_c = enc.encode(cc, prompt)[0], enc.encode(cc, NEGATIVE)[0]
    if not split:
        return ks.sample(cm, "enable", positive=pos_c, negative=neg_c, latent_image=empty, start_at_step=0,
                         end_at_step=10000, return_with_leftover_noise="disable", **common)[0]["samples"]
    mid = ks.sample(cm, "enable", positive=pos_c, negative=neg_c, latent_image=empty, start_at_step=0,
                    end_at_step=s["cloud_steps"], return_with_leftover_noise="enable", **common)[0]
    return ks.sample(dm, "disable", positive=enc.encode(dc, prompt)[0], negative=enc.encode(dc, NEGATIVE)[0],
                     latent_image=mid, start_at_step=s["cloud_steps"], end_at_step=10000,
                     return_with_leftover_noise="disable", **common)[0]["samples"]


def cloud_rows(cloud, prompts, s):
    """The cloud's k steps for all N candidates in one batch: -> (rows, handoff)."""
    from ..sampling import encode_batch, partial_sample
    cm, cc, _ = cloud
    return partial_sample(cm, encode_batch(cc, prompts), encode_batch(cc, [NEGATIVE]), n=len(prompts),
                          width=s["width"], height=s["height"], seed=s["seed"], steps=s["steps"],
                          cloud_steps=s["cloud_steps"], cfg=s["cfg"], sampler=s["sampler"],
                          scheduler=s["scheduler"])


def device_finish(device, prompt, rows, real, handoff, s, **finish_kw):
    """The Latent Selector and the Device Finisher: row `real` finished on the device for `prompt`."""
    from ..sampling import encode_batch, finish_sample
    dm, dc, _ = device
    row = {"samples": rows["samples"][real:real + 1].clone()}
    return finish_sample(dm, encode_batch(dc, [prompt]), encode_batch(dc, [NEGATIVE]), row, handoff,
                         cfg=s["cfg"], **finish_kw)["samples"]


def obclip_run(cloud, device, prompts, real, s, **finish_kw):
    """The ObCLIP path in-process: -> (final latent of prompts[real], all N cloud rows, handoff)."""
    rows, handoff = cloud_rows(cloud, prompts, s)
    return device_finish(device, prompts[real], rows, real, handoff, s, **finish_kw), rows["samples"], handoff


# the tests' settings: the real architectures at a 4x4 latent and few steps (every claim holds at any size)
QUICK = dict(width=32, height=32, steps=4, cloud_steps=2)


def settings(family: str, sampler: str = "euler", **over) -> dict:
    base = dict(width=64, height=64, seed=11, cfg=5.0, sampler=sampler, scheduler="normal")
    s = {**base, "steps": 10, "cloud_steps": 4} if family == "sd15" else {**base, "steps": 4, "cloud_steps": 2}
    return {**s, **over}


def exactness_cases(cloud, device, family, sampler, ns=(1, 2, 4, 6), **over) -> list[dict]:
    s = settings(family, sampler, **over)
    baseline = {}
    out = []
    for n in ns:
        real = n - 1  # a different position for every N
        prompt = PROMPTS[real]
        if prompt not in baseline:
            baseline[prompt] = stock_run(cloud, device, prompt, s)
        final, _, _ = obclip_run(cloud, device, PROMPTS[:n], real, s)
        out.append({"family": family, "sampler": sampler, "n": n, "real_index": real,
                    **_diff(final, baseline[prompt])})
    return out


def uninterrupted_case(cloud, family, sampler, **over) -> dict:
    """Device model = cloud model: the split against one uninterrupted run of the real prompt."""
    s = settings(family, sampler, **over)
    final, _, _ = obclip_run(cloud, cloud, PROMPTS[:2], 1, s)
    return {"family": family, "sampler": sampler, "n": 2, **_diff(final, stock_run(cloud, cloud, PROMPTS[1], s,
                                                                                     split=False))}


def sigma_matched_case(cloud, device, family, fine_steps: int = 200, device_steps: int = 25, **over) -> dict:
    """A few-step cloud (8 steps, k=4) handing off to a 25-step device schedule.

    Reference: the device model integrating the same ODE from the stop sigma with 200 fine steps.
    """
    from ..sampling.schedule import HANDOFF_MODES, NEAREST_STEP
    s = {**settings(family, **over), "steps": 8, "cloud_steps": 4}
    rows, handoff = cloud_rows(cloud, PROMPTS[:2], s)  # one cloud run, finished three ways
    fine = device_finish(device, PROMPTS[0], rows, 0, handoff, s, mode=HANDOFF_MODES[1], device_steps=fine_steps)
    out = {"family": family, "cloud_steps": "4 of 8", "device_steps": device_steps, "stop_sigma": handoff.stop_sigma}
    for label, mode in (("sigma_matched", HANDOFF_MODES[1]), ("nearest_step", NEAREST_STEP)):
        final = device_finish(device, PROMPTS[0], rows, 0, handoff, s, mode=mode, device_steps=device_steps)
        out[label] = _diff(final, fine)
    return out


def run(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser(prog="python -m obclip_nodes.bench handoff")
    ap.add_argument("--families", default="sd15,sdxl")
    ap.add_argument("--samplers", default="euler,ddim,dpmpp_2m,euler_ancestral,dpmpp_2m_sde")
    args = ap.parse_args(argv)
    from ..harness.host import import_comfy
    import_comfy()
    import comfy.sd
    import comfy.utils
    comfy.utils.PROGRESS_BAR_ENABLED = False
    from ..harness.pairs import SD15_PAIR, SDXL_PAIR, ensure
    t0 = time.monotonic()
    cases, uninterrupted, matched = [], [], []
    for family in args.families.split(","):
        pair = ensure(SD15_PAIR if family == "sd15" else SDXL_PAIR)
        cloud, device = (comfy.sd.load_checkpoint_guess_config(str(p))[:3] for p in pair)
        samplers = args.samplers.split(",") if family == "sd15" else ["euler", "ddim"]
        for sampler in samplers:
            cases += exactness_cases(cloud, device, family, sampler)
            uninterrupted.append(uninterrupted_case(cloud, family, sampler))
        matched.append(sigma_matched_case(cloud, device, family))
        del cloud, device
    return {"cases": cases, "vs_uninterrupted": uninterrupted, "sigma_matched": matched,
            "models": "published architectures with seeded random weights (obclip_nodes.harness.pairs)",
            "wall_s": round(time.monotonic() - t0, 1)}
