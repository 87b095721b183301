"""What makes two models share a trajectory, and the refusal when they do not."""
from __future__ import annotations

import math

from ..protocol import Handoff

from .presets import devices_for

FAMILY_WORDS = {"SD15": "an SD1.x-family", "SDXL": "an SDXL-family", "ObCLIPMiniWorldLatent": "a mini-world"}


class IncompatibleModelError(ValueError):
    """The device model cannot continue the cloud's latents; the message names the fix."""


def model_signature(model) -> dict:
    """Latent space, prediction type and noise range of a ComfyUI MODEL (a ModelPatcher)."""
    lf = model.get_model_object("latent_format")
    ms = model.get_model_object("model_sampling")
    return {
        "family": type(model.model.model_config).__name__,
        "latent_format": type(lf).__name__,
        "scale_factor": float(getattr(lf, "scale_factor", 1.0)),
        "latent_channels": int(lf.latent_channels),
        "model_type": model.model.model_type.name,
        "sigma_min": float(ms.sigma_min),
        "sigma_max": float(ms.sigma_max),
    }


def check_device_model(handoff: Handoff, device_model, latent) -> None:
    """Refuse a device model or latent that does not belong to the cloud's latent space."""
    sig = model_signature(device_model)
    cloud = f"the cloud model ({handoff.family}, {handoff.latent_format} latent space)"
    device = f"the device model ({sig['family']}, {sig['latent_format']} latent space)"
    known = devices_for(handoff.latent_format)
    fix = (f"{FAMILY_WORDS.get(handoff.latent_format, 'a')} device model such as {', '.join(known)}" if known
           else f"a device model with the {handoff.latent_format} latent format")
    if sig["latent_format"] != handoff.latent_format or not math.isclose(sig["scale_factor"], handoff.scale_factor):
        raise IncompatibleModelError(f"{cloud} and {device} use different latent spaces, so the device "
                                     f"cannot continue the cloud's latents. Pick {fix}.")
    if sig["latent_channels"] != handoff.latent_channels:
        raise IncompatibleModelError(f"{cloud} has {handoff.latent_channels} latent channels, {device} has "
                                     f"{sig['latent_channels']}. Pick {fix}.")
    if sig["model_type"] != handoff.model_type:
        raise IncompatibleModelError(f"{cloud} predicts {handoff.model_type} but {device} predicts "
                                     f"{sig['model_type']}; pick a device model with the same prediction type.")
    for key in ("sigma_min", "sigma_max"):
        if not math.isclose(sig[key], getattr(handoff, key), rel_tol=1e-4):
            raise IncompatibleModelError(f"{cloud} has {key}={getattr(handoff, key):.5g} but {device} has "
                                         f"{sig[key]:.5g}: their noise schedules differ (zsnr or v-pred "
                                         "variant?); pick a device model trained on the same schedule.")
    samples = latent["samples"]
    expected = tuple(handoff.latent_shape) or (handoff.latent_channels,)
    if samples.ndim != 4 or samples.shape[0] != 1 or tuple(samples.shape[1:1 + len(expected)]) != expected:
        want = "x".join(map(str, expected))
        raise IncompatibleModelError(f"the latent to finish has shape {tuple(samples.shape)} but the cloud "
                                     f"returned rows of {want}; connect the ObCLIP Latent Selector's output "
                                     "(one row of the latents the cloud returned)")
