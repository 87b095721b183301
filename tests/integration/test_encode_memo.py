"""The suite's text-encoding memo (obclip_nodes/harness/encode_memo.py, installed by the comfy_root fixture and
the servers' launcher) answers exactly what ComfyUI's own encoding computes, hands out copies, and steps aside
for anything that changes the encoder."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.comfy
TEXT = "encode memo probe: portrait photo of an old woman in a red coat"


@pytest.fixture(scope="module")
def memo(comfy_root):
    from obclip_nodes.harness import encode_memo
    return encode_memo


@pytest.fixture(scope="module")
def clip(sd15_models):
    (_, cloud_clip, _), _ = sd15_models
    return cloud_clip


def uncached(memo, clip, text, **kw):
    return memo._ORIGINAL(clip, clip.tokenize(text), **kw)


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("kw", [{}, {"return_pooled": True}, {"return_pooled": "unprojected"},
                                {"return_pooled": True, "return_dict": True}],
                         ids=["cond", "pooled", "unprojected", "dict"])
def test_a_hit_equals_comfyuis_own_encoding(memo, clip, kw):
    import comfy.sd
    assert getattr(comfy.sd.CLIP.encode_from_tokens, "_obclip_memo", False)
    text = f"{TEXT} {sorted(kw.items())}"
    before = dict(memo.STATS)
    first = clip.encode_from_tokens(clip.tokenize(text), **kw)
    second = clip.encode_from_tokens(clip.tokenize(text), **kw)
    assert (memo.STATS["misses"] - before["misses"], memo.STATS["hits"] - before["hits"]) == (1, 1)
    reference = uncached(memo, clip, text, **kw)
    assert same(first, reference) and same(second, reference)
    assert not same(first, uncached(memo, clip, TEXT + " and a hat", **kw))  # the text matters


def test_answers_are_copies(memo, clip):
    out = clip.encode_from_tokens(clip.tokenize(TEXT))
    out.add_(1.0)  # a caller changing its tensor in place
    assert torch.equal(clip.encode_from_tokens(clip.tokenize(TEXT)), uncached(memo, clip, TEXT))


def test_clip_text_encode_node_gets_the_same_conditioning(memo, clip):
    import nodes
    cond, extra = nodes.CLIPTextEncode().encode(clip, TEXT)[0][0]
    reference = uncached(memo, clip, TEXT, return_pooled=True, return_dict=True)
    assert torch.equal(cond, reference["cond"]) and torch.equal(extra["pooled_output"], reference["pooled_output"])


def test_another_layer_or_a_weight_patch_is_encoded_not_remembered(memo, clip):
    plain = uncached(memo, clip, TEXT)
    clip.encode_from_tokens(clip.tokenize(TEXT))  # remembered for the plain encoder

    layered = clip.clone()
    layered.clip_layer(-2)
    out = layered.encode_from_tokens(layered.tokenize(TEXT))
    assert not torch.equal(out, plain) and torch.equal(out, uncached(memo, layered, TEXT))

    patched = clip.clone()
    key = next(k for k in patched.patcher.model_state_dict() if k.endswith("mlp.fc1.weight"))
    weight = patched.patcher.model_state_dict()[key]
    patched.add_patches({key: (torch.full_like(weight, 0.05),)}, 1.0)  # a "diff" patch, as a LoRA applies
    before = memo.STATS["bypassed"]
    out = patched.encode_from_tokens(patched.tokenize(TEXT))
    assert memo.STATS["bypassed"] == before + 1
    assert not torch.equal(out, plain) and torch.equal(out, uncached(memo, patched, TEXT))
    # and the shared encoder is back to its own weights for everyone else
    assert torch.equal(uncached(memo, clip, TEXT), plain)
    assert torch.equal(clip.encode_from_tokens(clip.tokenize(TEXT)), plain)


def test_tokens_carrying_an_embedding_tensor_are_not_keyed(memo, clip):
    tokens = clip.tokenize(TEXT)
    assert memo.key_of(clip, tokens, True, False) is not None
    first_key = next(iter(tokens))
    tokens[first_key][0][1] = (torch.zeros(768), 1.0)  # how a textual-inversion embedding sits in the tokens
    assert memo.key_of(clip, tokens, True, False) is None


def test_an_object_patch_other_than_a_plain_value_is_not_keyed(memo, clip):
    tokens = clip.tokenize(TEXT)
    patched = clip.clone()
    patched.patcher.add_object_patch("encode_memo_probe", lambda x: x)
    assert memo.key_of(clip, tokens, True, False) is not None and memo.key_of(patched, tokens, True, False) is None
