"""Widget definitions shared by the client and server samplers (same names, same ranges)."""
from __future__ import annotations

import json

import comfy.samplers
from .v3 import io


def generation_inputs() -> list:
    return [
        io.String.Input("negative", multiline=True, default="", tooltip="Negative prompt, sent to the cloud "
                        "as is (it is the same whichever candidate is real)."),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="One initial noise shared by every candidate."),
        io.Int.Input("steps", default=20, min=1, max=10000, tooltip="T: the whole denoising schedule."),
        io.Int.Input("cloud_steps", default=8, min=1, max=10000,
                     tooltip="k: how many of the T steps the cloud runs for all candidates."),
        io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler",
                       tooltip="euler or ddim hand off exactly; multistep/ancestral samplers drift at the split."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="normal"),
        io.Int.Input("width", default=512, min=16, max=8192, step=8),
        io.Int.Input("height", default=512, min=16, max=8192, step=8),
    ]


def parse_candidates(value) -> tuple[str, ...]:
    """A link gives the expander's tuple; the wire gives its JSON text."""
    if isinstance(value, (tuple, list)):
        items = value
    else:
        try:
            items = json.loads(value)
        except (TypeError, ValueError):
            raise ValueError("candidates must be a JSON list of prompts or a link from the "
                             "ObCLIP Candidate Expander") from None
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(s, str) for s in items):
        raise ValueError("candidates must be a non-empty list of prompt strings")
    return tuple(items)


def current_prompt_id() -> str | None:
    """The id of the local prompt this node runs in (None outside an executing graph)."""
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None
    ctx = get_executing_context()
    return ctx.prompt_id if ctx else None
