"""The expansion benchmark returns the documented keys with sane values (a tiny run)."""

import json

from obclip_nodes.bench.expand import build_corpus, run


def test_bench_expand_smoke(tmp_path):
    r = run(["--repeat", "1", "--preset", "default"])
    assert r["prompts"] == len(build_corpus("default")) == 40
    assert 0 < r["median_ms"] <= r["p95_ms"] <= r["max_ms"]
    # "a Middle Eastern grandfather telling stories to his grandson" (two cells and an ethnicity) sends a block
    assert r["refused"] == 0 and sum(v["prompts"] for v in r["by_n"].values()) == 40
    assert set(r["by_n"]) >= {"1", "2", "8", "40"}
    json.dumps(r)
    f = tmp_path / "c.txt"
    f.write_text("a woman\n\nan old man\n")
    r = run(["--repeat", "2", "--corpus", str(f)])
    assert r["prompts"] == 2 and r["by_n"] == {"2": r["by_n"]["2"], "8": r["by_n"]["8"]}


def test_bench_paper_corpus_is_n30():
    corpus = build_corpus("paper")
    assert len(corpus) == 50 and all(lex == "paper" for _, lex in corpus)
    assert all("$" not in p for p, _ in corpus)


def test_bench_privacy_multi_person_section():
    """Issue 21's numbers: prompts refused for N before anonymity blocks are protected after, closed within
    their block; only a set above the block limit is still refused."""
    from obclip_nodes.bench.privacy import MULTI_PERSON_PROMPTS, multi_person_report
    r = multi_person_report([])
    assert r["prompts"] == len(MULTI_PERSON_PROMPTS)
    assert r["refused_for_n_before"] >= 9 and r["refused_for_n_after"] <= 1 < r["refused_for_n_before"]
    assert r["closure"] == 1.0 and r["blocked"] == r["refused_for_n_before"] - r["refused_for_n_after"]
    assert all(2 <= int(n) <= r["max_candidates"] for n in r["block_sizes"])
    assert 1.0 <= r["worst_posterior_ratio"] and r["exact_blocks"] <= r["blocked"]
    couple = next(x for x in r["rows"] if x["prompt"] == "a Black woman and a White man holding hands")
    assert "refused" in couple["before"] and couple["after"]["n"] < couple["after"]["total"]
    assert couple["after"]["server_learns"].startswith("person 1's ethnicity & person 2's ethnicity are one of: ")
    json.dumps(r)
