"""Read a diffusers model folder (model_index.json, unet/, text_encoder(s)/, vae/) and turn it into one
single-file state dict, or refuse it with a message that says what differs.

What the pack represents exactly: the SD1.x family (CLIP ViT-L, 768-d context, SD VAE latent space,
epsilon prediction) and the SDXL family (CLIP ViT-L + OpenCLIP bigG, 2048-d context, text_time
conditioning, SDXL VAE latent space). The family is read from the configs, never from the folder name.
Host-independent: torch, safetensors and json only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .convert import (
    SD1_CLIP_PREFIX,
    SDXL_CLIP_G_PREFIX,
    SDXL_CLIP_L_PREFIX,
    ConversionError,
    convert_clip_g,
    convert_clip_l,
    convert_unet,
    convert_vae,
)

SD1_VAE_SCALE = 0.18215
SDXL_VAE_SCALE = 0.13025
SUPPORTED = ("SD1.x (BK-SDM Base/Small/Tiny, segmind small-sd/tiny-sd, SD1.5) and SDXL "
             "(KOALA-700M/1B, SSD-1B, Segmind-Vega, SDXL)")


class DeviceModelError(ValueError):
    """A folder this loader cannot represent exactly; the message says what differs and what to pick."""


@dataclass
class FolderInfo:
    path: Path
    family: str                      # "sd1" | "sdxl"
    latent_format: str               # ComfyUI latent format name: "SD15" | "SDXL"
    unet_config: dict
    components: dict[str, Path] = field(default_factory=dict)   # component name -> its folder


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DeviceModelError(f"{path.parent} is not a diffusers model folder: {what} is missing "
                               f"(expected {path.name}). The loader takes a folder as published on the "
                               f"Hugging Face Hub, with model_index.json, unet/, text_encoder/ and vae/.") from None
    except json.JSONDecodeError as e:
        raise DeviceModelError(f"{path} is not valid JSON ({e}); re-download the model folder") from None


def inspect(path: str | Path) -> FolderInfo:
    """Check a folder's configs (no weights read) and return what it is, or raise DeviceModelError."""
    root = Path(path)
    if not root.is_dir():
        raise DeviceModelError(f"{root} is not a folder; pass a diffusers model folder (the one holding "
                               "model_index.json), placed under ComfyUI's models/diffusers/ or given as a path")
    index = _read_json(root / "model_index.json", "model_index.json")
    pipeline = index.get("_class_name", "?")
    if not (root / "unet" / "config.json").exists():
        parts = ", ".join(k for k, v in index.items() if not k.startswith("_") and isinstance(v, list))
        raise DeviceModelError(f"{root.name} is a {pipeline} folder that has no unet/ (its parts: {parts or 'none'}); "
                               f"the Device Model Loader takes Stable Diffusion UNet models: {SUPPORTED}")
    unet_cfg = _read_json(root / "unet" / "config.json", "unet/config.json")
    if unet_cfg.get("_class_name", "UNet2DConditionModel") != "UNet2DConditionModel":
        raise DeviceModelError(f"{root.name}: its unet is a {unet_cfg.get('_class_name')}, not a Stable Diffusion "
                               f"UNet2DConditionModel; this loader supports {SUPPORTED}")
    ctx = unet_cfg.get("cross_attention_dim")
    addition = unet_cfg.get("addition_embed_type")
    if unet_cfg.get("in_channels", 4) != 4 or unet_cfg.get("out_channels", 4) != 4:
        raise DeviceModelError(f"{root.name}: the UNet has {unet_cfg.get('in_channels')} input channels (an "
                               "inpainting or image-conditioned model); a Device Finisher needs a 4-channel "
                               "text-to-image UNet")
    if ctx == 768 and addition is None:
        family, latent, te = "sd1", "SD15", ["text_encoder"]
    elif ctx == 2048 and addition == "text_time":
        family, latent, te = "sdxl", "SDXL", ["text_encoder", "text_encoder_2"]
    elif ctx == 1024:
        raise DeviceModelError(
            f"{root.name}: an SD2.x-family model (cross_attention_dim 1024, OpenCLIP ViT-H text encoder"
            f"{', v-prediction' if _prediction(root) == 'v_prediction' else ''}), such as the BK-SDM-v2 models "
            f"built on SD2.1. Its text encoder and noise schedule differ from the SD1.x and SDXL families, so the "
            f"pack cannot pair it with an SD1.5 or SDXL cloud. Pick an SD1.x device (BK-SDM-Small, BK-SDM-Tiny, "
            f"small-sd, tiny-sd) or an SDXL device (KOALA-700M, SSD-1B, Segmind-Vega).")
    else:
        raise DeviceModelError(f"{root.name}: UNet with cross_attention_dim={ctx!r} and addition_embed_type="
                               f"{addition!r} is neither SD1.x (768, none) nor SDXL (2048, text_time); this loader "
                               f"supports {SUPPORTED}")
    info = FolderInfo(root, family, latent, unet_cfg)
    for name in ["unet", *te, "vae"]:
        if not (root / name / "config.json").exists():
            raise DeviceModelError(f"{root.name} ({pipeline}) has no {name}/config.json; a device model needs its "
                                   f"own UNet, text encoder(s) and VAE in the folder")
        info.components[name] = root / name
    _check_vae(root, family)
    pred = _prediction(root)
    if pred not in (None, "epsilon"):
        raise DeviceModelError(f"{root.name}: scheduler prediction_type is {pred!r}, but the {family.upper()} cloud "
                               "models predict epsilon; pick a device model trained with epsilon prediction")
    return info


def _prediction(root: Path) -> str | None:
    cfg = root / "scheduler" / "scheduler_config.json"
    if not cfg.exists():
        return None
    return json.loads(cfg.read_text()).get("prediction_type")


def _check_vae(root: Path, family: str) -> None:
    cfg = _read_json(root / "vae" / "config.json", "vae/config.json")
    want = SD1_VAE_SCALE if family == "sd1" else SDXL_VAE_SCALE
    scale = cfg.get("scaling_factor", SD1_VAE_SCALE)
    channels = cfg.get("latent_channels", 4)
    if cfg.get("_class_name", "AutoencoderKL") != "AutoencoderKL" or channels != 4 or abs(scale - want) > 1e-6:
        other = "SDXL" if abs(scale - SDXL_VAE_SCALE) < 1e-6 else None
        raise DeviceModelError(
            f"{root.name}: its VAE ({cfg.get('_class_name', 'AutoencoderKL')}, {channels} latent channels, "
            f"scaling_factor {scale}) is {'the ' + other if other else 'another'} latent space, but its UNet is "
            f"{family.upper()}-family (expects {want}); the device would decode the cloud's latents wrongly. "
            f"Use the folder's original {family.upper()} VAE.")


def _weights_file(folder: Path) -> list[Path]:
    """The component's safetensors (one file, or the shards an index lists). fp32 file first, then fp16."""
    for stem in ("diffusion_pytorch_model", "model"):
        for variant in ("", ".fp16"):
            single = folder / f"{stem}{variant}.safetensors"
            if single.exists():
                return [single]
            index = folder / f"{stem}.safetensors.index{variant}.json"
            if not index.exists():
                index = folder / f"{stem}{variant}.safetensors.index.json"
            if index.exists():
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
                return [folder / s for s in shards]
    bins = sorted(p.name for p in folder.glob("*.bin"))
    hint = (f" It has {', '.join(bins)}: pickled weights, which the pack never loads (they can run code); "
            "download the .safetensors files of the same repository instead.") if bins else ""
    raise DeviceModelError(f"{folder} has no .safetensors weights.{hint}")


def component_files(folder: Path) -> list[Path]:
    return _weights_file(folder)


def load_component(folder: Path) -> dict:
    from safetensors.torch import load_file
    sd = {}
    for f in _weights_file(folder):
        sd.update(load_file(str(f)))
    return sd


def single_file_state_dict(info: FolderInfo) -> dict:
    """All components converted to the single-file key layout (tensors keep their stored dtype)."""
    try:
        sd = convert_unet(info.unet_config, load_component(info.components["unet"]))
        vae_cfg = json.loads((info.components["vae"] / "config.json").read_text())
        sd.update(convert_vae(vae_cfg, load_component(info.components["vae"])))
        if info.family == "sd1":
            sd.update(convert_clip_l(load_component(info.components["text_encoder"]), SD1_CLIP_PREFIX))
        else:
            sd.update(convert_clip_l(load_component(info.components["text_encoder"]), SDXL_CLIP_L_PREFIX))
            g_cfg = json.loads((info.components["text_encoder_2"] / "config.json").read_text())
            sd.update(convert_clip_g(load_component(info.components["text_encoder_2"]),
                                     int(g_cfg["num_hidden_layers"]), SDXL_CLIP_G_PREFIX))
    except ConversionError as e:
        raise DeviceModelError(f"{info.path.name}: {e}") from None
    return sd
