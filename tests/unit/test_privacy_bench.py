"""The expansion benchmark returns the documented keys with sane values (a tiny run)."""

import json

from obclip_nodes.bench.expand import build_corpus, run


def test_bench_expand_smoke(tmp_path):
    r = run(["--repeat", "1", "--preset", "default"])
    assert r["prompts"] == len(build_corpus("default")) == 40
    assert 0 < r["median_ms"] <= r["p95_ms"] <= r["max_ms"]
    # refused: "a Middle Eastern grandfather telling stories to his grandson" (two cells and an ethnicity: 320 > 40)
    assert r["refused"] == 1 and sum(v["prompts"] for v in r["by_n"].values()) == 40
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
