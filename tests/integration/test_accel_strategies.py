"""The cache strategies as ModelPatcher wrappers on the SD1.5 test model, in-process (SDXL family:
test_sdxl_family.py)."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.comfy

PROMPTS = ["a photo of a young man", "a photo of a young woman", "a photo of an old man",
           "a photo of an old woman", "a photo of a young boy", "a photo of a young girl",
           "a photo of an old lady", "a photo of an old gentleman"]
RUN = dict(width=32, height=32, seed=7, steps=6, cloud_steps=3, cfg=5.0, sampler="euler", scheduler="normal")


def sample(model, clip, n=3, **over):
    from obclip_nodes.sampling import encode_batch, partial_sample
    s = {**RUN, **over}
    return partial_sample(model, encode_batch(clip, PROMPTS[:n]), encode_batch(clip, ["blurry"]), n=n,
                          width=s["width"], height=s["height"], seed=s["seed"], steps=s["steps"],
                          cloud_steps=s["cloud_steps"], cfg=s["cfg"], sampler=s["sampler"],
                          scheduler=s["scheduler"])[0]["samples"]


@pytest.fixture(scope="module")
def sd15(sd15_models):
    (cm, cc, _), _ = sd15_models
    return cm, cc, sample(cm, cc)


def accel(cm, n=3, **settings):
    from obclip_nodes.acceleration import AccelerationSettings, accelerate
    return accelerate(cm, AccelerationSettings.from_dict(settings), n_candidates=n)


@pytest.mark.parametrize("settings", [
    {},  # all strategies off: wrappers installed, nothing changes
    {"block_skip": True, "skip_point": 99},  # our copy of UNetModel._forward, never skipping
    {"batch_reuse": True, "attention_cache": True, "cache_point": 0, "refresh_every": 1},  # patched attention, idle
], ids=["all-off", "block-skip-idle", "attention-idle"])
def test_strategies_off_are_bit_identical_to_the_unpatched_model(sd15, settings):
    cm, cc, ref = sd15
    m, report = accel(cm, **settings)
    assert m is not cm and not cm.wrappers  # a clone; the caller's model is untouched
    out = sample(m, cc)
    assert torch.equal(out, ref)
    assert report["last_run"]["fraction_skipped"] == 0.0 and report["last_run"]["steps"] == RUN["cloud_steps"]
    if not settings:
        assert torch.equal(sample(cm, cc), ref)  # and the original still samples as before


def test_uncond_dedup_is_exact_and_skips_the_step0_uncond_rows(sd15):
    cm, cc, ref = sd15
    m, report = accel(cm, uncond_dedup=True)
    out = sample(m, cc)
    scale = ref.abs().max().item()
    assert scale > 1.0
    assert torch.allclose(out, ref, rtol=0, atol=1e-5 * scale), (out - ref).abs().max()
    r = report["last_run"]
    assert r["events"]["dedup_rows"] == 2  # N-1 uncond rows at step 0, none later (latents diverge)
    assert r["fraction_skipped"] == pytest.approx(2 / (2 * 3 * RUN["cloud_steps"]), abs=1e-4)


@pytest.mark.parametrize("name,settings,min_skipped", [
    ("uncond_share", {"uncond_share": True}, 0.30),
    ("batch_reuse", {"batch_reuse": True, "cache_point": 3}, 0.01),
    ("attention_cache", {"attention_cache": True, "cache_point": 1, "refresh_every": 5}, 0.05),
    ("block_skip", {"block_skip": True, "skip_point": 1}, 0.05),
    ("deepcache", {"block_skip": True, "skip_point": 1, "skip_mode": "deepcache"}, 0.15),
])
def test_each_approximate_strategy_engages_and_stays_close(sd15, name, settings, min_skipped):
    cm, cc, ref = sd15
    m, report = accel(cm, **settings)
    out = sample(m, cc)
    r = report["last_run"]
    assert r["fraction_skipped"] >= min_skipped, r
    assert torch.isfinite(out).all()
    assert not torch.equal(out, ref)  # it really changed something
    rel = ((out - ref).norm() / ref.norm()).item()
    assert rel < 0.5, rel  # random-weight model: a loose bound that still catches a broken scatter


@pytest.mark.parametrize("n", [1, 8])
def test_all_strategies_any_batch_size_and_cfg1(sd15, n):
    cm, cc, _ = sd15
    m, report = accel(cm, n=n, **{s: True for s in ("uncond_dedup", "uncond_share", "batch_reuse",
                                                  "attention_cache", "block_skip")},
                      cache_point=1, skip_point=2, refresh_every=2)
    out = sample(m, cc, n=n, steps=4, cloud_steps=3)
    assert out.shape == (n, 4, 4, 4) and torch.isfinite(out).all()
    out1 = sample(m, cc, n=n, steps=4, cloud_steps=2, cfg=1.0)  # uncond skipped by ComfyUI
    assert torch.isfinite(out1).all()
    if n == 1:  # nothing to share: only the temporal caches act
        assert report["last_run"]["events"]["shared_rows"] == 0


def test_no_state_leaks_between_runs_of_different_size_and_steps(sd15):
    cm, cc, _ = sd15
    m, report = accel(cm, n=2, uncond_dedup=True, uncond_share=True, batch_reuse=True, attention_cache=True,
                      block_skip=True, cache_point=1, skip_point=1)
    a = sample(m, cc, n=2, steps=6, cloud_steps=3, width=32, height=32)
    assert report["last_run"]["events"]["block_skip_calls"] == 2
    sample(m, cc, n=2, width=48, height=40, steps=5, cloud_steps=2)  # other shape, other step count
    assert report["runs"] == 2 and report["last_run"]["steps"] == 2
    assert torch.equal(sample(m, cc, n=2, steps=6, cloud_steps=3, width=32, height=32), a)  # fresh state per run


def test_pivot_is_a_public_setting_that_changes_results_and_is_validated(sd15):
    cm, cc, _ = sd15
    outs = [sample(accel(cm, n=2, batch_reuse=True, pivot_index=p)[0], cc, n=2, steps=4, cloud_steps=2)
            for p in (0, 1)]
    assert not torch.equal(outs[0], outs[1])
    with pytest.raises(ValueError, match="pivot_index"):
        accel(cm, n=2, pivot_index=2)


def test_runtime_accounting_equals_counted_flops_and_separate_cond_calls(comfy_root):
    """The report's FLOPs are the FlopCounterMode count, also with cond and uncond in separate calls."""
    from obclip_nodes.acceleration import AccelerationSettings
    from obclip_nodes.acceleration.costs import REAL_UNETS, meta_unet
    from obclip_nodes.acceleration.simulate import count_run, install_attention
    for arch, modes in (("sd15", (False, True)), ("sdxl", (False,))):
        cfg = REAL_UNETS[arch]
        unet = meta_unet(cfg)
        install_attention(unet)
        # k = 3 steps: the full step 0, the attention caches' step 1 and the block skip's step 2
        plain = count_run(unet, cfg, None, n=3, k=3, latent=(4, 8, 8))
        for separate in modes:
            r = count_run(unet, cfg, AccelerationSettings.all_on(cache_point=1, skip_point=2), n=3, k=3,
                          latent=(4, 8, 8), separate=separate)
            assert r["accounted_full_flops"] == pytest.approx(plain["total_flops"], rel=1e-9)
            assert r["accounted_run_flops"] == pytest.approx(r["total_flops"], rel=1e-9)
            assert r["total_flops"] < 0.6 * plain["total_flops"]


def test_exact_preset_matches_unaccelerated_and_presets_engage(sd15):
    from obclip_nodes.acceleration import AccelerationSettings, accelerate
    cm, cc, ref = sd15
    scale = ref.abs().max().item()
    m, report = accelerate(cm, AccelerationSettings.preset("exact"), n_candidates=3)
    assert torch.allclose(sample(m, cc), ref, rtol=0, atol=1e-5 * scale)
    skipped = {}
    for name in ("balanced", "fastest"):
        s = AccelerationSettings.preset(name)
        m, report = accelerate(cm, s, n_candidates=3)
        out = sample(m, cc, steps=12, cloud_steps=8)  # from s = 3: balanced reuses 3 of 5 steps, fastest 4
        assert torch.isfinite(out).all()
        r = report["last_run"]
        assert set(k for k, v in r["saved_by_strategy_fraction"].items() if v > 0) <= set(s.applied)
        assert r["events"]["block_skip_calls"] > 0, (name, r)  # the block skip of the preset really ran
        skipped[name] = r["fraction_skipped"]
    assert skipped["fastest"] > skipped["balanced"] > 0.3


def test_deepcache_refresh_recomputes_on_schedule(sd15):
    cm, cc, _ = sd15
    common = dict(block_skip=True, skip_mode="deepcache", skip_point=2)
    m0, r0 = accel(cm, **common)
    m2, r2 = accel(cm, **common, skip_refresh_every=2)
    a, b = sample(m0, cc, steps=10, cloud_steps=6), sample(m2, cc, steps=10, cloud_steps=6)
    # steps 2..5 reuse without refresh; with M = 2, steps 1, 3, 5 recompute and 2, 4 reuse
    assert r0["last_run"]["events"]["block_skip_calls"] == 4
    assert r2["last_run"]["events"]["block_skip_calls"] == 2
    assert r2["last_run"]["fraction_skipped"] < r0["last_run"]["fraction_skipped"]
    assert not torch.equal(a, b)


@pytest.mark.parametrize("preset", ["exact", "balanced", "fastest"])
def test_presets_treat_every_non_pivot_candidate_alike(sd15, preset):
    """Reordering the candidates behind the public pivot row reorders the outputs and changes nothing else:
    no decision of a preset singles out a row other than the fixed pivot (and the server never learns
    which row is real: the selector picks it afterwards, on the client)."""
    from obclip_nodes.acceleration import AccelerationSettings, accelerate
    from obclip_nodes.sampling import encode_batch, partial_sample
    cm, cc, _ = sd15
    n, perm = 4, [0, 3, 1, 2]  # row 0 is the pivot and stays; the others are shuffled
    prompts = PROMPTS[:n]

    def run(texts):
        m, _ = accelerate(cm, AccelerationSettings.preset(preset), n_candidates=n)
        return partial_sample(m, encode_batch(cc, texts), encode_batch(cc, ["blurry"]), n=n, width=32, height=32,
                              seed=7, steps=10, cloud_steps=6, cfg=5.0, sampler="euler",
                              scheduler="normal")[0]["samples"]
    a = run(prompts)
    b = run([prompts[i] for i in perm])
    scale = a.abs().max().item()
    assert torch.allclose(b, a[perm], rtol=0, atol=1e-5 * scale), (b - a[perm]).abs().max()


def test_node_preset_replaces_its_inputs_and_custom_keeps_them(comfy_root):
    from obclip_nodes.acceleration import AccelerationSettings
    from obclip_nodes.nodes.accelerator import CacheAccelerator
    inputs = dict(uncond_dedup=True, batch_reuse=False, attention_cache=False, block_skip=False, cache_point=3,
                  skip_point=3, refresh_every=5)
    custom = CacheAccelerator.execute(**inputs)
    assert custom.args[0] == AccelerationSettings(uncond_dedup=True)
    assert custom.ui["text"][0].endswith("exact (outputs unchanged)")
    for name in ("exact", "balanced", "fastest"):
        out = CacheAccelerator.execute(**inputs, preset=name)
        assert out.args[0] == AccelerationSettings.preset(name)
        assert out.ui["text"][0].startswith(f"preset {name} (the settings above are ignored")
    # the new inputs come last and are optional, so saved workflows keep their widget values
    ids = [i.id for i in CacheAccelerator.define_schema().inputs]
    assert ids[-2:] == ["skip_refresh_every", "preset"]
