"""ObCLIP node pack for ComfyUI (V3 API). Logic lives in obclip_nodes/; this only registers it."""
from .obclip_nodes.nodes import comfy_entrypoint

WEB_DIRECTORY = "./web"

__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
