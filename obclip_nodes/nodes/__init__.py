"""The one place where the pack's nodes are registered (V3 API)."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .accelerator import CacheAccelerator
from .cloud import CloudPartialSampler
from .expander import CandidateExpander
from .finisher import DeviceFinisher
from .selector import LatentSelector
from .server import ServerReturn, ServerSampler
from ..remote import server_side  # noqa: F401,E402  installs token auth + result store on a running server
from . import routes  # noqa: F401,E402  /obclip/probe and /obclip/expand for the browser extension (web/)
from ..miniworld import comfy_family  # noqa: E402

# The mini world's trained demo models load with the stock Load Checkpoint node (OBCLIP_MINIWORLD=0: off).
comfy_family.install()

NODES: list[type[io.ComfyNode]] = [
    CandidateExpander, CloudPartialSampler, CacheAccelerator, LatentSelector, DeviceFinisher,
    ServerSampler, ServerReturn,
]


class ObCLIPExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> ObCLIPExtension:
    return ObCLIPExtension()
