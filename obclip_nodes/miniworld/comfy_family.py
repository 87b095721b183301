"""The mini world as a ComfyUI model family, so the stock Load Checkpoint node loads its files.

`register()` adds one supported-model class to ComfyUI's detection list. It matches only UNets with
this family's text width (arch.CONTEXT_DIM, used by no other family), so no other checkpoint is
affected. A mini checkpoint then loads like any SD1.x file: a ModelPatcher over ComfyUI's own
UNetModel (so every sampler and the Cache Accelerator's wrappers apply unchanged), a CLIP built from
ComfyUI's CLIPTextModel with a tiny config, and (device file) a TAESD-shaped VAE. The files are packed
small (packing.py); the hooks below unpack them, so ComfyUI builds ordinary float32 modules. Its latent
format is its own, so the Device Finisher refuses an SD1.5 device after a mini cloud and vice versa.

Needs comfy importable (import after comfy.cli_args is set up).
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

import comfy.latent_formats
import comfy.sd1_clip
import comfy.supported_models
import comfy.supported_models_base
import comfy.utils

from . import arch
from .packing import dequantize_int8, unpack_token_table

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class ObCLIPMiniWorldLatent(comfy.latent_formats.LatentFormat):
    # The VAE's own vae_scale/vae_shift already whiten the latents (set after training).
    scale_factor = 1.0
    latent_channels = arch.LATENT_CHANNELS


class MiniTextEncoder(comfy.sd1_clip.SDClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, textmodel_json_config=copy.deepcopy(arch.TEXT_CONFIG),
                         return_projected_pooled=False, model_options={**model_options, "model_name": "mini_text"})


class MiniClipModel(comfy.sd1_clip.SD1ClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
        super().__init__(device=device, dtype=dtype, model_options=model_options, clip_model=MiniTextEncoder, **kwargs)


class MiniTokenizer(comfy.sd1_clip.SD1Tokenizer):
    def __init__(self, embedding_directory=None, tokenizer_data={}):
        super().__init__(embedding_directory=embedding_directory, tokenizer_data=tokenizer_data,
                         tokenizer=_MiniSDTokenizer)


class _MiniSDTokenizer(comfy.sd1_clip.SDTokenizer):
    def __init__(self, embedding_directory=None, tokenizer_data={}):
        super().__init__(embedding_directory=embedding_directory, embedding_size=arch.CONTEXT_DIM,
                         tokenizer_data=tokenizer_data)


class ObCLIPMiniWorld(comfy.supported_models_base.BASE):
    unet_config = {"context_dim": arch.CONTEXT_DIM, "use_linear_in_transformer": True, "adm_in_channels": None,
                   "in_channels": arch.LATENT_CHANNELS, "use_temporal_attention": False}
    unet_extra_config = dict(arch.UNET_EXTRA)
    latent_format = ObCLIPMiniWorldLatent
    memory_usage_factor = 1.0
    supported_inference_dtypes = [torch.float32]  # tiny: fp32 everywhere, exact

    def process_clip_state_dict(self, state_dict):
        state_dict = unpack_token_table(state_dict, "cond_stage_model.")
        return comfy.utils.state_dict_prefix_replace(state_dict, {"cond_stage_model.": "clip_l."}, filter_keys=True)

    def process_unet_state_dict(self, state_dict):
        return dequantize_int8(state_dict)  # the cloud's int8 UNet; fp16 weights pass through

    def process_clip_state_dict_for_saving(self, state_dict):
        return comfy.utils.state_dict_prefix_replace(state_dict, {"clip_l.": "cond_stage_model."})

    def clip_target(self, state_dict={}):
        return comfy.supported_models_base.ClipTarget(MiniTokenizer, MiniClipModel)


def register() -> None:
    """Idempotent: add the family to ComfyUI's detection list (last, so it never shadows another)."""
    models = comfy.supported_models.models
    if not any(getattr(m, "__name__", "") == ObCLIPMiniWorld.__name__ for m in models):
        models.append(ObCLIPMiniWorld)


def register_checkpoint_folder() -> None:
    """List the shipped mini checkpoints in Load Checkpoint (and on a cloud, for the client's request)."""
    import folder_paths
    if WEIGHTS_DIR.is_dir():
        folder_paths.add_model_folder_path("checkpoints", str(WEIGHTS_DIR), is_default=False)


def install() -> bool:
    """Register the family and the shipped checkpoints (the demo and the tests do; OBCLIP_MINIWORLD=1)."""
    register()
    register_checkpoint_folder()
    return True
