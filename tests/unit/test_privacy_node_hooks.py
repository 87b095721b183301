"""The node side of fail-closed, in process with the real ComfyUI host modules: the expander's outcome text
and its run settings on the candidates, and the Cloud Partial Sampler's negative-prompt check, which must
stop the run before anything is sent."""

import asyncio

import pytest


@pytest.fixture(scope="module")
def nodes(comfy_root):
    from obclip_nodes.nodes.cloud import CloudPartialSampler
    from obclip_nodes.nodes.expander import CandidateExpander
    return CandidateExpander, CloudPartialSampler


def _expand(node, prompt, allow=False, preset="default"):
    return node.execute(prompt, preset, "", "", 40, False, allow)


def test_expander_text_says_protected_and_normalised(nodes):
    out = _expand(nodes[0], "a teenage Nigerian girl")
    text = out.ui["text"][0]
    assert text.splitlines()[0] == "N = 40 candidates; attributes: age, ethnicity, gender"
    assert "Outcome: protected" in text and "'Nigerian' -> 'Black' (ethnicity: black)" in text
    assert "'teenage' -> 'little' (age: child)" in text          # a teenager is in the child class
    cands = out.args[0]
    assert len(cands) == 40 and cands.lexicon == "default" and cands.allow_unprotected is False


def test_expander_refuses_and_allows(nodes):
    with pytest.raises(ValueError, match="(?s)ObCLIP Candidate Expander: refused: .*'Muslim' \\(religion\\)"):
        _expand(nodes[0], "a Muslim woman")
    out = _expand(nodes[0], "a Muslim woman", allow=True)
    assert "Outcome: ALLOWED UNPROTECTED -- these words reach the server as written: 'Muslim' (religion)" \
        in out.ui["text"][0]
    assert out.args[0].allow_unprotected is True


def _sample(node, candidates, negative):
    return asyncio.run(node.execute(candidates, "http://127.0.0.1:9", "ckpt.safetensors", negative, 0, 4, 2, 7.0,
                                    "euler", "normal", 64, 64, 5))


def test_cloud_sampler_checks_the_negative_before_sending(nodes):
    cands = _expand(nodes[0], "portrait of a woman").args[0]
    with pytest.raises(ValueError, match="(?s)Cloud Partial Sampler: negative prompt refused.*'male' \\(gender\\)"):
        _sample(nodes[1], cands, "male, beard")
    # a clean negative passes the check and only then fails on the (closed) port: the check is not a wall
    with pytest.raises(RuntimeError, match="Cloud Partial Sampler"):
        _sample(nodes[1], cands, "blurry, lowres")


def test_cloud_sampler_negative_follows_the_expanders_override(nodes):
    cands = _expand(nodes[0], "portrait of a woman", allow=True).args[0]
    with pytest.raises(RuntimeError, match="Cloud Partial Sampler"):        # allowed: gets as far as the network
        _sample(nodes[1], cands, "male, beard")
    with pytest.raises(ValueError, match="negative prompt refused"):       # a plain list from the wire: fail closed
        _sample(nodes[1], ("portrait of a woman", "portrait of a man"), "male, beard")
