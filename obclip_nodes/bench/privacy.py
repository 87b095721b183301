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

``multi_person`` (issue 21, anonymity blocks): prompts describing two to four people -- a fixed list of couples,
families and groups (:data:`MULTI_PERSON_PROMPTS`) plus every corpus prompt with two or more described people --
each expanded without blocks (``refused_before``: today's refusal above ``max_candidates`` = 32) and with them
(``refused_after``), with the block sizes, the number of blocks, closure within the block
(:func:`verify_closure`; goal 100%) and ``worst_posterior_ratio``: the largest P(value | block) / P(value | C)
of any person's attribute value, i.e. how far the server's marginal moves from the uniform prior (1.0: not at
all; the goal wherever the sizes allow an exact design).

Options: ``--corpus FILE``, ``--heldout FILE``, ``--repeat K`` (default 5), ``--show-refusals K`` (print K refusal
messages in the JSON), ``--multi-person-only`` (just the ``multi_person`` section).
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--multi-person-only", action="store_true", help="only the anonymity-block section")
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
    out["multi_person"] = multi_person_report([dev_path] + ([held_path] if held_path else []))
    return out


def _measure(corpus: str, args) -> dict:
    from obclip_nodes.privacy import (
        ExpansionError,
        expand_prompt,
        load_lexicon,
        verify_closure,
    )
    from obclip_nodes.privacy.render import coherence_failures

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


def multi_person_report(corpora: list, max_candidates: int = 32) -> dict:
    from obclip_nodes.privacy import ExpansionError, expand_prompt, verify_closure

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
    import json
    import sys

    print(json.dumps(run(sys.argv[1:]), indent=2))
