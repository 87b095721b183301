"""ObCLIP Device Finisher: the small local model finishes the real prompt from the cloud's sigma."""
from __future__ import annotations

import comfy.samplers
from .v3 import io

from ..sampling import IncompatibleModelError, encode_batch, finish_sample
from ..sampling.samplers import split_note
from ..sampling.schedule import HANDOFF_MODES
from .types import HandoffType, PrivateSelection, Selection

SAME_AS_CLOUD = "same as cloud"


class DeviceFinisher(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPDeviceFinisher",
            display_name="ObCLIP Device Finisher",
            category="ObCLIP",
            description="Finishes the remaining steps with a small local model on the real prompt only, "
                        "starting at the exact noise level where the cloud stopped. Refuses a model from "
                        "another latent space.",
            inputs=[
                io.Model.Input("model", tooltip="The small local model; must share the cloud's latent space."),
                io.Clip.Input("clip"),
                io.Latent.Input("latent", tooltip="The real candidate's latent from the Latent Selector."),
                Selection.Input("selection"),
                HandoffType.Input("handoff"),
                io.String.Input("negative", multiline=True, default=""),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01),
                io.Combo.Input("schedule", options=list(HANDOFF_MODES), default=HANDOFF_MODES[0],
                               tooltip="replay: the cloud's own remaining steps (KSamplerAdvanced start_at_step=k). "
                                       "sigma-matched: your own device_steps schedule from the cloud's stop sigma "
                                       "down (for a few-step cloud such as LCM)."),
                io.Int.Input("device_steps", default=25, min=1, max=10000,
                             tooltip="sigma-matched only: steps of the device's full schedule."),
                io.Combo.Input("device_scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="normal",
                               tooltip="sigma-matched only."),
                io.Combo.Input("device_sampler", options=[SAME_AS_CLOUD, *comfy.samplers.KSampler.SAMPLERS],
                               default=SAME_AS_CLOUD),
            ],
            outputs=[io.Latent.Output("finished", display_name="latent")],
        )

    @classmethod
    def execute(cls, model, clip, latent, selection: PrivateSelection, handoff, negative, cfg, schedule,
                device_steps, device_scheduler, device_sampler) -> io.NodeOutput:
        sampler = handoff.sampler if device_sampler == SAME_AS_CLOUD else device_sampler
        positive = encode_batch(clip, [selection.prompt])
        negative_cond = encode_batch(clip, [negative])
        try:
            out = finish_sample(model, positive, negative_cond, latent, handoff, cfg=cfg, mode=schedule,
                                device_steps=device_steps, device_scheduler=device_scheduler,
                                device_sampler=sampler)
        except IncompatibleModelError as e:
            raise ValueError(f"ObCLIP Device Finisher: {e}") from None
        notes = [f"finished from sigma {handoff.stop_sigma:.4g} ({schedule}) with {sampler}"]
        if split_note(sampler):
            notes.append(split_note(sampler))
        return io.NodeOutput(out, ui={"text": ["\n".join(notes)]})
