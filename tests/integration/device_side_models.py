"""Test-only models for the device-side ControlNet workflow, built on first use into .cache/ (never committed).

- A ControlNet in the published SD1.5 ControlNet architecture, built with diffusers' ControlNetModel from
  CONTROLNET_CONFIG and saved in diffusers format (ComfyUI detects that format by its keys).
  Source of the config: lllyasviel/sd-controlnet-canny, config.json
  (https://huggingface.co/lllyasviel/sd-controlnet-canny/blob/main/config.json, _diffusers_version
  0.14.0.dev0), as quoted in public code found with the search tool; only architecture fields are used.
- A device checkpoint with the published SD1.5 UNet (ComfyUI's own SD15 detection config, which is the
  runwayml v1-5 layout: 4 levels, 2 res blocks each, mid block). A ControlNet adds its 12 + 1 residuals to
  exactly those skip connections; a UNet with fewer levels (today's small smoke device) only logs
  "control could not be applied" and ignores it, so the effect could not be tested on it.

Every tensor is drawn from its own generator seeded by crc32(name); norm weights are 1 (never 0) and the
ControlNet's zero convolutions get random weights too, or the ControlNet would add exactly nothing.

Usage: python tests/integration/device_side_models.py OUT_DIR controlnet|sd15-device
"""
from __future__ import annotations

import math
import subprocess
import sys
import zlib
from pathlib import Path

SEED = 16_2026
VERSION = 1  # bump when anything below changes the bytes
REPO = Path(__file__).resolve().parents[2]
CONTROLNET_FILE = "obclip-test-sd15-controlnet.safetensors"
SD15_DEVICE_FILE = "obclip-test-sd15-full-device.safetensors"

CONTROLNET_CONFIG = {  # lllyasviel/sd-controlnet-canny config.json (architecture fields)
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "class_embed_type": None,
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
    "controlnet_conditioning_channel_order": "rgb",
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "projection_class_embeddings_input_dim": None,
    "resnet_time_scale_shift": "default",
    "upcast_attention": False,
    "use_linear_projection": False,
}

SD15_UNET = dict(use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
                 adm_in_channels=None, in_channels=4, model_channels=320, num_res_blocks=[2, 2, 2, 2],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], channel_mult=[1, 2, 4, 4], transformer_depth_middle=1,
                 use_linear_in_transformer=False, context_dim=768, num_heads=8,
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
                 use_temporal_attention=False, use_temporal_resblock=False)


def cache_dir() -> Path:
    import torch
    return REPO / ".cache" / "device-side-models" / f"v{VERSION}-torch{torch.__version__.split('+')[0]}"


def seeded(name: str, t):
    """Norms 1, biases 0, other tensors N(0, 1/fan_in) from a generator of their own."""
    import torch
    short = name.rsplit(".", 1)[-1]
    if short == "bias":
        return torch.zeros(t.shape, dtype=torch.float16)
    if t.ndim == 1:
        return torch.ones(t.shape, dtype=torch.float16)
    g = torch.Generator().manual_seed((zlib.crc32(name.encode()) ^ SEED) & 0xFFFFFFFF)
    return torch.randn(t.shape, generator=g, dtype=torch.float32).mul_(1.0 / math.sqrt(t[0].numel())).half()


def build_controlnet(path: Path) -> None:
    import torch
    from diffusers import ControlNetModel
    from safetensors.torch import save_file
    with torch.device("meta"):
        model = ControlNetModel.from_config(CONTROLNET_CONFIG)
    sd = {k: seeded(k, v).contiguous() for k, v in model.state_dict().items()}
    assert any(k.startswith("controlnet_down_blocks.") for k in sd) and "controlnet_mid_block.weight" in sd
    save_file(sd, str(path), metadata={"obclip_test": f"sd15-controlnet;seed={SEED}"})


def build_sd15_device(path: Path) -> None:
    sys.path.insert(0, str(REPO))
    from obclip_nodes.harness.host import import_comfy
    import_comfy()
    import comfy.sd1_clip
    import comfy.supported_models as sm
    import comfy.taesd.taesd
    import comfy.utils
    import torch
    config = sm.SD15(dict(SD15_UNET))
    config.set_inference_dtype(torch.float16, None)
    model = config.get_model({}, device="meta")
    unet = {k: seeded("unet." + k, v) for k, v in model.diffusion_model.state_dict().items()}
    model.diffusion_model.load_state_dict(unet, assign=True)
    clip = comfy.sd1_clip.SD1ClipModel(device="meta", dtype=torch.float16)
    clip_sd = {}
    for k, v in clip.state_dict().items():
        if not v.is_floating_point():
            clip_sd[k] = torch.arange(v.shape[-1]).expand(v.shape).to(v.dtype).contiguous()  # position ids
        elif v.ndim == 0:
            clip_sd[k] = torch.tensor(math.log(100.0) if k.endswith("logit_scale") else 0.0, dtype=torch.float16)
        else:
            clip_sd[k] = seeded("clip." + k, v)
    with torch.device("meta"):
        taesd = comfy.taesd.taesd.TAESD(latent_channels=4)
    vae_sd = {}
    for k, v in taesd.state_dict().items():
        vae_sd[k] = (torch.tensor(1.0 if k.endswith("vae_scale") else 0.0, dtype=torch.float16) if v.ndim == 0
                     else seeded("vae." + k, v))
    sd = model.state_dict_for_saving(clip_sd, vae_sd)
    comfy.utils.save_torch_file(sd, str(path), metadata={"obclip_test": f"sd15-full-device;seed={SEED}"})


def ensure() -> tuple[Path, Path]:
    """(controlnet, sd15 device checkpoint), built once per VERSION and torch version, in subprocesses
    (building holds GBs the test process should not keep)."""
    out = cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    for kind, name in (("controlnet", CONTROLNET_FILE), ("sd15-device", SD15_DEVICE_FILE)):
        if not (out / name).exists():
            subprocess.run([sys.executable, __file__, str(out), kind], check=True, cwd=str(REPO))
    return out / CONTROLNET_FILE, out / SD15_DEVICE_FILE


if __name__ == "__main__":
    target, kind = Path(sys.argv[1]), sys.argv[2]
    final = target / (CONTROLNET_FILE if kind == "controlnet" else SD15_DEVICE_FILE)
    tmp = final.with_suffix(".tmp")
    (build_controlnet if kind == "controlnet" else build_sd15_device)(tmp)
    tmp.replace(final)
    print(final)
