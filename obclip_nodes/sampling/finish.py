"""The device's part: continue the real candidate's latent from the cloud's exact sigma."""
from __future__ import annotations

import torch

import comfy.sample
import comfy.samplers
import latent_preview

from ..protocol import Handoff
from .compat import check_device_model
from .schedule import HANDOFF_MODES, device_tail


class HandoffNoise:
    """ComfyUI's NOISE interface for the hand-off: no noise is added (the latent already carries the
    cloud's), and the seed is the cloud's, so samplers that draw step noise draw what the Device
    Finisher draws."""

    def __init__(self, seed: int):
        self.seed = seed

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        x = input_latent["samples"]
        return torch.zeros(x.shape, dtype=x.dtype, layout=x.layout, device="cpu")


def handoff_latent(latent: dict) -> dict:
    """The real latent as the device continues it (fields that only described the N-row batch dropped)."""
    return {k: v for k, v in latent.items() if k not in ("downscale_ratio_spacial", "batch_index")}


def handoff_sigmas(model, latent: dict, handoff: Handoff, *, mode: str = HANDOFF_MODES[0],
                   device_steps: int = 25, device_scheduler: str = "normal",
                   device_sampler: str | None = None) -> torch.Tensor:
    """The sigmas the device samples steps k..T on, after refusing a model or latent from another
    latent space. Empty when the cloud already ran every step (samplers then return the latent as is).

    The default mode replays the cloud's own sigma tail, which equals
    KSamplerAdvanced(add_noise=disable, start_at_step=k) on the same T and scheduler. The
    sigma-matched mode uses the device's own schedule from the cloud's stop sigma down, for a
    few-step cloud handing off to a many-step device without a hand-tuned shift.
    """
    check_device_model(handoff, model, latent)
    tail = device_tail(handoff, model, mode=mode, steps=device_steps, scheduler=device_scheduler,
                       sampler=device_sampler or handoff.sampler)
    if len(tail) < 2 or float(tail[0]) == 0.0:
        return tail[:0]
    return tail


def finish_sample(model, positive, negative, latent: dict, handoff: Handoff, *, cfg: float,
                  mode: str = HANDOFF_MODES[0], device_steps: int = 25, device_scheduler: str = "normal",
                  device_sampler: str | None = None) -> dict:
    """Steps k..T on the device, from the exact sigma and noise the cloud stopped at."""
    sampler = device_sampler or handoff.sampler
    tail = handoff_sigmas(model, latent, handoff, mode=mode, device_steps=device_steps,
                          device_scheduler=device_scheduler, device_sampler=sampler)
    out = handoff_latent(latent)
    if len(tail) == 0:
        return out  # the cloud already ran every step
    noise = HandoffNoise(handoff.seed)
    callback = latent_preview.prepare_callback(model, len(tail) - 1)
    out["samples"] = comfy.sample.sample_custom(
        model, noise.generate_noise(latent), cfg, comfy.samplers.sampler_object(sampler), tail,
        positive, negative, latent["samples"], noise_mask=latent.get("noise_mask"), callback=callback,
        seed=noise.seed)
    return out
