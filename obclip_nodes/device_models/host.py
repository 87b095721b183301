"""The one seam between the device loader and ComfyUI's internals.

Touches exactly: comfy.sd.load_state_dict_guess_config (build MODEL, CLIP, VAE from a single-file
state dict, the same detection Load Checkpoint uses), comfy.sd.load_checkpoint_guess_config (what the
stock Load Checkpoint node calls, used to verify a converted file) and folder_paths.get_folder_paths
("diffusers", "embeddings"). tests/integration/test_device_models.py::test_host_seam checks each on
every host; both signatures are the same in ComfyUI 0.3.75 and 0.33.0.
"""
from __future__ import annotations

from pathlib import Path


class NotDetectedError(RuntimeError):
    """ComfyUI did not recognise the converted state dict as a checkpoint."""


def _embeddings() -> list[str] | None:
    import folder_paths
    try:
        return folder_paths.get_folder_paths("embeddings")
    except KeyError:
        return None


def diffusers_dirs() -> list[Path]:
    import folder_paths
    try:
        return [Path(p) for p in folder_paths.get_folder_paths("diffusers")]
    except KeyError:
        return []


def load_state_dict(sd: dict):
    """(MODEL, CLIP, VAE) from a single-file state dict, through ComfyUI's own detection."""
    import comfy.sd
    out = comfy.sd.load_state_dict_guess_config(sd, output_vae=True, output_clip=True,
                                                embedding_directory=_embeddings())
    if out is None or out[0] is None:
        raise NotDetectedError("ComfyUI could not detect the model type of the converted weights")
    return out[0], out[1], out[2]


def load_checkpoint(path: Path):
    """(MODEL, CLIP, VAE) exactly as the stock Load Checkpoint node loads a file."""
    import comfy.sd
    out = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=True, output_clip=True,
                                                embedding_directory=_embeddings())
    return out[0], out[1], out[2]


def family_name(model) -> str:
    """ComfyUI's supported-model class the MODEL was detected as (e.g. SD15, SDXL, KOALA_700M)."""
    return type(model.model.model_config).__name__


def unet_config(model) -> dict:
    return dict(model.model.model_config.unet_config)
