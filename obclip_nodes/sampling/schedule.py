"""Noise schedules: the cloud's, and the device's remaining schedule after the hand-off."""
from __future__ import annotations

import torch

import comfy.samplers

HANDOFF_MODES = ("replay cloud schedule", "sigma-matched device schedule")
NEAREST_STEP = "nearest device step"  # the paper's manual timestep shift, kept for the benchmark


def ksampler_sigmas(model, steps: int, sampler: str, scheduler: str) -> torch.Tensor:
    """The exact sigmas KSamplerAdvanced would use for this model, sampler and scheduler."""
    if sampler not in comfy.samplers.KSampler.SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {comfy.samplers.KSampler.SAMPLERS}")
    if scheduler not in comfy.samplers.KSampler.SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; choose one of {comfy.samplers.KSampler.SCHEDULERS}")
    ks = comfy.samplers.KSampler(model, steps=steps, device="cpu", sampler=sampler, scheduler=scheduler,
                                 denoise=1.0, model_options=model.model_options)
    return ks.sigmas.to("cpu", torch.float32)


def device_tail(handoff, model=None, *, mode: str = HANDOFF_MODES[0], steps: int = 25,
                scheduler: str = "normal", sampler: str | None = None) -> torch.Tensor:
    """The sigmas the device samples on, starting at (or, for NEAREST_STEP, near) the cloud's stop.

    - replay: the cloud's own tail sigmas[k:], i.e. KSamplerAdvanced(start_at_step=k) semantics.
    - sigma-matched: the device's own `steps`-step schedule, cut below the stop sigma, with the stop
      sigma itself prepended, so the first device step starts exactly where the cloud stopped.
    - nearest step: the device schedule from the step whose sigma is nearest to the stop sigma,
      ignoring the mismatch (what a hand-tuned timestep shift does).
    """
    stop = handoff.stop_sigma
    if mode == HANDOFF_MODES[0]:
        return torch.tensor(handoff.remaining_sigmas, dtype=torch.float32)
    if stop == 0.0:
        return torch.tensor([0.0])
    full = ksampler_sigmas(model, steps, sampler or handoff.sampler, scheduler)
    if mode == HANDOFF_MODES[1]:
        below = full[full < stop]
        return torch.cat([torch.tensor([stop], dtype=torch.float32), below])
    if mode == NEAREST_STEP:
        j = int(torch.argmin((full[:-1] - stop).abs()))
        return full[j:]
    raise ValueError(f"unknown hand-off mode {mode!r}; choose one of {HANDOFF_MODES}")
