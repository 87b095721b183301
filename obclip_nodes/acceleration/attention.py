"""Attention strategies: batch-reused attention (paper Alg. 2) and the T-GATE-style attention cache.

Each CrossAttention of the UNet is swapped, through ModelPatcher object patches on a clone, for an
ObclipAttention that holds the SAME projection modules under the same names (so weight keys,
LoRA patches and device moves are unchanged). Without an active run state it runs the stock
CrossAttention.forward, so a patched model with every strategy off is bit-identical.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from comfy.ldm.modules.attention import BasicTransformerBlock, CrossAttention

from .state import KEY, RunState


def _linear_flops(tokens: int, module) -> float:
    w = module.weight if isinstance(module, nn.Linear) or hasattr(module, "weight") else module[0].weight
    return 2.0 * tokens * w.shape[0] * w.shape[1]


class ObclipAttention(nn.Module):
    def __init__(self, orig: CrossAttention, name: str, kind: str):
        super().__init__()
        self.to_q, self.to_k, self.to_v, self.to_out = orig.to_q, orig.to_k, orig.to_v, orig.to_out
        self.heads, self.dim_head, self.attn_precision = orig.heads, orig.dim_head, orig.attn_precision
        self.obclip_name, self.obclip_kind = name, kind

    def _stock(self, x, context, value, mask, transformer_options):
        return CrossAttention.forward(self, x, context=context, value=value, mask=mask,
                                      transformer_options=transformer_options)

    def _costs(self, tq: int, tk: int) -> dict:
        inner = self.heads * self.dim_head
        return {"q": _linear_flops(tq, self.to_q), "k": _linear_flops(tk, self.to_k),
                "v": _linear_flops(tk, self.to_v), "qk": 2.0 * tq * tk * inner, "av": 2.0 * tq * tk * inner,
                "out": _linear_flops(tq, self.to_out[0])}

    def forward(self, x, context=None, value=None, mask=None, transformer_options={}):
        st: RunState | None = transformer_options.get(KEY)
        if st is None or mask is not None or not st.layout or x.shape[0] != sum(r for _, r in st.layout):
            return self._stock(x, context, value, mask, transformer_options)
        ctx = x if context is None else context
        c = self._costs(x.shape[1], ctx.shape[1])
        key = (self.obclip_name, st.layout_key, tuple(x.shape), tuple(ctx.shape))
        if st.attn_cache_use():
            hit = st.attn_cache.get(key)
            if hit is not None:
                st.flops_saved["attention_cache"] += x.shape[0] * sum(c.values())
                st.events["attn_cache_hits"] += 1
                return hit
        if st.reuse_active() and any(r > 1 for _, r in st.layout):
            out = self._reused(x, ctx, value, st, c)
        else:
            out = self._stock(x, context, value, mask, transformer_options)
        if st.attn_cache_store():
            st.attn_cache[key] = out
        return out

    def _reused(self, x, ctx, value, st: RunState, c: dict):
        """Alg. 2 per chunk: m* = softmax(q* k*^T / sqrt(d)) of the pivot row; o_i = m* v_i."""
        h, d = self.heads, self.dim_head
        vals = self.to_v(ctx if value is None else value)
        outs, a = [], 0
        for _kind, n in st.layout:
            if n == 1:
                q = self.to_q(x[a:a + 1])
                k = self.to_k(ctx[a:a + 1])
                outs.append(self._attend(q, k, vals[a:a + 1], 1, h, d))
            else:
                p = a + st.pivot_row(n)
                q = self.to_q(x[p:p + 1])
                k = self.to_k(ctx[p:p + 1])
                outs.append(self._attend(q, k, vals[a:a + n], n, h, d))
                st.flops_saved["batch_reuse"] += (n - 1) * (c["q"] + c["k"] + c["qk"])
            a += n
        st.events["reuse_calls"] += 1
        return self.to_out(torch.cat(outs))

    def _attend(self, q, k, v, n, h, d):
        tq, tk = q.shape[1], k.shape[1]
        dtype = v.dtype
        if self.attn_precision == torch.float32 and q.dtype != torch.float32:
            q, k, v = q.float(), k.float(), v.float()
        q = q.view(1, tq, h, d).transpose(1, 2)
        k = k.view(1, tk, h, d).transpose(1, 2)
        # the n candidates' values side by side: one attention with value width n*d shares the map
        v = v.view(n, tk, h, d).permute(2, 1, 0, 3).reshape(1, h, tk, n * d)
        o = F.scaled_dot_product_attention(q, k, v)  # [1, h, tq, n*d]
        o = o.view(h, tq, n, d).permute(2, 1, 0, 3).reshape(n, tq, h * d)
        return o.to(dtype)


def attention_patches(diffusion_model) -> dict:
    """{object-patch path: ObclipAttention} for every attn1/attn2 of every BasicTransformerBlock."""
    patches = {}
    for name, mod in diffusion_model.named_modules():
        if isinstance(mod, BasicTransformerBlock):
            for attr, kind in (("attn1", "self"), ("attn2", "cross")):
                orig = getattr(mod, attr, None)
                # a still-applied patch of an earlier clone is re-wrapped too (it behaves as stock
                # without a run state), so every clone carries its own complete set of patches
                if isinstance(orig, (CrossAttention, ObclipAttention)):
                    path = f"diffusion_model.{name}.{attr}"
                    patches[path] = ObclipAttention(orig, f"{name}.{attr}", kind)
    return patches
