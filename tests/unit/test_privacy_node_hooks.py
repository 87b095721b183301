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


TWO_PEOPLE = "a Black woman and a White man holding hands"


def test_expander_sends_the_anonymity_block_and_says_what_it_tells(nodes, monkeypatch):
    from obclip_nodes.privacy import expand_prompt
    monkeypatch.delenv("OBCLIP_BLOCKS", raising=False)
    e = expand_prompt(TWO_PEOPLE)
    assert e.blocked and e.n <= 32 < e.total
    out = _expand(nodes[0], TWO_PEOPLE)
    lines = out.ui["text"][0].splitlines()
    assert lines[0] == f"N = {e.n} candidates; attributes: ethnicity, gender"
    assert lines[1] == (f"Anonymity block: N = {e.n} of {e.total} (block {e.block_index + 1} of {e.block_count}). "
                        f"The server learns: {e.block_learns}")
    assert "person 1's ethnicity & person 2's ethnicity are one of: " in lines[1]
    cands, selection = out.args
    assert tuple(cands) == e.candidates and cands.block == {"index": e.block_index, "count": e.block_count,
                                                             "total": e.total}
    assert selection.n == e.n and cands[selection.real_index] == TWO_PEOPLE


def test_blocks_off_by_setting_is_the_refusal(nodes, monkeypatch):
    monkeypatch.setenv("OBCLIP_BLOCKS", "0")
    with pytest.raises(ValueError, match="more than max_candidates=40"):
        _expand(nodes[0], TWO_PEOPLE)
    monkeypatch.setenv("OBCLIP_BLOCKS", "maybe")
    with pytest.raises(ValueError, match="OBCLIP_BLOCKS='maybe' is not valid: use 1 or 0"):
        _expand(nodes[0], TWO_PEOPLE)
    monkeypatch.setenv("OBCLIP_BLOCKS", "1")
    monkeypatch.setenv("OBCLIP_BLOCK_MAX_COMBINATIONS", "50")
    with pytest.raises(ValueError, match="more than the 50 combinations that anonymity blocks are cut from"):
        _expand(nodes[0], TWO_PEOPLE)


def test_preview_route_reports_the_block(monkeypatch):
    from obclip_nodes.nodes.routes import expand_preview, parse_expand_body
    from obclip_nodes.privacy import expand_prompt
    monkeypatch.delenv("OBCLIP_BLOCKS", raising=False)
    e = expand_prompt(TWO_PEOPLE)
    res = expand_preview(parse_expand_body({"prompt": TWO_PEOPLE}))
    assert res["block"] == {"index": e.block_index, "count": e.block_count, "total": e.total}
    assert res["n"] == e.n and res["block_learns"] == e.block_learns and res["block_worst_ratio"] == 1.0
    assert expand_preview(parse_expand_body({"prompt": "a woman"}))["block"] is None


def test_cloud_sampler_reports_the_block_it_sent(nodes, monkeypatch):
    """The report's text and JSON name the anonymity block sent (the remote client is replaced: plain logic)."""
    from types import SimpleNamespace

    import torch

    import obclip_nodes.nodes.cloud as cloud
    monkeypatch.delenv("OBCLIP_BLOCKS", raising=False)
    cands = _expand(nodes[0], TWO_PEOPLE).args[0]
    sent = {}

    class FakeClient:
        def __init__(self, settings, own_prompt_id=None):
            pass

        async def run(self, req, on_progress=None, should_cancel=None):
            sent["candidates"] = req.candidates
            n = len(req.candidates)
            payload = SimpleNamespace(latents=torch.zeros(n, 4, 8, 8), sha256="0" * 64, nbytes=n * 1024,
                                      handoff=SimpleNamespace(family="SD15", latent_format="SD15", server_report={}))
            return SimpleNamespace(payload=payload, bytes_sent=1, bytes_received=2, sent_digest="d", prompt_id="p",
                                   server="http://cloud", mode="pack", attempts=[], reconnects=0, retried=[],
                                   timings={"total_s": 0.5})

    monkeypatch.setattr(cloud, "CloudClient", FakeClient)
    out = _sample(nodes[1], cands, "blurry")
    b = cands.block
    assert sent["candidates"] == tuple(cands) and len(cands) < b["total"]
    assert out.ui["obclip_report"][0]["block"] == b
    assert (f"sent anonymity block {b['index'] + 1} of {b['count']}: N = {len(cands)} of {b['total']} candidates"
            in out.ui["text"][0])
    plain = _expand(nodes[0], "portrait of a woman").args[0]
    out = _sample(nodes[1], plain, "blurry")
    assert out.ui["obclip_report"][0]["block"] is None and "anonymity block" not in out.ui["text"][0]
