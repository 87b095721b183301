"""Apply the chosen strategies to the cloud's model, as ModelPatcher wrappers on a clone."""
from __future__ import annotations

import logging

from .settings import AccelerationSettings
from .state import KEY, RunState

log = logging.getLogger("obclip")
WRAPPER_KEY = "obclip_accel"


def _outer_sample_wrapper(settings: AccelerationSettings, n_candidates: int, report: dict):
    """Fresh RunState per sampling run, on a clone of the guider's model_options; dropped after."""
    import comfy.model_patcher

    def wrapper(executor, *args, **kwargs):
        guider = executor.class_obj
        orig = guider.model_options
        st = RunState(settings, n_candidates)
        st.base_model = guider.model_patcher.model
        try:
            guider.model_options = comfy.model_patcher.create_model_options_clone(orig)
            guider.model_options["transformer_options"][KEY] = st
            sigmas = args[3] if len(args) > 3 else kwargs.get("sigmas")
            st.sample_sigmas = sigmas
            return executor(*args, **kwargs)
        finally:
            guider.model_options = orig
            r = st.report()
            report["last_run"] = r
            report.setdefault("runs", 0)
            report["runs"] += 1
            log.info("obclip: N=%d k=%d: %.0f%% of server UNet FLOPs skipped (%s)", n_candidates,
                     r["steps"], 100 * r["fraction_skipped"], ", ".join(settings.applied) or "no strategy")
            st.block_cache.clear()
            st.attn_cache.clear()
    return wrapper


def accelerate(model, settings: AccelerationSettings, *, n_candidates: int):
    """-> (model to sample with, report dict). Never mutates the caller's model.

    The report is filled in after each sampling run ("last_run"): FLOPs run and skipped, per
    strategy, counted on a meta copy of the UNet at the run's shape.
    """
    import comfy.patcher_extension as pe

    from .attention import attention_patches
    from .unet import diffusion_model_wrapper

    settings.validate()
    if settings.pivot_index >= max(n_candidates, 1) and n_candidates > 1:
        raise ValueError(f"acceleration pivot_index={settings.pivot_index} must be below N={n_candidates}")
    report = {"requested": list(settings.requested), "applied": list(settings.applied),
              "n_candidates": n_candidates, "settings": settings.to_dict()}
    m = model.clone()
    m.add_wrapper_with_key(pe.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY,
                           _outer_sample_wrapper(settings, n_candidates, report))
    m.add_wrapper_with_key(pe.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, diffusion_model_wrapper)
    if settings.batch_reuse or settings.attention_cache:
        dm = m.get_model_object("diffusion_model")
        for path, obj in attention_patches(dm).items():
            m.add_object_patch(path, obj)
    return m, report
