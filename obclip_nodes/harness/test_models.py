"""Random-weight replicas of published models, built from their published config.json files.

Weights cannot be downloaded here, so tests run on replicas: the exact published architecture
(tests/data/model_configs/, each file citing its source) with seeded random weights.

  ensure_diffusers(name) -> Path   a diffusers folder written with save_pretrained (safetensors, fp16),
                                   as the model is published on the Hub
  ensure(name) -> Path             the same weights as one single-file checkpoint in the key layout real
                                   single files use (model.diffusion_model.*, cond_stage_model.* /
                                   conditioner.embedders.*, first_stage_model.*), written by the pack's
                                   host-independent converter (obclip_nodes/device_models/convert.py)

Both are cached under REPO/.cache/test-models/ (built at test time, never committed) and are
byte-identical across runs: every tensor comes from its own generator seeded by crc32(name) ^ SEED.
Norm weights are 1 + N(0, 0.1), never 0 (a UNet with zero norms outputs zeros and every comparison
would pass for nothing), and biases are small random values so a swapped bias shows up.

Usage: python -m obclip_nodes.harness.test_models [--diffusers] NAME ...
"""
from __future__ import annotations

import gc
import json
import math
import os
import shutil
import sys
import zlib
from pathlib import Path

from .host import CACHE, REPO

SEED = 20251005
GENERATOR_VERSION = 1  # bump when anything below changes the bytes
CONFIGS = REPO / "tests" / "data" / "model_configs"
SD1 = ("sd15", "bk-sdm-base", "bk-sdm-small", "bk-sdm-tiny", "small-sd", "tiny-sd")
SDXL = ("sdxl", "koala-700m", "koala-1b", "ssd-1b", "vega")
NAMES = SD1 + SDXL
REFUSAL_ONLY = ("bk-sdm-v2-small",)  # SD2.1-based: built only to test the loader's refusal


def spec(name: str) -> dict:
    path = CONFIGS / f"{name}.json"
    if not path.exists():
        raise KeyError(f"unknown test model {name!r}; known: {', '.join(NAMES + REFUSAL_ONLY)}")
    return json.loads(path.read_text())


def card_matches(name: str, params: int) -> bool:
    """The UNet parameter count against the model card, at the card's own precision.

    Cards print counts truncated (KOALA-700M: 782,822,724 -> "782M") or rounded ("0.58B"); either reading
    of our count must give the card's figure. A card that is looser than that says so in its data file
    ("tolerance", with the reason)."""
    import re
    card = spec(name)["params_card"]
    if "unet" in card:
        return params == card["unet"]
    number, unit = re.fullmatch(r"([\d.]+)([MB])", card["unet_rounded"]).groups()
    scale = 1e9 if unit == "B" else 1e6
    if "tolerance" in card:
        return abs(params / (float(number) * scale) - 1) <= card["tolerance"]
    decimals = len(number.split(".")[1]) if "." in number else 0
    value = params / scale
    return float(number) in (round(value, decimals), math.floor(value * 10 ** decimals) / 10 ** decimals)


def component_config(ref: str) -> dict:
    return json.loads((CONFIGS / ref).read_text())["config"]


def cache_dir() -> Path:
    import torch
    return CACHE / "test-models" / f"v{GENERATOR_VERSION}-torch{torch.__version__.split('+')[0]}"


def _fill(name: str, t):
    import torch
    g = torch.Generator().manual_seed((zlib.crc32(name.encode()) ^ SEED) & 0xFFFFFFFF)
    short = name.rsplit(".", 1)[-1]
    if not t.is_floating_point():
        return torch.arange(t.shape[-1]).expand(t.shape).to(t.dtype).contiguous()  # position ids
    if t.ndim == 1 and short == "weight":  # norms: around 1, never 0
        return (1.0 + 0.1 * torch.randn(t.shape, generator=g)).to(torch.float16)
    if short == "bias" or t.ndim == 1:
        return (0.02 * torch.randn(t.shape, generator=g)).to(torch.float16)
    std = 0.02 if "embedding" in name else 1.0 / math.sqrt(t[0].numel())
    return (std * torch.randn(t.shape, generator=g)).to(torch.float16)


def _randomize(module) -> None:
    """Give a module built on the meta device seeded random fp16 weights, in place."""
    state = {k: _fill(k, v) for k, v in module.state_dict().items()}
    module.load_state_dict(state, assign=True)


def _published_clip_keys(path: Path) -> None:
    """Hub text encoders store every tower weight under text_model.*; transformers 5 saves
    CLIPTextModel without that prefix. Rewrite the file in the published layout."""
    from safetensors.torch import load_file, save_file
    sd = load_file(str(path))
    fixed = {k if k.startswith("text_model.") or k == "text_projection.weight" else "text_model." + k: v
             for k, v in sd.items()}
    save_file(fixed, str(path), metadata={"format": "pt"})


def _write_diffusers(name: str, out: Path) -> None:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    s = spec(name)
    sdxl = s["family"] == "sdxl"
    out.mkdir(parents=True)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(s["unet"])
    _randomize(unet)
    unet.save_pretrained(out / "unet", safe_serialization=True)
    del unet
    gc.collect()
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(component_config(s["vae"]))
    _randomize(vae)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    del vae
    components = {"unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    encoders = [("text_encoder", s["text_encoder"], CLIPTextModel)] if s.get("text_encoder") else []
    if s.get("text_encoder_2"):
        encoders.append(("text_encoder_2", s["text_encoder_2"], CLIPTextModelWithProjection))
    for folder, ref, cls in encoders:
        cfg = CLIPTextConfig(**{k: v for k, v in component_config(ref).items() if k != "architectures"})
        with torch.device("meta"):
            te = cls(cfg)
        _randomize(te)
        te.save_pretrained(out / folder, safe_serialization=True)
        _published_clip_keys(out / folder / "model.safetensors")
        components[folder] = ["transformers", cls.__name__]
        del te
        gc.collect()
    sched = {"_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "beta_start": 0.00085, "num_train_timesteps": 1000, "prediction_type": "epsilon",
             "steps_offset": 1, "timestep_spacing": "leading"}
    if s["family"] == "sd2":
        sched["prediction_type"] = "epsilon"  # bk-sdm-v2-small is the 512 base model (epsilon)
    (out / "scheduler").mkdir()
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(sched, indent=2))
    pipeline = "StableDiffusionXLPipeline" if sdxl else "StableDiffusionPipeline"
    index = {"_class_name": pipeline, "_diffusers_version": "replica",
             "obclip_replica": f"{name}; seed={SEED}; architecture from tests/data/model_configs/{name}.json",
             "scheduler": ["diffusers", "EulerDiscreteScheduler"], **components}
    (out / "model_index.json").write_text(json.dumps(index, indent=2))


def ensure_diffusers(name: str) -> Path:
    """The replica as a diffusers folder (built once, atomically)."""
    spec(name)
    path = cache_dir() / "diffusers" / name
    if (path / "model_index.json").exists():
        return path
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")  # per process: concurrent builders never clash
    shutil.rmtree(tmp, ignore_errors=True)
    _write_diffusers(name, tmp)
    try:
        tmp.rename(path)
    except OSError:  # another process finished the same (byte-identical) folder first
        shutil.rmtree(tmp, ignore_errors=True)
    gc.collect()
    return path


def filename(name: str) -> str:
    return f"obclip-replica-{name}.safetensors"


def ensure(name: str) -> Path:
    """The replica as one single-file checkpoint in real single files' key layout (built once)."""
    from ..device_models import folder as device_folder
    from ..device_models.checkpoint import write_checkpoint

    if name in REFUSAL_ONLY:
        raise KeyError(f"{name} has no single-file form: the converter refuses it (see ensure_diffusers)")
    path = cache_dir() / filename(name)
    if path.exists():
        return path
    src = ensure_diffusers(name)
    info = device_folder.inspect(src)
    sd = device_folder.single_file_state_dict(info)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    write_checkpoint(sd, tmp, {"obclip_replica": f"{name};seed={SEED}"})
    tmp.replace(path)
    del sd
    gc.collect()
    return path


if __name__ == "__main__":
    args = sys.argv[1:]
    as_folder = "--diffusers" in args
    for n in [a for a in args if not a.startswith("--")] or list(SD1):
        print(ensure_diffusers(n) if as_folder else ensure(n), flush=True)
