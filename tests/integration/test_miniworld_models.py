"""The trained mini-world checkpoints, in-process with ComfyUI's own loaders and samplers.

They load through CheckpointLoaderSimple's code path as their own family, leave every other family's
detection alone, reproduce the trainer's text encoder exactly, reconstruct every portrait through the
VAE, and draw the attributes a held-out caption asks for. Value assertions throughout; the quality
numbers themselves live in `python -m obclip_nodes.bench utility`.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.comfy


@pytest.fixture(autouse=True)
def _no_autograd():
    """As ComfyUI runs its nodes: no graphs (the loaded VAE's parameters still require grad). oneDNN back on
    (tests/conftest.py turns it off): the mini world runs at its real 64x64 size, where it is the faster."""
    before, torch.backends.mkldnn.enabled = torch.backends.mkldnn.enabled, True
    try:
        with torch.no_grad():
            yield
    finally:
        torch.backends.mkldnn.enabled = before


@pytest.fixture(scope="module")
def mini(comfy_root):
    import comfy.sd
    from obclip_nodes.miniworld import comfy_family
    from obclip_nodes.miniworld.arch import checkpoint_name
    comfy_family.register()
    return {r: comfy.sd.load_checkpoint_guess_config(str(comfy_family.WEIGHTS_DIR / checkpoint_name(r)))[:3]
            for r in ("cloud", "device")}


def test_checkpoints_load_as_their_own_family_with_comfy_modules(mini):
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from obclip_nodes.miniworld.arch import UNET
    from obclip_nodes.sampling.compat import model_signature
    sizes = {}
    for role, (model, clip, vae) in mini.items():
        sig = model_signature(model)
        assert sig["family"] == "ObCLIPMiniWorld" and sig["latent_format"] == "ObCLIPMiniWorldLatent"
        assert sig["model_type"] == "EPS" and sig["latent_channels"] == 4
        unet = model.model.diffusion_model
        assert isinstance(unet, UNetModel) and unet.model_channels == UNET[role]["model_channels"]
        sizes[role] = sum(p.numel() for p in unet.parameters())
        cond = clip.encode_from_tokens_scheduled(clip.tokenize("portrait photo of an old African man"))[0][0]
        assert cond.shape == (1, 77, 64) and torch.isfinite(cond).all() and cond.std() > 0.1
        if role == "device":
            assert vae.decode(torch.zeros(1, 4, 8, 8)).shape == (1, 64, 64, 3)
        else:  # the cloud only returns latents: its file carries no VAE, and decoding with it says so
            with pytest.raises(RuntimeError, match="VAE is invalid"):
                vae.decode(torch.zeros(1, 4, 8, 8))
    assert sizes["cloud"] >= 3 * sizes["device"]  # a clearly smaller device model


def test_shipped_files_stay_small_and_the_cloud_unet_unpacks_to_float32(mini):
    from safetensors.torch import load_file
    from obclip_nodes.miniworld.arch import checkpoint_name
    from obclip_nodes.miniworld.comfy_family import WEIGHTS_DIR
    from obclip_nodes.miniworld.packing import SCALE
    for role in ("cloud", "device"):
        assert (WEIGHTS_DIR / checkpoint_name(role)).stat().st_size < 8_000_000, role
    sd = load_file(str(WEIGHTS_DIR / checkpoint_name("cloud")))
    key = "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    q, scale = sd["model.diffusion_model." + key], sd["model.diffusion_model." + key + SCALE]
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and scale.shape == (q.shape[0], 1)
    loaded = mini["cloud"][0].model.diffusion_model.state_dict()[key]
    assert loaded.dtype == torch.float32 and torch.equal(loaded, q.float() * scale)


def test_registering_the_family_leaves_other_families_alone(comfy_root, sd15_pair, mini):
    import comfy.sd
    import comfy.supported_models
    from obclip_nodes.miniworld import comfy_family
    comfy_family.register()
    comfy_family.register()
    assert sum(m.__name__ == "ObCLIPMiniWorld" for m in comfy.supported_models.models) == 1
    assert comfy.supported_models.models[-1].__name__ == "ObCLIPMiniWorld"  # last: never shadows another
    model = comfy.sd.load_checkpoint_guess_config(str(sd15_pair[1]), output_vae=False, output_clip=False)[0]
    assert type(model.model.model_config).__name__ == "SD15"


def test_the_trainers_text_encoder_is_exactly_what_comfyui_runs_and_both_models_share_it(mini):
    from safetensors.torch import load_file
    from obclip_nodes.miniworld import train
    from obclip_nodes.miniworld.arch import checkpoint_name
    from obclip_nodes.miniworld.comfy_family import WEIGHTS_DIR
    clip = mini["cloud"][1]
    from obclip_nodes.miniworld.packing import unpack_token_table
    sd = unpack_token_table(load_file(str(WEIGHTS_DIR / checkpoint_name("cloud"))), "cond_stage_model.")
    text = train.build_text()
    text.load_state_dict({"clip_l." + k[len("cond_stage_model."):]: v.float() for k, v in sd.items()
                          if k.startswith("cond_stage_model.")})
    caption = "portrait photo of a middle-aged Indian woman, wearing a teal shirt, with a hat, grey background"
    with torch.no_grad():
        ours = train.encode_text(text.eval(), train.tokens_of(train.tokenizer(), [caption]))
    comfy_cond = clip.encode_from_tokens_scheduled(clip.tokenize(caption))[0][0]
    assert torch.allclose(ours, comfy_cond, atol=1e-5), float((ours - comfy_cond).abs().max())
    # the device was distilled with the cloud's text encoder and ships it (as BK-SDM ships SD's CLIP)
    device_sd = unpack_token_table(load_file(str(WEIGHTS_DIR / checkpoint_name("device"))), "cond_stage_model.")
    text_keys = [k for k in sd if k.startswith("cond_stage_model.")]
    assert text_keys and all(torch.equal(sd[k], device_sd[k]) for k in text_keys)
    # a word never seen in training has an all-zero token row: it carries no meaning
    emb = sd["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"].float()
    unseen = clip.tokenize("zebra")["l"][0][1][0]
    assert emb[unseen].abs().max() == 0 and emb.abs().sum(1).gt(0).sum() < 100


def test_vae_round_trip_keeps_the_attributes_of_the_portraits(mini):
    from obclip_nodes.miniworld import ATTRIBUTES, Portrait, read, render
    vae = mini["device"][2]  # the shared VAE ships in the device file
    portraits = Portrait.all()[::7]  # 275 portraits with every value of every attribute (every 4th: no hat, no glasses)
    x = torch.from_numpy(np.stack([render(p) for p in portraits]))
    z = vae.encode(x)
    assert z.shape[1:] == (4, 8, 8)
    assert abs(float(z.mean())) < 0.3 and 0.7 < float(z.std()) < 1.3  # whitened latents (vae_scale/shift)
    rec = vae.decode(z).float().numpy()
    lost = [(p, tuple(a for a in ATTRIBUTES if getattr(p, a) != getattr(g, a)))
            for p, g in ((p, read(im)) for p, im in zip(portraits, rec)) if g != p]
    # The world's one weak code: middle-aged hair (0.55, 0.45, 0.35) is the colour code closest to the
    # grey background (0.5, 0.5, 0.5), so long hair against grey is read from a small margin. Any other
    # loss, or more than 1 %, is a real regression.
    assert all(p.age == "middle-aged" and p.background == "grey" and a == ("gender",) for p, a in lost), lost
    assert len(lost) <= len(portraits) // 100, lost


def test_cloud_model_draws_the_attributes_of_held_out_captions(mini):
    import comfy.sample
    from obclip_nodes.miniworld import caption, read
    from obclip_nodes.miniworld.train import split
    from obclip_nodes.sampling import encode_batch
    held = split()[1][::48][:8]
    (model, clip, _), vae = mini["cloud"], mini["device"][2]
    pos, neg = encode_batch(clip, [caption(p) for p in held]), encode_batch(clip, [""])
    noise = torch.cat([comfy.sample.prepare_noise(torch.zeros(1, 4, 8, 8), s) for s in range(len(held))])
    x = comfy.sample.sample(model, noise, 20, 5.0, "euler", "normal", pos, neg, torch.zeros_like(noise),
                            disable_pbar=True, seed=0)
    got = [read(im) for im in vae.decode(x).float().clamp(0, 1).numpy()]
    protected = np.mean([[getattr(g, a) == getattr(p, a) for a in ("gender", "age", "ethnicity")]
                         for g, p in zip(got, held)])
    assert protected >= 0.8, [(caption(p), g) for g, p in zip(got, held) if g != p]
    # and the images differ from caption to caption: the text is used, not ignored
    assert len({(g.gender, g.age, g.ethnicity) for g in got}) >= 4


def test_a_mini_cloud_refuses_a_device_from_another_latent_space_and_names_the_mini_device(mini, sd15_pair):
    import comfy.sd
    from obclip_nodes.miniworld import caption
    from obclip_nodes.miniworld.train import split
    from obclip_nodes.sampling import encode_batch, finish_sample, partial_sample
    from obclip_nodes.sampling.compat import IncompatibleModelError
    model, clip, _ = mini["cloud"]
    text = caption(split()[1][0])
    out, ho = partial_sample(model, encode_batch(clip, [text]), encode_batch(clip, [""]), n=1, width=64, height=64,
                             seed=1, steps=4, cloud_steps=2, cfg=5.0, sampler="euler", scheduler="normal")
    sd_model, sd_clip, _ = comfy.sd.load_checkpoint_guess_config(str(sd15_pair[1]))[:3]  # BK-SDM-Small
    with pytest.raises(IncompatibleModelError, match="obclip-mini-device.safetensors"):
        finish_sample(sd_model, encode_batch(sd_clip, [text]), encode_batch(sd_clip, [""]), out, ho, cfg=5.0)
    dm, dc, _ = mini["device"]
    fin = finish_sample(dm, encode_batch(dc, [text]), encode_batch(dc, [""]), out, ho, cfg=5.0)["samples"]
    assert fin.shape == (1, 4, 8, 8) and torch.isfinite(fin).all()
