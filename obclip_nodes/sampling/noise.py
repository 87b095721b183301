"""Per-step sampler noise that is the same for every candidate row, as the initial noise is.

Ancestral and SDE samplers draw fresh noise each step over the whole batch shape, so row i of an
N-row batch would get different noise than a single-prompt run of the same seed. Giving every row
the batch-1 draw makes each row equal the single-prompt run again (the Hybrid SD baseline), and keeps
the rows' noise independent of which candidate is real.
"""
from __future__ import annotations

import inspect

import comfy.samplers
from comfy.k_diffusion import sampling as kds

# Samplers whose own default noise is a Brownian tree over the batch (see comfy/k_diffusion/sampling.py).
BROWNIAN = {"dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"}
BROWNIAN |= {name + "_gpu" for name in BROWNIAN}


def draws_step_noise(sampler_name: str) -> bool:
    fn = getattr(kds, f"sample_{sampler_name}", None)
    return fn is not None and "noise_sampler" in inspect.signature(fn).parameters


def _batch1_noise_sampler(sampler_name: str, x1, sigmas, seed):
    """Exactly the noise sampler the sampler would build for a batch-1 latent."""
    if sampler_name in BROWNIAN:
        return kds.BrownianTreeNoiseSampler(x1, sigmas[sigmas > 0].min(), sigmas.max(), seed=seed,
                                            cpu=not sampler_name.endswith("_gpu"))
    return kds.default_noise_sampler(x1, seed=seed)


def row_shared_sampler(sampler_name: str):
    """comfy's sampler object for `sampler_name`, with step noise shared across batch rows."""
    sampler = comfy.samplers.sampler_object(sampler_name)
    if not draws_step_noise(sampler_name):
        return sampler  # deterministic, or noise that does not depend on the batch
    inner = sampler.sampler_function

    def shared_noise_function(model, x, sigmas, extra_args=None, **kwargs):
        seed = (extra_args or {}).get("seed")
        ns = _batch1_noise_sampler(sampler_name, x[:1], sigmas, seed)
        rows = x.shape[0]
        kwargs["noise_sampler"] = lambda sigma, sigma_next: ns(sigma, sigma_next).repeat(rows, 1, 1, 1)
        return inner(model, x, sigmas, extra_args=extra_args, **kwargs)

    sampler.sampler_function = shared_noise_function
    return sampler
