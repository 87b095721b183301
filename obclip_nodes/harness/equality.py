"""Proof of equality: a device model loaded into ComfyUI against the reference libraries.

UNet forward (8x8 latent, text context, two timesteps) against diffusers' UNet2DConditionModel, text
encoders against transformers' CLIPTextModel(WithProjection), VAE decode against diffusers'
AutoencoderKL, all on the same replica weights in float32. Used by tests/integration/test_device_models.py
and `python -m obclip_nodes.bench device-models`.
"""
from __future__ import annotations

import gc
from pathlib import Path

PROMPT = "a portrait photo of a person on a beach"


def rel_diff(got, ref) -> float:
    got, ref = got.float(), ref.float()
    return float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


def _unet_inputs(unet, family: str, seed: int = 0):
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=g)
    t = torch.tensor([999.0, 261.0])  # two timesteps, one per batch row
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    added, y = None, None
    if family == "sdxl":
        text_embeds = torch.randn(2, 1280, generator=g)
        time_ids = torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0]] * 2)
        added = {"text_embeds": text_embeds, "time_ids": time_ids}
        # what UNet2DConditionModel feeds its add_embedding, i.e. ComfyUI's `y`
        time_embeds = unet.add_time_proj(time_ids.flatten()).reshape(2, -1)
        y = torch.cat([text_embeds, time_embeds], dim=-1)
    return x, t, ctx, added, y


def unet_reference(diffusers_dir: Path, family: str) -> dict:
    """diffusers' UNet output on fixed inputs; the reference model is freed before returning."""
    import torch
    from diffusers import UNet2DConditionModel
    ref = UNet2DConditionModel.from_pretrained(diffusers_dir / "unet", torch_dtype=torch.float32).eval()
    x, t, ctx, added, y = _unet_inputs(ref, family)
    with torch.no_grad():
        want = ref(x, t, encoder_hidden_states=ctx, added_cond_kwargs=added).sample
    del ref
    gc.collect()
    return {"x": x, "t": t, "ctx": ctx, "y": y, "want": want}


def unet_rel_diff(model, diffusers_dir: Path, family: str, reference: dict | None = None) -> float:
    import torch
    r = reference or unet_reference(diffusers_dir, family)
    dm = model.model.diffusion_model
    dtype = next(dm.parameters()).dtype
    with torch.no_grad():
        got = dm(r["x"].to(dtype), timesteps=r["t"], context=r["ctx"].to(dtype),
                 y=None if r["y"] is None else r["y"].to(dtype))
    return rel_diff(got, r["want"])


def _token_ids(tokens) -> list[int]:
    return [int(t[0]) for t in tokens[0]]


def text_encoder_reference(diffusers_dir: Path, family: str) -> dict:
    """transformers' outputs for PROMPT, tokenised by ComfyUI's own tokenizer (no model needed)."""
    import torch
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    if family == "sd1":
        import comfy.sd1_clip
        tokens = comfy.sd1_clip.SD1Tokenizer().tokenize_with_weights(PROMPT)
    else:
        import comfy.sdxl_clip
        tokens = comfy.sdxl_clip.SDXLTokenizer().tokenize_with_weights(PROMPT)
    with torch.no_grad():
        te_l = CLIPTextModel.from_pretrained(diffusers_dir / "text_encoder", torch_dtype=torch.float32).eval()
        out_l = te_l(torch.tensor([_token_ids(tokens["l"])]), output_hidden_states=True)
        del te_l
        if family == "sd1":
            return {"cond": out_l.last_hidden_state, "pooled": None}
        te_g = CLIPTextModelWithProjection.from_pretrained(diffusers_dir / "text_encoder_2",
                                                           torch_dtype=torch.float32).eval()
        out_g = te_g(torch.tensor([_token_ids(tokens["g"])]), output_hidden_states=True)
        del te_g
    gc.collect()
    return {"cond": torch.cat([out_l.hidden_states[-2], out_g.hidden_states[-2]], dim=-1),
            "pooled": out_g.text_embeds}


def text_encoder_rel_diff_from(clip, reference: dict) -> float:
    cond, pooled = clip.encode_from_tokens(clip.tokenize(PROMPT), return_pooled=True)
    diff = rel_diff(cond, reference["cond"])
    return diff if reference["pooled"] is None else max(diff, rel_diff(pooled, reference["pooled"]))


def text_encoder_rel_diff(clip, diffusers_dir: Path, family: str) -> float:
    import torch
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    tokens = clip.tokenize(PROMPT)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    with torch.no_grad():
        if family == "sd1":
            te = CLIPTextModel.from_pretrained(diffusers_dir / "text_encoder", torch_dtype=torch.float32).eval()
            want = te(torch.tensor([_token_ids(tokens["l"])])).last_hidden_state
            return rel_diff(cond, want)
        te_l = CLIPTextModel.from_pretrained(diffusers_dir / "text_encoder", torch_dtype=torch.float32).eval()
        hl = te_l(torch.tensor([_token_ids(tokens["l"])]), output_hidden_states=True).hidden_states[-2]
        del te_l
        te_g = CLIPTextModelWithProjection.from_pretrained(diffusers_dir / "text_encoder_2",
                                                           torch_dtype=torch.float32).eval()
        out_g = te_g(torch.tensor([_token_ids(tokens["g"])]), output_hidden_states=True)
        want = torch.cat([hl, out_g.hidden_states[-2]], dim=-1)
        return max(rel_diff(cond, want), rel_diff(pooled, out_g.text_embeds))


def vae_rel_diff(vae, diffusers_dir: Path) -> float:
    import torch
    from diffusers import AutoencoderKL
    ref = AutoencoderKL.from_pretrained(diffusers_dir / "vae", torch_dtype=torch.float32).eval()
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref.decode(z).sample
        fs = vae.first_stage_model
        got = fs.decode(z.to(next(fs.parameters()).dtype))
    return rel_diff(got, want)


def params(model) -> int:
    return sum(p.numel() for p in model.model.diffusion_model.parameters())


def compare(model, clip, vae, diffusers_dir: Path, family: str, reference: dict | None = None,
            te_reference: dict | None = None) -> dict:
    out = {"unet_rel_diff": unet_rel_diff(model, diffusers_dir, family, reference)}
    gc.collect()
    out["text_encoder_rel_diff"] = (text_encoder_rel_diff_from(clip, te_reference) if te_reference
                                    else text_encoder_rel_diff(clip, diffusers_dir, family))
    gc.collect()
    out["vae_rel_diff"] = vae_rel_diff(vae, diffusers_dir)
    out["params"] = params(model)
    return out
