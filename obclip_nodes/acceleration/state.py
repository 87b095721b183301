"""Per-run state of the accelerated cloud model: created in the OUTER_SAMPLE wrapper, dropped after.

Nothing here depends on which candidate is real: decisions use the step index, the public pivot
index, the chunk layout (cond_or_uncond) and data equality the server sees anyway.
"""
from __future__ import annotations

import torch

from .settings import AccelerationSettings

KEY = "obclip_accel"  # transformer_options key holding the RunState during a run


class RunState:
    def __init__(self, settings: AccelerationSettings, n_candidates: int):
        self.s = settings
        self.n = n_candidates
        self.sample_sigmas: torch.Tensor | None = None
        self.step = 0
        self.layout: tuple = ()            # ((kind, rows), ...) of the UNet call now running
        self.layout_key: tuple = ()
        self.block_cache: dict = {}        # (layout_key, shape) -> cached deep features
        self.attn_cache: dict = {}         # (module name, layout_key, shape) -> attention output
        self.assume_identical: bool | None = None  # meta-tensor benches: rows equality is not readable
        # accounting, in counted FLOPs (FlopCounterMode's convention: 2 per multiply-add)
        self.flops_full = 0.0
        self.flops_saved = {"uncond_dedup": 0.0, "uncond_share": 0.0, "batch_reuse": 0.0,
                            "attention_cache": 0.0, "block_skip": 0.0}
        self.calls = 0
        self.steps_seen: set[int] = set()
        self.events = {"dedup_rows": 0, "shared_rows": 0, "reuse_calls": 0, "attn_cache_hits": 0,
                       "block_skip_calls": 0}

    # ---- schedule -------------------------------------------------------------------------------
    def set_step(self, transformer_options: dict) -> int:
        sig = transformer_options.get("sigmas")
        ss = transformer_options.get("sample_sigmas", self.sample_sigmas)
        if sig is None or ss is None or sig.device.type == "meta":
            return self.step  # benches set .step themselves
        s = float(sig.flatten()[0])
        ss = ss.detach().to("cpu", torch.float64)
        # step i = last schedule entry >= sigma (an intermediate evaluation belongs to its step)
        self.step = max(0, int((ss >= s * (1 - 1e-6) - 1e-12).sum().item()) - 1)
        self.steps_seen.add(self.step)
        return self.step

    def reuse_active(self) -> bool:
        return self.s.batch_reuse and self.step < self.s.cache_point

    def attn_cache_use(self) -> bool:
        """True on steps that read the attention cache instead of computing."""
        if not self.s.attention_cache or self.step < self.s.cache_point:
            return False
        since = self.step - self.s.cache_point
        return not (since > 0 and since % self.s.refresh_every == 0)

    def attn_cache_store(self) -> bool:
        return self.s.attention_cache and self.step >= self.s.cache_point - 1

    def block_skip_active(self) -> bool:
        """True on steps that read the deep-feature cache. With skip_refresh_every = M > 0 (DeepCache's
        interval), steps s-1, s-1+M, s-1+2M, ... recompute and store; the M-1 steps after each reuse."""
        if not self.s.block_skip or self.step < self.s.skip_point:
            return False
        m = self.s.skip_refresh_every
        return not (m and (self.step - self.s.skip_point + 1) % m == 0)

    def block_store(self) -> bool:
        return self.s.block_skip and self.step >= self.s.skip_point - 1

    def pivot_row(self, rows: int) -> int:
        return self.s.pivot_index if self.s.pivot_index < rows else 0

    # ---- report ---------------------------------------------------------------------------------
    def report(self) -> dict:
        saved = sum(self.flops_saved.values())
        frac = saved / self.flops_full if self.flops_full else 0.0
        return {"unet_calls": self.calls, "steps": len(self.steps_seen),
                "unet_tflops_unaccelerated": round(self.flops_full / 2e12, 4),
                "unet_tflops_run": round((self.flops_full - saved) / 2e12, 4),
                "fraction_skipped": round(frac, 4),
                "saved_by_strategy_fraction": {k: round(v / self.flops_full, 4) if self.flops_full else 0.0
                                               for k, v in self.flops_saved.items()},
                "events": dict(self.events)}
