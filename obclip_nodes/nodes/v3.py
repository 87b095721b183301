"""ComfyUI's V3 node API, imported in this one place.

comfy_api.v0_0_2 is the versioned V3 API that ComfyUI 0.3.75 and 0.33.0 both ship (it re-exports the same
io and ComfyExtension objects as comfy_api.latest, so nodes behave the same); a pinned version is what a
node pack should import rather than "latest", which moves with every release.
tests/integration/test_host_compat.py checks it on each host.
"""
from comfy_api.v0_0_2 import ComfyExtension, io

__all__ = ["ComfyExtension", "io"]
