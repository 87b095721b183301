"""Test-only models for the device-side ControlNet workflow, built on first use into .cache/ (never committed).

- A ControlNet in the published SD1.5 ControlNet architecture, built with diffusers' ControlNetModel from
  CONTROLNET_CONFIG and saved in diffusers format (ComfyUI detects that format by its keys).
  Source of the config: lllyasviel/sd-controlnet-canny, config.json
  (https://huggingface.co/lllyasviel/sd-controlnet-canny/blob/main/config.json, _diffusers_version
  0.14.0.dev0), as quoted in public code found with the search tool; only architecture fields are used.
- The device model for the ControlNet test is the published SD1.5 architecture from harness/test_models
  (the SD1.5 pair's cloud file). A ControlNet adds its 12 + 1 residuals to exactly SD1.5's skip
  connections; BK-SDM-Small has fewer, and ComfyUI only logs "control could not be applied" for it.

Every tensor is drawn from its own generator seeded by crc32(name) (stored in float16, like the other
test models); norm weights are 1 (never 0) and the
ControlNet's zero convolutions get random weights too, or the ControlNet would add exactly nothing.

Usage: python tests/integration/device_side_models.py OUT_DIR
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import zlib
from pathlib import Path

SEED = 16_2026
VERSION = 2  # bump when anything below changes the bytes (2: numpy uniform fill, stored with the test models)
REPO = Path(__file__).resolve().parents[2]
CONTROLNET_FILE = "obclip-test-sd15-controlnet.safetensors"

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

def cache_dir() -> Path:
    import torch
    # beside the other test models, so `du -sh .cache/test-models` is all of them
    return REPO / ".cache" / "test-models" / f"device-side-v{VERSION}-torch{torch.__version__.split('+')[0]}"


def seeded(name: str, t):
    """Norms 1, biases 0, other tensors uniform with standard deviation 1/sqrt(fan_in), from a generator of
    their own (numpy SFC64: several times faster than torch.randn on the test machines)."""
    import numpy as np
    import torch
    short = name.rsplit(".", 1)[-1]
    if short == "bias":
        return torch.zeros(t.shape, dtype=torch.float16)
    if t.ndim == 1:
        return torch.ones(t.shape, dtype=torch.float16)
    g = np.random.Generator(np.random.SFC64((zlib.crc32(name.encode()) ^ SEED) & 0xFFFFFFFF))
    a = math.sqrt(3.0 / t[0].numel())  # U(-a, a) has standard deviation a / sqrt(3)
    u = torch.from_numpy(g.random(t.numel(), dtype=np.float32))
    return u.mul_(2 * a).sub_(a).to(torch.float16).reshape(t.shape)


def build_controlnet(path: Path) -> None:
    import torch
    from diffusers import ControlNetModel
    from safetensors.torch import save_file
    with torch.device("meta"):
        model = ControlNetModel.from_config(CONTROLNET_CONFIG)
    sd = {k: seeded(k, v).contiguous() for k, v in model.state_dict().items()}
    assert any(k.startswith("controlnet_down_blocks.") for k in sd) and "controlnet_mid_block.weight" in sd
    save_file(sd, str(path), metadata={"obclip_test": f"sd15-controlnet;seed={SEED}"})


def ensure() -> Path:
    """The ControlNet, built once per VERSION and torch version, in a subprocess (building holds GBs the
    test process should not keep)."""
    out = cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / CONTROLNET_FILE).exists():
        subprocess.run([sys.executable, __file__, str(out)], check=True, cwd=str(REPO))
    return out / CONTROLNET_FILE


if __name__ == "__main__":
    final = Path(sys.argv[1]) / CONTROLNET_FILE
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")  # per process, as in test_models: runs at once never clash
    build_controlnet(tmp)
    tmp.replace(final)
    print(final)
