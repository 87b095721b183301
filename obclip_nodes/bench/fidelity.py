"""Fidelity of the accelerated cloud path against the unaccelerated one, on the generated models.

python -m obclip_nodes.bench fidelity [--arch sd15] [--pairs 5:4,10:6] [--size 32] [--T 25]

For each (k, N) and each strategy added in turn (the same ladder as the FLOPs bench): the cloud
hand-off latents of all N rows against the unaccelerated run (worst and mean PSNR over rows, max
abs diff; every row may be the real one, so the worst row is the honest number), and the final
decoded image of one candidate finished by the device model (row 1: a fixed, non-pivot row) against
the same candidate finished from the unaccelerated latent. Wall time is the cloud run's, as a ratio
to the unaccelerated run in the same process.

CAVEAT: the models are random-weight replicas of published architectures (no weights can be downloaded here), so these
numbers show that the code paths are sane and how far outputs move, not image quality.
"""
from __future__ import annotations

import argparse
import math
import time

from .flops import LADDER, SETTINGS


def _psnr(a, b, peak):
    mse = float(((a - b) ** 2).mean())
    return 999.0 if mse == 0 else round(10 * math.log10(peak * peak / mse), 2)  # 999: bit-identical


def run(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser(prog="python -m obclip_nodes.bench fidelity")
    ap.add_argument("--arch", default="sd15")
    ap.add_argument("--pairs", default="5:4,10:6", help="k:N pairs (the paper's two main settings)")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--T", type=int, default=25)
    ap.add_argument("--cfg", type=float, default=7.0)
    args = ap.parse_args(argv)
    from ..harness.host import import_comfy
    import_comfy()
    import comfy.sd
    import comfy.utils
    comfy.utils.PROGRESS_BAR_ENABLED = False
    from ..acceleration import AccelerationSettings, accelerate
    from ..harness.pairs import SD15_PAIR, SDXL_PAIR, ensure
    from ..sampling import encode_batch, finish_sample, partial_sample
    prompts = ["a photo of a young man", "a photo of a young woman", "a photo of an old man",
               "a photo of an old woman", "a photo of a middle-aged man", "a photo of a middle-aged woman",
               "a photo of a young boy", "a photo of a young girl"]
    out: dict = {"caveat": "random-weight replicas of published architectures (harness/pairs.py): code-path sanity and drift, not image quality",
                 "size": args.size, "T": args.T, "cfg": args.cfg}
    for arch in args.arch.split(","):
        pair = {"sd15": SD15_PAIR, "sdxl": SDXL_PAIR}[arch]
        (cm, cc, vae), (dm, dc, _) = (comfy.sd.load_checkpoint_guess_config(str(p))[:3] for p in ensure(pair))
        res: dict = {"models": list(pair)}
        for pair_ in args.pairs.split(","):
            k, n = map(int, pair_.split(":"))
            if True:
                pos, neg = encode_batch(cc, prompts[:n]), encode_batch(cc, ["blurry"])

                def cloud(model):
                    t = time.perf_counter()
                    lat, ho = partial_sample(model, pos, neg, n=n, width=args.size, height=args.size, seed=3,
                                             steps=args.T, cloud_steps=k, cfg=args.cfg, sampler="euler",
                                             scheduler="normal")
                    return lat["samples"], ho, time.perf_counter() - t

                def final(lat, ho):
                    row = 1 if n > 1 else 0
                    f = finish_sample(dm, encode_batch(dc, [prompts[row]]), encode_batch(dc, ["blurry"]),
                                      {"samples": lat[row:row + 1]}, ho, cfg=args.cfg)["samples"]
                    return vae.decode(f).float().clamp(0, 1)

                cloud(cm)  # warm-up (model load, cost tables) outside the timings
                ref, ho, t_ref = cloud(cm)
                ref_img = final(ref, ho)
                peak = float(ref.abs().max())
                entry: dict = {"k": k, "n": n, **SETTINGS[k], "unaccelerated_cloud_s": round(t_ref, 2)}
                on: dict = {}
                for s in LADDER:
                    on[s] = True
                    m, rep = accelerate(cm, AccelerationSettings(**on, **SETTINGS[k]), n_candidates=n)
                    lat, ho2, t = cloud(m)
                    rows = [_psnr(lat[i], ref[i], peak) for i in range(n)]
                    img = final(lat, ho2)
                    entry["+" + s] = {"latent_psnr_worst_row": min(rows),
                                      "latent_psnr_mean_changed_rows": round(
                                          sum(r for r in rows if r < 999) / max(1, sum(r < 999 for r in rows)), 2),
                                      "rows_bit_identical": sum(r == 999.0 for r in rows),
                                      "latent_max_abs_diff": round(float((lat - ref).abs().max()), 5),
                                      "image_psnr_row1": _psnr(img, ref_img, 1.0),
                                      "image_max_abs_diff_row1": round(float((img - ref_img).abs().max()), 5),
                                      "cloud_wall_ratio": round(t / t_ref, 3),
                                      "flops_skipped": rep["last_run"]["fraction_skipped"]}
                entry["obclip_accel"] = entry["+" + LADDER[-1]]
                res[f"k{k}_n{n}"] = entry
        out[arch] = res
    return out
