"""Issue 5: the ObCLIP path equals single-prompt runs; sigma-matched hand-off (SD1.5 -> BK-SDM-Small; the SDXL
family and the mismatch refusals: test_sdxl_family.py)."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.comfy
TOL = 1e-4  # relative to the latent's magnitude: float noise from batching, not a method error
# SD1.5 -> BK-SDM-Small and Vega -> KOALA-700M (published architectures) at a 4x4 latent and few steps
QUICK = {"width": 32, "height": 32, "steps": 4, "cloud_steps": 2}


@pytest.fixture(scope="module")
def bench(comfy_root):
    from obclip_nodes.bench import handoff
    return handoff


@pytest.mark.parametrize("family, sampler, ns", [("sd15", "euler", (1, 2, 4, 6)), ("sd15", "ddim", (1, 3))])
def test_real_candidate_equals_the_single_prompt_hybrid_for_every_n(bench, family, sampler, ns, request):
    """Every N with euler; ddim (another deterministic update) at N = 1 and with the real row last of 3."""
    cloud, device = request.getfixturevalue(f"{family}_models")
    cases = bench.exactness_cases(cloud, device, family, sampler, ns=ns, **QUICK)
    assert [c["n"] for c in cases] == list(ns)
    for c in cases:
        assert c["rel_diff"] < TOL, c


@pytest.mark.parametrize("family", ["sd15"])
def test_device_equal_to_cloud_reproduces_an_uninterrupted_cloud_run(bench, family, request):
    cloud, _ = request.getfixturevalue(f"{family}_models")
    case = bench.uninterrupted_case(cloud, family, "euler", **QUICK)
    assert case["rel_diff"] < TOL, case


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_2m_sde", "dpmpp_2m"])
def test_noisy_and_multistep_samplers_still_match_the_single_prompt_hybrid(bench, sampler, sd15_models):
    """Step noise is shared across rows, so each row matches its own single-prompt run."""
    cloud, device = sd15_models
    for c in bench.exactness_cases(cloud, device, "sd15", sampler, ns=(3,), **QUICK):
        assert c["rel_diff"] < TOL, c


def test_batch_dependent_noise_is_what_the_row_sharing_fixes(bench, sd15_models):
    """Without row-shared step noise, row 2 of a 3-row batch would not match its single run."""
    import comfy.samplers
    from obclip_nodes.sampling import partial as partial_mod
    cloud, device = sd15_models
    original = partial_mod.row_shared_sampler
    partial_mod.row_shared_sampler = comfy.samplers.sampler_object
    try:
        c = bench.exactness_cases(cloud, device, "sd15", "euler_ancestral", ns=(3,), **QUICK)[0]
    finally:
        partial_mod.row_shared_sampler = original
    assert c["rel_diff"] > 1e-3, c


def test_uninterrupted_deviation_of_multistep_samplers_is_measured_not_hidden(bench, sd15_models):
    """euler's split equals the uninterrupted run (the test above); dpmpp_2m's does not."""
    cloud, _ = sd15_models
    multistep = bench.uninterrupted_case(cloud, "sd15", "dpmpp_2m", **QUICK)["rel_diff"]
    assert multistep > TOL  # dpmpp_2m restarts its history at the split


def test_sigma_matched_tail_starts_exactly_at_the_cloud_stop(sd15_models):
    from obclip_nodes.sampling.schedule import HANDOFF_MODES, NEAREST_STEP, device_tail, ksampler_sigmas
    from obclip_nodes.sampling import model_signature
    from obclip_nodes.protocol import Handoff
    (cm, _, _), (dm, _, _) = sd15_models
    cloud_sigmas = ksampler_sigmas(cm, 8, "euler", "normal")
    h = Handoff(**model_signature(cm), steps=8, cloud_steps=4, sampler="euler", scheduler="normal", seed=1,
                sigmas=tuple(cloud_sigmas.tolist()), latent_shape=(4, 8, 8))
    replay = device_tail(h, dm, mode=HANDOFF_MODES[0])
    assert replay.tolist() == list(h.sigmas[4:])
    matched = device_tail(h, dm, mode=HANDOFF_MODES[1], steps=25)
    device25 = ksampler_sigmas(dm, 25, "euler", "normal")
    assert matched[0].item() == h.stop_sigma
    assert (matched[1:] < h.stop_sigma).all() and (matched[1:] == device25[device25 < h.stop_sigma]).all()
    nearest = device_tail(h, dm, mode=NEAREST_STEP, steps=25)
    assert nearest[0].item() != h.stop_sigma and abs(nearest[0].item() - h.stop_sigma) < 0.5 * h.stop_sigma


def test_sigma_matched_beats_the_nearest_step_shift(bench, sd15_models):
    cloud, device = sd15_models
    case = bench.sigma_matched_case(cloud, device, "sd15", fine_steps=40, device_steps=10, width=32, height=32)
    assert case["sigma_matched"]["rel_diff"] < case["nearest_step"]["rel_diff"], case


def test_latent_selector_keeps_fields_consistent_and_never_changes_the_fetched_rows(comfy_root):
    from obclip_nodes.nodes.selector import LatentSelector
    from obclip_nodes.nodes.types import PrivateSelection
    samples = torch.randn(4, 4, 8, 8)
    fetched = {"samples": samples, "batch_index": [0, 1, 2, 3], "noise_mask": torch.rand(4, 1, 8, 8)}
    before = {k: (v.clone() if torch.is_tensor(v) else list(v)) for k, v in fetched.items()}
    out = LatentSelector.execute(fetched, PrivateSelection(real_index=2, prompt="p", n=4)).result[0]
    assert torch.equal(out["samples"], samples[2:3]) and torch.equal(out["noise_mask"], before["noise_mask"][2:3])
    assert "batch_index" not in out
    out["samples"].add_(1)  # the output is a copy: editing it leaves the fetched batch alone
    assert torch.equal(fetched["samples"], before["samples"]) and fetched["batch_index"] == before["batch_index"]
    with pytest.raises(ValueError, match="got 4 latents for 6 candidates"):
        LatentSelector.execute(fetched, PrivateSelection(real_index=0, prompt="p", n=6))


def test_pair_presets_are_valid_comfy_settings_in_one_latent_space(comfy_root):
    import comfy.samplers
    from obclip_nodes.sampling.presets import PRESETS
    from obclip_nodes.sampling.schedule import HANDOFF_MODES
    from obclip_nodes.miniworld.comfy_family import WEIGHTS_DIR
    assert len(PRESETS) == 8  # the paper's 7 pairs and the pack's own mini-world pair
    for p in PRESETS:
        assert p.sampler in comfy.samplers.KSampler.SAMPLERS and p.scheduler in comfy.samplers.KSampler.SCHEDULERS
        assert 1 <= p.cloud_steps <= p.steps and p.schedule in HANDOFF_MODES
        if p.latent_format == "ObCLIPMiniWorldLatent":  # names the shipped files
            assert (WEIGHTS_DIR / p.cloud).is_file() and (WEIGHTS_DIR / p.device).is_file()
        else:
            assert p.latent_format == ("SDXL" if "SDXL" in p.cloud else "SD15")
    lcm = next(p for p in PRESETS if p.sampler == "lcm")
    assert lcm.schedule == HANDOFF_MODES[1] and lcm.device_steps == 25
