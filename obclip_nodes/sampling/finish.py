"""The device's part: continue the real candidate's latent from the cloud's exact sigma."""
from __future__ import annotations

import torch

import comfy.sample
import comfy.samplers
import latent_preview

from ..protocol import Handoff
from .compat import check_device_model
from .schedule import HANDOFF_MODES, device_tail


def finish_sample(model, positive, negative, latent: dict, handoff: Handoff, *, cfg: float,
                  mode: str = HANDOFF_MODES[0], device_steps: int = 25, device_scheduler: str = "normal",
                  device_sampler: str | None = None) -> dict:
    """Steps k..T on the device.

    The default mode replays the cloud's own sigma tail, which equals
    KSamplerAdvanced(add_noise=disable, start_at_step=k) on the same T and scheduler. The
    sigma-matched mode uses the device's own schedule from the cloud's stop sigma down, for a
    few-step cloud handing off to a many-step device without a hand-tuned shift.
    """
    check_device_model(handoff, model, latent)
    sampler = device_sampler or handoff.sampler
    tail = device_tail(handoff, model, mode=mode, steps=device_steps, scheduler=device_scheduler,
                       sampler=sampler)
    out = {k: v for k, v in latent.items() if k not in ("downscale_ratio_spacial", "batch_index")}
    if len(tail) < 2 or float(tail[0]) == 0.0:
        return out  # the cloud already ran every step
    x = latent["samples"]
    callback = latent_preview.prepare_callback(model, len(tail) - 1)
    out["samples"] = comfy.sample.sample_custom(
        model, torch.zeros_like(x), cfg, comfy.samplers.sampler_object(sampler), tail,
        positive, negative, x, noise_mask=latent.get("noise_mask"), callback=callback, seed=handoff.seed)
    return out
