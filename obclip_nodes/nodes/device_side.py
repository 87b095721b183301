"""Device-side building blocks, so stock and third-party nodes can finish the real candidate.

Their outputs (CONDITIONING, SIGMAS, LATENT, NOISE) are local ComfyUI types. The Cloud Partial
Sampler accepts only the public candidate list and plain widgets, so none of them can be wired to
the cloud; the real prompt reaches a CONDITIONING only here, on this machine.
"""
from __future__ import annotations

import comfy.samplers
from .v3 import io

from ..sampling import IncompatibleModelError
from ..sampling.conditioning import encode_prompt_pair
from ..sampling.finish import HandoffNoise, handoff_latent, handoff_sigmas
from ..sampling.schedule import HANDOFF_MODES
from .types import HandoffType, PrivateSelection, Selection

SAME_AS_CLOUD = "same as cloud"


def schedule_inputs() -> list:
    """The hand-off schedule widgets, shared by the Device Finisher and the Hand-off Sigmas node."""
    return [
        io.Combo.Input("schedule", options=list(HANDOFF_MODES), default=HANDOFF_MODES[0],
                       tooltip="replay: the cloud's own remaining steps (KSamplerAdvanced start_at_step=k). "
                               "sigma-matched: your own device_steps schedule from the cloud's stop sigma "
                               "down (for a few-step cloud such as LCM)."),
        io.Int.Input("device_steps", default=25, min=1, max=10000,
                     tooltip="sigma-matched only: steps of the device's full schedule."),
        io.Combo.Input("device_scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="normal",
                       tooltip="sigma-matched only."),
    ]


def encode_real_prompt(clip, selection: PrivateSelection, negative: str) -> tuple[list, list]:
    """The real candidate's (positive, negative) conditioning: the one code path for both nodes."""
    if clip is None:
        raise ValueError("no CLIP to encode the real prompt: connect the device checkpoint's CLIP, or "
                         "connect both conditioning inputs")
    return encode_prompt_pair(clip, selection.prompt, negative)


class EncodeRealPrompt(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPEncodeRealPrompt",
            display_name="ObCLIP Encode Real Prompt (device)",
            category="ObCLIP",
            description="Encodes the real candidate on this machine, exactly as the Device Finisher does, so "
                        "ControlNet, IP-Adapter or conditioning nodes can go between it and the Finisher. "
                        "CONDITIONING stays on the device: no ObCLIP node that talks to a server accepts it.",
            inputs=[
                io.Clip.Input("clip", tooltip="The device model's CLIP."),
                Selection.Input("selection", tooltip="The private selection from the Candidate Expander."),
                io.String.Input("negative", multiline=True, default="",
                                tooltip="Negative prompt for the device (the Finisher's negative widget)."),
            ],
            outputs=[io.Conditioning.Output("positive_conditioning", display_name="positive"),
                     io.Conditioning.Output("negative_conditioning", display_name="negative")],
        )

    @classmethod
    def execute(cls, clip, selection: PrivateSelection, negative) -> io.NodeOutput:
        return io.NodeOutput(*encode_real_prompt(clip, selection, negative))


class HandoffSigmas(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPHandoffSigmas",
            display_name="ObCLIP Hand-off Sigmas",
            category="ObCLIP",
            description="The remaining steps as SIGMAS from the cloud's exact stop sigma, the real latent, and "
                        "the hand-off NOISE (none added, the cloud's seed), for SamplerCustomAdvanced or any "
                        "custom sampler. With the same sampler and cfg it equals the Device Finisher.",
            inputs=[
                io.Model.Input("model", tooltip="The device model: checked against the cloud's latent space, "
                                                "and its schedule is used in sigma-matched mode."),
                io.Latent.Input("latent", tooltip="The real candidate's latent from the Latent Selector."),
                HandoffType.Input("handoff"),
                *schedule_inputs(),
                io.Combo.Input("device_sampler", options=[SAME_AS_CLOUD, *comfy.samplers.KSampler.SAMPLERS],
                               default=SAME_AS_CLOUD,
                               tooltip="The sampler you finish with (KSamplerSelect). sigma-matched only: a few "
                                       "samplers (dpm_2, uni_pc) shape the device schedule."),
            ],
            outputs=[io.Sigmas.Output("sigmas", display_name="sigmas"),
                     io.Latent.Output("real_latent", display_name="latent"),
                     io.Noise.Output("noise", display_name="noise")],
        )

    @classmethod
    def execute(cls, model, latent, handoff, schedule, device_steps, device_scheduler,
                device_sampler) -> io.NodeOutput:
        sampler = handoff.sampler if device_sampler == SAME_AS_CLOUD else device_sampler
        try:
            sigmas = handoff_sigmas(model, latent, handoff, mode=schedule, device_steps=device_steps,
                                    device_scheduler=device_scheduler, device_sampler=sampler)
        except IncompatibleModelError as e:
            raise ValueError(f"ObCLIP Hand-off Sigmas: {e}") from None
        text = (f"{len(sigmas) - 1 if len(sigmas) else 0} steps from sigma {handoff.stop_sigma:.4g} ({schedule}); "
                f"the cloud ran {handoff.sampler}")
        return io.NodeOutput(sigmas, handoff_latent(latent), HandoffNoise(handoff.seed), ui={"text": [text]})
