"""The Cache Accelerator's speed/quality frontier, the presets on it, and the server cost of N.

python -m obclip_nodes.bench frontier [--captions 96] [--grid full|presets] [--wall-size 256] [--wall-n 6]
    [--wall-grid presets|full] [--ncost-wall-size 64] [--ncost-ns 1,2,6,12,30] [--ncost-ks 5,10]
    [--no-wall] [--no-ncost-wall] [--out docs/acceleration-frontier]

One schedule for both columns: T = 20 euler steps, the cloud runs k = 8 (40 %), cfg 5, N = 6 candidates
(gender x age), the strategies' points as each setting names them.

- quality: the mini world (trained cloud -> device pair, exact attribute reader) on --captions held-out
  captions, each through the batched ObCLIP path (all N candidates from one noise, the real row
  finished by the device model). FD, attribute and protected-attribute accuracy, against the
  unaccelerated path on the same captions and seeds.
- speed: server wall time of one request (k steps, N candidates, CFG) on the published SD1.5 UNet
  architecture with seeded random weights, CPU, --wall-size square, as a ratio to unaccelerated ObCLIP
  timed in the same process (before and after the accelerated runs; their spread is reported). Counted
  UNet FLOPs (FlopCounterMode, meta tensors) at the same shape are given beside it for every setting.
- n_cost: server cost of one request relative to one cloud-only image (same model, all T = 25 steps,
  CFG, one prompt), for N x k, unaccelerated and with each preset: counted FLOPs at the SD1.5 512^2
  shape (hardware-independent) and measured wall time on this machine at --ncost-wall-size.

The whole run is sized by its options (captions, grids, sizes); the JSON records what ran and how long
each part took. A GPU was not available where the committed numbers were measured.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path

T, K, CFG, N = 20, 8, 5.0, 6
NCOST_T = 25
P = {"cache_point": 4, "skip_point": 6}  # the paper's (r, s) for its k = 10 setting
DSR = {"uncond_dedup": True, "uncond_share": True, "batch_reuse": True}
DC = {"block_skip": True, "skip_mode": "deepcache", "skip_branch": 0, "cache_point": 4}
CORE = ("uncond_share", "batch_reuse", "paper_three", "dedup+share+reuse", "all_five")


def grid() -> list[tuple[str, dict | None]]:
    """(name, settings); None is unaccelerated ObCLIP. Every preset is also a grid point."""
    from ..acceleration.settings import PRESETS
    g: list[tuple[str, dict | None]] = [("obclip", None)]
    g += [(f"preset:{name}", dict(s)) for name, s in PRESETS.items()]
    g += [
        ("uncond_share", {"uncond_share": True}),
        ("batch_reuse", {"batch_reuse": True, **P}),
        ("attention_cache", {"attention_cache": True, **P}),
        ("block_skip", {"block_skip": True, **P}),
        ("deepcache_b0_s3", {"block_skip": True, "skip_mode": "deepcache", "cache_point": 4, "skip_point": 3}),
        ("paper_three", {"batch_reuse": True, "attention_cache": True, "block_skip": True, **P}),
        ("dedup+share", {"uncond_dedup": True, "uncond_share": True}),
        ("dedup+share+reuse", {**DSR, **P}),
        ("all_five", {**DSR, "attention_cache": True, "block_skip": True, **P}),
        ("dsr+attention_cache", {**DSR, "attention_cache": True, **P}),
        ("dsr+block_skip", {**DSR, "block_skip": True, **P}),
        ("dsr+block_skip_s3", {**DSR, "block_skip": True, "cache_point": 4, "skip_point": 3}),
        ("dsr+deepcache_b1_s3", {**DSR, "block_skip": True, "skip_mode": "deepcache", "skip_branch": 1,
                                 "cache_point": 4, "skip_point": 3}),
        ("dsr+deepcache_b0_s3_m2", {**DSR, "block_skip": True, "skip_mode": "deepcache", "cache_point": 4,
                                    "skip_point": 3, "skip_refresh_every": 2}),
        ("dsr+deepcache_b0_s3", {**DSR, "block_skip": True, "skip_mode": "deepcache", "cache_point": 4,
                                 "skip_point": 3}),
        ("dsr+deepcache_b0_s2", {**DSR, "block_skip": True, "skip_mode": "deepcache", "cache_point": 4,
                                 "skip_point": 2}),
        ("all_five_deepcache_b0_s3", {**DSR, "attention_cache": True, "block_skip": True,
                                      "skip_mode": "deepcache", "cache_point": 4, "skip_point": 3}),
        ("dsr+deepcache_b0_s3_m3", {**DSR, **DC, "skip_point": 3, "skip_refresh_every": 3}),
        ("dsr+deepcache_b0_s4_m2", {**DSR, **DC, "skip_point": 4, "skip_refresh_every": 2}),
        ("dedup+reuse+deepcache_b0_s3_m2", {"uncond_dedup": True, "batch_reuse": True, **DC, "skip_point": 3,
                                            "skip_refresh_every": 2}),
        ("dedup+reuse+deepcache_b0_s3_m3", {"uncond_dedup": True, "batch_reuse": True, **DC, "skip_point": 3,
                                            "skip_refresh_every": 3}),
    ]
    from ..acceleration.settings import AccelerationSettings
    seen, out = set(), []
    for name, s in g:  # a grid point equal to a preset is measured once, under the preset's name
        key = None if s is None else tuple(sorted(AccelerationSettings.from_dict(s).to_dict().items()))
        if key not in seen:
            seen.add(key)
            out.append((name, s))
    return out


def run(argv: list[str]) -> dict:
    from ..harness.host import import_comfy
    import_comfy()
    import torch
    with torch.inference_mode():
        return _run(argv)


def _run(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser(prog="python -m obclip_nodes.bench frontier")
    ap.add_argument("--captions", type=int, default=96, help="held-out mini-world captions for quality")
    ap.add_argument("--grid", choices=("full", "core", "presets"), default="full",
                    help="full: every grid point; core: presets, each of the first three strategies, the paper's "
                         "three, all five; presets: the presets only")
    ap.add_argument("--points", default="",
                    help="comma-separated grid point names measured besides the presets and unaccelerated ObCLIP "
                         "(replaces --grid)")
    ap.add_argument("--no-noise", action="store_true",
                    help="skip the noise estimate (unaccelerated ObCLIP again on other seeds)")
    ap.add_argument("--wall-size", type=int, default=256, help="SD1.5 image side for the wall-time column")
    ap.add_argument("--wall-n", type=int, default=N)
    ap.add_argument("--wall-grid", choices=("full", "presets"), default="presets",
                    help="settings timed on SD1.5 (every setting gets counted FLOPs either way)")
    ap.add_argument("--no-wall", action="store_true")
    ap.add_argument("--ncost-ns", default="1,2,6,12,30")
    ap.add_argument("--ncost-ks", default="5,10")
    ap.add_argument("--ncost-wall-size", type=int, default=64)
    ap.add_argument("--ncost-wall-ns", default="30", help="N timed for the wall column (FLOPs: every N)")
    ap.add_argument("--ncost-wall-ks", default="10")
    ap.add_argument("--no-ncost-wall", action="store_true")
    ap.add_argument("--quality-from", default="",
                    help="reuse the quality column of an earlier frontier JSON for the grid points it measured "
                         "(same resolved settings; the mini-world path is deterministic); the others are measured "
                         "now, beside unaccelerated ObCLIP, which must reproduce the earlier FD")
    ap.add_argument("--out", default="", help="write OUT.json and OUT.png (e.g. docs/acceleration-frontier)")
    args = ap.parse_args(argv)
    import comfy.utils
    comfy.utils.PROGRESS_BAR_ENABLED = False
    from ..acceleration.settings import PRESETS, AccelerationSettings
    t0 = time.time()
    seconds: dict = {}
    configs = grid()
    if args.points:
        keep = tuple(x.strip() for x in args.points.split(",") if x.strip())
        unknown = sorted(set(keep) - {n for n, _ in configs})
        if unknown:
            raise ValueError(f"unknown grid points {unknown}; known: {[n for n, _ in configs]}")
        configs = [(n, s) for n, s in configs if s is None or n.startswith("preset:") or n in keep]
    elif args.grid != "full":
        keep = CORE if args.grid == "core" else ()
        configs = [(n, s) for n, s in configs if s is None or n.startswith("preset:") or n in keep]
    for _, s in configs:
        if s is not None:
            AccelerationSettings.from_dict(s)  # a bad grid point fails before an hour of work

    missing: list = []
    if args.quality_from:
        quality = _quality_from(Path(args.quality_from), configs)
        missing = [(n, s) for n, s in configs if n not in quality]
        if missing:  # measured now, beside unaccelerated ObCLIP again (the paired interval needs its images)
            fresh = _quality([("obclip", None), *missing], quality["_captions"], noise=False)
            if fresh["obclip"]["fd"] != quality["obclip"]["fd"]:
                raise RuntimeError(f"unaccelerated FD {fresh['obclip']['fd']} differs from {args.quality_from}'s "
                                   f"{quality['obclip']['fd']}: the mini world changed; rerun without --quality-from")
            quality.update({n: fresh[n] for n, _ in missing})
    else:
        quality = _quality(configs, args.captions, noise=not args.no_noise)
    seconds["quality"] = round(time.time() - t0, 1)

    latent = (4, args.wall_size // 8, args.wall_size // 8)
    flops = {name: _flops_ratio(s, n=args.wall_n, k=K, latent=latent) for name, s in configs}
    seconds["flops"] = round(time.time() - t0 - sum(seconds.values()), 1)

    wall: dict = {}
    if not args.no_wall:
        timed = [(n, s) for n, s in configs if s is not None and (args.wall_grid == "full" or n.startswith("preset:"))]
        wall = _wall(timed, size=args.wall_size, n=args.wall_n)
        seconds["wall"] = round(time.time() - t0 - sum(seconds.values()), 1)

    base_q = quality["obclip"]
    points = []
    for name, s in configs:
        q = quality[name]
        points.append({"name": name, "settings": s or {}, "flops_ratio": flops[name],
                       "wall_ratio": 1.0 if s is None and wall else wall.get("ratios", {}).get(name),
                       "fd": q["fd"], "attr_acc": q["attr_acc"], "protected_acc": q["protected_acc"],
                       "all_correct": q["all_correct"], "fd_vs_unaccelerated": round(q["fd"] / base_q["fd"], 4),
                       "attr_acc_delta_points": round(100 * (q["attr_acc"] - base_q["attr_acc"]), 2),
                       "fd_vs_unaccelerated_ci90": q.get("fd_ratio_ci90"),
                       "server_flops_skipped_miniworld": q["skipped"],
                       "real_row_handoff_rel_drift_max": q["drift_max"]})
    front = _pareto(points)
    for p in points:
        p["pareto"] = p["name"] in front

    presets = []
    for name, s in PRESETS.items():
        p = next(x for x in points if x["name"] == f"preset:{name}" or (x["settings"] == s))
        presets.append({"name": name, "settings": AccelerationSettings.from_dict(s).to_dict(),
                        "wall_ratio": p["wall_ratio"], "flops_ratio": p["flops_ratio"],
                        "fd": p["fd"], "fd_unaccelerated": base_q["fd"],
                        "attr_acc": p["attr_acc"], "attr_acc_unaccelerated": base_q["attr_acc"],
                        "fd_vs_unaccelerated_ci90": p["fd_vs_unaccelerated_ci90"],
                        "protected_acc": p["protected_acc"], "protected_acc_unaccelerated": base_q["protected_acc"],
                        "on_pareto_front": p["pareto"]})

    ns = [int(x) for x in args.ncost_ns.split(",")]
    ks = [int(x) for x in args.ncost_ks.split(",")]
    timed_nk = {(n, k) for n in map(int, args.ncost_wall_ns.split(",")) for k in map(int, args.ncost_wall_ks.split(","))}
    ncost_load = [round(os.getloadavg()[0], 2)]
    n_cost = _n_cost(ns, ks, wall_size=None if args.no_ncost_wall else args.ncost_wall_size, timed=timed_nk)
    ncost_load.append(round(os.getloadavg()[0], 2))
    seconds["n_cost"] = round(time.time() - t0 - sum(seconds.values()), 1)

    goals = _goals(presets, n_cost)
    result = {
        "schedule": {"T": T, "k": K, "cfg": CFG, "sampler": "euler/normal", "n_candidates": N},
        "ran": {"captions": quality["_captions"], "grid": args.points or args.grid, "grid_points": len(configs),
                "quality_from": args.quality_from or None,
                "quality_measured_in_this_run": [n for n, _ in configs] if not args.quality_from
                else ["obclip (check)", *(n for n, _ in missing)] if missing else [],
                "wall": None if args.no_wall else {"arch": "SD1.5 UNet (published architecture, seeded random "
                                                   "weights, float32, CPU)", "size": args.wall_size,
                                                   "n": args.wall_n, "timed": args.wall_grid,
                                                   "baseline_s": wall.get("baseline_s"),
                                                   "baseline_spread": wall.get("baseline_spread"),
                                                   "seconds": wall.get("seconds"),
                                                   "load_average_1min_before_after": wall.get("load")},
                "flops_shape": {"arch": "SD1.5", "latent": list(latent), "n": args.wall_n, "k": K},
                "n_cost": {"ns": ns, "ks": ks, "T": NCOST_T, "flops_shape": "SD1.5 512x512",
                           "wall_size": None if args.no_ncost_wall else args.ncost_wall_size,
                           "wall_timed_n_k": sorted(timed_nk) if not args.no_ncost_wall else [],
                           "load_average_1min_before_after": None if args.no_ncost_wall else ncost_load},
                "device": "CPU (no GPU lent)"},
        "unaccelerated": {k: base_q[k] for k in ("fd", "attr_acc", "protected_acc", "all_correct")},
        "quality_noise": quality.get("_noise"),
        "presets": presets, "points": points, "pareto_front": front, "n_cost": n_cost, "goals": goals,
    }
    seconds["total"] = round(time.time() - t0, 1)
    result["seconds"] = seconds
    if args.out:
        import json
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps({"benchmark": "frontier", **result}, indent=2) + "\n")
        plot(result, out.with_suffix(".png"))
        result["files"] = [str(out.with_suffix(".json")), str(out.with_suffix(".png"))]
    return result


# ---- quality: the mini world ------------------------------------------------------------------------
def _quality(configs, n_captions: int, noise: bool = True) -> dict:
    import torch
    import comfy.sd
    from ..acceleration import AccelerationSettings, accelerate
    from ..miniworld import caption
    from ..miniworld.arch import IMAGE_SIZE, checkpoint_name
    from ..miniworld.comfy_family import WEIGHTS_DIR, register
    from ..miniworld.train import split
    from ..privacy import expand_prompt
    import comfy.sample
    import comfy.samplers
    from ..sampling import encode_batch, partial_sample
    from ..sampling.finish import handoff_sigmas
    import numpy as np
    from ..miniworld import features, render
    from .utility import score

    register()
    (cm, cc, _), (dm, dc, vae) = (comfy.sd.load_checkpoint_guess_config(str(WEIGHTS_DIR / checkpoint_name(r)))[:3]
                                  for r in ("cloud", "device"))
    held = split()[1]
    evals = held[::max(1, len(held) // n_captions)][:n_captions]
    texts = [caption(p) for p in evals]
    exps = [expand_prompt(t, attributes=["gender", "age"], lexicon="paper") for t in texts]
    if any(e.n != N for e in exps):
        raise RuntimeError(f"expected N = {N} candidates for every caption, got {sorted({e.n for e in exps})}")
    pos = [encode_batch(cc, e.candidates) for e in exps]
    neg_c, neg_d = encode_batch(cc, [""]), encode_batch(dc, [""])
    dev_pos = encode_batch(dc, texts)
    out: dict = {"_captions": len(evals)}
    plain_rows = None
    feats: dict = {}
    # the noise estimate: unaccelerated ObCLIP again, every caption on another seed
    runs = [(name, s, 0) for name, s in configs] + ([("_reseeded", None, RESEED)] if noise else [])
    for name, s, seed_offset in runs:
        model, rep = (cm, None) if s is None else accelerate(cm, AccelerationSettings.from_dict(s), n_candidates=N)
        rows, skipped, ho0 = [], [], None
        for i, e in enumerate(exps):
            lat, ho = partial_sample(model, pos[i], neg_c, n=N, width=IMAGE_SIZE, height=IMAGE_SIZE, seed=seed_offset + i, steps=T,
                                     cloud_steps=K, cfg=CFG, sampler="euler", scheduler="normal")
            rows.append(lat["samples"][e.real_index:e.real_index + 1])
            ho0 = ho0 or ho
            if rep is not None:
                skipped.append(rep["last_run"]["fraction_skipped"])
        x = torch.cat(rows)
        if s is None and not seed_offset:
            plain_rows = x
        drift = max(float((x[i] - plain_rows[i]).norm() / plain_rows[i].norm()) for i in range(len(rows)))
        # euler draws no step noise, so the device finishes every caption's real row in one batch (the
        # hand-offs differ only in the seed, which euler does not use); every setting is finished alike
        tail = handoff_sigmas(dm, {"samples": x[:1]}, ho0)  # checks the pair on one row, as the Finisher does
        fin = comfy.sample.sample_custom(dm, torch.zeros_like(x), CFG, comfy.samplers.sampler_object("euler"), tail,
                                         dev_pos, neg_d, x, seed=0)
        imgs = vae.decode(fin).float().clamp(0, 1).numpy()
        feats[name] = np.stack([features(im) for im in imgs])
        out[name] = {**score(imgs, evals), "skipped": round(sum(skipped) / len(skipped), 4) if skipped else 0.0,
                     "drift_max": round(drift, 5)}
    ref = np.stack([features(render(p)) for p in evals])
    base = next(n for n, s in configs if s is None)
    for name in feats:
        out[name]["fd_ratio_ci90"] = _fd_ratio_ci(feats[name], feats[base], ref)
    if noise:
        r = out.pop("_reseeded")
        out["_noise"] = {
            "what": f"unaccelerated ObCLIP on the same captions, seeds + {RESEED}: how far FD and accuracy move "
                    "with the seeds alone; fd_vs_unaccelerated_ci90 of each point is a paired bootstrap over "
                    f"captions ({BOOT} resamples, same seeds)",
            "fd_reseeded": r["fd"], "fd_reseeded_vs_unaccelerated": round(r["fd"] / out[base]["fd"], 4),
            "fd_reseeded_vs_unaccelerated_ci90": r["fd_ratio_ci90"],
            "attr_acc_reseeded": r["attr_acc"],
            "attr_acc_reseeded_delta_points": round(100 * (r["attr_acc"] - out[base]["attr_acc"]), 2),
            "protected_acc_reseeded": r["protected_acc"]}
    return out


RESEED, BOOT = 100_000, 400


def _fd_ratio_ci(a, b, ref) -> list[float]:
    """5th and 95th percentile of FD(a)/FD(b) over the same bootstrap resamples of the captions (paired)."""
    import numpy as np
    from .utility import _frechet
    rng = np.random.default_rng(0)
    r = []
    for _ in range(BOOT):
        i = rng.integers(0, len(ref), len(ref))
        r.append(_frechet(a[i], ref[i]) / _frechet(b[i], ref[i]))
    lo, hi = np.percentile(r, [5, 95])
    return [round(float(lo), 4), round(float(hi), 4)]


def _key(s: dict | None):
    from ..acceleration.settings import AccelerationSettings
    return None if not s else tuple(sorted(AccelerationSettings.from_dict(s).to_dict().items()))


def _quality_from(path: Path, configs) -> dict:
    """The quality column of an earlier run, matched by resolved settings (a grid point's name may differ)."""
    import json
    old = json.loads(path.read_text())
    by = {_key(p["settings"] or None): p for p in old["points"]}
    out: dict = {"_captions": old["ran"]["captions"]}
    for name, s in configs:
        p = by.get(_key(s))
        if p is not None:
            out[name] = {k: p[k] for k in ("fd", "attr_acc", "protected_acc", "all_correct")}
            out[name].update(skipped=p["server_flops_skipped_miniworld"], drift_max=p["real_row_handoff_rel_drift_max"],
                             fd_ratio_ci90=p.get("fd_vs_unaccelerated_ci90"))
    if old.get("quality_noise"):
        out["_noise"] = old["quality_noise"]
    if "obclip" not in out:
        raise ValueError(f"{path} has no unaccelerated point")
    return out


# ---- speed: counted FLOPs and SD1.5 wall time ------------------------------------------------------------
_META: dict = {}


def _meta_sd15():
    from ..acceleration.costs import REAL_UNETS, meta_unet
    from ..acceleration.simulate import install_attention
    if "sd15" not in _META:
        u = meta_unet(REAL_UNETS["sd15"])
        install_attention(u)
        _META["sd15"] = u
    return _META["sd15"], REAL_UNETS["sd15"]


def _count(s: dict | None, *, n: int, k: int, latent: tuple) -> dict:
    from ..acceleration.settings import AccelerationSettings
    from ..acceleration.simulate import count_run
    unet, cfg = _meta_sd15()
    return count_run(unet, cfg, None if s is None else AccelerationSettings.from_dict(s), n=n, k=k, latent=latent)


def _flops(s: dict | None, *, n: int, k: int, latent: tuple) -> float:
    return _count(s, n=n, k=k, latent=latent)["total_flops"]


def _flops_ratio(s, *, n, k, latent) -> float:
    return round(_flops(s, n=n, k=k, latent=latent) / _flops(None, n=n, k=k, latent=latent), 4)


def sd15_model(seed: int = 0):
    """A ComfyUI MODEL of the published SD1.5 UNet architecture with seeded random float32 weights
    (norm weights around 1, never 0), built in memory: the wall-time column needs the real compute."""
    import torch
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models
    from ..acceleration.costs import REAL_UNETS
    mc = comfy.supported_models.SD15(dict(REAL_UNETS["sd15"]))
    mc.set_inference_dtype(torch.float32, None)
    model = mc.get_model({}, device="cpu")
    g = torch.Generator().manual_seed(seed)
    for name, p in model.diffusion_model.named_parameters():
        if p.ndim == 1:
            v = (1.0 + 0.1 * torch.randn(p.shape, generator=g)) if name.endswith("weight") \
                else 0.02 * torch.randn(p.shape, generator=g)
        else:
            v = torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel())
        p.data = v.float()
    dev = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=dev, offload_device=dev)


def _conds(n: int, seed: int = 1):
    import torch
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(n, 77, 768, generator=g), {}]], [[torch.randn(1, 77, 768, generator=g), {}]]


def _time_request(model, *, n, size, steps, k) -> float:
    from ..sampling import partial_sample
    pos, neg = _conds(n)
    t = time.perf_counter()
    partial_sample(model, pos, neg, n=n, width=size, height=size, seed=0, steps=steps, cloud_steps=k, cfg=CFG,
                   sampler="euler", scheduler="normal")
    return time.perf_counter() - t


def _warm(model, n, size):
    from ..acceleration.costs import costs_for
    costs_for(model.model, (4, size // 8, size // 8), 77)  # the report's cost table, built once per shape
    _time_request(model, n=n, size=size, steps=T, k=1)


def _wall(timed, *, size: int, n: int) -> dict:
    """Interleaved: unaccelerated, each setting, unaccelerated again; ratio to the mean unaccelerated time."""
    from ..acceleration import AccelerationSettings, accelerate
    model = sd15_model()
    _warm(model, n, size)
    t_start = time.time()
    load = [round(os.getloadavg()[0], 2)]
    base = [_time_request(model, n=n, size=size, steps=T, k=K)]
    times = {}
    for name, s in timed:
        m, _ = accelerate(model, AccelerationSettings.from_dict(s), n_candidates=n)
        times[name] = _time_request(m, n=n, size=size, steps=T, k=K)
    base.append(_time_request(model, n=n, size=size, steps=T, k=K))
    b = statistics.mean(base)
    return {"baseline_s": [round(x, 2) for x in base], "baseline_spread": round((max(base) - min(base)) / b, 4),
            "ratios": {name: round(t / b, 4) for name, t in times.items()},
            "seconds": {name: round(t, 2) for name, t in times.items()},
            "total_s": round(time.time() - t_start, 1), "load": load + [round(os.getloadavg()[0], 2)]}


# ---- the cost of N ---------------------------------------------------------------------------------------
def _n_cost(ns, ks, wall_size, timed=frozenset()) -> list[dict]:
    from ..acceleration.costs import REAL_UNETS, block_costs, meta_unet
    from ..acceleration.settings import PRESETS
    lat512 = (4, 64, 64)
    row = block_costs(meta_unet(REAL_UNETS["sd15"]), REAL_UNETS["sd15"], lat512, 77)["total"]
    cloud_only_flops = NCOST_T * 2 * row
    variants = [("unaccelerated", None)] + list(PRESETS.items())
    model = None
    cloud_only_s = None
    if wall_size:
        model = sd15_model()
        _warm(model, 1, wall_size)
        cloud_only_s = [_time_request(model, n=1, size=wall_size, steps=NCOST_T, k=NCOST_T)]
    # counted once per (N, setting) over max(k) steps: a run of k steps is the first k steps of a longer one
    # (the strategies' schedules depend on the step index only); unaccelerated: 2N rows a step
    per_step = {}
    for n in ns:
        for name, s in variants:
            per_step[n, name] = ([2 * n * row] * max(ks) if s is None else
                                 _count(s, n=n, k=max(ks), latent=lat512)["per_step_flops"])
    out = []
    for k in ks:
        for n in ns:
            for name, s in variants:
                entry = {"n": n, "k": k, "preset": name,
                         "flops_vs_cloud_only": round(sum(per_step[n, name][:k]) / cloud_only_flops, 4),
                         "cost_vs_cloud_only": None}
                if model is not None and (n, k) in timed:
                    from ..acceleration import AccelerationSettings, accelerate
                    m = model if s is None else accelerate(model, AccelerationSettings.from_dict(s), n_candidates=n)[0]
                    entry["wall_s"] = round(_time_request(m, n=n, size=wall_size, steps=NCOST_T, k=k), 3)
                out.append(entry)
    if model is not None:
        c = statistics.mean(cloud_only_s)
        for e in out:
            if "wall_s" in e:
                e["cost_vs_cloud_only"] = round(e["wall_s"] / c, 4)
                e["cloud_only_s"] = round(c, 3)
    return out


# ---- summary ---------------------------------------------------------------------------------------------
def _pareto(points) -> list[str]:
    """Names not dominated in (speed, FD): speed is the wall ratio when every point was timed, else counted
    FLOPs (never a mix of the two)."""
    key = "wall_ratio" if all(p["wall_ratio"] is not None for p in points) else "flops_ratio"

    def speed(p):
        return p[key]
    front = []
    for p in points:
        if not any((speed(q) <= speed(p) and q["fd"] <= p["fd"]) and (speed(q) < speed(p) or q["fd"] < p["fd"])
                   for q in points if q is not p):
            front.append(p["name"])
    return front


def _goals(presets, n_cost) -> dict:
    by = {p["name"]: p for p in presets}
    g: dict = {}
    b = by.get("balanced")
    if b:
        g["balanced_wall_ratio"] = b["wall_ratio"]
        g["balanced_fd_vs_unaccelerated"] = round(b["fd"] / b["fd_unaccelerated"], 4)
        g["balanced_attr_acc_delta_points"] = round(100 * (b["attr_acc"] - b["attr_acc_unaccelerated"]), 2)
        g["balanced_met"] = (b["wall_ratio"] is not None and b["wall_ratio"] <= 0.50
                             and b["fd"] <= 1.10 * b["fd_unaccelerated"]
                             and b["attr_acc"] >= b["attr_acc_unaccelerated"] - 0.005)
    f = by.get("fastest")
    if f:
        g["fastest_wall_ratio"] = f["wall_ratio"]
        g["fastest_met"] = f["wall_ratio"] is not None and f["wall_ratio"] <= 0.35
    at = [e for e in n_cost if e["n"] == 30 and e["k"] == 10 and e["preset"] != "unaccelerated"]
    if at:
        best = min(at, key=lambda e: e["flops_vs_cloud_only"])
        g["n30_k10_best_preset"] = best["preset"]
        g["n30_k10_flops_vs_cloud_only"] = best["flops_vs_cloud_only"]
        g["n30_k10_wall_vs_cloud_only"] = best["cost_vs_cloud_only"]
        g["n30_k10_met"] = best["flops_vs_cloud_only"] <= 3.0
    return g


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = result["points"]
    base_fd = result["unaccelerated"]["fd"]
    nc = result["n_cost"]
    fig, axes = plt.subplots(1, 2 if nc else 1, figsize=(14 if nc else 8, 6), squeeze=False)
    a, b = axes[0][0], (axes[0][1] if nc else None)
    timed = all(p["wall_ratio"] is not None for p in pts)
    xkey = "wall_ratio" if timed else "flops_ratio"
    for p in pts:
        x, y = p[xkey], p["fd"] / base_fd
        preset = p["name"].startswith("preset:")
        a.scatter([x], [y], s=70 if preset else 30, marker="*" if preset else "o",
                  c="tab:red" if preset else ("tab:blue" if p["pareto"] else "tab:gray"), zorder=3)
        if preset or p["pareto"]:
            a.annotate(p["name"].replace("preset:", ""), (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points",
                       weight="bold" if preset else "normal")
        if preset and p["wall_ratio"] is not None and not timed:
            a.scatter([p["wall_ratio"]], [y], marker="x", c="tab:red", zorder=3)
    fr = sorted((p for p in pts if p["pareto"]), key=lambda p: p[xkey])
    a.plot([p[xkey] for p in fr], [p["fd"] / base_fd for p in fr], "-", c="tab:blue", lw=1, label="Pareto front")
    a.axhline(1.10, ls=":", c="tab:green", label="FD +10 %")
    a.axvline(0.50, ls=":", c="tab:orange", label="0.50x")
    a.axvline(0.35, ls=":", c="tab:purple", label="0.35x")
    shape = result["ran"]["flops_shape"]
    a.set_xlabel(("server wall time" if timed else f"counted server FLOPs (SD1.5 {8 * shape['latent'][1]}^2, "
                  f"N={shape['n']}, k={shape['k']})") + " / unaccelerated ObCLIP"
                 + ("" if timed else "\n(red x: a preset's measured wall-time ratio, same FD)"))
    a.set_yscale("log")
    a.set_ylabel(f"mini-world FD / unaccelerated ({base_fd:.4f}); {result['ran']['captions']} captions")
    a.set_title("Cache Accelerator: speed vs quality (stars: presets; blue: Pareto front)")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    if b is None:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    for k, ls in zip(sorted({e["k"] for e in nc}), ("--", "-", "-.")):
        for name, c in zip(["unaccelerated", "exact", "balanced", "fastest"],
                           ("black", "tab:gray", "tab:blue", "tab:red")):
            es = sorted((e for e in nc if e["k"] == k and e["preset"] == name), key=lambda e: e["n"])
            if es:
                b.plot([e["n"] for e in es], [e["flops_vs_cloud_only"] for e in es], ls, c=c, marker="o", ms=3,
                       label=f"{name}, k={k} (FLOPs)")
                tw = [e for e in es if e["cost_vs_cloud_only"] is not None]
                if tw:
                    b.plot([e["n"] for e in tw], [e["cost_vs_cloud_only"] for e in tw], ":", c=c, marker="x", ms=7,
                           mew=2, label=f"{name}, k={k} (measured wall, {result['ran']['n_cost']['wall_size']}^2 CPU)")
    b.axhline(3.0, ls=":", c="tab:green", label="3x one cloud-only image")
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xticks([1, 2, 6, 12, 30], ["1", "2", "6", "12", "30"])
    b.set_xlabel("N candidates")
    b.set_ylabel("server cost per request / one cloud-only image (T=25)")
    b.set_title("The cost of N (FLOPs: SD1.5 512^2)")
    b.legend(fontsize=7, ncol=2)
    b.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
