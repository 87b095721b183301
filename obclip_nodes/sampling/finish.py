"""The device's part: continue the real candidate's latent from the cloud's exact sigma."""
from __future__ import annotations

import torch

import comfy.sample
import comfy.samplers
import latent_preview

from ..protocol import Handoff
from .compat import check_device_model


def finish_sample(model, positive, negative, latent: dict, handoff: Handoff, *, cfg: float) -> dict:
    """Steps k..T on the device; equals KSamplerAdvanced(add_noise=disable, start_at_step=k).

    The remaining schedule is the cloud's own sigma tail, so the hand-off point is exact.
    """
    check_device_model(handoff, model, latent)
    tail = torch.tensor(handoff.remaining_sigmas, dtype=torch.float32)
    out = latent.copy()
    out.pop("downscale_ratio_spacial", None)
    if len(tail) < 2 or float(tail[0]) == 0.0:
        return out  # the cloud already ran every step
    x = latent["samples"]
    callback = latent_preview.prepare_callback(model, len(tail) - 1)
    out["samples"] = comfy.sample.sample_custom(
        model, torch.zeros_like(x), cfg, comfy.samplers.sampler_object(handoff.sampler), tail,
        positive, negative, x, noise_mask=latent.get("noise_mask"), callback=callback, seed=handoff.seed)
    return out
