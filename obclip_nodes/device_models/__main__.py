"""python -m obclip_nodes.device_models convert-device DIR OUT.safetensors [--comfyui COMFYUI_DIR]

Writes a diffusers device-model folder as one single-file checkpoint in ComfyUI's own key layout, so
the stock Load Checkpoint node detects it as the right architecture. Refuses to overwrite; verifies
the file by loading it back the way Load Checkpoint does before it appears under OUT's name.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import folder
from .checkpoint import write_checkpoint
from .folder import DeviceModelError


def _comfy_importable(explicit: str | None) -> Path:
    """ComfyUI's tree: --comfyui, $COMFYUI_DIR, or the ComfyUI this pack is installed in (custom_nodes/)."""
    here = Path(__file__).resolve()
    candidates = [explicit, os.environ.get("COMFYUI_DIR"), str(here.parents[4])]  # ComfyUI/custom_nodes/<pack>/obclip_nodes/device_models
    for c in candidates:
        if c and (Path(c) / "comfy" / "sd.py").exists():
            root = Path(c)
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            import comfy.cli_args
            comfy.cli_args.args.cpu = True  # verification only: no GPU needed, none taken
            return root
    raise DeviceModelError("cannot verify the file without ComfyUI: pass --comfyui /path/to/ComfyUI or set "
                           "COMFYUI_DIR (or run from the ComfyUI this pack is installed in)")


def verify(out: Path, info: folder.FolderInfo) -> tuple[str, tuple, float]:
    """Load OUT like the stock Load Checkpoint node; its detection must match the folder's config and
    every UNet weight must equal the folder's own (read back one tensor at a time, to keep memory low).
    Returns (detected class, (MODEL, CLIP, VAE), load seconds)."""
    import time

    import torch
    from safetensors import safe_open

    from . import host
    from .convert import UNET_PREFIX, unet_key_map
    from .loader import check_detection
    t0 = time.perf_counter()
    model, clip, vae = host.load_checkpoint(out)
    seconds = time.perf_counter() - t0
    if clip is None or vae is None:
        raise DeviceModelError(f"{out}: Load Checkpoint found no {'CLIP' if clip is None else 'VAE'} in the file")
    detected = check_detection(model, info)
    loaded = model.model.diffusion_model.state_dict()
    files = folder.component_files(info.components["unet"])
    keys = {}
    for f in files:
        with safe_open(str(f), "pt") as src:
            keys[f] = list(src.keys())
    mapping = unet_key_map(info.unet_config, [k for ks in keys.values() for k in ks])
    for f, ks in keys.items():
        with safe_open(str(f), "pt") as src:
            for key in ks:
                tensor = src.get_tensor(key)
                got = loaded.get(mapping[key][len(UNET_PREFIX):])
                if got is None or not torch.equal(got.to(tensor.dtype), tensor):
                    raise DeviceModelError(f"{out}: UNet weight {key} did not load back unchanged "
                                           f"(as {mapping[key]})")
    return detected, (model, clip, vae), seconds


def convert_device(src: Path, out: Path, comfyui: str | None = None, keep_loaded: bool = False):
    """Write, verify, then move into place. Returns the detected class (and, with keep_loaded,
    the verified (MODEL, CLIP, VAE) and their load time)."""
    if out.exists():
        raise DeviceModelError(f"{out} exists; the converter never overwrites. Choose another name or remove it.")
    if out.suffix != ".safetensors":
        raise DeviceModelError(f"{out}: the output must be a .safetensors file (the pack writes safetensors only)")
    info = folder.inspect(src)
    _comfy_importable(comfyui)
    sd = folder.single_file_state_dict(info)
    tmp = out.with_name(out.stem + ".partial.safetensors")  # comfy picks the reader by extension
    out.parent.mkdir(parents=True, exist_ok=True)
    write_checkpoint(sd, tmp, {"obclip_converted_from": info.path.name})
    del sd
    try:
        detected, loaded, seconds = verify(tmp, info)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if out.exists():  # appeared while we worked: still never overwrite
        tmp.unlink(missing_ok=True)
        raise DeviceModelError(f"{out} appeared during conversion; not overwriting it")
    tmp.replace(out)
    return (detected, loaded, seconds) if keep_loaded else detected


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m obclip_nodes.device_models")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert-device", help="diffusers folder -> single-file checkpoint for Load Checkpoint")
    c.add_argument("src", type=Path, help="diffusers model folder (holds model_index.json)")
    c.add_argument("out", type=Path, help="output .safetensors (must not exist)")
    c.add_argument("--comfyui", help="ComfyUI tree used to verify the result (default: $COMFYUI_DIR)")
    args = p.parse_args(argv)
    try:
        detected = convert_device(args.src, args.out, args.comfyui)
    except DeviceModelError as e:
        print(f"convert-device: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: Load Checkpoint detects it as {detected}, every UNet weight verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
