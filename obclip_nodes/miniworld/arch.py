"""Shapes of the mini world's models, shared by the trainer and the ComfyUI model family.

Plain data (no torch): the trainer builds ComfyUI's own modules from these, and the registered
model family (comfy_family.py) checks loaded files against them, so a trained file and the code
that loads it cannot drift apart.
"""
from __future__ import annotations

IMAGE_SIZE = 64            # the renderer's portraits
LATENT_CHANNELS = 4        # TAESD-shaped VAE, 8x down: 64x64 image -> 4x8x8 latent
DOWNSCALE = 8
CONTEXT_DIM = 64           # text encoder width; unique among ComfyUI's families, so detection is unambiguous
HEAD_CHANNELS = 16

# ComfyUI's CLIPTextModel with a tiny config; the CLIP-L BPE tokenizer that ships with ComfyUI.
# Token rows that never occur in training stay exactly zero (zero init, Adam never moves them), so an
# unknown word carries no meaning rather than random noise, and the file compresses well.
TEXT_CONFIG = {
    "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
    "eos_token_id": 49407, "hidden_act": "quick_gelu", "hidden_size": CONTEXT_DIM, "initializer_factor": 1.0,
    "initializer_range": 0.02, "intermediate_size": 2 * CONTEXT_DIM, "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 4,
    "num_hidden_layers": 2, "pad_token_id": 1, "projection_dim": CONTEXT_DIM, "vocab_size": 49408,
}

# Exactly what comfy.model_detection.detect_unet_config reads back from the weights.
_UNET_BASE = {
    "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
    "adm_in_channels": None, "in_channels": LATENT_CHANNELS, "out_channels": LATENT_CHANNELS,
    "use_linear_in_transformer": True, "context_dim": CONTEXT_DIM,
    "use_temporal_resblock": False, "use_temporal_attention": False,
}
UNET = {
    # the large model: 2 levels, attention everywhere, a middle block (widths: GroupNorm needs 32 | ch)
    "cloud": dict(_UNET_BASE, model_channels=64, channel_mult=[1, 2], num_res_blocks=[1, 1],
                  transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1],
                  transformer_depth_middle=1),
    # the small model: half the width, no middle block
    "device": dict(_UNET_BASE, model_channels=32, channel_mult=[1, 2], num_res_blocks=[1, 1],
                   transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1],
                   transformer_depth_middle=-2),
}
UNET_EXTRA = {"num_heads": -1, "num_head_channels": HEAD_CHANNELS}

FAMILY = "ObCLIPMiniWorld"           # the supported-model class name (what the hand-off reports)
LATENT_FORMAT = "ObCLIPMiniWorldLatent"


def checkpoint_name(role: str) -> str:
    return f"obclip-mini-{role}.safetensors"
