"""Anonymity blocks (privacy/blocks.py): a prompt whose full candidate set C is larger than max_candidates
sends the block of C that holds the real candidate.  Property tests on generated prompts with 2-4 people and
every attribute mix: closure on every block, the blocks cover C exactly once, every member of a block gets the
same block (so it does not depend on which candidate is real), per-block marginals equal where the design is
exact and within one of the fair share otherwise.  Value-space sizes come from the lexicon, never from here."""

import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from obclip_nodes.privacy import ExpansionError, expand_prompt, load_lexicon, verify_closure
from obclip_nodes.privacy import blocks as B
from obclip_nodes.privacy.render import read

LEX = load_lexicon()
SPACES = {a: tuple(LEX.attributes[a]) for a in ("gender", "age", "ethnicity")}
SIZE = {a: len(v) for a, v in SPACES.items()}
FULL_CHECK = 100           # up to this |C| every candidate of C is expanded; above, a fixed sample of C
MAX_COMBINATIONS = 400     # the tests' block limit (the default is larger): keeps one example near a second
SPLIT_SLACK = 2            # a split (no exact design fits) keeps every count within this of its fair share

GENDER_NOUNS = ["woman", "man", "lady", "gentleman", "mother", "father", "wife", "husband"]
NEUTRAL_NOUNS = ["person", "doctor", "teacher", "friend"]
AGE = ["young", "middle-aged", "old", "elderly"]
ETH = ["Asian", "Black", "White", "Hispanic", "Arab", "European", "African"]
JOIN = [" and ", ", ", " next to ", " with ", " beside "]
END = ["", " in a park", " holding hands", ", oil painting", " at a wedding", " fishing"]


@st.composite
def person(draw):
    words = []
    if draw(st.booleans()):
        words.append(draw(st.sampled_from(AGE)))
    if draw(st.booleans()):
        words.append(draw(st.sampled_from(ETH)))
    words.append(draw(st.sampled_from(GENDER_NOUNS if draw(st.booleans()) else NEUTRAL_NOUNS)))
    return "a " + " ".join(words)


@st.composite
def group_prompt(draw):
    count = draw(st.integers(2, 4))
    people = draw(st.lists(person(), min_size=count, max_size=count))
    out = people[0]
    for p in people[1:]:
        out += draw(st.sampled_from(JOIN)) + p
    return out + draw(st.sampled_from(END))


ATTRS = st.sampled_from([None, ["gender"], ["age"], ["ethnicity"], ["gender", "age"], ["gender", "ethnicity"],
                         ["age", "ethnicity"]])
CAPS = st.sampled_from([2, 3, 4, 5, 6, 8, 12, 16, 20, 32])
PROPS = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow],
                 phases=[Phase.explicit, Phase.reuse, Phase.generate])    # shrinking these takes many minutes


def _full(p, attrs):
    """C, in order: the expansion without blocks and without a cap."""
    return expand_prompt(p, attrs, max_candidates=10**6, blocks=False)


def _coords(e_full, attrs):
    """Each candidate's value indexes, read back from its text (not assumed from the order)."""
    sizes = [len(s["values"]) for s in e_full.slots]
    assert e_full.n == e_full.combinations == math.prod(sizes)   # these prompts have no pronouns: nothing dropped
    active = frozenset(attrs or LEX.attributes)
    index = [{v: i for i, v in enumerate(s["values"])} for s in e_full.slots]
    coords = [tuple(ix[v] for ix, v in zip(index, read(c, LEX, active).template.values)) for c in e_full.candidates]
    assert sorted(coords) == B.coords_of_product(sizes)           # C is the whole product
    return coords, sizes


def _expand(c, attrs, cap):
    return expand_prompt(c, attrs, max_candidates=cap, max_combinations=MAX_COMBINATIONS)


@PROPS
@given(group_prompt(), ATTRS, CAPS)
def test_blocks_cover_C_once_with_closure_and_balance(p, attrs, cap):
    try:
        e = _expand(p, attrs, cap)
    except ExpansionError as err:
        msg = str(err)
        full = _full(p, attrs)
        # refused only above the block limit, or where no blocks of 2 to cap candidates can cover C
        too_big = full.combinations > MAX_COMBINATIONS and "anonymity blocks are cut from" in msg
        no_fit = full.n // math.ceil(full.n / cap) < 2 and f"more than max_candidates={cap}" in msg
        assert too_big or no_fit, msg
        return
    full = _full(p, attrs)
    C = full.candidates
    assert e.total == len(C) and e.n <= cap
    if len(C) <= cap:
        assert not e.blocked and e.candidates == C
        return
    assert e.blocked and e.n >= 2 and e.block_count >= 2
    coords, sizes = _coords(full, attrs)
    where = {c: k for k, c in enumerate(C)}
    # closure within the block, the real one included (every member re-expands to the same block)
    verify_closure(p, attrs, max_candidates=cap) if len(C) <= MAX_COMBINATIONS else None
    # every candidate of C (or a sample per block) -> its block; blocks agree for all their members
    blocks, block_of = {}, {}
    todo = list(range(len(C)))
    if len(C) > FULL_CHECK:
        todo = sorted(set(range(0, len(C), max(1, len(C) // 20))) | set(range(len(C) - 3, len(C))))
    for k in todo:
        if k in block_of and len(C) > FULL_CHECK:
            continue
        f = _expand(C[k], attrs, cap)
        assert f.candidates[f.real_index] == C[k]
        members = tuple(where[c] for c in f.candidates)
        assert list(members) == sorted(members)             # the block keeps C's order
        assert (f.block_count, f.total) == (e.block_count, len(C))
        if f.block_index in blocks:
            assert blocks[f.block_index] == members          # the same block whichever member is real
        blocks[f.block_index] = members
        for m in members:
            assert block_of.setdefault(m, f.block_index) == f.block_index   # never in two blocks
        # marginals: each slot's values in this block
        n = len(members)
        worst = 1.0
        for j, size in enumerate(sizes):
            counts = Counter(coords[m][j] for m in members)
            if f.block_worst_ratio == 1.0:
                assert all(counts[v] * size == n for v in range(size)), (p, j, counts)   # exactly equal
            else:
                assert all(abs(counts[v] - n / size) < SPLIT_SLACK for v in range(size)), (p, j, counts, n)
            worst = max(worst, max(counts[v] * size / n for v in range(size)))
        assert f.block_worst_ratio == pytest.approx(worst, abs=1e-5)
        if f.block_worst_ratio == 1.0:
            assert "equally often in the block" in f.server_learns
    if len(C) <= FULL_CHECK:
        assert sorted(block_of) == list(range(len(C)))           # every candidate is in a block
        assert len(blocks) == e.block_count and sorted(blocks) == list(range(e.block_count))
        assert sorted(m for b in blocks.values() for m in b) == list(range(len(C)))   # exactly once


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(st.integers(2, 6), min_size=1, max_size=7), st.integers(2, 40))
def test_partition_of_any_product(sizes, cap):
    """The pure function: any product of value spaces, any cap."""
    slots = [(j // 3, f"attr{j % 3}", tuple(f"v{i}" for i in range(n))) for j, n in enumerate(sizes)]
    total = math.prod(sizes)
    if total > 1500:
        return
    d = B.choose(slots, cap)
    if total <= 1:
        assert d is None
        return
    if d is None:               # no block of 2 or more fits: only when even halves are too big or cap < 2
        assert cap < 2 or total // math.ceil(total / cap) < 2
        return
    coords = B.coords_of_product(sizes)
    parts = B.partition(coords, d)
    assert sorted(t for b in parts for t in b) == list(range(total))          # cover exactly once
    assert len(parts) == d.cosets * d.split
    assert all(2 <= len(b) <= cap for b in parts)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    for b in parts:
        for j, n in enumerate(sizes):
            counts = Counter(coords[t][j] for t in b)
            if d.exact:
                assert all(counts[v] * n == len(b) for v in range(n)), (sizes, cap, j, counts)
            else:
                assert all(abs(counts[v] - len(b) / n) < SPLIT_SLACK for v in range(n)), (sizes, cap, j, counts)
    for t in range(0, total, max(1, total // 50)):                        # any member gives the same block
        blk = B.block_of(coords, d, t)
        assert parts[blk.index] == blk.members and t in blk.members


def test_latin_square_of_the_issue():
    """Two people with gender and ethnicity: the blocks are the shifts e2 = e1 + j (mod |ethnicity|), crossed
    with both genders of each person; every marginal uniform."""
    p = "a black woman and a white man holding hands"
    e = verify_closure(p)
    ne, ng = SIZE["ethnicity"], SIZE["gender"]
    assert e.total == (ne * ng) ** 2 and e.n == ng * ng * ne and e.block_count == ne
    eth = SPACES["ethnicity"]
    j = (eth.index("white") - eth.index("black")) % ne
    assert e.block_index == j
    pairs = ", ".join(f"{eth[i]} & {eth[(i + j) % ne]}" for i in range(ne))
    assert e.block_learns.startswith(f"person 1's ethnicity & person 2's ethnicity are one of: {pairs}. ")
    assert f"so it learns that {e.block_learns}" in e.server_learns
    assert e.server_learns.startswith(f"The server receives block {j + 1} of {ne} (N = {e.n} of the {e.total} ")
    assert e.public_view()["block"] == {"index": j, "count": ne, "total": e.total}
    form = next(par.forms for par in LEX.paradigms if par.attribute == "ethnicity" and "Black" in par.forms.values())
    value_of = {f.lower(): v for v, f in form.items()}
    for c in e.candidates:     # in every candidate person 2's ethnicity is person 1's shifted by j
        left, right = c.split(" and ")
        e1 = eth.index(value_of[left.split(" ", 1)[1].rsplit(" ", 1)[0].lower()])
        e2 = eth.index(value_of[right.split(" ", 1)[1].rsplit(" ", 3)[0].lower()])
        assert (e2 - e1) % ne == j, c
    # the same prompt always gives the same block; the real candidate is not special
    assert expand_prompt(p).candidates == e.candidates
    assert expand_prompt(e.candidates[0]).candidates == e.candidates


def test_same_ethnicity_block_says_so():
    e = expand_prompt("a White woman and a White man dancing")
    assert e.block_index == 0 and "(the same ethnicity)" in e.block_learns


def test_blocks_off_is_todays_refusal():
    with pytest.raises(ExpansionError, match=r"more than max_candidates=40\. Protect fewer attributes"):
        expand_prompt("a black woman and a white man holding hands", blocks=False)
    assert expand_prompt("a black woman and a white man holding hands", blocks=False,
                         max_candidates=10**3).n == (SIZE["ethnicity"] * SIZE["gender"]) ** 2


def test_no_block_below_two_is_a_refusal():
    with pytest.raises(ExpansionError, match="more than max_candidates=1"):
        expand_prompt("a woman and a man", max_candidates=1)


def test_single_person_split_is_as_even_as_integers_allow():
    e = verify_closure("a young Asian woman", max_candidates=16)
    total = SIZE["gender"] * SIZE["age"] * SIZE["ethnicity"]
    assert e.total == total and e.block_count == math.ceil(total / 16) and e.blocked
    assert e.n in (total // e.block_count, -(-total // e.block_count))
    assert e.block_worst_ratio >= 1.0
    assert "as evenly as the sizes allow" in e.block_learns or e.block_worst_ratio == 1.0


def test_dropped_combinations_still_partition():
    """A prompt whose read-back drops combinations (C is not the full product): blocks still cover C once and
    each is closed."""
    p = "a woman and a man, she smiles at an old doctor"
    full = _full(p, None)
    assert full.n < full.combinations           # the pronoun ties 'she' to a woman: some combinations drop
    cap = max(2, full.n // 3)
    e = verify_closure(p, max_candidates=cap)
    seen = {}
    for c in full.candidates:
        f = expand_prompt(c, max_candidates=cap)
        for x in f.candidates:
            assert seen.setdefault(x, f.block_index) == f.block_index
    assert sorted(seen) == sorted(full.candidates) and e.total == full.n


def test_two_fully_described_people():
    """The issue's 900-candidate couple: 30 blocks of 30, every marginal uniform, closed within its block."""
    p = "a young African female and an old European male"
    e = verify_closure(p)
    # female/male are not cell nouns, so each person keeps the three adult ages: (2 x 3 x 5)^2 = 900
    total = (SIZE["gender"] * (SIZE["age"] - 1) * SIZE["ethnicity"]) ** 2
    assert total == math.prod(len(s["values"]) for s in e.slots) == 900
    assert e.total == total and e.n <= 40 and e.block_count * e.n == total and e.block_worst_ratio == 1.0
    assert e.real_prompt == p and f"N = {e.n} of the {total}" in e.server_learns


def test_shipped_two_people_workflow_sends_a_block():
    """workflows/api/obclip_two_people.json: its expander settings give an anonymity block, closed."""
    import json
    from pathlib import Path
    wf = json.loads((Path(__file__).resolve().parents[2] / "workflows" / "api" / "obclip_two_people.json").read_text())
    (node,) = [n["inputs"] for n in wf.values() if n["class_type"] == "ObCLIPCandidateExpander"]
    e = verify_closure(node["prompt"], None, node["preset"], max_candidates=node["max_candidates"])
    assert e.blocked and 2 <= e.n <= node["max_candidates"] < e.total and len({s["person"] for s in e.slots}) == 2
