"""The cloud's part: the first k of T steps for all N candidates, in one batch, from one noise."""
from __future__ import annotations

import torch

import comfy.sample
import latent_preview

from ..protocol import Handoff
from .compat import model_signature
from .noise import row_shared_sampler
from .schedule import ksampler_sigmas


def partial_sample(model, positive, negative, *, n: int, width: int, height: int, seed: int, steps: int,
                   cloud_steps: int, cfg: float, sampler: str, scheduler: str) -> tuple[dict, Handoff]:
    """Run steps 0..k on an N-row latent whose rows all start from the same noise.

    Row i equals a single-prompt KSamplerAdvanced run of prompt i (add_noise, end_at_step=k,
    return_with_leftover_noise) because every row gets the batch-1 noise of `seed`, both the initial
    noise and, for ancestral/SDE samplers, the noise drawn at each step.
    """
    if not (1 <= cloud_steps <= steps):
        raise ValueError(f"cloud_steps={cloud_steps} must be between 1 and steps={steps}")
    if width % 8 or height % 8:
        raise ValueError(f"width and height must be multiples of 8, got {width}x{height}")
    empty = torch.zeros([1, 4, height // 8, width // 8])
    empty = comfy.sample.fix_empty_latent_channels(model, empty)
    noise = comfy.sample.prepare_noise(empty, seed).repeat(n, 1, 1, 1)
    latent = empty.repeat(n, 1, 1, 1)
    sigmas = ksampler_sigmas(model, steps, sampler, scheduler)
    callback = latent_preview.prepare_callback(model, cloud_steps)
    samples = comfy.sample.sample_custom(model, noise, cfg, row_shared_sampler(sampler),
                                         sigmas[:cloud_steps + 1], positive, negative, latent,
                                         callback=callback, seed=seed)
    sig = model_signature(model)
    handoff = Handoff(**sig, steps=steps, cloud_steps=cloud_steps, sampler=sampler, scheduler=scheduler,
                      seed=int(seed), sigmas=tuple(float(s) for s in sigmas.tolist()),
                      latent_shape=tuple(samples.shape[1:])).validate()
    return {"samples": samples.to("cpu", torch.float32)}, handoff
