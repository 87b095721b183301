"""The embedded smoke models: deterministic bytes, detected as the intended classes, never zero norms."""
from __future__ import annotations

import pytest
from safetensors import safe_open

from obclip_nodes.harness.smoke_models import build, sha256


def test_generation_is_byte_identical(tmp_path, sd15_pair):
    _, device = sd15_pair
    again = build("sd15-device", tmp_path)
    assert again.stat().st_size == device.stat().st_size
    assert sha256(again) == sha256(device)


def test_norm_weights_are_ones_and_weights_are_random(sd15_pair):
    cloud, _ = sd15_pair
    with safe_open(str(cloud), "pt") as f:
        keys = list(f.keys())
        norms = [k for k in keys if k.startswith("model.diffusion_model.") and ".norm" in k and k.endswith(".weight")]
        assert norms
        for k in norms[:20]:
            assert (f.get_tensor(k) == 1).all(), k
        conv = f.get_tensor("model.diffusion_model.input_blocks.0.0.weight").float()
        assert conv.std() > 0.01 and conv.abs().max() > 0


@pytest.mark.comfy
def test_pair_is_detected_as_one_latent_space(sd15_models):
    from obclip_nodes.sampling import model_signature
    (cm, _, cv), (dm, _, _) = sd15_models
    cs, ds = model_signature(cm), model_signature(dm)
    assert cs == ds  # same family, latent format, prediction type and noise range
    assert cs["family"] == "SD15" and type(cv.first_stage_model).__name__ == "TAESD"
    count = lambda m: sum(p.numel() for p in m.model.diffusion_model.parameters())
    assert count(cm) > 2 * count(dm)  # the "cloud" model really is the larger one
