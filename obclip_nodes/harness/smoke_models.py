"""Deterministic random-weight checkpoints that ComfyUI detects as SD1.5 / SDXL family.

Weights cannot be downloaded here, so the demo and the tests run on generated models: a larger
"cloud" UNet and a smaller "device" UNet that share a latent space, full-size CLIP (ComfyUI's CLIP
configs are fixed) and a TAESD-shaped VAE. Every tensor is drawn from its own generator seeded by
crc32(name), so files are byte-identical across runs, and shared parts (CLIP, VAE) are identical
between the cloud and device files. Norm weights are 1, never 0: a UNet with zero norms outputs
zeros and every comparison would pass for nothing.

Usage: python -m obclip_nodes.harness.smoke_models OUT_DIR [NAME ...]   (default: the SD1.5 pair)
"""
from __future__ import annotations

import gc
import hashlib
import math
import sys
import zlib
from pathlib import Path

from .host import CACHE, import_comfy

SEED = 20251005
GENERATOR_VERSION = 1  # bump when anything below changes the bytes
_UNET = dict(use_checkpoint=False, image_size=32, use_spatial_transformer=True, legacy=False,
             in_channels=4, out_channels=4, use_temporal_resblock=False, use_temporal_attention=False,
             model_channels=320)
_SD15 = dict(_UNET, adm_in_channels=None, context_dim=768, use_linear_in_transformer=False)
_XL = dict(_UNET, num_classes="sequential", adm_in_channels=2816, context_dim=2048,
           use_linear_in_transformer=True, channel_mult=[1], transformer_depth_middle=-2)

# name -> (supported_models class name, unet config, role). Detection matches only the keys of each
# class's own unet_config; depth, levels and the middle block are free for SD15.
MODELS = {
    "sd15-cloud": ("SD15", dict(_SD15, num_res_blocks=[1, 1], channel_mult=[1, 2], transformer_depth=[1, 1],
                                transformer_depth_output=[1, 1, 1, 1], transformer_depth_middle=1), "cloud"),
    "sd15-device": ("SD15", dict(_SD15, num_res_blocks=[1], channel_mult=[1], transformer_depth=[1],
                                 transformer_depth_output=[0, 0], transformer_depth_middle=-2), "device"),
    "sdxl-cloud": ("SDXL", dict(_XL, num_res_blocks=[6], transformer_depth=[0, 0, 2, 2, 10, 10],
                                transformer_depth_output=[0] * 7), "cloud"),
    "sdxl-device": ("KOALA_700M", dict(_XL, num_res_blocks=[3], transformer_depth=[0, 2, 5],
                                       transformer_depth_output=[0] * 4), "device"),
}
SD15_PAIR = ("sd15-cloud", "sd15-device")
SDXL_PAIR = ("sdxl-cloud", "sdxl-device")


def filename(name: str) -> str:
    return f"obclip-smoke-{name}.safetensors"


def cache_dir() -> Path:
    import torch
    return CACHE / "smoke-models" / f"v{GENERATOR_VERSION}-torch{torch.__version__.split('+')[0]}"


def _fill(name: str, t):
    import torch
    short = name.rsplit(".", 1)[-1]
    if t.ndim == 0:
        val = {"vae_scale": 1.0, "vae_shift": 0.0, "logit_scale": math.log(100.0)}.get(short, 0.0)
        return torch.tensor(val, dtype=torch.float16)
    if not t.is_floating_point():
        return torch.arange(t.shape[-1]).expand(t.shape).to(t.dtype).contiguous()  # position ids
    if short == "bias":
        return torch.zeros(t.shape, dtype=torch.float16)
    if t.ndim == 1:
        return torch.ones(t.shape, dtype=torch.float16)  # norms: 1, never 0
    std = 0.02 if "embedding" in name else 1.0 / math.sqrt(t[0].numel())
    g = torch.Generator().manual_seed((zlib.crc32(name.encode()) ^ SEED) & 0xFFFFFFFF)
    return torch.randn(t.shape, generator=g, dtype=torch.float16).mul_(std)


def _random_state(module) -> dict:
    return {k: _fill(k, v) for k, v in module.state_dict().items()}


def build(name: str, out_dir: Path) -> Path:
    """Write one checkpoint (atomically) unless it exists; return its path."""
    path = out_dir / filename(name)
    if path.exists():
        return path
    import_comfy()
    import torch
    import comfy.sd1_clip
    import comfy.sdxl_clip
    import comfy.supported_models as sm
    import comfy.taesd.taesd
    import comfy.utils

    cls_name, unet_config, _ = MODELS[name]
    config = getattr(sm, cls_name)(dict(unet_config))
    config.set_inference_dtype(torch.float16, None)
    model = config.get_model({}, device="meta")
    model.diffusion_model.load_state_dict(_random_state(model.diffusion_model), assign=True)
    clip_cls = comfy.sd1_clip.SD1ClipModel if cls_name == "SD15" else comfy.sdxl_clip.SDXLClipModel
    clip_sd = _random_state(clip_cls(device="meta", dtype=torch.float16))
    with torch.device("meta"):
        taesd = comfy.taesd.taesd.TAESD(latent_channels=4)
    vae_sd = _random_state(taesd)  # outside the meta context, so the values are real
    sd = model.state_dict_for_saving(clip_sd, vae_sd)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # one metadata key: safetensors writes several keys in random order, breaking byte identity
    comfy.utils.save_torch_file(sd, str(tmp), metadata={"obclip_smoke": f"{name};seed={SEED}"})
    tmp.replace(path)
    del sd, clip_sd, model
    gc.collect()
    return path


def ensure(names=SD15_PAIR) -> list[Path]:
    """Build (once, cached by generator version and torch version) and return the checkpoint paths."""
    out = cache_dir()
    missing = [n for n in names if not (out / filename(n)).exists()]
    if missing:
        import subprocess
        # a separate process: generation imports comfy and holds GBs we do not want to keep
        subprocess.run([sys.executable, "-m", "obclip_nodes.harness.smoke_models", str(out), *missing],
                       check=True, cwd=str(Path(__file__).resolve().parents[2]))
    return [out / filename(n) for n in names]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


if __name__ == "__main__":
    target = Path(sys.argv[1])
    for n in sys.argv[2:] or list(SD15_PAIR):
        if n not in MODELS:
            sys.exit(f"unknown smoke model {n!r}; known: {', '.join(MODELS)}")
        print(build(n, target), flush=True)
