"""Property-based tests (hypothesis) of the core property: the candidate set, its order and the
public view are the same whichever candidate is real."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obclip_nodes.privacy import ExpansionError, expand_prompt, load_lexicon, verify_closure

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

GENDER_NOUNS = ["woman", "man", "women", "men", "girl", "boys", "lady", "gentlemen", "mother", "father", "son",
                "wife", "husband", "queen", "king", "actress", "actor", "businesswoman", "businessman", "bride",
                "grandfather", "nun", "cowboy", "waitress"]
NEUTRAL = ["doctor", "person", "nurse", "people", "child", "teacher", "friends", "soldier"]
AGE = ["young", "middle-aged", "old", "elderly", "youthful", "middle aged"]
ETH_DEFAULT = ["Asian", "Black", "white", "Hispanic", "Middle Eastern", "African", "European", "East Asian",
               "Latin American", "Arab", "White", "black"]
ETH_PAPER = ["Caucasian", "African", "asian", "Indian", "european"]
GENDER_ADJ = ["female", "male"]
PRONOUNS = ["she", "he", "her", "him", "his", "hers", "herself", "himself", "She", "His", "HER"]
FILLER = ["smiling", "in a park", "holding a black cat", "near an old house", "with white wine", "in a young forest",
          "wearing a dress", "with a beard", "portrait photo", "(masterpiece:1.2)", "at night", "and", "with",
          "next to", "looking at", "red haired", "the", "a", "an", "yesterday", "eyes", "'s hat", "-American"]
SEPS = [" ", " ", " ", ", ", ". ", " and ", " with ", "-", "; ", " (", ") "]


def _case(s: str, how: int) -> str:
    return s.upper() if how == 1 else (s[:1].upper() + s[1:] if how == 2 else s)


@st.composite
def person(draw, eth):
    parts = []
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["a", "an", "the", "two", "A", "An", "this", "one"])))
    for pool in (AGE, eth, GENDER_ADJ):
        if draw(st.integers(0, 2)) == 0:
            parts.append(draw(st.sampled_from(pool)))
    if draw(st.integers(0, 3)) == 0:
        parts.append(draw(st.sampled_from(["red haired", "beautiful", "tall"])))
    parts.append(draw(st.sampled_from(GENDER_NOUNS + NEUTRAL)))
    if draw(st.integers(0, 4)) == 0:
        parts[-1] += "'s"
    text = " ".join(parts)
    return _case(text, draw(st.integers(0, 5)) % 3 if draw(st.booleans()) else 0)


@st.composite
def prompt(draw, eth=ETH_DEFAULT):
    pieces = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.integers(0, 4))
        if kind <= 1:
            pieces.append(draw(person(eth)))
        elif kind == 2:
            pieces.append(draw(st.sampled_from(PRONOUNS)))
        else:
            pieces.append(draw(st.sampled_from(FILLER)))
    out = pieces[0]
    for p in pieces[1:]:
        out += draw(st.sampled_from(SEPS)) + p
    return out


def _closed_or_refused(p, attributes=None, lexicon=None):
    # the whole candidate set, or today's refusal above max_candidates: anonymity blocks of bigger sets have
    # their own property tests (test_privacy_blocks.py), which cost N + 1 expansions of the whole set each
    try:
        return verify_closure(p, attributes, lexicon, blocks=False)
    except ExpansionError:
        return None


@SETTINGS
@given(prompt())
def test_closure_default(p):
    _closed_or_refused(p)


@SETTINGS
@given(prompt(eth=ETH_PAPER))
def test_closure_paper(p):
    _closed_or_refused(p, lexicon="paper")


@SETTINGS
@given(prompt(), st.sets(st.sampled_from(["gender", "age", "ethnicity"])))
def test_closure_attribute_subsets(p, attrs):
    e = _closed_or_refused(p, sorted(attrs))
    if e is not None:
        assert set(e.attributes) <= attrs


WORDS = sorted({s for par in load_lexicon().paradigms for s in par.forms.values()}) + NEUTRAL + [
    "a", "an", "the", "cat", "wine", "house", "and", "with", "of"]


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPS + ["", "'s ", ". The "]),
                          st.integers(0, 2)), min_size=1, max_size=8))
def test_closure_word_soup(tokens):
    """Arbitrary sequences of lexicon words, separators and capitalisations."""
    p = "".join(_case(w, c) + s for w, s, c in tokens).strip() or "x"
    _closed_or_refused(p)


@SETTINGS
@given(prompt())
def test_n_is_product_of_value_spaces(p):
    try:
        e = expand_prompt(p)
    except ExpansionError:
        return
    lex = load_lexicon()
    product = 1
    for slot in e.slots:
        # a slot's values are its attribute's, in order; a word that cannot write one leaves it out (the cell
        # value "child" needs a cell noun or an age noun)
        space = lex.attributes[slot["attribute"]]
        assert slot["values"] == tuple(v for v in space if v in slot["values"]) and len(slot["values"]) >= 2
        if slot["attribute"] != "age":
            assert slot["values"] == space
        product *= len(slot["values"])
    assert e.combinations == product
    assert e.n <= e.total <= product
    assert (e.n < e.total) == e.blocked
    if e.total < product:
        assert f"Only {e.total} of the {product} combinations" in e.server_learns


@SETTINGS
@given(prompt())
def test_candidate_order_is_value_order(p):
    """The order is itertools.product over slot values: the real prompt is not always first."""
    try:
        e = expand_prompt(p)
    except ExpansionError:
        return
    if e.n == e.combinations and e.n > 1:
        # in canonical order the first candidate takes every slot's first value
        first = expand_prompt(e.candidates[0])
        assert first.real_index == 0
        last = expand_prompt(e.candidates[-1])
        assert last.real_index == e.n - 1


# ---- the fail-closed vocabulary: snaps, nationalities, numeric ages, tags, names, sensitive words
SNAPS = ["teenage", "Nigerian", "Chinese", "korean", "Latina", "Caucasian", "senior", "elderly", "toddler", "kids",
         "30-year-old", "45 yo", "aged 70", ", 65", "in her 40s", "in his late fifties", "little old", "mature",
         "African American", "Asian-American", "South Asian", "1girl", "2boys", "solo", "guy", "fireman", "grandpa"]
SENSITIVE = ["Muslim", "blind", "gay", "fat", "Sarah", "Taylor Swift", "Mrs", "postman", "American", "of color",
             "wheelchair", "rabbi", "--no man"]


@st.composite
def fail_closed_prompt(draw):
    pool = SNAPS + GENDER_NOUNS + AGE + GENDER_ADJ + PRONOUNS + FILLER + SENSITIVE
    words = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=7))
    seps = draw(st.lists(st.sampled_from(SEPS), min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps)).strip(" ,;.-(") or "x"


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(fail_closed_prompt(), st.booleans())
def test_closure_with_snaps_and_refusals(p, allow):
    """Whatever the outcome, a prompt that is not refused keeps the core property, and a refusal is an
    ExpansionError with a message that names words -- never another exception."""
    try:
        e = expand_prompt(p, allow_unprotected=allow)
    except ExpansionError as err:
        assert str(err)
        return
    verify_closure(p) if not e.unprotected else verify_closure_allowed(p)
    assert e.outcome in ("protected", "allowed")
    assert (e.outcome == "allowed") == bool(e.unprotected)


def verify_closure_allowed(p):
    e = expand_prompt(p, allow_unprotected=True)
    for i, c in enumerate(e.candidates):
        f = expand_prompt(c, allow_unprotected=True)
        assert f.candidates == e.candidates and f.real_index == i and f.public_view() == e.public_view(), (p, c)
