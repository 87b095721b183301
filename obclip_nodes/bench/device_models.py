"""python -m obclip_nodes.bench device-models [--only a,b] [--with-sdxl-base] [--rows FILE]

Every paper device model (and the SD1.5/SDXL clouds) as a replica of its published configs, loaded
two ways: the ObCLIP Device Model Loader (diffusers folder) and convert-device + the stock Load
Checkpoint path. Each is compared with diffusers (UNet forward, 8x8 latent, two timesteps; VAE decode)
and transformers (text encoders): max relative difference. Also the UNet parameter count against the
model card, and load times. The SDXL base (2.6B UNet: about 20 GB for ComfyUI's fp32 copy plus the
fp32 reference) is left out unless --with-sdxl-base is given.
"""
from __future__ import annotations

import gc
import json
import tempfile
import time
from pathlib import Path

DEFAULT = ("sd15", "bk-sdm-base", "bk-sdm-small", "bk-sdm-tiny", "small-sd", "tiny-sd",
           "vega", "koala-700m", "koala-1b", "ssd-1b")
TOL = 1e-4


def _one(name: str, work: Path, comfy_root: Path) -> dict:
    from ..device_models import loader
    from ..device_models.__main__ import convert_device
    from ..harness import equality, test_models

    spec = test_models.spec(name)
    family = spec["family"]
    t0 = time.perf_counter()
    src = test_models.ensure_diffusers(name)
    build_s = time.perf_counter() - t0
    ref = equality.unet_reference(src, family)  # references first, freed before ComfyUI loads: lower peak
    te_ref = equality.text_encoder_reference(src, family)
    row = {"name": name, "format": spec["published_as"], "family": family, "replica_build_s": round(build_s, 1),
           "params_card": spec["params_card"]["card"]}

    loaded = loader.load(src)
    node = equality.compare(loaded.model, loaded.clip, loaded.vae, src, family, ref, te_ref)
    row.update(loads_node=True, detected_as=loaded.detected_as, load_node_s=round(loaded.seconds, 1),
               params=node["params"])
    del loaded
    gc.collect()

    out = work / f"{name}.safetensors"
    t0 = time.perf_counter()
    # writes, then verifies by loading it back exactly as Load Checkpoint does; we keep that load
    detected, (model, clip, vae), load_s = convert_device(src, out, str(comfy_root), keep_loaded=True)
    row["convert_s"] = round(time.perf_counter() - t0, 1)
    row["load_converted_s"] = round(load_s, 1)
    row["converted_detected_as"] = detected
    conv = equality.compare(model, clip, vae, src, family, ref, te_ref)
    del model, clip, vae
    out.unlink()
    gc.collect()
    row["loads_converted"] = row["converted_detected_as"] == row["detected_as"]
    for key in ("unet_rel_diff", "text_encoder_rel_diff", "vae_rel_diff"):
        row[key] = max(node[key], conv[key])
    row["equal_within_1e-4"] = all(row[k] <= TOL for k in ("unet_rel_diff", "text_encoder_rel_diff", "vae_rel_diff"))
    row["params_match_card"] = _card_matches(spec["params_card"], row["params"])
    return row


def _card_matches(card: dict, params: int) -> bool:
    import re
    if "unet" in card:
        return params == card["unet"]
    number, unit = re.fullmatch(r"([\d.]+)([MB])", card["unet_rounded"]).groups()
    scale = 1e9 if unit == "B" else 1e6
    if "tolerance" in card:
        return abs(params / (float(number) * scale) - 1) <= card["tolerance"]
    decimals = len(number.split(".")[1]) if "." in number else 0
    return round(params / scale, decimals) == float(number)


def _save(rows: list[dict], path: Path | None) -> None:
    if path is not None:
        path.write_text(json.dumps(rows, indent=1))


def run(argv: list[str]) -> dict:
    from ..harness.host import import_comfy
    names = list(DEFAULT)
    if "--only" in argv:
        names = argv[argv.index("--only") + 1].split(",")
    if "--with-sdxl-base" in argv:
        names.append("sdxl")
    # --rows FILE keeps finished rows across runs (a long run on a shared machine can be resumed)
    rows_file = Path(argv[argv.index("--rows") + 1]) if "--rows" in argv else None
    done = json.loads(rows_file.read_text()) if rows_file and rows_file.exists() else []
    root = import_comfy()
    import comfy.utils
    comfy.utils.PROGRESS_BAR_ENABLED = False
    import torch
    rows = [r for r in done if r["name"] in names and "error" not in r]
    with tempfile.TemporaryDirectory(prefix="obclip-device-models-") as tmp:
        for name in names:
            if any(r["name"] == name for r in rows):
                continue
            try:
                rows.append(_one(name, Path(tmp), root))
                _save(rows, rows_file)
            except Exception as e:  # noqa: BLE001 -- one model failing is a row of the table, not a crash
                rows.append({"name": name, "loads_node": False, "loads_converted": False,
                             "error": f"{type(e).__name__}: {e}"})
            gc.collect()
    rows.sort(key=lambda r: names.index(r["name"]))
    ok = all(r.get("equal_within_1e-4") and r.get("loads_converted") and r.get("params_match_card") for r in rows)
    return {"ok": ok, "tolerance": TOL, "torch": torch.__version__, "comfyui": str(root),
            "inputs": "UNet: 2x4x8x8 latent, 77-token random context, timesteps 999 and 261 (SDXL: text_embeds "
                      "and time_ids too); text: one prompt, ComfyUI's tokens; VAE: decode of a 1x4x8x8 latent; "
                      "float32 on the CPU; replicas store fp16 weights as the Hub's fp16 variants do",
            "skipped": [] if "sdxl" in names else [("sdxl (2.6B UNet: pass --with-sdxl-base on a machine with "
                                                     "more than 24 GB)")],
            "models": rows}
