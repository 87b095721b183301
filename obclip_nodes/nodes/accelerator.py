"""ObCLIP Cache Accelerator: the cloud-side cache strategies, chosen on the client."""
from __future__ import annotations

from comfy_api.latest import io

from ..acceleration import AccelerationSettings
from .types import Acceleration


class CacheAccelerator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPCacheAccelerator",
            display_name="ObCLIP Cache Accelerator",
            category="ObCLIP",
            description="Chooses the cloud-side cache strategies for the N-candidate batch. This version "
                        "sends and validates the settings; the strategies themselves are not applied yet "
                        "and the node says so.",
            is_experimental=True,
            inputs=[
                io.Boolean.Input("batch_reuse", default=False),
                io.Boolean.Input("attention_cache", default=False),
                io.Boolean.Input("block_skip", default=False),
                io.Boolean.Input("uncond_dedup", default=False),
                io.Int.Input("cache_point", default=3, min=0, max=1000),
                io.Int.Input("skip_point", default=3, min=0, max=1000),
                io.Int.Input("refresh_every", default=5, min=1, max=1000),
            ],
            outputs=[Acceleration.Output("acceleration", display_name="acceleration")],
        )

    @classmethod
    def execute(cls, **settings) -> io.NodeOutput:
        accel = AccelerationSettings.from_dict(settings)
        not_applied = [s for s in accel.requested if s not in accel.applied]
        text = (f"requested: {', '.join(accel.requested) or 'none'}; "
                f"not applied in this version: {', '.join(not_applied) or 'none'}")
        return io.NodeOutput(accel, ui={"text": [text]})
