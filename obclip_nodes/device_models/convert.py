"""diffusers layout -> the key layout of real single-file checkpoints, computed from each config.json.

Host-independent: plain tensors in, plain tensors out; no comfy and no diffusers import. The block
numbering comes from the UNet's own config (block counts, layers per block, whether a stage has
attention, which mid block), never from the running ComfyUI's module names and never from a model's
name. Every source key must be explained by the config and every key the config implies must be
present; anything else is a ConversionError naming the key, so a block-removed UNet (BK-SDM, KOALA)
can never come out with silent gaps the way diffusers' fixed-numbering convert script leaves them.

Layouts written (what Stable Diffusion / SDXL single files contain):
  UNet                  model.diffusion_model.*   (input_blocks / middle_block / output_blocks)
  SD1.x text encoder    cond_stage_model.transformer.text_model.*
  SDXL text encoders    conditioner.embedders.0.transformer.text_model.*   (CLIP ViT-L)
                        conditioner.embedders.1.model.*                    (OpenCLIP bigG layout)
  VAE                   first_stage_model.*
"""
from __future__ import annotations

from collections.abc import Mapping

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."


class ConversionError(ValueError):
    """The state dict and its config.json disagree, or the config uses a feature the layout cannot hold."""


# --- UNet -------------------------------------------------------------------------------------------

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_UNET_TOP = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
             "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0", "conv_out": "out.2"}
_UNET_ADM = {"add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
# config values the LDM UNet cannot express: (key, allowed values)
_UNET_FIXED = {
    "act_fn": ("silu",), "center_input_sample": (False, None), "class_embed_type": (None,),
    "num_class_embeds": (None,), "encoder_hid_dim": (None,), "encoder_hid_dim_type": (None,),
    "time_cond_proj_dim": (None,), "time_embedding_type": ("positional", None), "time_embedding_act_fn": (None,),
    "timestep_post_act": (None,), "conv_in_kernel": (3, None), "conv_out_kernel": (3, None),
    "resnet_time_scale_shift": ("default", None), "resnet_skip_time_act": (False, None),
    "resnet_out_scale_factor": (1.0, 1, None), "only_cross_attention": (False, None),
    "dual_cross_attention": (False, None), "cross_attention_norm": (None,), "flip_sin_to_cos": (True, None),
    "freq_shift": (0, None), "downsample_padding": (1, None), "mid_block_scale_factor": (1, 1.0, None),
    "addition_embed_type": ("text_time", None), "class_embeddings_concat": (False, None),
    "attention_type": ("default", None), "norm_num_groups": (32, None),
}
_DOWN = {"CrossAttnDownBlock2D": True, "DownBlock2D": False}
_UP = {"CrossAttnUpBlock2D": True, "UpBlock2D": False}
_MID = {"UNetMidBlock2DCrossAttn": "cross_attn", "UNetMidBlock2D": "resnet_only", None: None}


def _per_block(value, n: int, what: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ConversionError(f"config {what} has {len(value)} entries for {n} blocks")
        return list(value)
    return [value] * n


def unet_layout(config: Mapping) -> dict[str, str]:
    """diffusers module prefix -> LDM module prefix, for every block the config describes.

    The caller checks both directions: every weight under one of these prefixes, every prefix used.
    """
    for key, allowed in _UNET_FIXED.items():
        if config.get(key) not in allowed:
            raise ConversionError(f"UNet config {key}={config.get(key)!r} has no single-file equivalent "
                                  f"(supported: {', '.join(map(repr, allowed))})")
    down_types = list(config["down_block_types"])
    up_types = list(config["up_block_types"])
    n = len(config["block_out_channels"])
    if len(down_types) != n or len(up_types) != n:
        raise ConversionError(f"UNet config has {n} block_out_channels but {len(down_types)} down and "
                              f"{len(up_types)} up block types")
    for t in down_types:
        if t not in _DOWN:
            raise ConversionError(f"UNet down block type {t!r} is not a Stable Diffusion block "
                                  f"(expected {' or '.join(_DOWN)})")
    for t in up_types:
        if t not in _UP:
            raise ConversionError(f"UNet up block type {t!r} is not a Stable Diffusion block "
                                  f"(expected {' or '.join(_UP)})")
    if [_DOWN[t] for t in down_types] != [_UP[t] for t in reversed(up_types)]:
        raise ConversionError("UNet config: attention in the down stages does not mirror the up stages "
                              f"({down_types} vs {up_types})")
    mid = config.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid not in _MID:
        raise ConversionError(f"UNet mid block type {mid!r} is not a Stable Diffusion mid block")
    layers = _per_block(config.get("layers_per_block", 2), n, "layers_per_block")

    m: dict[str, str] = dict(_UNET_TOP)
    if config.get("addition_embed_type") == "text_time":  # SDXL's size/crop conditioning
        m.update(_UNET_ADM)
    ldm = 1
    for x in range(n):
        for i in range(layers[x]):
            m[f"down_blocks.{x}.resnets.{i}"] = f"input_blocks.{ldm}.0"
            if _DOWN[down_types[x]]:
                m[f"down_blocks.{x}.attentions.{i}"] = f"input_blocks.{ldm}.1"
            ldm += 1
        if x != n - 1:  # diffusers: every stage but the innermost ends in a downsampler
            m[f"down_blocks.{x}.downsamplers.0.conv"] = f"input_blocks.{ldm}.0.op"
            ldm += 1
    if _MID[mid] == "cross_attn":
        m["mid_block.resnets.0"] = "middle_block.0"
        m["mid_block.attentions.0"] = "middle_block.1"
        m["mid_block.resnets.1"] = "middle_block.2"
    elif _MID[mid] == "resnet_only":  # UNet2DConditionModel builds UNetMidBlock2D with one resnet
        m["mid_block.resnets.0"] = "middle_block.0"
    ldm = 0
    rev_layers = list(reversed(layers))
    for x in range(n):
        count = rev_layers[x] + 1
        for i in range(count):
            m[f"up_blocks.{x}.resnets.{i}"] = f"output_blocks.{ldm}.0"
            if _UP[up_types[x]]:
                m[f"up_blocks.{x}.attentions.{i}"] = f"output_blocks.{ldm}.1"
            if i == count - 1 and x != n - 1:
                slot = 2 if _UP[up_types[x]] else 1
                m[f"up_blocks.{x}.upsamplers.0.conv"] = f"output_blocks.{ldm}.{slot}.conv"
            ldm += 1
    return m


def _split(key: str, prefixes: list[str]) -> tuple[str, str] | None:
    """Longest module prefix of key (prefix, rest) from a list sorted longest first."""
    for p in prefixes:
        if key.startswith(p + "."):
            return p, key[len(p) + 1:]
    return None


def unet_key_map(config: Mapping, keys) -> dict[str, str]:
    """diffusers UNet key -> single-file key, for every key; ConversionError on any gap either way."""
    layout = unet_layout(config)
    prefixes = sorted(layout, key=len, reverse=True)
    out, used = {}, set()
    for key in keys:
        hit = _split(key, prefixes)
        if hit is None:
            raise ConversionError(f"UNet weight {key!r} is not explained by unet/config.json (a block the "
                                  "config does not declare); refusing to drop it")
        prefix, rest = hit
        used.add(prefix)
        if ".resnets." in prefix:
            module, _, leaf = rest.partition(".")
            if module not in _RESNET:
                raise ConversionError(f"UNet weight {key!r}: unknown resnet part {module!r}")
            rest = f"{_RESNET[module]}.{leaf}"
        out[key] = UNET_PREFIX + layout[prefix] + "." + rest
    missing = sorted(set(layout) - used)  # every block the config declares must carry weights
    if missing:
        raise ConversionError(f"unet/config.json declares blocks with no weights in the file: {', '.join(missing[:6])}"
                              + (f" and {len(missing) - 6} more" if len(missing) > 6 else ""))
    return out


def convert_unet(config: Mapping, state_dict: Mapping) -> dict:
    """diffusers UNet2DConditionModel state dict -> {model.diffusion_model.*: tensor}."""
    return {dst: state_dict[src] for src, dst in unet_key_map(config, list(state_dict)).items()}


# --- text encoders ------------------------------------------------------------------------------------

_CLIP_PARTS = ("text_model.embeddings.", "text_model.encoder.layers.", "text_model.final_layer_norm.")


def _text_model_keys(state_dict: Mapping) -> dict:
    """Hub files name the tower text_model.*; files saved by transformers 5's CLIPTextModel omit it."""
    return {k if k.startswith("text_model.") or k == "text_projection.weight" else "text_model." + k: v
            for k, v in state_dict.items()}


def convert_clip_l(state_dict: Mapping, prefix: str) -> dict:
    """transformers CLIPTextModel -> ComfyUI/SD single-file layout (same names under a prefix)."""
    out = {}
    for key, tensor in _text_model_keys(state_dict).items():
        if key == "text_projection.weight":  # CLIPTextModelWithProjection used as the L tower
            continue
        if not key.startswith(_CLIP_PARTS):
            raise ConversionError(f"text encoder weight {key!r} is not a CLIP text-model weight")
        out[prefix + key] = tensor
    if prefix + "text_model.embeddings.position_ids" not in out:
        import torch
        n = out[prefix + "text_model.embeddings.position_embedding.weight"].shape[0]
        out[prefix + "text_model.embeddings.position_ids"] = torch.arange(n).unsqueeze(0)
    return out


_OPENCLIP_LAYER = {"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
                   "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def convert_clip_g(state_dict: Mapping, num_layers: int, prefix: str = SDXL_CLIP_G_PREFIX) -> dict:
    """transformers CLIPTextModelWithProjection (bigG) -> the OpenCLIP layout SDXL single files use."""
    import torch
    sd = _text_model_keys(state_dict)
    sd.pop("text_model.embeddings.position_ids", None)
    out = {prefix + "token_embedding.weight": sd.pop("text_model.embeddings.token_embedding.weight"),
           prefix + "positional_embedding": sd.pop("text_model.embeddings.position_embedding.weight"),
           prefix + "ln_final.weight": sd.pop("text_model.final_layer_norm.weight"),
           prefix + "ln_final.bias": sd.pop("text_model.final_layer_norm.bias"),
           prefix + "text_projection": sd.pop("text_projection.weight").t().contiguous()}
    for i in range(num_layers):
        src, dst = f"text_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(
                [sd.pop(f"{src}self_attn.{p}_proj.{kind}") for p in ("q", "k", "v")], dim=0)
            for a, b in _OPENCLIP_LAYER.items():
                out[f"{dst}{b}.{kind}"] = sd.pop(f"{src}{a}.{kind}")
    if sd:
        raise ConversionError(f"text_encoder_2 weights not explained by its config.json: {', '.join(sorted(sd)[:6])}")
    return out


# --- VAE ------------------------------------------------------------------------------------------------

_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out",
             "query": "q", "key": "k", "value": "v", "proj_attn": "proj_out"}


def vae_layout(config: Mapping) -> dict[str, str]:
    n = len(config["block_out_channels"])
    layers = int(config.get("layers_per_block", 2))
    for t in config.get("down_block_types", []):
        if t != "DownEncoderBlock2D":
            raise ConversionError(f"VAE down block {t!r} is not an AutoencoderKL block of the SD family")
    for t in config.get("up_block_types", []):
        if t != "UpDecoderBlock2D":
            raise ConversionError(f"VAE up block {t!r} is not an AutoencoderKL block of the SD family")
    m = {}
    for side in ("encoder", "decoder"):
        for k in ("conv_in", "conv_out", "conv_norm_out"):
            m[f"{side}.{k}"] = f"{side}.{'norm_out' if k == 'conv_norm_out' else k}"
        m[f"{side}.mid_block.resnets.0"] = f"{side}.mid.block_1"
        m[f"{side}.mid_block.resnets.1"] = f"{side}.mid.block_2"
        m[f"{side}.mid_block.attentions.0"] = f"{side}.mid.attn_1"
    for i in range(n):
        for j in range(layers):
            m[f"encoder.down_blocks.{i}.resnets.{j}"] = f"encoder.down.{i}.block.{j}"
        if i != n - 1:
            m[f"encoder.down_blocks.{i}.downsamplers.0.conv"] = f"encoder.down.{i}.downsample.conv"
        for j in range(layers + 1):
            m[f"decoder.up_blocks.{i}.resnets.{j}"] = f"decoder.up.{n - 1 - i}.block.{j}"
        if i != n - 1:
            m[f"decoder.up_blocks.{i}.upsamplers.0.conv"] = f"decoder.up.{n - 1 - i}.upsample.conv"
    m["quant_conv"] = "quant_conv"
    m["post_quant_conv"] = "post_quant_conv"
    return m


def convert_vae(config: Mapping, state_dict: Mapping) -> dict:
    layout = vae_layout(config)
    prefixes = sorted(layout, key=len, reverse=True)
    out, used = {}, set()
    for key, tensor in state_dict.items():
        hit = _split(key, prefixes)
        if hit is None:
            raise ConversionError(f"VAE weight {key!r} is not explained by vae/config.json")
        prefix, rest = hit
        used.add(prefix)
        if ".attentions." in prefix:
            module, _, leaf = rest.rpartition(".")
            if module not in _VAE_ATTN:
                raise ConversionError(f"VAE weight {key!r}: unknown attention part {module!r}")
            rest = f"{_VAE_ATTN[module]}.{leaf}"
            if leaf == "weight" and tensor.ndim == 2:  # linear in diffusers, 1x1 conv in the LDM VAE
                tensor = tensor[:, :, None, None]
        elif ".resnets." in prefix:
            module, _, leaf = rest.partition(".")
            rest = f"{_VAE_RESNET.get(module, module)}.{leaf}"
        out[VAE_PREFIX + layout[prefix] + "." + rest] = tensor
    missing = sorted(set(layout) - used)
    if missing:
        raise ConversionError(f"vae/config.json declares blocks with no weights: {', '.join(missing[:6])}")
    return out


def expected_structure(config: Mapping) -> dict:
    """The UNet shape a correct load must show, in ComfyUI's own unet_config terms, from config.json.

    Compared against what the host detected, so a file that loads as a different architecture
    (the silent failure of fixed-numbering converters) is an error, not a wrong model.
    """
    unet_layout(config)  # validates the config
    bco = list(config["block_out_channels"])
    n = len(bco)
    layers = _per_block(config.get("layers_per_block", 2), n, "layers_per_block")
    depth = _per_block(config.get("transformer_layers_per_block", 1), n, "transformer_layers_per_block")
    attn = [_DOWN[t] for t in config["down_block_types"]]
    transformer_depth = [depth[x] if attn[x] else 0 for x in range(n) for _ in range(layers[x])]
    mid = _MID[config.get("mid_block_type", "UNetMidBlock2DCrossAttn")]
    return {
        "model_channels": bco[0],
        "channel_mult": [c // bco[0] for c in bco],
        "num_res_blocks": layers,
        "transformer_depth": transformer_depth,
        "transformer_depth_middle": {"cross_attn": depth[-1], "resnet_only": -1, None: -2}[mid],
        "context_dim": config.get("cross_attention_dim"),
    }
