"""Fail closed: protected / refused / explicitly allowed, refusal messages, the negative prompt, the
labelled corpus and its goals, and the generated vocabulary tables."""

import json
from pathlib import Path

import pytest

from obclip_nodes.bench.privacy import (
    DEFAULT_CORPUS,
    HELDOUT_CORPUS,
    SHARED_B_CORPUS,
    issue20_report,
    load_corpus,
    run,
)
from obclip_nodes.privacy import (
    CandidateList,
    ExpansionError,
    check_negative,
    expand_prompt,
    verify_closure,
)
from obclip_nodes.privacy.lexicon import _DATA, load_lexicon

PAPER_TEMPLATE = "Closeup portrait photo of a young asian female, wearing traditional clothing"


@pytest.mark.parametrize("prompt, words", [
    ("a Muslim woman wearing a hijab", ["'Muslim' (religion)", "'hijab' (religion)"]),
    ("a nun in a cloister", ["'nun' (religion)"]),
    ("2girls, yuri, holding hands", ["'yuri' (orientation)"]),
    ("a gay couple on a bench", ["'gay' (orientation)"]),
    ("a man in a wheelchair", ["'wheelchair' (disability)"]),
    ("my wife Sarah", ["'Sarah' (name)"]),
    ("Taylor Swift on stage", ["'Taylor Swift' (name)"]),
    ("a fat man and a blind woman", ["'fat' (body)", "'blind' (disability)"]),
    ("an American woman", ["'American' (ethnicity)"]),
    ("a woman of color", ["'of color' (ethnicity)"]),
    ("a postman", ["'postman' (gender)"]),
    ("a garden --no woman", ["'woman' (gender)"]),
])
def test_refusal_names_each_word_type_and_fix(prompt, words):
    with pytest.raises(ExpansionError) as ei:
        expand_prompt(prompt)
    msg = str(ei.value)
    assert msg.startswith("refused: ") and "Fix: " in msg and "allow_unprotected" in msg
    for w in words:
        assert w in msg, msg
    assert [f"'{f.word}' ({f.type})" for f in ei.value.findings] == words


def test_allowed_lists_the_words_and_still_swaps_the_rest():
    e = expand_prompt("a Muslim woman wearing a hijab", allow_unprotected=True)
    assert e.outcome == "allowed" and e.n == 2
    assert [(f.word, f.type) for f in e.unprotected] == [("Muslim", "religion"), ("hijab", "religion")]
    assert "ALLOWED UNPROTECTED" in e.server_learns and "'Muslim' (religion)" in e.server_learns
    assert e.candidates == ("a Muslim woman wearing a hijab", "a Muslim man wearing a hijab")



def test_protected_outcome_and_nothing_sensitive():
    e = expand_prompt("a young woman")
    assert e.outcome == "protected" and e.n == 8 and e.unprotected == ()
    e = expand_prompt("a red apple")
    assert e.outcome == "protected" and e.nothing_sensitive


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_paper_prompt_form_is_protected_in_both_presets(preset):
    e = verify_closure(PAPER_TEMPLATE, lexicon=preset)
    assert e.n == 30 and e.attributes == ("age", "ethnicity", "gender")


def test_paper_preset_maps_people_colours_and_refuses_what_it_cannot_hold():
    e = expand_prompt("a Black man in a suit", lexicon="paper")
    assert e.real_prompt == "an African man in a suit" and e.n == 10
    with pytest.raises(ExpansionError, match="'Hispanic' \\(ethnicity\\).*paper preset has no value"):
        expand_prompt("a Hispanic woman", lexicon="paper")


def test_negative_prompt_fails_closed_unless_allowed():
    assert check_negative("blurry, lowres, bad anatomy, black and white, (worst quality:1.4)") == ()
    with pytest.raises(ExpansionError, match="(?s)negative prompt refused.*'male' \\(gender\\)"):
        check_negative("male, beard")
    found = check_negative("old, Asian", allow_unprotected=True)
    assert [(f.word, f.type) for f in found] == [("old", "age"), ("Asian", "ethnicity")]
    assert check_negative("") == () and check_negative(None) == ()


def test_candidate_list_carries_the_run_settings_and_is_a_plain_tuple():
    c = CandidateList.of(("a woman", "a man"), "paper", True)
    assert c == ("a woman", "a man") and tuple(c) == ("a woman", "a man") and json.dumps(c) == '["a woman", "a man"]'
    assert c.lexicon == "paper" and c.allow_unprotected is True
    assert CandidateList(("x",)).allow_unprotected is False


def test_labelled_corpus_is_large_varied_and_labelled():
    rows = load_corpus(DEFAULT_CORPUS)
    assert len(rows) >= 300
    outcomes = {r["outcome"] for r in rows}
    assert outcomes == {"protected", "refused", "clean"}
    types = {t for r in rows for t in r["types"]}
    assert types == {"gender", "age", "ethnicity", "religion", "disability", "orientation", "name", "body"}
    assert len({r["prompt"] for r in rows}) == len(rows)
    assert sum(r["preset"] == "paper" for r in rows) >= 15
    for r in rows:
        assert (r["outcome"] == "clean") == (not r["types"]), r


def test_bench_meets_the_goals_on_the_labelled_corpus():
    """Issue 20's goals on every corpus the bench reads: own dev, own held-out and, when present beside the
    repository, shared B (labels by ../shared/privacy/README.md).  Timing goals live in the bench only."""
    r = issue20_report(str(DEFAULT_CORPUS), str(HELDOUT_CORPUS), SHARED_B_CORPUS, repeat=1)
    assert {"dev", "heldout"} <= set(r["corpora"])
    missed = {}
    for name, c in r["corpora"].items():
        got = {"fail_open_rate": c["fail_open_rate"] <= 0.02,
               "core_only_protected_rate": c["core_only_protected_rate"] >= 0.85,
               "non_person_clean_rate": c["non_person_clean_rate"] >= 0.95,
               "invariance": c["invariance"] == 1.0,
               "coherence_failures": c["coherence_failures"] == 0,
               "crashes": c["crashes"] == 0}
        bad = {k: c[k] for k, ok in got.items() if not ok}
        if bad:
            missed[name] = {**bad, "fail_open_prompts": [f["prompt"] for f in c["fail_open_prompts"]][:40]}
    assert not missed, json.dumps(missed, indent=1, ensure_ascii=False)


def test_bench_counts_fail_open(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("P | gender | a dancer on stage\nC | - | a red apple\nR | religion | a Muslim woman\n")
    r = run(["--corpus", str(f), "--repeat", "1", "--no-multi-person"])
    assert r["fail_open"] == 1 and r["fail_open_prompts"][0]["prompt"] == "a dancer on stage"
    assert r["non_person_clean_rate"] == 1.0 and r["outcome_accuracy"] == round(2 / 3, 4)


def test_generated_tables_are_present_and_mapped_by_each_preset():
    dem = json.loads((_DATA / "demonyms.json").read_text())
    assert "GENERATED" in dem["_doc"] and len(dem["demonyms"]) >= 250
    assert dem["demonyms"]["Nigerian"]["subregion"] == "Sub-Saharan Africa"
    names = (_DATA / "first_names.txt").read_text().splitlines()
    assert names[0].startswith("# GENERATED") and 1000 < len(names) < 3000 and "Sarah" in names
    assert not list(_DATA.glob("*.pkl")) and not list(_DATA.glob("*.pickle"))
    for preset, word, value in [("default", "korean", "asian"), ("default", "nigerian", "black"),
                                ("default", "russian", "white"), ("paper", "pakistani", "indian"),
                                ("paper", "german", "european")]:
        e = next(x for x in load_lexicon(preset).entries[word] if x.kind == "snap")
        assert e.value == value, (preset, word)


def test_privacy_imports_no_torch_or_comfy():
    """The privacy core runs before any model is loaded: no torch, ComfyUI or numpy, and of third-party
    packages only the language and spelling gate's (wordfreq, rapidfuzz and what they import)."""
    import subprocess
    import sys
    code = ("import sys, obclip_nodes.privacy as p; p.expand_prompt('a woman'); "
            "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    loaded = set(eval(out))  # noqa: S307 - our own subprocess printed a list of names
    assert not loaded & {"torch", "comfy", "numpy", "transformers"}, loaded
    allowed = {"obclip_nodes", "__main__", "wordfreq", "rapidfuzz", "msgpack", "langcodes", "ftfy", "regex",
               "wcwidth", "locate", "_distutils_hack", "cython_runtime", "language_data"}
    assert {m for m in loaded if not m.startswith("_cython")} <= allowed, loaded - allowed
    assert {"wordfreq", "rapidfuzz"} <= loaded


def test_heldout_corpus_is_disjoint_from_the_dev_corpus():
    from obclip_nodes.bench.privacy import HELDOUT_CORPUS

    dev = {r["prompt"] for r in load_corpus(DEFAULT_CORPUS)}
    held = load_corpus(HELDOUT_CORPUS)
    assert len(held) >= 150
    assert len({r["prompt"] for r in held}) == len(held)
    assert not dev & {r["prompt"] for r in held}
    assert {r["outcome"] for r in held} == {"protected", "refused", "clean"}
