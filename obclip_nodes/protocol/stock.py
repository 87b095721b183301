"""The hand-off for stock-nodes mode: the client computes what the pack's server node would report.

A cloud without this pack cannot tell us its model family, so the family is the user's declaration
(default SD15) and the node says so. SD1.x and SDXL share the discrete 1000-step EPS schedule, so the
sigmas are exact for both; other families are refused.
"""
from __future__ import annotations

from .errors import ProtocolError
from .handoff import Handoff
from .request import CloudRequest

STOCK_FAMILIES = {  # family -> (latent_format, scale_factor, channels)
    "SD15": ("SD15", 0.18215, 4),
    "SDXL": ("SDXL", 0.13025, 4),
}


def stock_handoff(req: CloudRequest, family: str = "SD15") -> Handoff:
    if family not in STOCK_FAMILIES:
        raise ProtocolError(f"stock-nodes mode supports the families {sorted(STOCK_FAMILIES)}, not {family!r}; "
                            "install the ObCLIP pack on the cloud server instead")
    import comfy.model_sampling
    import comfy.samplers
    import torch

    ms = comfy.model_sampling.ModelSamplingDiscrete()  # the SD1.x / SDXL schedule (scaled_linear, 1000 steps)
    discard = req.sampler in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS
    sigmas = comfy.samplers.calculate_sigmas(ms, req.scheduler, req.steps + (1 if discard else 0)).float()
    if discard:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    fmt, scale, channels = STOCK_FAMILIES[family]
    return Handoff(family=family, latent_format=fmt, scale_factor=scale, latent_channels=channels,
                   model_type="EPS", sigma_min=float(ms.sigma_min), sigma_max=float(ms.sigma_max),
                   steps=req.steps, cloud_steps=req.cloud_steps, sampler=req.sampler, scheduler=req.scheduler,
                   seed=int(req.seed), sigmas=tuple(float(s) for s in sigmas.tolist()),
                   server_report={"mode": "stock", "family_declared_by_client": family,
                                  "acceleration": "not applied (stock nodes)"}).validate()
