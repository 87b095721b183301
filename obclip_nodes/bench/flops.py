"""Counted server UNet FLOPs at the real SD1.5 (512x512) and SDXL (1024x1024) shapes, next to Table 7.

python -m obclip_nodes.bench flops [--arch sd15,sdxl] [--quick]

Every number is counted by torch.utils.flop_counter.FlopCounterMode on meta tensors (no weights,
no compute) while the real UNet architecture runs through the same wrappers the cloud uses.
Units: "paper unit" TFLOPs = counted FLOPs / 2 / 1e12 (multiply-adds: the paper's 18.53 T for
SD-v1.4, 25 steps, CFG is 25 x 2 UNet rows x 0.37 T MACs); "anchored" rescales so that our
cloud_only equals the paper's 18.53 T (SD) / 159.35 T (SDXL); raw counted FLOPs are given too.
"""
from __future__ import annotations

import argparse
import time

from ..acceleration.costs import REAL_SHAPES, REAL_UNETS, block_costs, meta_unet
from ..acceleration.settings import AccelerationSettings
from ..acceleration.simulate import count_run, install_attention

T = 25
SETTINGS = {5: dict(cache_point=3, skip_point=3), 10: dict(cache_point=4, skip_point=6)}  # paper (k, r, s)
NS = (2, 4, 6)
# strategies added in turn; the last is obclip_accel
LADDER = ("uncond_dedup", "uncond_share", "batch_reuse", "attention_cache", "block_skip")
PAPER_T7 = {  # Table 7 server FLOPs (T), key -> (ObCLIP, +cache, +reuse); cloud-only, vanilla OG
    "sd15": {"cloud_only": 18.53, "k5_n4": (14.82, 12.25, 11.13), "k5_n6": (22.23, 18.38, 16.64),
             "k10_n4": (29.64, 23.36, 21.86), "k10_n6": (44.46, 35.04, 32.72)},
    "sdxl": {"cloud_only": 159.35, "k5_n4": (127.48, 97.62, 86.32), "k5_n6": (191.22, 146.44, 128.38),
             "k10_n4": (254.96, 180.42, 165.34), "k10_n6": (382.44, 270.62, 246.55)},
}


def _t(flops: float) -> float:
    return round(flops / 2e12, 3)


def run(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser(prog="python -m obclip_nodes.bench flops")
    ap.add_argument("--arch", default="sd15,sdxl")
    ap.add_argument("--ns", default=",".join(map(str, NS)))
    ap.add_argument("--ks", default="5,10")
    args = ap.parse_args(argv)
    from ..harness.host import import_comfy
    import_comfy()
    t0 = time.time()
    result: dict = {"unit": "paper-unit TFLOPs = counted FLOPs / 2e12 (multiply-adds), server UNet only",
                    "counter": "torch.utils.flop_counter.FlopCounterMode on meta tensors",
                    "T": T, "settings_krs": {f"k{k}": {"k": k, "r": v["cache_point"], "s": v["skip_point"]}
                                              for k, v in SETTINGS.items()}}
    for arch in args.arch.split(","):
        cfg, shape = REAL_UNETS[arch], REAL_SHAPES[arch]
        unet = meta_unet(cfg)
        row = block_costs(unet, cfg, shape["latent"], shape["tokens"])["total"]
        install_attention(unet)
        cloud_only = T * 2 * row
        anchor = PAPER_T7[arch]["cloud_only"] / _t(cloud_only)
        a: dict = {"row_flops_raw": row, "row_paper_unit": _t(row), "anchor_scale": round(anchor, 4),
                   "cloud_only": _t(cloud_only)}
        for k in map(int, args.ks.split(",")):
            for n in map(int, args.ns.split(",")):
                base = dict(SETTINGS[k])
                entry: dict = {"k": k, "n": n, **{x: base[x] for x in base}}
                entry["cloud_only"] = _t(cloud_only)
                entry["vanilla_og"] = _t(n * cloud_only)
                plain = count_run(unet, cfg, None, n=n, k=k, latent=shape["latent"])
                entry["obclip"] = _t(plain["total_flops"])
                on: dict = {}
                steps = {}
                for s in LADDER:
                    on[s] = True
                    r = count_run(unet, cfg, AccelerationSettings(**on, **base), n=n, k=k, latent=shape["latent"])
                    entry["+" + s] = _t(r["total_flops"])
                    steps["+" + s] = [round(1 - f / p, 3) for f, p in zip(r["per_step_flops"], plain["per_step_flops"])]
                    acc_err = abs(r["accounted_run_flops"] - r["total_flops"]) / r["total_flops"]
                    entry.setdefault("accounting_rel_error_max", 0.0)
                    entry["accounting_rel_error_max"] = max(entry["accounting_rel_error_max"], round(acc_err, 6))
                entry["obclip_accel"] = entry["+" + LADDER[-1]]
                paper_only = count_run(unet, cfg, AccelerationSettings(batch_reuse=True, attention_cache=True,
                                                                       block_skip=True, **base),
                                       n=n, k=k, latent=shape["latent"])
                entry["paper_strategies_only"] = _t(paper_only["total_flops"])
                entry["per_step_reduction"] = steps
                entry["ratio_accel_to_obclip"] = round(entry["obclip_accel"] / entry["obclip"], 4)
                entry["ratio_accel_to_cloud_only"] = round(entry["obclip_accel"] / entry["cloud_only"], 4)
                entry["anchored"] = {key: round(entry[key] * anchor, 2) for key in
                                     ("cloud_only", "vanilla_og", "obclip", "paper_strategies_only", "obclip_accel")}
                entry["raw_flops"] = {"obclip": plain["total_flops"], "obclip_accel": r["total_flops"]}
                p = PAPER_T7[arch].get(f"k{k}_n{n}")
                if p:
                    entry["paper"] = {"obclip": p[0], "+cache": p[1], "+reuse": p[2],
                                      "ratio_to_obclip": round(p[2] / p[0], 4),
                                      "ratio_to_cloud_only": round(p[2] / PAPER_T7[arch]["cloud_only"], 4)}
                a[f"k{k}_n{n}"] = entry
        result[arch] = a
    g = result.get("sd15", {})
    if "k10_n6" in g and "k5_n4" in g:
        result["goals"] = {"sd15_k10_n6_accel_over_obclip<=0.60": g["k10_n6"]["ratio_accel_to_obclip"],
                           "sd15_k5_n4_accel_over_cloud_only<=0.50": g["k5_n4"]["ratio_accel_to_cloud_only"],
                           "met": g["k10_n6"]["ratio_accel_to_obclip"] <= 0.60
                           and g["k5_n4"]["ratio_accel_to_cloud_only"] <= 0.50}
    result["seconds"] = round(time.time() - t0, 1)
    return result
