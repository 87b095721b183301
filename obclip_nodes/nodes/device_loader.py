"""ObCLIP Device Model Loader: a diffusers device-model folder as MODEL, CLIP and VAE."""
from __future__ import annotations

from .v3 import io

from ..device_models import loader
from ..device_models.folder import DeviceModelError

NO_FOLDERS = "(no diffusers folders found)"


class DeviceModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPDeviceModelLoader",
            display_name="ObCLIP Device Model Loader",
            category="ObCLIP",
            description="Loads a small device model as published on the Hugging Face Hub (a diffusers folder: "
                        "BK-SDM, small-sd, tiny-sd, KOALA, SSD-1B, Segmind-Vega), built from its own config.json. "
                        "A folder it cannot represent exactly is refused with what differs.",
            inputs=[
                io.Combo.Input("model_folder", options=loader.list_folders() or [NO_FOLDERS],
                               tooltip="A folder under ComfyUI's models/diffusers/ holding model_index.json."),
                io.String.Input("path", default="", optional=True,
                                tooltip="Absolute path to a diffusers folder elsewhere; overrides model_folder."),
            ],
            outputs=[io.Model.Output("MODEL"), io.Clip.Output("CLIP"), io.Vae.Output("VAE")],
        )

    @classmethod
    def execute(cls, model_folder: str, path: str = "") -> io.NodeOutput:
        target = path.strip() or model_folder
        if target == NO_FOLDERS:
            raise ValueError("ObCLIP Device Model Loader: no diffusers model folder found. Put the downloaded "
                             "folder (the one holding model_index.json) under ComfyUI's models/diffusers/ and "
                             "refresh, or give its absolute path in `path`.")
        try:
            loaded = loader.load(loader.resolve(target))
        except DeviceModelError as e:
            raise ValueError(f"ObCLIP Device Model Loader: {e}") from None
        return io.NodeOutput(loaded.model, loaded.clip, loaded.vae)
