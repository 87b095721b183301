"""Counted FLOPs of a UNet, per row and per block, from a meta-device copy (no weights, no compute).

Used by the runtime report (what a run skipped) and by the FLOPs benchmark. Counts follow
torch.utils.flop_counter.FlopCounterMode: 2 FLOPs per multiply-add, convolutions, linears and
attention matmuls (norms, activations and softmax are not counted, as in the usual MAC tables).
"""
from __future__ import annotations

import functools

import torch

# The real architectures (ComfyUI 0.3.75 comfy/model_detection.py, unet_config_from_diffusers_unet).
REAL_UNETS = {
    "sd15": {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
             "legacy": False, "adm_in_channels": None, "in_channels": 4, "model_channels": 320,
             "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
             "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1, "use_linear_in_transformer": False,
             "context_dim": 768, "num_heads": 8, "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
             "use_temporal_attention": False, "use_temporal_resblock": False},
    "sdxl": {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
             "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4,
             "model_channels": 320, "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10],
             "channel_mult": [1, 2, 4], "transformer_depth_middle": 10, "use_linear_in_transformer": True,
             "context_dim": 2048, "num_head_channels": 64,
             "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
             "use_temporal_attention": False, "use_temporal_resblock": False},
}
# the real shapes: latent H/8 x W/8, text tokens
REAL_SHAPES = {"sd15": {"latent": (4, 64, 64), "tokens": 77}, "sdxl": {"latent": (4, 128, 128), "tokens": 77}}


def meta_unet(unet_config: dict, unet_class=None):
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    cfg = {k: v for k, v in unet_config.items() if k not in ("disable_unet_model_creation",)}
    cfg["dtype"] = torch.float32
    cls = unet_class or UNetModel
    with torch.device("meta"):
        return cls(**cfg, device="meta", operations=comfy.ops.disable_weight_init)


def meta_inputs(unet_config: dict, batch: int, latent: tuple, tokens: int, device="meta"):
    x = torch.empty(batch, *latent, device=device)
    ts = torch.empty(batch, device=device)
    ctx = torch.empty(batch, tokens, unet_config.get("context_dim") or 768, device=device)
    adm = unet_config.get("adm_in_channels")
    y = torch.empty(batch, adm, device=device) if unet_config.get("num_classes") is not None else None
    return x, ts, ctx, y


def sdpa_override(func, *args, **kwargs):
    """optimized_attention_override for meta tensors: plain SDPA (the CPU default queries free memory)."""
    from comfy.ldm.modules.attention import attention_pytorch
    return attention_pytorch(*args, **kwargs)


def block_costs(unet, unet_config: dict, latent: tuple, tokens: int) -> dict:
    """Per-row FLOPs: {"total", "input": [..], "middle", "output": [..], "rest"} at one latent shape."""
    from torch.utils.flop_counter import FlopCounterMode
    x, ts, ctx, y = meta_inputs(unet_config, 1, latent, tokens)
    with FlopCounterMode(display=False) as fc:
        unet(x, ts, ctx, y, transformer_options={"optimized_attention_override": sdpa_override})
    counts = fc.get_flop_counts()
    root = min((k for k in counts if k != "Global"), key=len)  # e.g. "UNetModel"

    def f(name):  # a TimestepEmbedSequential is iterated, not called: sum its direct children
        pre = f"{root}.{name}."
        return float(sum(sum(v.values()) for k, v in counts.items()
                         if k.startswith(pre) and k[len(pre):].isdigit()))
    total = float(fc.get_total_flops())
    inp = [f(f"input_blocks.{i}") for i in range(len(unet.input_blocks))]
    out = [f(f"output_blocks.{i}") for i in range(len(unet.output_blocks))]
    mid = f("middle_block")
    return {"total": total, "input": inp, "middle": mid, "output": out,
            "rest": total - sum(inp) - sum(out) - mid}


@functools.lru_cache(maxsize=16)
def _cached(config_items: tuple, cls, latent: tuple, tokens: int) -> dict:
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in config_items}
    return block_costs(meta_unet(cfg, cls), cfg, latent, tokens)


def costs_for(base_model, latent: tuple, tokens: int) -> dict | None:
    """Block costs for a loaded ComfyUI BaseModel (cached per config and shape); None if unknown."""
    try:
        cfg = base_model.model_config.unet_config
        items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()
                             if k != "dtype"))
        return _cached(items, type(base_model.diffusion_model), tuple(latent), int(tokens))
    except Exception:  # the report is best effort; sampling never fails because of it
        return None
