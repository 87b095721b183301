"""Issue 16, in-process: Encode Real Prompt, conditioning into the Device Finisher, and the hand-off as
SIGMAS/LATENT/NOISE for stock SamplerCustomAdvanced. Equality is asserted against the Finisher's own path
and against the Finisher's computation as it was before these inputs existed (main at 4e2c08a)."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.comfy

PROMPTS = ("a photo of a young woman", "a photo of an old woman", "a photo of a young man")
REAL = 1
NEGATIVE = "blurry"
# A 4x4 latent and few steps: each UNet call costs the same whatever the size (the weights dominate on a CPU)
S = dict(width=32, height=32, seed=11, steps=6, cloud_steps=3, cfg=5.0, scheduler="normal")
DEVICE_STEPS = 10  # the sigma-matched mode's own device schedule, cut at the cloud's stop
REPLAY, MATCHED = "replay cloud schedule", "sigma-matched device schedule"


@pytest.fixture(scope="module")
def nodes_(comfy_root):
    import comfy_extras.nodes_custom_sampler as custom
    from obclip_nodes.nodes.device_side import EncodeRealPrompt, HandoffSigmas
    from obclip_nodes.nodes.finisher import DeviceFinisher
    return custom, EncodeRealPrompt, HandoffSigmas, DeviceFinisher


_CLOUD_RUNS: dict = {}


def cloud_part(sd15_models, sampler: str, **over):
    """The cloud's k steps for all candidates, in-process (run once per setting, a fresh copy each call);
    -> (real row latent, handoff, selection)."""
    key = (sampler, tuple(sorted(over.items())))
    if key not in _CLOUD_RUNS:
        _CLOUD_RUNS[key] = _cloud_part(sd15_models, sampler, **over)
    latent, handoff, selection = _CLOUD_RUNS[key]
    return {"samples": latent["samples"].clone()}, handoff, selection


def _cloud_part(sd15_models, sampler: str, **over):
    from obclip_nodes.nodes.types import PrivateSelection
    from obclip_nodes.sampling import encode_batch, partial_sample
    (cm, cc, _), _ = sd15_models
    s = {**S, **over}
    rows, handoff = partial_sample(cm, encode_batch(cc, list(PROMPTS)), encode_batch(cc, [NEGATIVE]),
                                   n=len(PROMPTS), width=s["width"], height=s["height"], seed=s["seed"],
                                   steps=s["steps"], cloud_steps=s["cloud_steps"], cfg=s["cfg"], sampler=sampler,
                                   scheduler=s["scheduler"])
    latent = {"samples": rows["samples"][REAL:REAL + 1].clone()}
    return latent, handoff, PrivateSelection(real_index=REAL, prompt=PROMPTS[REAL], n=len(PROMPTS))


def finisher(nodes_, dm, latent, selection, handoff, *, mode=REPLAY, sampler="same as cloud", **kw):
    _, _, _, DeviceFinisher = nodes_
    return DeviceFinisher.execute(dm, latent, selection, handoff, NEGATIVE, S["cfg"], mode, DEVICE_STEPS, "normal",
                                  sampler, **kw).result[0]["samples"]


def finisher_at_main(dm, dc, latent, handoff, mode):
    """The Device Finisher's computation at main@4e2c08a, frozen here as the reference: its own text
    encoding, zero added noise, the cloud's seed, sample_custom on the hand-off tail."""
    import comfy.sample
    import comfy.samplers
    from obclip_nodes.sampling import encode_batch
    from obclip_nodes.sampling.schedule import device_tail
    x = latent["samples"]
    tail = device_tail(handoff, dm, mode=mode, steps=DEVICE_STEPS, scheduler="normal", sampler=handoff.sampler)
    return comfy.sample.sample_custom(dm, torch.zeros_like(x), S["cfg"],
                                      comfy.samplers.sampler_object(handoff.sampler), tail,
                                      encode_batch(dc, [PROMPTS[REAL]]), encode_batch(dc, [NEGATIVE]), x,
                                      noise_mask=None, callback=None, seed=handoff.seed)


def custom_advanced(nodes_, dm, dc, latent, handoff, selection, *, mode, sampler, noise=None, sampler_name=None):
    """Stock SamplerCustomAdvanced fed by Encode Real Prompt and the Hand-off Sigmas node."""
    custom, EncodeRealPrompt, HandoffSigmas, _ = nodes_
    positive, negative = EncodeRealPrompt.execute(dc, selection, NEGATIVE).result
    sigmas, real, handoff_noise = HandoffSigmas.execute(dm, latent, handoff, mode, DEVICE_STEPS, "normal", sampler).result
    guider = custom.CFGGuider.execute(dm, positive, negative, S["cfg"]).result[0]
    name = sampler_name or (handoff.sampler if sampler == "same as cloud" else sampler)
    ksampler = custom.KSamplerSelect.execute(name).result[0]
    out = custom.SamplerCustomAdvanced.execute(noise or handoff_noise, guider, ksampler, sigmas, real).result[0]
    return out["samples"], sigmas


def test_encode_real_prompt_gives_the_finishers_own_conditioning(nodes_, sd15_models):
    import nodes
    from obclip_nodes.sampling import encode_batch
    _, EncodeRealPrompt, _, _ = nodes_
    _, (_, dc, _) = sd15_models
    from obclip_nodes.nodes.types import PrivateSelection
    sel = PrivateSelection(real_index=REAL, prompt=PROMPTS[REAL], n=len(PROMPTS))
    positive, negative = EncodeRealPrompt.execute(dc, sel, NEGATIVE).result
    ref_pos, ref_neg = encode_batch(dc, [PROMPTS[REAL]]), encode_batch(dc, [NEGATIVE])
    assert torch.equal(positive[0][0], ref_pos[0][0]) and torch.equal(negative[0][0], ref_neg[0][0])
    assert torch.equal(positive[0][1]["pooled_output"], ref_pos[0][1]["pooled_output"])
    # a stock CLIPTextEncode negative is the same tensor, so users may wire either
    stock_neg = nodes.CLIPTextEncode().encode(dc, NEGATIVE)[0]
    assert torch.equal(stock_neg[0][0], negative[0][0])
    # the real prompt, not another candidate
    other = EncodeRealPrompt.execute(dc, PrivateSelection(real_index=0, prompt=PROMPTS[0], n=3), NEGATIVE).result[0]
    assert not torch.equal(other[0][0], positive[0][0])


@pytest.mark.parametrize("mode", [REPLAY, MATCHED])
def test_finisher_with_wired_conditioning_equals_todays_finisher_bit_for_bit(nodes_, sd15_models, mode):
    _, EncodeRealPrompt, _, _ = nodes_
    _, (dm, dc, _) = sd15_models
    latent, handoff, selection = cloud_part(sd15_models, "euler")
    own = finisher(nodes_, dm, latent, selection, handoff, mode=mode, clip=dc)
    positive, negative = EncodeRealPrompt.execute(dc, selection, NEGATIVE).result
    wired = finisher(nodes_, dm, latent, selection, handoff, mode=mode, positive_conditioning=positive,
                     negative_conditioning=negative)  # no CLIP: both conditionings connected
    at_main = finisher_at_main(dm, dc, latent, handoff, mode)
    assert (own - latent["samples"]).abs().max() > 1e-2  # it really sampled
    assert torch.equal(wired, own) and torch.equal(own, at_main), (wired - at_main).abs().max()
    # one side wired, the other from the widget: still the same
    half = finisher(nodes_, dm, latent, selection, handoff, mode=mode, clip=dc, positive_conditioning=positive)
    assert torch.equal(half, own)


def test_wired_conditioning_is_really_used(nodes_, sd15_models):
    from obclip_nodes.nodes.types import PrivateSelection
    _, EncodeRealPrompt, _, _ = nodes_
    _, (dm, dc, _) = sd15_models
    latent, handoff, selection = cloud_part(sd15_models, "euler")
    own = finisher(nodes_, dm, latent, selection, handoff, clip=dc)
    other = PrivateSelection(real_index=0, prompt=PROMPTS[0], n=3)
    positive, negative = EncodeRealPrompt.execute(dc, other, NEGATIVE).result
    wired = finisher(nodes_, dm, latent, selection, handoff, clip=dc, positive_conditioning=positive)
    assert (wired - own).abs().max() > 1e-3


def test_finisher_without_clip_or_conditioning_names_the_fix(nodes_, sd15_models):
    _, (dm, _, _) = sd15_models
    latent, handoff, selection = cloud_part(sd15_models, "euler")
    with pytest.raises(ValueError, match="Device Finisher: no CLIP.*connect both conditioning inputs"):
        finisher(nodes_, dm, latent, selection, handoff)


@pytest.mark.parametrize("sampler", ["euler", "ddim"])
@pytest.mark.parametrize("mode", [REPLAY, MATCHED])
def test_sampler_custom_advanced_from_handoff_sigmas_equals_the_finisher(nodes_, sd15_models, sampler, mode):
    _, (dm, dc, _) = sd15_models
    latent, handoff, selection = cloud_part(sd15_models, sampler)
    ref = finisher(nodes_, dm, latent, selection, handoff, mode=mode, clip=dc)
    out, sigmas = custom_advanced(nodes_, dm, dc, latent, handoff, selection, mode=mode, sampler="same as cloud")
    assert sigmas[0].item() == handoff.stop_sigma and sigmas[-1].item() == 0.0
    if mode == REPLAY:
        assert sigmas.tolist() == list(handoff.remaining_sigmas)
    else:
        assert len(sigmas) - 1 > S["steps"] - S["cloud_steps"]  # the device's own schedule, cut
    diff = (out - ref).abs().max().item()
    print(f"{sampler} {mode}: max |SamplerCustomAdvanced - Finisher| = {diff:.3g}")
    assert diff <= 1e-5 and (ref - latent["samples"]).abs().max() > 1e-2


def test_the_handoff_noise_carries_the_clouds_seed_for_step_noise_samplers(nodes_, sd15_models):
    """euler_ancestral draws noise each step from the seed; the hand-off NOISE gives the Finisher's draw,
    stock DisableNoise (seed 0) does not."""
    custom, _, _, _ = nodes_
    _, (dm, dc, _) = sd15_models
    latent, handoff, selection = cloud_part(sd15_models, "euler_ancestral")
    assert handoff.seed != 0
    ref = finisher(nodes_, dm, latent, selection, handoff, clip=dc)
    out, _ = custom_advanced(nodes_, dm, dc, latent, handoff, selection, mode=REPLAY, sampler="same as cloud")
    disabled, _ = custom_advanced(nodes_, dm, dc, latent, handoff, selection, mode=REPLAY, sampler="same as cloud",
                                  noise=custom.DisableNoise.execute().result[0])
    assert (out - ref).abs().max().item() <= 1e-5
    assert (disabled - ref).abs().max().item() > 1e-3


def test_handoff_sigmas_when_the_cloud_ran_every_step(nodes_, sd15_models):
    _, _, HandoffSigmas, _ = nodes_
    _, (dm, dc, _) = sd15_models
    latent, handoff, selection = cloud_part(sd15_models, "euler", steps=4, cloud_steps=4)
    sigmas, real, _ = HandoffSigmas.execute(dm, latent, handoff, REPLAY, 25, "normal", "same as cloud").result
    assert sigmas.shape == (0,) and torch.equal(real["samples"], latent["samples"])
    out, _ = custom_advanced(nodes_, dm, dc, latent, handoff, selection, mode=REPLAY, sampler="same as cloud")
    assert torch.equal(out, latent["samples"])
    assert torch.equal(finisher(nodes_, dm, latent, selection, handoff, clip=dc), latent["samples"])


def test_handoff_sigmas_refuses_a_model_from_another_latent_space(nodes_, sd15_models):
    from obclip_nodes.protocol import Handoff
    from obclip_nodes.sampling import model_signature
    _, _, HandoffSigmas, _ = nodes_
    _, (dm, _, _) = sd15_models
    h = Handoff(**{**model_signature(dm), "latent_format": "SDXL"}, steps=4, cloud_steps=2, sampler="euler",
                scheduler="normal", seed=0, sigmas=(14.6, 3.0, 1.0, 0.3, 0.0), latent_shape=(4, 8, 8))
    with pytest.raises(ValueError, match="Hand-off Sigmas: .*different latent spaces"):
        HandoffSigmas.execute(dm, {"samples": torch.zeros(1, 4, 8, 8)}, h, REPLAY, 25, "normal", "same as cloud")


def test_stock_regional_conditioning_between_encode_and_finisher(nodes_, sd15_models):
    """Area conditioning: the real prompt on the left half, a stock CLIPTextEncode on the right, combined,
    into the Finisher: it runs on the hand-off and changes the result."""
    import nodes
    _, EncodeRealPrompt, _, _ = nodes_
    _, (dm, dc, _) = sd15_models
    latent, handoff, selection = cloud_part(sd15_models, "euler")
    positive, negative = EncodeRealPrompt.execute(dc, selection, NEGATIVE).result
    w, h = S["width"], S["height"]
    left = nodes.ConditioningSetArea().append(positive, w // 2, h, 0, 0, 1.0)[0]
    right = nodes.ConditioningSetArea().append(nodes.CLIPTextEncode().encode(dc, "a red brick wall")[0],
                                               w // 2, h, w // 2, 0, 1.0)[0]
    regional = nodes.ConditioningCombine().combine(left, right)[0]
    own = finisher(nodes_, dm, latent, selection, handoff, clip=dc)
    out = finisher(nodes_, dm, latent, selection, handoff, positive_conditioning=regional,
                   negative_conditioning=negative)
    assert torch.isfinite(out).all() and (out - own).abs().max() > 1e-3
    assert "area" not in positive[0][1]  # the stock nodes copied, Encode Real Prompt's output is unchanged
