"""The SDXL family in-process: Segmind Vega (cloud) -> KOALA-700M (device), published architectures with
seeded random weights (harness/pairs.py), loaded once for this module (about 10 GB in float32): hand-off
exactness, the cache strategies, and every latent-space mismatch refused."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.comfy
TOL = 1e-4
QUICK = {"width": 32, "height": 32, "steps": 4, "cloud_steps": 2}


@pytest.fixture(scope="module")
def bench(comfy_root):
    from obclip_nodes.bench import handoff
    return handoff


@pytest.fixture(scope="module")
def sd15_device_unet(comfy_root, sd15_pair):
    """BK-SDM-Small's UNet alone (no text encoder or VAE): all the refusal checks read."""
    import comfy.sd
    return comfy.sd.load_checkpoint_guess_config(str(sd15_pair[1]), output_vae=False, output_clip=False)[0]


def test_real_candidate_equals_the_single_prompt_hybrid_for_every_n(bench, sdxl_models):
    cloud, device = sdxl_models
    # N = 3 with the real row last (a batch, a selection, the SDXL conditioning); N = 1 and every other N on
    # the same code path: the SD1.5 test
    cases = bench.exactness_cases(cloud, device, "sdxl", "euler", ns=(3,), **QUICK)
    assert [c["n"] for c in cases] == [3]
    for c in cases:
        assert c["rel_diff"] < TOL, c


def test_device_equal_to_cloud_reproduces_an_uninterrupted_cloud_run(bench, sdxl_models):
    cloud, _ = sdxl_models
    case = bench.uninterrupted_case(cloud, "sdxl", "euler", **QUICK)
    assert case["rel_diff"] < TOL, case


def test_all_cache_strategies_run(sdxl_models):
    from obclip_nodes.acceleration import AccelerationSettings, accelerate
    from obclip_nodes.sampling import encode_batch, partial_sample
    (cm, cc, _), _ = sdxl_models
    m, report = accelerate(cm, AccelerationSettings.from_dict(dict(
        uncond_dedup=True, uncond_share=True, batch_reuse=True, attention_cache=True, block_skip=True,
        cache_point=1, skip_point=1)), n_candidates=2)
    out = partial_sample(m, encode_batch(cc, ["a photo of a young man", "a photo of an old woman"]),
                         encode_batch(cc, ["blurry"]), n=2, width=32, height=32, seed=7, steps=3, cloud_steps=2,
                         cfg=5.0, sampler="euler", scheduler="normal")[0]["samples"]
    assert out.shape == (2, 4, 4, 4) and torch.isfinite(out).all()
    r = report["last_run"]
    assert r["events"]["block_skip_calls"] == 1 and r["fraction_skipped"] > 0.3


def _handoff_for(model, **kw):
    from obclip_nodes.sampling import model_signature
    from obclip_nodes.protocol import Handoff
    return Handoff(**{**model_signature(model), **kw}, steps=4, cloud_steps=2, sampler="euler",
                   scheduler="normal", seed=0, sigmas=(14.6, 3.0, 1.0, 0.3, 0.0), latent_shape=(4, 8, 8))


def test_every_mismatch_is_refused_with_both_models_and_the_fix(sd15_device_unet, sdxl_models):
    from obclip_nodes.sampling import IncompatibleModelError, check_device_model
    sd15 = sd15_small = sd15_device_unet  # SD1.5 and BK-SDM-Small share one signature (test_test_models.py)
    (sdxl, _, _), (koala, _, _) = sdxl_models
    lat = {"samples": torch.zeros(1, 4, 8, 8)}
    cases = [
        (_handoff_for(sdxl), sd15_small, lat, r"SDXL.*SD15.*SDXL-family device model such as .*KOALA-700M"),
        (_handoff_for(sd15), koala, lat, r"SD15.*KOALA_700M.*SD1\.x-family device model"),
        (_handoff_for(sd15, latent_channels=16), sd15_small, lat, "16 latent channels"),
        (_handoff_for(sd15, model_type="V_PREDICTION"), sd15_small, lat, "predicts V_PREDICTION"),
        (_handoff_for(sd15, sigma_max=80.0), sd15_small, lat, "sigma_max=80"),
        (_handoff_for(sd15), sd15_small, {"samples": torch.zeros(1, 4, 16, 16)}, r"returned rows of 4x8x8"),
        (_handoff_for(sd15), sd15_small, {"samples": torch.zeros(3, 4, 8, 8)}, r"shape \(3, 4, 8, 8\)"),
    ]
    for handoff, model, latent, message in cases:
        with pytest.raises(IncompatibleModelError, match=message):
            check_device_model(handoff, model, latent)
    check_device_model(_handoff_for(sd15), sd15_small, lat)  # the matching pair passes
    check_device_model(_handoff_for(sdxl), koala, lat)


