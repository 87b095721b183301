"""The privacy bench's per-corpus measure (issue 20): the JSON-lines loader, the expected outcome derived by
../shared/privacy/README.md's rules, the fail-open judgement and the per-corpus report on a tiny corpus."""

import json
from types import SimpleNamespace

import pytest

from obclip_nodes.bench.privacy import (
    ISSUE20_GOALS,
    expected_outcome,
    judge,
    load_any_corpus,
    load_jsonl_corpus,
    meets_goals,
    protected_types,
    run,
)


def _jsonl(tmp_path, objs, name="b.jsonl"):
    f = tmp_path / name
    f.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs) + "\n", encoding="utf-8")
    return f


@pytest.mark.parametrize("types, non_english, outcome", [
    ([], False, "clean"),
    ([], True, "clean"),
    (["gender"], False, "protected"),
    (["age", "ethnicity", "gender"], False, "protected"),
    (["gender", "religion"], False, "refused"),
    (["orientation"], False, "refused"),
    (["body"], False, "refused"),
    (["name", "gender"], False, "refused"),
    (["disability"], False, "refused"),
    (["gender", "age"], True, "refused"),
])
def test_expected_outcome_follows_the_readme_rules(types, non_english, outcome):
    assert expected_outcome(types, non_english=non_english) == outcome


def test_jsonl_loader_maps_types_and_derives_outcomes(tmp_path):
    f = _jsonl(tmp_path, [
        {"prompt": "a little girl with a kite", "expect": ["gender", "age"], "category": "kinship_role"},
        {"prompt": "two men holding hands", "expect": ["sexual_orientation", "gender"], "category": "orientation"},
        {"prompt": "una mujer joven", "expect": ["gender", "age"], "category": "non_english"},
        {"prompt": "black coffee", "expect": [], "category": "non_person"},
        {"prompt": "a woman in her 40s", "expect": ["age", "gender"]},
    ])
    rows = load_jsonl_corpus(f)
    assert [r["outcome"] for r in rows] == ["protected", "refused", "refused", "clean", "protected"]
    assert rows[0]["types"] == ["gender", "age"] and rows[4]["types"] == ["gender", "age"]
    assert rows[1]["types"] == ["gender", "orientation"]
    assert [r["category"] for r in rows] == ["kinship_role", "orientation", "non_english", "non_person", "-"]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5] and {r["preset"] for r in rows} == {"default"}
    assert load_any_corpus(f) == rows


@pytest.mark.parametrize("line, fix", [
    ("not json", "not JSON"),
    ('["a list"]', "expected {"),
    ('{"prompt": "x", "expect": ["height"]}', "unknown type"),
    ('{"expect": []}', "expected {"),
])
def test_jsonl_loader_names_the_line_and_the_fix(tmp_path, line, fix):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "ok", "expect": []}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"bad\.jsonl:2: .*{fix}"):
        load_jsonl_corpus(f)


def test_judge_counts_a_warning_or_a_partial_swap_as_fail_open():
    row = {"types": ["gender", "age"]}
    both = SimpleNamespace(n=6, attributes=("gender", "age"))
    gender_only = SimpleNamespace(n=2, attributes=("gender",))
    warned_n1 = SimpleNamespace(n=1, attributes=("gender", "age"))
    assert judge(row, "protected", both) == "handled"
    assert judge(row, "refused", None) == "handled"
    assert judge(row, "protected", gender_only) == "fail_open"
    assert judge(row, "protected", warned_n1) == "fail_open"
    assert judge(row, "clean", SimpleNamespace(n=1, attributes=())) == "fail_open"
    assert judge({"types": ["religion"]}, "protected", both) == "fail_open"
    assert judge({"types": []}, "clean", None) == "no_person"
    assert judge(row, "crash", None) == "crash"
    assert protected_types(SimpleNamespace(n=4, attributes=("skin_tone", "gender"))) == {"ethnicity", "gender"}
    assert judge({"types": ["ethnicity"]}, "protected", SimpleNamespace(n=3, attributes=("skin_tone",))) == "handled"


def test_meets_goals_reads_the_issue_goals():
    ok = {"fail_open_rate": 0.02, "core_only_protected_rate": 0.85, "non_person_clean_rate": 0.95,
          "invariance": 1.0, "coherence_failures": 0, "crashes": 0, "median_ms": 2.0, "p99_ms": 20.0}
    assert set(meets_goals(ok)) == set(ISSUE20_GOALS) and all(meets_goals(ok).values())
    bad = {**ok, "fail_open_rate": 0.021, "core_only_protected_rate": None}
    assert meets_goals(bad)["fail_open_rate"] is False and meets_goals(bad)["core_only_protected_rate"] is None


def test_bench_reports_each_corpus_with_its_categories(tmp_path):
    dev = tmp_path / "dev.txt"
    dev.write_text("P | gender | a woman reading\nC | - | a red apple on a table\nR | religion,gender | a Muslim woman\n")
    shared = _jsonl(tmp_path, [
        {"prompt": "a man reading", "expect": ["gender"], "category": "pronoun"},
        {"prompt": "a Muslim man praying", "expect": ["religion", "gender"], "category": "religion"},
        {"prompt": "a bowl of fruit, still life", "expect": [], "category": "non_person"},
        {"prompt": "a green pear", "expect": [], "category": "non_person"},
    ])
    r = run(["--corpus", str(dev), "--shared-b", str(shared), "--repeat", "1", "--no-multi-person"])
    assert set(r["corpora"]) == {"dev", "shared_b"} and r["goals"] == ISSUE20_GOALS
    d, b = r["corpora"]["dev"], r["corpora"]["shared_b"]
    assert (d["prompts"], d["revealing_prompts"], d["core_only_prompts"], d["non_person_prompts"]) == (3, 2, 1, 1)
    assert d["fail_open"] == 0 and d["refusal_rate"] == 0.5 and d["core_only_protected_rate"] == 1.0
    assert d["core_recall"] == {"gender": 1.0, "age": None, "ethnicity": None}
    assert d["non_person_clean_rate"] == 1.0 and d["false_refusals"] == 0 and d["invariance"] == 1.0
    assert "by_category" not in d and d["meets_goals"]["fail_open_rate"] is True
    assert b["by_category"] == {"non_person": {"prompts": 2, "fail_open": 0, "refused": 0},
                                "pronoun": {"prompts": 1, "fail_open": 0, "refused": 0},
                                "religion": {"prompts": 1, "fail_open": 0, "refused": 1}}
    assert b["fail_open_rate"] == 0.0 and b["non_person_clean_rate"] == 1.0
    assert r["fail_open"] == 0 and "heldout" not in r            # the old keys still describe --corpus
    assert "multi_person" not in r                                # --no-multi-person skips that section
