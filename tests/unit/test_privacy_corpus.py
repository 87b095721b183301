"""Hand-written hard cases (tests/unit/privacy_corpus/cases.json): expected values plus closure."""

import json
from pathlib import Path

import pytest

from obclip_nodes.privacy import ExpansionError, expand_prompt, verify_closure

CASES = json.loads((Path(__file__).parent / "privacy_corpus" / "cases.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["prompt"][:50] for c in CASES])
def test_corpus_case(case):
    args = (case["prompt"], case.get("protect"), case.get("preset"))
    if "error" in case:
        with pytest.raises(ExpansionError, match=case["error"]):
            expand_prompt(*args)
        return
    e = verify_closure(*args)
    if "n" in case:
        assert e.n == case["n"], e.candidates
    if "found" in case:
        assert list(e.attributes) == case["found"]
    for s in case.get("contains", []):
        assert s in e.candidates, (s, e.candidates)
    for s in case.get("constant", []):
        assert all(s in c for c in e.candidates), s
    if "total" in case:         # an anonymity block of the full candidate set
        assert (e.total, e.block_count) == (case["total"], case["blocks"]), (e.total, e.block_count)
    if e.n > 1:
        assert e.total == e.combinations or "combinations are candidates" in e.server_learns


def test_corpus_size():
    assert len(CASES) >= 50
