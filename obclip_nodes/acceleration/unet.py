"""DIFFUSION_MODEL wrapper: row reduction (uncond dedup / share) and block skip around UNetModel._forward.

Rows: the batch is len(cond_or_uncond) chunks of equal size, one row per candidate. A chunk whose
rows are bit-identical (uncond at step 0: shared noise, shared negative) runs once (exact); with
uncond_share an uncond chunk runs for the public pivot row only. Results are scattered back.

Block skip: a faithful copy of UNetModel._forward that, on skip steps, reuses the deep features cached
at the last full step, keyed by chunk layout and shape. On full steps it computes exactly what the stock
forward computes. The copy is one of the pack's declared ComfyUI internals (docs/comfyui-internals-used.md):
it follows 0.33.0's forward, which is 0.3.75's plus the middle_block_after_patch hook and a None skip
tensor; the hosts whose forward it was checked against are VERIFIED_STOCK_FORWARDS, and
tests/integration/test_host_compat.py names a host whose forward differs.
"""
from __future__ import annotations

import torch

from comfy.ldm.modules.diffusionmodules.openaimodel import apply_control, forward_timestep_embed, timestep_embedding

from .costs import costs_for
from .state import KEY, RunState

# stock_forward_fingerprint() of the UNetModel._forward this copy was checked against, by ComfyUI version
VERIFIED_STOCK_FORWARDS = {
    "0.3.75": "87a9d150f80d4ab0",
    "0.33.0": "39d8752175edbe93",
}


def stock_forward_fingerprint() -> str:
    """A digest of the running host's UNetModel._forward code (its AST, docstring and comments left out)."""
    import ast
    import hashlib
    import inspect
    import textwrap
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    fn = ast.parse(textwrap.dedent(inspect.getsource(UNetModel._forward))).body[0]
    if fn.body and isinstance(fn.body[0], ast.Expr) and isinstance(getattr(fn.body[0], "value", None), ast.Constant):
        fn.body = fn.body[1:]
    return hashlib.sha256(ast.dump(fn, annotate_fields=False).encode()).hexdigest()[:16]


def _rows_identical(st: RunState, kind: int, *parts) -> bool:
    if any(p.device.type == "meta" for p in parts if p is not None):  # benches: shared noise, shared negative
        return bool(st.assume_identical) and kind == 1
    return all(p is None or bool((p == p[:1]).all()) for p in parts)


def diffusion_model_wrapper(executor, x, timesteps=None, context=None, y=None, control=None,
                            transformer_options={}, **kwargs):
    st: RunState | None = transformer_options.get(KEY)
    if st is None:
        return executor(x, timesteps, context, y, control, transformer_options, **kwargs)
    unet = executor.class_obj
    st.set_step(transformer_options)
    st.calls += 1
    kinds = list(transformer_options.get("cond_or_uncond") or [0])
    B = x.shape[0]
    tokens = context.shape[1] if context is not None else 0
    costs = costs_for(unet_owner(transformer_options, unet), tuple(x.shape[1:]), tokens)
    row_cost = costs["total"] if costs else 0.0
    st.flops_full += B * row_cost

    reducible = B % len(kinds) == 0 and control is None and not any(
        torch.is_tensor(v) and v.shape[:1] == (B,) for v in kwargs.values())
    n = B // len(kinds) if reducible else B
    chunks = [(k, n) for k in kinds] if reducible else [(-1, B)]
    take, layout, src = [], [], []
    for ci, (kind, rows) in enumerate(chunks):
        a = ci * rows
        idx = list(range(a, a + rows))
        keep = idx
        if rows > 1 and reducible:
            if kind == 1 and st.s.uncond_share:
                keep = [a + st.pivot_row(rows)]
                if st.s.uncond_dedup and _rows_identical(st, kind, *_part(a, rows, x, timesteps, context, y)):
                    st.flops_saved["uncond_dedup"] += (rows - 1) * row_cost
                else:
                    st.flops_saved["uncond_share"] += (rows - 1) * row_cost
                    st.events["shared_rows"] += rows - 1
            elif st.s.uncond_dedup and _rows_identical(st, kind, *_part(a, rows, x, timesteps, context, y)):
                keep = [a]
                st.flops_saved["uncond_dedup"] += (rows - 1) * row_cost
                st.events["dedup_rows"] += rows - 1
        base = len(take)
        take.extend(keep)
        layout.append((kind, len(keep)))
        src.extend([base + (keep.index(i) if i in keep else 0) for i in idx])
    st.layout = tuple(layout)
    st.layout_key = (st.layout, tuple(x.shape[1:]), tokens)
    try:
        if len(take) < B:
            t = torch.tensor(take, device=x.device)
            sub = [None if v is None else v.index_select(0, t) for v in (x, timesteps, context, y)]
            out = _run(executor, unet, st, sub[0], sub[1], sub[2], sub[3], control, transformer_options, costs,
                       kwargs)
            return out.index_select(0, torch.tensor(src, device=out.device))
        return _run(executor, unet, st, x, timesteps, context, y, control, transformer_options, costs, kwargs)
    finally:
        st.layout, st.layout_key = (), ()


def unet_owner(transformer_options, unet):
    """The BaseModel owning this UNet (for its config), stored by the OUTER_SAMPLE wrapper."""
    st = transformer_options.get(KEY)
    return getattr(st, "base_model", None)


def _part(a, rows, *tensors):
    return [None if t is None else t[a:a + rows] for t in tensors]


def _run(executor, unet, st, x, timesteps, context, y, control, transformer_options, costs, kwargs):
    if not st.s.block_skip:
        return executor(x, timesteps, context, y, control, transformer_options, **kwargs)
    return unet_forward(unet, st, x, timesteps, context, y, control, transformer_options, costs, **kwargs)


def unet_forward(self, st: RunState, x, timesteps=None, context=None, y=None, control=None,
                 transformer_options={}, costs=None, **kwargs):
    """openaimodel.UNetModel._forward (ComfyUI 0.33.0, a superset of 0.3.75's) plus cached deep features on
    skip steps."""
    transformer_options["original_shape"] = list(x.shape)
    transformer_options["transformer_index"] = 0
    transformer_patches = transformer_options.get("patches", {})

    num_video_frames = kwargs.get("num_video_frames", self.default_num_video_frames)
    image_only_indicator = kwargs.get("image_only_indicator", None)
    time_context = kwargs.get("time_context", None)
    tkw = dict(time_context=time_context, num_video_frames=num_video_frames,
               image_only_indicator=image_only_indicator)

    assert (y is not None) == (self.num_classes is not None), \
        "must specify y if and only if the model is class-conditional"
    hs = []
    t_emb = timestep_embedding(timesteps, self.model_channels, repeat_only=False).to(x.dtype)
    emb = self.time_embed(t_emb)

    if "emb_patch" in transformer_patches:
        for p in transformer_patches["emb_patch"]:
            emb = p(emb, self.model_channels, transformer_options)

    if self.num_classes is not None:
        assert y.shape[0] == x.shape[0]
        emb = emb + self.label_emb(y)

    n_in, n_out = len(self.input_blocks), len(self.output_blocks)
    b = min(st.s.skip_branch, n_in - 1)
    deep = st.s.skip_mode == "deepcache"
    key = (st.layout_key, tuple(x.shape))
    cached = st.block_cache.get(key) if st.block_skip_active() else None
    store = st.block_store()
    rows = x.shape[0]

    h = x
    for id, module in enumerate(self.input_blocks):
        if cached is not None and id > b:
            break
        transformer_options["block"] = ("input", id)
        h = forward_timestep_embed(module, h, emb, context, transformer_options, **tkw)
        h = apply_control(h, control, 'input')
        if "input_block_patch" in transformer_patches:
            for p in transformer_patches["input_block_patch"]:
                h = p(h, transformer_options)
        hs.append(h)
        if "input_block_patch_after_skip" in transformer_patches:
            for p in transformer_patches["input_block_patch_after_skip"]:
                h = p(h, transformer_options)

    first_out = 0
    if cached is not None:
        st.events["block_skip_calls"] += 1
        if deep:
            h, first_out = cached, n_out - 1 - b
            hs = hs[:b + 1]
            skipped = sum(costs["input"][b + 1:]) + costs["middle"] + sum(costs["output"][:first_out]) if costs else 0
        else:
            deep_hs, h = cached
            hs = hs[:b + 1] + list(deep_hs)
            skipped = sum(costs["input"][b + 1:]) + costs["middle"] if costs else 0
        st.flops_saved["block_skip"] += rows * skipped
    else:
        transformer_options["block"] = ("middle", 0)
        if self.middle_block is not None:
            h = forward_timestep_embed(self.middle_block, h, emb, context, transformer_options, **tkw)
        h = apply_control(h, control, 'middle')
        if "middle_block_after_patch" in transformer_patches:  # 0.33; older hosts never set it
            for p in transformer_patches["middle_block_after_patch"]:
                h = p({"h": h, "x": x, "emb": emb, "context": context, "y": y, "timesteps": timesteps,
                       "transformer_options": transformer_options})["h"]
        if store and not deep:
            st.block_cache[key] = (tuple(hs[b + 1:]), h)

    for id, module in enumerate(self.output_blocks):
        if id < first_out:
            continue
        if cached is None and store and deep and id == n_out - 1 - b:
            st.block_cache[key] = h
        transformer_options["block"] = ("output", id)
        hsp = hs.pop()
        hsp = apply_control(hsp, control, 'output')

        if "output_block_patch" in transformer_patches:
            for p in transformer_patches["output_block_patch"]:
                h, hsp = p(h, hsp, transformer_options)

        if hsp is not None:  # 0.33: an output_block_patch may drop the skip tensor
            h = torch.cat([h, hsp], dim=1)
            del hsp
        output_shape = hs[-1].shape if len(hs) > 0 else None
        h = forward_timestep_embed(module, h, emb, context, transformer_options, output_shape, **tkw)
    h = h.type(x.dtype)
    if self.predict_codebook_ids:
        return self.id_predictor(h)
    return self.out(h)
