"""Random-weight replicas of published models, built from their published config.json files.

Weights cannot be downloaded here, so tests run on replicas: the exact published architecture
(tests/data/model_configs/, each file citing its source) with seeded random weights, stored in float16.

  ensure_diffusers(name) -> Path   a diffusers folder as the model is published on the Hub (config.json files,
                                   safetensors weights)
  ensure(name) -> Path             the same weights as one single-file checkpoint in the key layout real
                                   single files use (model.diffusion_model.*, cond_stage_model.* /
                                   conditioner.embedders.*, first_stage_model.*), written by the pack's
                                   host-independent converter (obclip_nodes/device_models/convert.py)
  state_dict(name) -> dict         that single file's state dict built in memory, never written (the SDXL
                                   family's test models: tests load them with ComfyUI's own
                                   load_state_dict_guess_config, the function Load Checkpoint runs on a file's
                                   tensors)
  meta_state_dict(name) -> dict    its keys and shapes only (meta tensors): what ComfyUI's detection reads
  listing_stand_in(name) -> Path   a sparse, zero-weight single file of the architecture, for servers that only
                                   LIST a checkpoint a shipped workflow names and never load it

On disk (REPO/.cache/test-models/, built at test time, never committed): the single files and the diffusers
folders; the folders' weight files are hard links into parts/, one file per distinct set of weights, so a
component that several models share (the SD1.x CLIP text encoder, the SD VAE, which the SDXL family's
CLIP ViT-L and VAE equal weight for weight) is stored once. A single file is built from a temporary folder,
which is removed (its UNet is kept in parts/ only if that model's folder is asked for).

float16 on disk, float32 in use: on the CPU ComfyUI (0.3.75 and 0.33.0) picks float32 for every model whatever
the file holds (model_management.unet_dtype: should_use_fp16/bf16 are False on a CPU device), and upcasts
float16 exactly; diffusers/transformers references load the same float16 files into float32.
tests/integration/test_test_models.py asserts the dtype the UNet runs in.

Files are byte-identical across runs: every tensor comes from its own generator seeded by crc32(name) ^ SEED
(numpy SFC64, uniform with the intended standard deviation: 5x faster than torch.randn here).
Norm weights are 1 + U(-0.17, 0.17), never 0 (a UNet with zero norms outputs zeros and every comparison
would pass for nothing), and biases are small random values so a swapped bias shows up.

Usage: python -m obclip_nodes.harness.test_models [--diffusers] NAME ...
"""
from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import shutil
import sys
import zlib
from pathlib import Path

from .host import CACHE, REPO

SEED = 20251005
GENERATOR_VERSION = 2  # bump when anything below changes the bytes (2: numpy uniform fill, shared parts)
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


def fill(name: str, shape, dtype=None):
    """The seeded random float16 tensor for state-dict key `name` (integer tensors: position ids)."""
    import numpy as np
    import torch
    shape = tuple(shape)
    if dtype is not None and not dtype.is_floating_point:
        return torch.arange(shape[-1]).expand(shape).to(dtype).contiguous()  # position ids
    g = np.random.Generator(np.random.SFC64((zlib.crc32(name.encode()) ^ SEED) & 0xFFFFFFFF))
    short = name.rsplit(".", 1)[-1]
    n = math.prod(shape)
    if len(shape) == 1 and short == "weight":  # norms: around 1, never 0
        center, std = 1.0, 0.1
    elif short == "bias" or len(shape) == 1:
        center, std = 0.0, 0.02
    else:
        center, std = 0.0, 0.02 if "embedding" in name else 1.0 / math.sqrt(n // shape[0])
    half_width = std * math.sqrt(3.0)  # U(-a, a) has standard deviation a / sqrt(3)
    u = torch.from_numpy(g.random(n, dtype=np.float32))
    return u.mul_(2 * half_width).add_(center - half_width).to(torch.float16).reshape(shape)


def _signature(kind: str, meta_sd: dict) -> str:
    """The seeded weights depend only on each key's name, shape and dtype: equal signatures, equal bytes."""
    h = hashlib.sha256(f"{GENERATOR_VERSION}/{SEED}/{kind}".encode())
    for k in sorted(meta_sd):
        h.update(f"{k}:{tuple(meta_sd[k].shape)}:{meta_sd[k].dtype};".encode())
    return h.hexdigest()[:20]


# --- components --------------------------------------------------------------------------------------------

def _components(name: str) -> list[tuple[str, str, object]]:
    """[(folder, kind, meta model)] of a test model, built on the meta device (no memory, no weights)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    s = spec(name)
    out = []
    with torch.device("meta"):
        out.append(("unet", "unet", UNet2DConditionModel.from_config(s["unet"])))
        out.append(("vae", "vae", AutoencoderKL.from_config(component_config(s["vae"]))))
        encoders = [("text_encoder", s["text_encoder"], CLIPTextModel)] if s.get("text_encoder") else []
        if s.get("text_encoder_2"):
            encoders.append(("text_encoder_2", s["text_encoder_2"], CLIPTextModelWithProjection))
        for folder, ref, cls in encoders:
            cfg = CLIPTextConfig(**{k: v for k, v in component_config(ref).items() if k != "architectures"})
            out.append((folder, "clip", cls(cfg)))
    return out


def _published_keys(kind: str, meta_sd: dict) -> dict:
    """Hub text encoders store every tower weight under text_model.*; transformers 5's CLIPTextModel has no such
    prefix in its state dict. Weights are written (and seeded) under the published names."""
    if kind != "clip":
        return meta_sd
    return {k if k.startswith("text_model.") or k == "text_projection.weight" else "text_model." + k: v
            for k, v in meta_sd.items()}


def _weights_name(kind: str) -> str:
    return "model.safetensors" if kind == "clip" else "diffusion_pytorch_model.safetensors"


def _save_config(model, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save_config"):  # diffusers
        model.save_config(out)
    else:  # transformers
        model.config.architectures = [type(model).__name__]
        model.config.to_json_file(str(out / "config.json"))


def _filled(meta_sd: dict) -> dict:
    """Every tensor of a state dict, filled; two threads (numpy's generators release the GIL while filling)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        tensors = pool.map(lambda kv: fill(kv[0], kv[1].shape, kv[1].dtype), meta_sd.items())
        return dict(zip(meta_sd, tensors))


def _write_weights(meta_sd: dict, path: Path) -> None:
    from safetensors.torch import save_file
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    save_file(_filled(meta_sd), str(tmp), metadata={"format": "pt"})
    tmp.replace(path)


def _part(kind: str, meta_sd: dict, keep: bool, scratch: Path) -> Path:
    """The weights file of one component: from parts/ (built there once) or, when not kept, in `scratch`."""
    if not keep:
        path = scratch / f"{kind}-{_signature(kind, meta_sd)}.safetensors"
        _write_weights(meta_sd, path)
        return path
    path = cache_dir() / "parts" / f"{kind}-{_signature(kind, meta_sd)}.safetensors"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_weights(meta_sd, path)
    return path


def _write_diffusers(name: str, out: Path, keep_unet: bool = True) -> None:
    """A diffusers folder: configs written here, weights hard-linked from parts/ (the UNet written into the
    folder itself when `keep_unet` is False: a temporary folder whose UNet nobody else needs)."""
    s = spec(name)
    out.mkdir(parents=True)
    components = {}
    for folder, kind, model in _components(name):
        meta_sd = _published_keys(kind, model.state_dict())
        _save_config(model, out / folder)
        keep = keep_unet or kind != "unet"
        src = _part(kind, meta_sd, keep, out / folder)
        dst = out / folder / _weights_name(kind)
        if keep:
            os.link(src, dst)
        else:
            src.replace(dst)
        lib = "transformers" if kind == "clip" else "diffusers"
        components[folder] = [lib, type(model).__name__]
        del model
        gc.collect()
    sched = {"_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "beta_start": 0.00085, "num_train_timesteps": 1000, "prediction_type": "epsilon",
             "steps_offset": 1, "timestep_spacing": "leading"}
    if s["family"] == "sd2":
        sched["prediction_type"] = "epsilon"  # bk-sdm-v2-small is the 512 base model (epsilon)
    (out / "scheduler").mkdir()
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(sched, indent=2))
    pipeline = "StableDiffusionXLPipeline" if s["family"] == "sdxl" else "StableDiffusionPipeline"
    index = {"_class_name": pipeline, "_diffusers_version": "replica",
             "obclip_replica": f"{name}; seed={SEED}; architecture from tests/data/model_configs/{name}.json",
             "scheduler": ["diffusers", "EulerDiscreteScheduler"], **components}
    (out / "model_index.json").write_text(json.dumps(index, indent=2))


def ensure_diffusers(name: str) -> Path:
    """The replica as a diffusers folder (built once, atomically; weights shared through parts/)."""
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
    kept = cache_dir() / "diffusers" / name
    if (kept / "model_index.json").exists():
        src, scratch = kept, None
    else:
        scratch = path.with_name(f"{name}.build-{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        _write_diffusers(name, scratch, keep_unet=False)
        src = scratch
    info = device_folder.inspect(src)
    sd = device_folder.single_file_state_dict(info)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    write_checkpoint(sd, tmp, {"obclip_replica": f"{name};seed={SEED}"})
    tmp.replace(path)
    del sd
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    gc.collect()
    return path


def _single_file_layout(name: str, sds: dict) -> dict:
    """{folder: diffusers-layout state dict} -> the single-file state dict (the converter ensure() uses)."""
    from ..device_models.convert import (
        SD1_CLIP_PREFIX,
        SDXL_CLIP_G_PREFIX,
        SDXL_CLIP_L_PREFIX,
        convert_clip_g,
        convert_clip_l,
        convert_unet,
        convert_vae,
    )
    s = spec(name)
    out = convert_unet(s["unet"], sds["unet"])
    out.update(convert_vae(component_config(s["vae"]), sds["vae"]))
    if s["family"] == "sd1":
        out.update(convert_clip_l(sds["text_encoder"], SD1_CLIP_PREFIX))
    else:
        out.update(convert_clip_l(sds["text_encoder"], SDXL_CLIP_L_PREFIX))
        layers = int(component_config(s["text_encoder_2"])["num_hidden_layers"])
        out.update(convert_clip_g(sds["text_encoder_2"], layers, SDXL_CLIP_G_PREFIX))
    return out


def meta_state_dict(name: str) -> dict:
    """The single file's keys and shapes as meta tensors: what model detection reads, no weights."""
    sds = {folder: _published_keys(kind, model.state_dict()) for folder, kind, model in _components(name)}
    return _single_file_layout(name, sds)




def state_dict(name: str, share: dict | None = None) -> dict:
    """The single file's state dict, built in memory (float16; byte for byte what ensure(name) would write).

    Components already in parts/ are read from there; the rest are generated and never written. Pass the same
    `share` dict to several calls to generate a component the models have in common once (Vega and KOALA-700M
    have the same CLIP ViT-L, OpenCLIP bigG and VAE weights)."""
    from safetensors.torch import load_file
    share = {} if share is None else share
    sds = {}
    for folder, kind, model in _components(name):
        meta_sd = _published_keys(kind, model.state_dict())
        sig = _signature(kind, meta_sd)
        part = cache_dir() / "parts" / f"{kind}-{sig}.safetensors"
        if sig in share:
            sds[folder] = share[sig]
            continue
        sds[folder] = load_file(str(part)) if part.exists() else _filled(meta_sd)
        if kind != "unet":  # text encoders and VAEs are what models share; a UNet is freed with its model
            share[sig] = sds[folder]
    return _single_file_layout(name, sds)


def listing_stand_in(name: str) -> Path:
    """A single file of `name`'s architecture whose weights are all zero, written sparse (a few MB on disk):
    for a server that lists the checkpoint names a shipped workflow uses and never loads them (the browser
    tests). Never run it: zero norms make every output zero."""
    import struct
    import torch
    path = cache_dir() / "listing" / filename(name)
    if path.exists():
        return path
    sd = meta_state_dict(name)
    header, offset = {"__metadata__": {"obclip_listing_stand_in": f"{name}: zero weights, never loaded"}}, 0
    names = {torch.float16: "F16", torch.float32: "F32", torch.int64: "I64"}
    for k in sorted(sd):
        t = sd[k].to(torch.float16) if sd[k].is_floating_point() else sd[k]
        size = t.numel() * t.element_size()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)  # the zeros are holes: no blocks on disk
    tmp.replace(path)
    return path


if __name__ == "__main__":
    args = sys.argv[1:]
    as_folder = "--diffusers" in args
    for n in [a for a in args if not a.startswith("--")] or list(SD1):
        print(ensure_diffusers(n) if as_folder else ensure(n), flush=True)
