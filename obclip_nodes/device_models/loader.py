"""Load a diffusers device-model folder as ComfyUI MODEL, CLIP and VAE, and prove the shape is right."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from . import folder, host
from .convert import expected_structure
from .folder import DeviceModelError

# ComfyUI supported-model classes per family, and the latent format each family must report
FAMILY_CLASSES = {"sd1": ("SD15",), "sdxl": ("SDXL", "SSD1B", "Segmind_Vega", "KOALA_700M", "KOALA_1B")}


@dataclass
class Loaded:
    model: object
    clip: object
    vae: object
    info: folder.FolderInfo
    detected_as: str
    seconds: float


def check_detection(model, info: folder.FolderInfo) -> str:
    """Raise DeviceModelError unless ComfyUI built exactly the UNet the folder's config.json describes."""
    detected = host.family_name(model)
    if detected not in FAMILY_CLASSES[info.family]:
        raise DeviceModelError(f"{info.path.name}: ComfyUI detected the converted UNet as {detected}, but its "
                               f"config.json describes an {info.family.upper()}-family UNet; refusing to run a "
                               "different architecture")
    got = host.unet_config(model)
    for key, value in expected_structure(info.unet_config).items():
        have = got.get(key, -2 if key == "transformer_depth_middle" else None)
        have = list(have) if isinstance(have, (list, tuple)) else have
        if have != value:
            raise DeviceModelError(f"{info.path.name}: ComfyUI built {key}={have} but config.json implies "
                                   f"{value}; refusing to run a different architecture")
    return detected


def load(path: str | Path) -> Loaded:
    start = time.perf_counter()
    info = folder.inspect(path)
    sd = folder.single_file_state_dict(info)
    model, clip, vae = host.load_state_dict(sd)
    del sd
    detected = check_detection(model, info)
    return Loaded(model, clip, vae, info, detected, time.perf_counter() - start)


def resolve(name_or_path: str) -> Path:
    """A folder name under ComfyUI's models/diffusers/, or an absolute path."""
    p = Path(name_or_path).expanduser()
    if p.is_absolute():
        return p
    for root in host.diffusers_dirs():
        if (root / name_or_path).is_dir():
            return root / name_or_path
    roots = ", ".join(str(r) for r in host.diffusers_dirs()) or "ComfyUI's models/diffusers/"
    raise DeviceModelError(f"no diffusers folder named {name_or_path!r} under {roots}; put the downloaded "
                           "model folder there (the one holding model_index.json) or give an absolute path")


def list_folders() -> list[str]:
    names = set()
    for root in host.diffusers_dirs():
        if root.is_dir():
            names.update(p.name for p in root.iterdir() if (p / "model_index.json").exists())
    return sorted(names)
