"""Drive a UNet through the cloud's k steps exactly as ComfyUI's sampler batches them, with the
acceleration wrappers in place: used by the FLOPs benchmark (meta tensors, real SD1.5/SDXL shapes)
and by tests. One UNet call per step holds the cond and uncond chunks of N rows each.
"""
from __future__ import annotations

import types


from .costs import costs_for, meta_inputs, sdpa_override
from .settings import AccelerationSettings
from .state import KEY, RunState


def install_attention(unet) -> None:
    """Swap attention modules in place (benches own their meta UNet; real runs use object patches)."""
    from comfy.utils import set_attr
    from .attention import attention_patches
    for path, obj in attention_patches(unet).items():
        set_attr(unet, path.split(".", 1)[1], obj)


_MEMO: dict = {}  # a step's counted FLOPs depend only on this signature (phase, layout, shapes)


def count_run(unet, unet_config: dict, settings: AccelerationSettings | None, *, n: int, k: int, latent: tuple,
              tokens: int = 77, cfg1: bool = False, separate: bool = False) -> dict:
    """Counted FLOPs (FlopCounterMode) per cloud step for one oblivious run on meta tensors.

    settings=None runs the stock forward (no wrapper at all). Returns per-step counted FLOPs and
    the RunState's own accounting, which must agree with the counter.
    """
    from torch.utils.flop_counter import FlopCounterMode
    from .unet import diffusion_model_wrapper
    st = None
    if settings is not None:
        st = RunState(settings, n)
        st.base_model = types.SimpleNamespace(model_config=types.SimpleNamespace(unet_config=unet_config),
                                              diffusion_model=unet)
        costs_for(st.base_model, latent, tokens)  # warm the cost table outside the counter below
    kinds_calls = [[0]] if cfg1 else ([[0], [1]] if separate else [[1, 0]])
    per_step = []
    skey = None if settings is None else tuple(sorted((k2, v) for k2, v in settings.to_dict().items()
                                                      if k2 not in ("cache_point", "skip_point", "refresh_every")))
    for step in range(k):
        flops = 0.0
        for kinds in kinds_calls:
            x, ts, ctx, y = meta_inputs(unet_config, n * len(kinds), latent, tokens)
            to = {"optimized_attention_override": sdpa_override, "cond_or_uncond": kinds}
            if st is not None:
                st.step = step
                st.assume_identical = step == 0  # shared initial noise: every row equal at step 0 only
                to[KEY] = st
                to["wrappers"] = {"diffusion_model": {"obclip": [diffusion_model_wrapper]}}
            sig = (id(unet), skey, n, tuple(kinds), latent, tokens)
            if st is not None:
                sig += (step == 0, st.reuse_active(), st.attn_cache_use(), st.attn_cache_store(),
                        st.block_skip_active(), st.block_store(), bool(st.attn_cache), bool(st.block_cache))
            # a step that fills a cache must really run, or later steps would miss it
            storing = st is not None and (st.attn_cache_store() or st.block_store())
            if sig in _MEMO and not storing:
                f, saved, full = _MEMO[sig]
                if st is not None:
                    st.flops_full += full
                    for kk, v in saved.items():
                        st.flops_saved[kk] += v
            else:
                before = (st.flops_full, dict(st.flops_saved)) if st is not None else None
                with FlopCounterMode(display=False) as fc:
                    unet(x, ts, ctx, y, transformer_options=to)
                f = float(fc.get_total_flops())
                if st is not None:
                    _MEMO[sig] = (f, {kk: st.flops_saved[kk] - before[1][kk] for kk in st.flops_saved},
                                  st.flops_full - before[0])
                else:
                    _MEMO[sig] = (f, {}, 0.0)
            flops += f
        per_step.append(flops)
    out = {"per_step_flops": per_step, "total_flops": sum(per_step)}
    if st is not None:
        saved = sum(st.flops_saved.values())
        out["accounted_run_flops"] = st.flops_full - saved
        out["accounted_full_flops"] = st.flops_full
        out["saved"] = dict(st.flops_saved)
    return out
