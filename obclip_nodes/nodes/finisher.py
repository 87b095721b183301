"""ObCLIP Device Finisher: the small local model finishes the real prompt from the cloud's sigma."""
from __future__ import annotations

from comfy_api.latest import io

from ..sampling import IncompatibleModelError, encode_batch, finish_sample
from .types import HandoffType, PrivateSelection, Selection


class DeviceFinisher(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPDeviceFinisher",
            display_name="ObCLIP Device Finisher",
            category="ObCLIP",
            description="Finishes steps k..T with a small local model on the real prompt only, starting "
                        "at the exact noise level where the cloud stopped.",
            inputs=[
                io.Model.Input("model", tooltip="The small local model; must share the cloud's latent space."),
                io.Clip.Input("clip"),
                io.Latent.Input("latent", tooltip="The real candidate's latent from the Latent Selector."),
                Selection.Input("selection"),
                HandoffType.Input("handoff"),
                io.String.Input("negative", multiline=True, default=""),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01),
            ],
            outputs=[io.Latent.Output("finished", display_name="latent")],
        )

    @classmethod
    def execute(cls, model, clip, latent, selection: PrivateSelection, handoff, negative, cfg) -> io.NodeOutput:
        positive = encode_batch(clip, [selection.prompt])
        negative_cond = encode_batch(clip, [negative])
        try:
            out = finish_sample(model, positive, negative_cond, latent, handoff, cfg=cfg)
        except IncompatibleModelError as e:
            raise ValueError(f"ObCLIP Device Finisher: {e}") from None
        return io.NodeOutput(out)
