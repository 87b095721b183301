"""ObCLIP Device Finisher: the small local model finishes the real prompt from the cloud's sigma."""
from __future__ import annotations

import comfy.samplers
from .v3 import io

from ..sampling import IncompatibleModelError, finish_sample
from ..sampling.samplers import split_note
from .device_side import SAME_AS_CLOUD, encode_real_prompt, schedule_inputs
from .types import HandoffType, PrivateSelection, Selection


class DeviceFinisher(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPDeviceFinisher",
            display_name="ObCLIP Device Finisher",
            category="ObCLIP",
            description="Finishes the remaining steps with a small local model on the real prompt only, "
                        "starting at the exact noise level where the cloud stopped. Refuses a model from "
                        "another latent space. Connect positive/negative conditioning (from ObCLIP Encode "
                        "Real Prompt through ControlNet, IP-Adapter, ...) to replace its own text encoding.",
            inputs=[
                io.Model.Input("model", tooltip="The small local model; must share the cloud's latent space."),
                io.Latent.Input("latent", tooltip="The real candidate's latent from the Latent Selector."),
                Selection.Input("selection"),
                HandoffType.Input("handoff"),
                io.String.Input("negative", multiline=True, default="",
                                tooltip="Ignored when negative_conditioning is connected."),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01),
                *schedule_inputs(),
                io.Combo.Input("device_sampler", options=[SAME_AS_CLOUD, *comfy.samplers.KSampler.SAMPLERS],
                               default=SAME_AS_CLOUD),
                io.Clip.Input("clip", optional=True,
                              tooltip="Encodes the real prompt and the negative widget; not needed when both "
                                      "conditioning inputs are connected."),
                io.Conditioning.Input("positive_conditioning", optional=True,
                                      tooltip="Replaces the Finisher's own encoding of the real prompt, e.g. "
                                              "ObCLIP Encode Real Prompt -> ControlNet Apply -> here."),
                io.Conditioning.Input("negative_conditioning", optional=True,
                                      tooltip="Replaces the encoding of the negative widget."),
            ],
            outputs=[io.Latent.Output("finished", display_name="latent")],
        )

    @classmethod
    def execute(cls, model, latent, selection: PrivateSelection, handoff, negative, cfg, schedule,
                device_steps, device_scheduler, device_sampler, clip=None, positive_conditioning=None,
                negative_conditioning=None) -> io.NodeOutput:
        sampler = handoff.sampler if device_sampler == SAME_AS_CLOUD else device_sampler
        positive, negative_cond = positive_conditioning, negative_conditioning
        if positive is None or negative_cond is None:
            try:
                own_positive, own_negative = encode_real_prompt(clip, selection, negative)
            except ValueError as e:
                raise ValueError(f"ObCLIP Device Finisher: {e}") from None
            positive = own_positive if positive is None else positive
            negative_cond = own_negative if negative_cond is None else negative_cond
        try:
            out = finish_sample(model, positive, negative_cond, latent, handoff, cfg=cfg, mode=schedule,
                                device_steps=device_steps, device_scheduler=device_scheduler,
                                device_sampler=sampler)
        except IncompatibleModelError as e:
            raise ValueError(f"ObCLIP Device Finisher: {e}") from None
        notes = [f"finished from sigma {handoff.stop_sigma:.4g} ({schedule}) with {sampler}"]
        if positive_conditioning is not None or negative_conditioning is not None:
            wired = [n for n, c in (("positive", positive_conditioning), ("negative", negative_conditioning))
                     if c is not None]
            notes.append(f"{' and '.join(wired)} from the connected conditioning")
        if split_note(sampler):
            notes.append(split_note(sampler))
        return io.NodeOutput(out, ui={"text": ["\n".join(notes)]})
