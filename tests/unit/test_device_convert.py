"""The diffusers -> single-file key mapping, computed from each published config (no ComfyUI here).

The UNets are built on the meta device from the published config.json files, so every architecture
is checked key by key in milliseconds; the numerical equality with diffusers is proven in
tests/integration/test_device_models.py.
"""
from __future__ import annotations

import json
import re

import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from obclip_nodes.device_models import convert
from obclip_nodes.device_models.convert import ConversionError
from obclip_nodes.harness import test_models

UNETS = test_models.NAMES


def meta_unet_state(name: str) -> tuple[dict, dict]:
    cfg = test_models.spec(name)["unet"]
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel.from_config(cfg)
    return cfg, unet.state_dict()


def ldm_blocks(out: dict, kind: str) -> list[int]:
    return sorted({int(m.group(1)) for k in out if (m := re.match(rf"model\.diffusion_model\.{kind}\.(\d+)\.", k))})


@pytest.mark.parametrize("name", UNETS)
def test_every_published_unet_maps_one_to_one(name):
    cfg, sd = meta_unet_state(name)
    out = convert.convert_unet(cfg, sd)
    assert len(out) == len(sd)  # nothing dropped, nothing merged
    assert all(k.startswith("model.diffusion_model.") for k in out)
    shapes_in = sorted(tuple(t.shape) for t in sd.values())
    assert sorted(tuple(t.shape) for t in out.values()) == shapes_in
    # LDM numbering is contiguous: input blocks 0..N, output blocks 0..M, no gaps
    for kind in ("input_blocks", "output_blocks"):
        blocks = ldm_blocks(out, kind)
        assert blocks == list(range(len(blocks))), (kind, blocks)


def test_sd15_numbering_matches_real_sd15_checkpoints():
    cfg, sd = meta_unet_state("sd15")
    out = convert.convert_unet(cfg, {k: torch.empty(0) for k in sd})
    inverse = {v_key: k for k, v_key in zip(sd, out)}
    # keys as they appear in v1-5-pruned-emaonly.safetensors
    expect = {
        "model.diffusion_model.input_blocks.5.1.proj_in.weight": "down_blocks.1.attentions.1.proj_in.weight",
        "model.diffusion_model.input_blocks.9.0.op.weight": "down_blocks.2.downsamplers.0.conv.weight",
        "model.diffusion_model.input_blocks.11.0.out_layers.3.bias": "down_blocks.3.resnets.1.conv2.bias",
        "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight":
            "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
        "model.diffusion_model.middle_block.2.emb_layers.1.weight": "mid_block.resnets.1.time_emb_proj.weight",
        "model.diffusion_model.output_blocks.2.1.conv.weight": "up_blocks.0.upsamplers.0.conv.weight",
        "model.diffusion_model.output_blocks.5.2.conv.weight": "up_blocks.1.upsamplers.0.conv.weight",
        "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.ff.net.2.weight":
            "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2.weight",
        "model.diffusion_model.output_blocks.3.0.skip_connection.weight": "up_blocks.1.resnets.0.conv_shortcut.weight",
        "model.diffusion_model.time_embed.2.weight": "time_embedding.linear_2.weight",
        "model.diffusion_model.out.0.weight": "conv_norm_out.weight",
    }
    for ldm, diff in expect.items():
        assert inverse[ldm] == diff


@pytest.mark.parametrize("name,inputs,outputs,middle", [
    ("bk-sdm-base", 8, 8, True), ("bk-sdm-small", 8, 8, False), ("bk-sdm-tiny", 6, 6, False),
    ("koala-700m", 6, 6, False), ("ssd-1b", 9, 9, True),
])
def test_block_removed_unets_keep_their_shape(name, inputs, outputs, middle):
    cfg, sd = meta_unet_state(name)
    out = convert.convert_unet(cfg, sd)
    assert len(ldm_blocks(out, "input_blocks")) == inputs
    assert len(ldm_blocks(out, "output_blocks")) == outputs
    assert any(".middle_block." in k for k in out) == middle


def test_small_upsampler_lands_where_comfy_expects_it():
    # BK-SDM-Small's up stage 1 has 2 resnets: its upsampler is output_blocks.3 (not SD1.5's .5)
    cfg, sd = meta_unet_state("bk-sdm-small")
    out = dict(zip(sd, convert.convert_unet(cfg, sd)))
    assert out["up_blocks.1.upsamplers.0.conv.weight"] == "model.diffusion_model.output_blocks.3.2.conv.weight"
    assert out["up_blocks.0.upsamplers.0.conv.weight"] == "model.diffusion_model.output_blocks.1.1.conv.weight"


def test_weight_the_config_does_not_declare_is_refused():
    cfg, sd = meta_unet_state("bk-sdm-small")
    sd = dict(sd)
    sd["down_blocks.0.resnets.1.conv1.weight"] = torch.empty(1)   # SD1.5's second resnet, not in Small
    with pytest.raises(ConversionError, match=r"down_blocks\.0\.resnets\.1\.conv1\.weight.*not explained"):
        convert.convert_unet(cfg, sd)


def test_block_the_config_declares_but_the_file_lacks_is_refused():
    cfg, sd = meta_unet_state("bk-sdm-base")
    sd = {k: v for k, v in sd.items() if not k.startswith("mid_block.attentions.0.")}
    with pytest.raises(ConversionError, match=r"declares blocks with no weights.*mid_block\.attentions\.0"):
        convert.convert_unet(cfg, sd)


def test_unsupported_config_features_are_named():
    cfg, sd = meta_unet_state("bk-sdm-small")
    with pytest.raises(ConversionError, match="time_cond_proj_dim=256"):
        convert.convert_unet(dict(cfg, time_cond_proj_dim=256), sd)
    with pytest.raises(ConversionError, match="SimpleCrossAttnDownBlock2D"):
        convert.convert_unet(dict(cfg, down_block_types=["SimpleCrossAttnDownBlock2D"] * 4), sd)


def test_vae_and_text_encoders_map_every_weight():
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    vae_cfg = json.loads((test_models.CONFIGS / "sd_vae.json").read_text())["config"]
    with torch.device("meta"):
        vae = diffusers.AutoencoderKL.from_config(vae_cfg)
    sd = vae.state_dict()
    out = convert.convert_vae(vae_cfg, sd)
    assert len(out) == len(sd)
    assert tuple(out["first_stage_model.decoder.mid.attn_1.q.weight"].shape) == (512, 512, 1, 1)
    assert "first_stage_model.decoder.up.3.upsample.conv.weight" in out   # diffusers up_blocks.0 is LDM up.3
    assert "first_stage_model.encoder.down.0.block.1.conv2.bias" in out

    g = test_models.component_config("sdxl_text_encoder_2.json")
    with torch.device("meta"):
        te = CLIPTextModelWithProjection(CLIPTextConfig(**{k: v for k, v in g.items() if k != "architectures"}))
    out = convert.convert_clip_g(te.state_dict(), g["num_hidden_layers"])
    assert tuple(out["conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight"].shape) == (3840, 1280)
    assert tuple(out["conditioner.embedders.1.model.text_projection"].shape) == (1280, 1280)
    l_cfg = test_models.component_config("sd1_text_encoder.json")
    with torch.device("meta"):
        te = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in l_cfg.items() if k != "architectures"}))
    out = convert.convert_clip_l(te.state_dict(), convert.SD1_CLIP_PREFIX)
    assert "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight" in out
    assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in out
