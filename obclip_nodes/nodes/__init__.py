"""The one place where the pack's nodes are registered (V3 API), and what loading the pack installs."""
from __future__ import annotations

import logging

from .v3 import ComfyExtension, io

from .. import cloud_server, config
from . import routes
from .accelerator import CacheAccelerator
from .cloud import CloudPartialSampler
from .device_loader import DeviceModelLoader
from .device_side import EncodeRealPrompt, HandoffSigmas
from .expander import CandidateExpander
from .finisher import DeviceFinisher
from .selector import LatentSelector
from .server import ServerReturn, ServerSampler

log = logging.getLogger("obclip")

NODES: list[type[io.ComfyNode]] = [
    CandidateExpander, CloudPartialSampler, CacheAccelerator, LatentSelector, DeviceFinisher,
    EncodeRealPrompt, HandoffSigmas, DeviceModelLoader, ServerSampler, ServerReturn,
]


def install_server_side() -> None:
    """Inside a running ComfyUI: the cloud's auth, limits and result route, the browser routes, and
    (opt-in) the demo's model family. A bad setting is logged with its fix; it never stops the nodes."""
    cfg = config.settings()
    for name in config.unknown_variables():
        log.warning("obclip: %s is not a setting the pack reads (typo?)", name)
    for message in cfg.problems.values():
        log.error("obclip: %s", message)
    cloud_server.install()
    routes.install()
    if cfg.miniworld:
        from ..miniworld import comfy_family
        comfy_family.install()


install_server_side()


class ObCLIPExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> ObCLIPExtension:
    return ObCLIPExtension()
