"""Benchmark: does the Candidate Expander fail closed?  (``python -m obclip_nodes.bench privacy``)

Runs every prompt of a labelled corpus (default: ``tests/unit/privacy_corpus/labelled.txt``; one
``OUTCOME | TYPES | PROMPT [| PRESET]`` per line, see the file's header) through ``expand_prompt``
with its default policy and reports:

* ``core_recall``: for gender, age and ethnicity, the share of prompts revealing that type whose
  expected outcome is *protected* that come out protected with the type among the swapped
  attributes (goal >= 0.95 each);
* ``fail_open``: prompts that reveal a type but go out neither protected (every core type it
  reveals swapped, N > 1) nor refused -- the count and the rate (goal <= 1%);
* ``non_person_clean_rate``: prompts labelled clean that come out untouched with N = 1 (goal >= 97%);
* ``invariance``: every prompt that is not refused re-expands from each candidate to the same
  candidate list with the real index on that candidate (:func:`verify_closure`; goal 100%);
* ``coherence_failures``: candidates that contradict themselves (:func:`coherence_failures`; goal 0);
* ``outcome_accuracy`` and ``mismatches``: expected vs actual outcome, with the prompts that differ;
* ``median_ms`` / ``p99_ms``: one ``expand_prompt`` call per prompt, median of ``--repeat`` runs
  (goal <= 2 ms and <= 20 ms); ``median_cpu_ms`` / ``p99_cpu_ms`` the same in process CPU time, with
  the machine's load average beside them (wall time is inflated on a shared machine); ``crashes``: exceptions other than ``ExpansionError`` (goal 0).

By default it measures the development corpus (``labelled.txt``, which the rules were tuned on) and,
under ``"heldout"``, the same numbers for ``heldout.txt``: batches labelled before they were first run
and never tuned on -- the honest generalisation numbers.  ``--corpus FILE`` measures one file only.

Since issue 20 the JSON also holds ``"corpora"``: ``dev``, ``heldout`` and ``shared_b``
(``../shared/privacy/realistic-b.jsonl`` beside the repository, read only when present; ``--shared-b FILE``
names another), each measured by the labelling rules of that corpus's README (:func:`corpus_summary`):
core recall, core-only protected rate, fail-open (any revealed type neither swapped nor refused; a leak
warning does not count), refusal rate, non-person clean rate, false refusals, invariance, coherence,
timings and, for a JSON-lines corpus, fail-open and refusals per category; ``"goals"`` holds the issue's.
``multi_person`` (issue 21, anonymity blocks): prompts describing two to four people -- a fixed list of couples,
families and groups (:data:`MULTI_PERSON_PROMPTS`) plus every corpus prompt with two or more described people --
each expanded without blocks (``refused_before``: the refusal above ``max_candidates`` = 40, the node default) and with them
(``refused_after``), with the block sizes, the number of blocks, closure within the block
(:func:`verify_closure`; goal 100%) and ``worst_posterior_ratio``: the largest P(value | block) / P(value | C)
of any person's attribute value, i.e. how far the server's marginal moves from the uniform prior (1.0: not at
all; the goal wherever the sizes allow an exact design).

Options: ``--corpus FILE``, ``--heldout FILE``, ``--repeat K`` (default 5), ``--show-refusals K`` (print K refusal
messages in the JSON), ``--multi-person-only`` (just the ``multi_person`` section), ``--no-multi-person`` (without it).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import Counter
from pathlib import Path

CORE = ("gender", "age", "ethnicity")
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "tests" / "unit" / "privacy_corpus" / "labelled.txt"
# batches never tuned on: written and labelled before the run that measured them (the honest numbers)
HELDOUT_CORPUS = DEFAULT_CORPUS.with_name("heldout.txt")
OUTCOME_CODES = {"P": "protected", "R": "refused", "C": "clean"}


def load_corpus(path: str | Path) -> list[dict]:
    rows = []
    for k, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(" | ")]
        if len(parts) not in (3, 4) or parts[0] not in OUTCOME_CODES:
            raise ValueError(f"{path}:{k}: expected 'OUTCOME | TYPES | PROMPT [| PRESET]', got {line!r}")
        types = [] if parts[1] == "-" else parts[1].split(",")
        rows.append({"outcome": OUTCOME_CODES[parts[0]], "types": types, "prompt": parts[2],
                     "preset": parts[3] if len(parts) == 4 else "default", "line": k})
    return rows


def classify(row: dict) -> dict:
    """Run one prompt; returns the actual outcome and the expansion (None when refused)."""
    from obclip_nodes.privacy import ExpansionError, expand_prompt

    try:
        e = expand_prompt(row["prompt"], lexicon=row["preset"])
    except ExpansionError as err:
        return {"outcome": "refused", "expansion": None, "message": str(err)}
    except Exception as err:  # noqa: BLE001 - a crash is a measured failure, not a bench failure
        return {"outcome": "crash", "expansion": None, "message": f"{type(err).__name__}: {err}"}
    if e.n == 1 and not e.unprotected:
        return {"outcome": "clean" if e.candidates[0] == row["prompt"] else "changed", "expansion": e}
    return {"outcome": "protected", "expansion": e}


def run(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser(prog="python -m obclip_nodes.bench privacy", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--heldout", default=None)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--show-refusals", type=int, default=0)
    ap.add_argument("--shared-b", default=None, help="a JSON-lines corpus (default ../shared/privacy/realistic-b.jsonl)")
    ap.add_argument("--multi-person-only", action="store_true", help="only the anonymity-block section")
    ap.add_argument("--no-multi-person", action="store_true",
                    help="skip the anonymity-block section (it verifies closure over every block: most of a run)")
    args = ap.parse_args(argv)
    dev_path = args.corpus or str(DEFAULT_CORPUS)
    held_path = args.heldout or (None if args.corpus else str(HELDOUT_CORPUS))
    if args.multi_person_only:
        return {"bench": "privacy", "multi_person": multi_person_report([dev_path] + ([held_path] if held_path else []))}
    out = _measure(dev_path, args)
    if held_path is not None:
        held = _measure(held_path, args)
        for k in ("goals", "repeat", "python", "machine", "bench"):
            held.pop(k, None)
        out["heldout"] = held
    shared_b = args.shared_b or (None if args.corpus else SHARED_B_CORPUS)
    out.update(issue20_report(dev_path, held_path, shared_b, args.repeat))
    if not args.no_multi_person:
        out["multi_person"] = multi_person_report([dev_path] + ([held_path] if held_path else []))
    return out


def _measure(corpus: str, args) -> dict:
    from obclip_nodes.privacy import (
        ExpansionError,
        expand_prompt,
        load_lexicon,
        verify_closure,
    )
    from obclip_nodes.privacy.render import coherence_failures, read_back

    args = argparse.Namespace(**{**vars(args), "corpus": corpus})
    rows = load_corpus(args.corpus)
    for name in {r["preset"] for r in rows}:
        lex = load_lexicon(name)
        for r in rows[:20]:                        # warm the caches: loading is not per-prompt cost
            try:
                expand_prompt(r["prompt"], lexicon=lex)
            except ExpansionError:
                pass
    recall = {t: [0, 0] for t in CORE}
    fail_open, clean, clean_total, inv_ok, inv_total, coherence, crashes = [], 0, 0, 0, 0, 0, []
    mismatches, times, cpu_times, refusals = [], [], [], []
    correct = 0
    for r in rows:
        res = classify(r)
        per, per_cpu = [], []
        for _ in range(max(1, args.repeat)):
            read_back.cache_clear()  # cold: each repeat reads its candidates back, as a first expansion does
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                expand_prompt(r["prompt"], lexicon=r["preset"])
            except Exception:  # noqa: BLE001 - timing only
                pass
            per.append((time.perf_counter() - t0) * 1000.0)
            per_cpu.append((time.process_time() - c0) * 1000.0)
        times.append(statistics.median(per))
        cpu_times.append(statistics.median(per_cpu))
        got = res["outcome"]
        e = res["expansion"]
        if got == "crash":
            crashes.append({"prompt": r["prompt"], "error": res["message"]})
        if got == "refused" and len(refusals) < args.show_refusals:
            refusals.append({"prompt": r["prompt"], "message": res["message"]})
        expected = r["outcome"]
        if got == expected:
            correct += 1
        else:
            mismatches.append({"line": r["line"], "prompt": r["prompt"], "expected": expected, "got": got,
                               **({"n": e.n, "attributes": list(e.attributes)} if e is not None else {})})
        core = [t for t in r["types"] if t in CORE]
        if expected == "protected":
            for t in core:
                recall[t][1] += 1
                if got == "protected" and t in e.attributes:
                    recall[t][0] += 1
        if r["types"] and got != "refused":
            swapped = set(e.attributes) if e is not None else set()
            if got != "protected" or e.n < 2 or not set(core) <= swapped or (
                    [t for t in r["types"] if t not in CORE] and not e.unprotected):
                fail_open.append({"line": r["line"], "prompt": r["prompt"], "types": r["types"], "got": got})
        if expected == "clean":
            clean_total += 1
            clean += got == "clean"
        if e is not None:
            inv_total += 1
            try:
                verify_closure(r["prompt"], lexicon=r["preset"])
                inv_ok += 1
            except (AssertionError, ExpansionError):
                mismatches.append({"line": r["line"], "prompt": r["prompt"], "invariance": "FAILED"})
            if e.n > 1:
                lex = load_lexicon(r["preset"])
                coherence += len(coherence_failures(e.candidates, lex, frozenset(lex.attributes)))
    revealing = sum(1 for r in rows if r["types"])
    times.sort()
    cpu_times.sort()

    def pct(xs, q):
        return round(xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))], 4)

    return {
        "bench": "privacy",
        "corpus": str(Path(args.corpus).relative_to(DEFAULT_CORPUS.parents[3])) if Path(args.corpus).is_relative_to(
            DEFAULT_CORPUS.parents[3]) else args.corpus,
        "prompts": len(rows),
        "core_recall": {t: round(a / b, 4) if b else None for t, (a, b) in recall.items()},
        "core_recall_counts": {t: f"{a}/{b}" for t, (a, b) in recall.items()},
        "fail_open": len(fail_open),
        "fail_open_rate": round(len(fail_open) / max(1, revealing), 4),
        "revealing_prompts": revealing,
        "non_person_clean_rate": round(clean / max(1, clean_total), 4),
        "non_person_prompts": clean_total,
        "invariance": round(inv_ok / max(1, inv_total), 4),
        "invariance_checked": inv_total,
        "coherence_failures": coherence,
        "crashes": len(crashes),
        "outcome_accuracy": round(correct / max(1, len(rows)), 4),
        "median_ms": round(statistics.median(times), 4),
        "p99_ms": pct(times, 0.99),
        "max_ms": round(times[-1], 4),
        "median_cpu_ms": round(statistics.median(cpu_times), 4),     # this process's CPU time: robust to a
        "p99_cpu_ms": pct(cpu_times, 0.99),                          # machine shared with other jobs
        "load_average_1min": round(__import__("os").getloadavg()[0], 2),
        "goals": {"core_recall": ">= 0.95", "fail_open_rate": "<= 0.01", "non_person_clean_rate": ">= 0.97",
                  "invariance": "1.0", "coherence_failures": "0", "crashes": "0", "median_ms": "<= 2",
                  "p99_ms": "<= 20"},
        "fail_open_prompts": fail_open,
        "mismatches": mismatches,
        "crash_prompts": crashes,
        **({"refusals": refusals} if refusals else {}),
        "repeat": args.repeat,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


# ---- issue 20: per-corpus numbers by the labelling rules of ../shared/privacy/README.md ---------------------
# Kept apart from _measure (whose keys older tests read): one summary per corpus, the README's definition of
# fail-open (a leak warning does not count as handled), and the issue's goals.

SHARED_B_CORPUS = DEFAULT_CORPUS.parents[3].parent / "shared" / "privacy" / "realistic-b.jsonl"
NON_CORE = ("religion", "disability", "orientation", "name", "body")
TYPE_ALIASES = {"sexual_orientation": "orientation"}     # the shared corpus's name -> this corpus's name
PROTECTS = {"skin_tone": "ethnicity"}                    # a swapped attribute -> the type it protects
NON_ENGLISH_CATEGORIES = frozenset({"non_english"})
ISSUE20_GOALS = {"fail_open_rate": "<= 0.02", "core_only_protected_rate": ">= 0.85",
                 "non_person_clean_rate": ">= 0.95", "invariance": "== 1.0", "coherence_failures": "== 0",
                 "crashes": "== 0", "median_ms": "<= 2", "p99_ms": "<= 20"}


def expected_outcome(types, *, non_english: bool = False) -> str:
    """The outcome the README's rules ask for: nothing revealed -> clean; a non-core type or a prompt that
    is not English -> refused (the expander cannot swap it or cannot read it); otherwise protected."""
    if not types:
        return "clean"
    if non_english or any(t not in CORE for t in types):
        return "refused"
    return "protected"


def load_jsonl_corpus(path: str | Path) -> list[dict]:
    """Rows of a JSON-lines corpus ({"prompt", "expect", "category"}) in :func:`load_corpus`'s shape, the
    expected outcome derived by :func:`expected_outcome` (category ``non_english`` -> not English)."""
    rows = []
    for k, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{k}: not JSON ({err.msg}); expected one object a line") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) \
                or not isinstance(obj.get("expect", []), list):
            raise ValueError(f"{path}:{k}: expected {{\"prompt\": str, \"expect\": [types], \"category\": str}}")
        named = {TYPE_ALIASES.get(t, t) for t in obj.get("expect", [])}
        if not named <= {*CORE, *NON_CORE}:
            raise ValueError(f"{path}:{k}: unknown type in {obj['expect']!r}; known: {', '.join((*CORE, *NON_CORE))}")
        types = sorted(named, key=(*CORE, *NON_CORE).index)
        category = str(obj.get("category") or "-")
        rows.append({"outcome": expected_outcome(types, non_english=category in NON_ENGLISH_CATEGORIES),
                     "types": types, "prompt": obj["prompt"], "preset": obj.get("preset", "default"),
                     "line": k, "category": category})
    return rows


def load_any_corpus(path: str | Path) -> list[dict]:
    return load_jsonl_corpus(path) if str(path).endswith(".jsonl") else load_corpus(path)


def protected_types(expansion) -> set[str]:
    """The types an expansion protects: its swapped attributes (skin_tone counts as ethnicity), none at N = 1."""
    if expansion is None or expansion.n < 2:
        return set()
    return {PROTECTS.get(a, a) for a in expansion.attributes}


def judge(row: dict, got: str, expansion) -> str:
    """'handled' (every revealed type swapped with N > 1, or refused), 'fail_open', 'crash' or 'no_person'."""
    if got == "crash":
        return "crash"
    if not row["types"]:
        return "no_person"
    if got == "refused" or set(row["types"]) <= protected_types(expansion):
        return "handled"
    return "fail_open"


def corpus_summary(rows: list[dict], repeat: int = 1) -> dict:
    """The issue-20 numbers for one corpus (see the module doc and ISSUE20_GOALS)."""
    from obclip_nodes.privacy import ExpansionError, expand_prompt, load_lexicon, verify_closure
    from obclip_nodes.privacy.render import coherence_failures

    for name in {r["preset"] for r in rows}:                 # warm the caches: loading is not per-prompt cost
        lex = load_lexicon(name)
        for r in rows[:20]:
            try:
                expand_prompt(r["prompt"], lexicon=lex)
            except Exception:  # noqa: BLE001 - warming only
                pass
    recall = {t: [0, 0] for t in CORE}
    core_only, clean, inv, coherence = [0, 0], [0, 0], [0, 0], 0
    fail_open, false_refusals, crashes, times, cpu_times = [], [], [], [], []
    refused_revealing, by_category = 0, {}
    for r in rows:
        res = classify(r)
        per, per_cpu = [], []
        for _ in range(max(1, repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                expand_prompt(r["prompt"], lexicon=r["preset"])
            except Exception:  # noqa: BLE001 - timing only
                pass
            per.append((time.perf_counter() - t0) * 1000.0)
            per_cpu.append((time.process_time() - c0) * 1000.0)
        times.append(statistics.median(per))
        cpu_times.append(statistics.median(per_cpu))
        got, e = res["outcome"], res["expansion"]
        verdict = judge(r, got, e)
        swapped = protected_types(e)
        cat = by_category.setdefault(r.get("category", "-"), {"prompts": 0, "fail_open": 0, "refused": 0})
        cat["prompts"] += 1
        cat["refused"] += got == "refused"
        cat["fail_open"] += verdict == "fail_open"
        if verdict == "crash":
            crashes.append({"prompt": r["prompt"], "error": res["message"]})
        elif verdict == "fail_open":
            fail_open.append({"line": r["line"], "prompt": r["prompt"], "types": r["types"], "got": got,
                              "swapped": sorted(swapped), "n": e.n if e is not None else 0})
        if r["types"]:
            refused_revealing += got == "refused"
        if r["outcome"] == "protected":
            for t in r["types"]:
                recall[t][1] += 1
                recall[t][0] += t in swapped
            core_only[1] += 1
            core_only[0] += set(r["types"]) <= swapped
        if r["outcome"] == "clean":
            clean[1] += 1
            clean[0] += got == "clean"
            if got == "refused":
                false_refusals.append({"prompt": r["prompt"], "message": res["message"]})
        if e is not None:
            inv[1] += 1
            try:
                verify_closure(r["prompt"], lexicon=r["preset"])
                inv[0] += 1
            except (AssertionError, ExpansionError):
                pass
            if e.n > 1:
                lex = load_lexicon(r["preset"])
                coherence += len(coherence_failures(e.candidates, lex, frozenset(lex.attributes)))
    revealing = sum(1 for r in rows if r["types"])
    times.sort()
    cpu_times.sort()

    def rate(a, b):
        return round(a / b, 4) if b else None

    def pct(xs, q):
        return round(xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))], 4) if xs else None

    out = {
        "prompts": len(rows),
        "revealing_prompts": revealing,
        "core_recall": {t: rate(a, b) for t, (a, b) in recall.items()},
        "core_recall_counts": {t: f"{a}/{b}" for t, (a, b) in recall.items()},
        "core_only_protected_rate": rate(*core_only),
        "core_only_prompts": core_only[1],
        "fail_open": len(fail_open),
        "fail_open_rate": rate(len(fail_open), revealing),
        "refusal_rate": rate(refused_revealing, revealing),
        "non_person_clean_rate": rate(*clean),
        "non_person_prompts": clean[1],
        "false_refusals": len(false_refusals),
        "invariance": rate(*inv),
        "invariance_checked": inv[1],
        "coherence_failures": coherence,
        "crashes": len(crashes),
        "median_ms": round(statistics.median(times), 4) if times else None,
        "p99_ms": pct(times, 0.99),
        "median_cpu_ms": round(statistics.median(cpu_times), 4) if cpu_times else None,
        "p99_cpu_ms": pct(cpu_times, 0.99),
    }
    out["meets_goals"] = meets_goals(out)
    if any("category" in r for r in rows):
        out["by_category"] = dict(sorted(by_category.items()))
    out.update({"fail_open_prompts": fail_open, "false_refusal_prompts": false_refusals, "crash_prompts": crashes})
    return out


def meets_goals(summary: dict) -> dict:
    """Each ISSUE20_GOALS entry -> whether this summary meets it (None when the corpus has no such prompts)."""
    ops = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}
    result = {}
    for key, goal in ISSUE20_GOALS.items():
        op, bound = goal.split()
        value = summary.get(key)
        result[key] = None if value is None else ops[op](value, float(bound))
    return result


def issue20_report(dev: str | None, heldout: str | None, shared_b: str | Path | None, repeat: int) -> dict:
    """``{"corpora": {name: corpus_summary}, "goals": ISSUE20_GOALS}``; the shared corpus only when present."""
    corpora = {}
    for name, path in (("dev", dev), ("heldout", heldout), ("shared_b", shared_b)):
        if path is not None and Path(path).is_file():
            corpora[name] = {"path": str(path), **corpus_summary(load_any_corpus(path), repeat)}
    return {"corpora": corpora, "goals": dict(ISSUE20_GOALS)}
# ---- issue 21: several people, anonymity blocks (kept apart from the corpus numbers above)
MULTI_PERSON_PROMPTS = (
    "a Black woman and a White man holding hands",
    "an old man and a young boy fishing",
    "a young African female and an old European male",
    "a Hispanic bride and an Asian groom at the altar",
    "an elderly husband and his young wife dancing in the kitchen",
    "a middle-aged father and his young son repairing a bike",
    "a grandmother and her granddaughter baking bread",
    "an Asian doctor and a Black nurse in a hospital corridor",
    "a young mother, an old grandfather and a boy at the beach",
    "a Black man, a White woman and an Asian man at a meeting",
    "an old woman, a young man and a middle-aged woman having dinner",
    "a man, a woman, a boy and a girl at a picnic",
    "an old man, an old woman, a young man and a young woman playing bridge",
    "a Black woman, a White woman, an Asian man and a Hispanic man in an office",
)


def _for_n(outcome: dict) -> bool:
    return "candidates (" in outcome.get("refused", "")


def multi_person_report(corpora: list, max_candidates: int = 40) -> dict:
    from obclip_nodes.privacy import ExpansionError, expand_prompt, verify_closure
    from obclip_nodes.privacy.render import read_back

    prompts = list(MULTI_PERSON_PROMPTS)
    for path in corpora:
        for r in load_corpus(path):
            if r["preset"] != "default" or r["prompt"] in prompts:
                continue
            try:
                e = expand_prompt(r["prompt"], max_candidates=10**6, blocks=False, allow_unprotected=True)
            except ExpansionError:
                continue
            if len({s["person"] for s in e.slots}) >= 2:
                prompts.append(r["prompt"])
    rows, times = [], []
    for p in prompts:
        row: dict = {"prompt": p}
        try:
            before = expand_prompt(p, max_candidates=max_candidates, blocks=False)
            row["before"] = {"n": before.n}
        except ExpansionError as err:
            row["before"] = {"refused": str(err).split(". ")[0]}
        read_back.cache_clear()  # timed cold (the expansion without blocks above read the same candidates)
        t0 = time.perf_counter()
        try:
            e = expand_prompt(p, max_candidates=max_candidates)
        except ExpansionError as err:
            row["after"] = {"refused": str(err).split(". ")[0]}
            rows.append(row)
            continue
        times.append((time.perf_counter() - t0) * 1000.0)
        try:
            verify_closure(p, max_candidates=max_candidates)
            closed = True
        except (AssertionError, ExpansionError):
            closed = False
        row["after"] = {"n": e.n, "total": e.total, "block": f"{e.block_index + 1} of {e.block_count}",
                        "people": len({s["person"] for s in e.slots}), "closure": closed,
                        "worst_posterior_ratio": e.block_worst_ratio,
                        **({"server_learns": e.block_learns} if e.blocked else {})}
        rows.append(row)
    after = [r["after"] for r in rows if "n" in r["after"]]
    blocked = [a for a in after if a["total"] > a["n"]]
    return {
        "max_candidates": max_candidates,
        "prompts": len(rows),
        "refused_before": sum(1 for r in rows if "refused" in r["before"]),
        "refused_after": sum(1 for r in rows if "refused" in r["after"]),
        # refused because of N alone (the rest name a word that cannot be swapped, with or without blocks)
        "refused_for_n_before": sum(1 for r in rows if _for_n(r["before"])),
        "refused_for_n_after": sum(1 for r in rows if _for_n(r["after"])),
        "blocked": len(blocked),
        "block_sizes": dict(sorted(Counter(a["n"] for a in blocked).items())),
        "blocks_per_prompt": dict(sorted(Counter(int(a["block"].split(" of ")[1]) for a in blocked).items())),
        "exact_blocks": sum(1 for a in blocked if a["worst_posterior_ratio"] == 1.0),
        "worst_posterior_ratio": max((a["worst_posterior_ratio"] for a in blocked), default=1.0),
        "closure": round(sum(a["closure"] for a in after) / max(1, len(after)), 4),
        "median_ms_blocked": round(statistics.median(times), 2) if times else None,
        "goals": {"refused_for_n_after": "only above the block limit", "closure": "1.0",
                  "worst_posterior_ratio": "1.0 where the sizes allow"},
        "rows": rows,
    }


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(json.dumps(run(sys.argv[1:]), indent=2))
