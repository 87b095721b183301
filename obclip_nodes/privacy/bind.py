"""Stage 3, bind cues to people.

* **Heads** are person words: gendered nouns and titles, attribute-free person nouns (doctor, person),
  sensitive nouns (amputee, rabbi), names, unknown gendered compounds, and nominal adjectives
  ("a female", "an Asian", "a Muslim praying").  Adjacent heads form one head ("my wife Sarah").
* An **adjective** cue describes the head it precedes when only adjectives, at most three other
  words (not stop words, not chain breakers such as "haired") and ``, - ( ) [ ] :`` or weights lie
  between ("young red haired woman"); a colour word (black/white/brown) only right before it.
  Else the head right before it ("woman asian", "a man aged 70"), or after "is/looks (very)" the
  person before it ("a woman who looks old").  A tag that holds nothing but attribute words
  ("1girl, solo, old, asian") describes the prompt's one person.  Anything else does not describe
  a person and is left alone ("black cat", "old town").
* **People**: "the/this/that <noun>" in a later sentence joins the earlier person it names; a
  pronoun joins the most recent earlier singular person that agrees on gender (else the next one,
  else it is a person of its own) -- unless the prompt names no person and a vessel ("a ship, her
  sails full"), which then owns it.  In tag soup with one count tag (1girl, 1boy, solo) every
  singular mention is that one person, so its tags swap together.
* An age noun right before another person word is rendered as an adjective ("senior woman" ->
  "old woman"), so candidates never read "child woman".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .cues import Cue, Cues
from .errors import ExpansionError
from .lexicon import Lexicon
from .tokenize import Tokens

_CHAIN_GAP_RE = re.compile(r"^(?:[ \t,\-()\[\]{}:]|\d+(?:\.\d+)?)*$")
_ADJ_GAP_RE = re.compile(r"^[ \t\-()\[\]{}:]*$")
_BACK_GAP_RE = re.compile(r"^[ \t,(]*$")
_DETERMINERS = frozenset({"a", "an", "the", "one", "this", "that", "another", "every", "each", "any", "some", "two",
                          "three", "four", "several", "many", "few", "her", "his", "my", "your", "our", "their"})
_DEFINITE = frozenset({"the", "this", "that", "these", "those"})
_COUNT_TAG_RE = re.compile(r"^(?:[1-9](?:girl|boy|woman|man|other)s?|solo)$")
_MAX_FREE_WORDS = 3


@dataclass(eq=False)
class Group:               # one head (run of person words) plus the cues that describe it
    t0: int
    t1: int
    number: str
    keys: set
    cues: list
    start: int = 0


@dataclass(eq=False)
class Person:
    number: str
    keys: set
    values: dict
    cues: list
    first: int
    last: int
    ordinal: int = -1


@dataclass(eq=False)
class Binding:
    persons: list                      # every person, in order of first mention
    unattached: list                   # adjective cues that describe no person
    heads: int                         # number of person words
    count_tags: int = 0
    contradictions: list = field(default_factory=list)   # (cue, cue, attribute) one person, two values
    possible: list = field(default_factory=list)   # (cue, head word): an ethnicity word on an unknown noun


def bind(tok: Tokens, cs: Cues, lex: Lexicon, active: frozenset) -> Binding:
    n, low, gaps = tok.n, tok.low, tok.gaps
    at, ignored = cs.at, cs.ignored
    cues = cs.cues

    # -- heads ------------------------------------------------------------------------------
    heads = {}
    for c in cues:
        if c.role == "noun":
            num = c.par.number if c.par is not None else ("plural" if c.surface.lower().endswith("s")
                                                          and c.kind == "sensitive" else "singular")
            if c.kind == "form" and c.par.role == "title":
                num = "title"
            heads[c.t0] = (num, ("p", c.par.pid) if c.par is not None else ("s", c.surface.lower()), c, c.t1)
        elif c.role == "title":
            heads[c.t0] = ("title", ("p", c.par.pid), c, c.t1)
    pn = lex.person_nouns
    for i in [i for i, w in enumerate(low) if w in pn]:
        if at[i] is None and not ignored[i]:
            heads[i] = (pn[low[i]], ("w", low[i]), None, i + 1)
    tags = [w for w in low if _COUNT_TAG_RE.match(w)]
    count_tags = len(tags)
    one_person_tags = bool(tags) and all(w == "solo" or w.startswith("1") for w in tags) and sum(
        1 for w in tags if w != "solo") <= 1
    groups: list[Group] = []
    g = None
    for i in sorted(heads):
        number, key, c, end = heads[i]
        if (g is not None and number != "title" and g.number != "title" and g.t1 == i
                and gaps[i] != "" and gaps[i].strip(" \t") == ""):
            g.t1 = end
            g.number = number
            g.keys.add(key)
            if c is not None:
                g.cues.append(c)
            continue
        if g is not None and g.number == "title" and g.t1 == i and c is not None and c.kind == "name":
            g.t1 = end                       # "Mr Smith": title and name are one head
            g.cues.append(c)
            continue
        g = Group(i, end, number, {key}, [c] if c is not None else [])
        groups.append(g)
    for g in groups:
        if g.number == "title":
            g.number = "singular"
    group_at = {g.t0: g for g in groups}
    group_end = {g.t1 - 1: g for g in groups}

    adjectives = [c for c in cues if c.role == "adjective" and c.bind != "anchor"]

    def describes_a_part(c: Cue) -> bool:        # "black haired", "white-haired", "brown eyes"
        q = c.t1
        return q < n and low[q] in lex.part_words and gaps[q] in (" ", "-") and at[q] is None

    def agentive(pos: int) -> bool:              # an unknown person word: "falconer", "backpacker"
        w = low[pos]
        return (len(w) >= 6 and w.isalpha() and w not in lex.agentive_exceptions and w not in lex.non_person_heads
                and w.endswith(lex.agentive_suffixes)
                and (pos + 1 >= n or gaps[pos + 1].strip(" \t") != "" or low[pos + 1] in lex.stop_words))

    def forward(c: Cue) -> Group | None:
        pos = c.t1
        free = 0
        if describes_a_part(c):
            return None
        while pos < n:
            if not _CHAIN_GAP_RE.match(gaps[pos]):
                return None
            g = group_at.get(pos)
            if g is not None:
                return g
            nxt = at[pos]
            if nxt is not None:
                if nxt.role != "adjective":
                    return None
                pos = nxt.t1
                continue
            if ignored[pos] or low[pos] in lex.stop_words or low[pos] in lex.chain_breakers:
                return None
            if not _ADJ_GAP_RE.match(gaps[pos]):
                return None                  # a free word must be in the same phrase: no commas
            if c.par is not None and agentive(pos):
                g = Group(pos, pos + 1, "plural" if low[pos].endswith("s") else "singular", {("w", low[pos])}, [],
                          start=pos)
                groups.append(g)
                group_at[pos] = g
                group_end[pos] = g
                return g
            free += 1
            if free > _MAX_FREE_WORDS:
                return None
            pos += 1
        return None

    # nominal adjectives ("a female", "an Asian", "a young asian female, wearing ...") become heads
    for c in adjectives:
        if c.kind == "numeric" or forward(c) is not None:
            if not (c.kind == "numeric" and c.bind == "both" and forward(c) is None):
                continue
        nominal = (c.par is not None and c.par.nominal) or c.kind == "sensitive" or c.kind == "numeric"
        if not nominal:
            continue
        p = c.t0 - 1
        det = p >= 0 and low[p] in _DETERMINERS and gaps[c.t0].strip(" \t") == "" and at[p] is None
        prev_adj = p >= 0 and at[p] is not None and at[p].role == "adjective"
        if c.kind == "numeric" and not det:
            continue
        if c.kind == "sensitive" and not det:
            continue
        if c.kind == "form" and not (det or prev_adj or c.t0 == 0 or not gaps[c.t0].strip(" \t") == ""):
            continue
        q = c.t1
        if q < n and gaps[q].strip(" \t") == "" and low[q] not in lex.stop_words:
            if not (low[q].endswith("ing") and low[q] not in lex.ing_nouns and at[q] is None):
                continue
        g = Group(c.t0, c.t1, "singular", {("p", c.par.pid) if c.par is not None else ("s", c.surface.lower())}, [c])
        groups.append(g)
        group_at[g.t0] = g
        group_end[g.t1 - 1] = g
    groups.sort(key=lambda g: g.t0)
    for g in groups:
        g.start = g.t0
    head_of = {id(g.cues[0]) for g in groups if g.cues and g.t0 == g.cues[0].t0}

    def backward(c: Cue) -> Group | None:
        if describes_a_part(c):
            return None
        p = c.t0 - 1
        if p >= 0 and p in group_end and _BACK_GAP_RE.match(gaps[c.t0]):
            return group_end[p]
        return None

    def predicate(c: Cue) -> Group | None:
        p = c.t0 - 1
        while p >= 0 and low[p] in lex.predicate_adverbs and at[p] is None:
            p -= 1
        if p < 0 or low[p] not in lex.predicate_verbs:
            return None
        best = None
        for g in groups:
            if g.t1 <= p and tok.sentence(g.t0) == tok.sentence(c.t0):
                best = g
        return best

    unattached: list[Cue] = []
    pending_tags: list[Cue] = []
    for c in adjectives:
        if id(c) in head_of:
            continue
        g = None
        if c.bind in ("both", "forward"):
            g = forward(c)
        if g is None and c.bind in ("both", "back"):
            g = backward(c)
        if g is None:
            g = predicate(c)
        if g is None:
            seg = tok.segment[c.t0]
            rng = tok.segment_words(seg)
            if len(rng) and all(at[k] is not None and at[k].role == "adjective" for k in rng):
                pending_tags.append(c)
            else:
                unattached.append(c)
            continue
        g.cues.append(c)
        g.start = min(g.start, c.t0)

    # -- people -----------------------------------------------------------------------------
    groups.sort(key=lambda g: g.t0)
    persons: list[Person] = []
    contradictions: list = []

    def values_of(cl) -> dict:
        vals: dict = {}
        for c in cl:
            if c.par is None:
                continue
            a = c.par.attribute
            if a in vals and vals[a] != c.value:
                other = next(x for x in cl if x.par is not None and x.par.attribute == a and x.value == vals[a])
                contradictions.append((other, c, a))
                continue
            vals[a] = c.value
        return vals

    for g in groups:
        vals = values_of(g.cues)
        target = None
        s = g.start - 1
        if s >= 0 and low[s] in _DEFINITE and at[s] is None and gaps[g.start].strip(" \t") == "":
            for per in sorted(persons, key=lambda p: -p.last):
                if tok.sentence(per.last) == tok.sentence(g.start):
                    continue
                if per.number == g.number and per.keys & g.keys and all(
                        per.values.get(a, v) == v for a, v in vals.items()):
                    target = per
                    break
        if target is None:
            persons.append(Person(g.number, set(g.keys), vals, list(g.cues), g.start, g.t1 - 1))
        else:
            target.keys |= g.keys
            target.values.update(vals)
            target.cues.extend(g.cues)
            target.last = g.t1 - 1

    # tag soup with one count tag: all singular mentions are that one person
    if one_person_tags and len([p for p in persons if p.number == "singular"]) > 1:
        single = [p for p in persons if p.number == "singular"]
        keep = single[0]
        for p in single[1:]:
            for c in p.cues:
                a = c.par.attribute if c.par is not None else None
                if a is not None and a in keep.values and keep.values[a] != c.value:
                    other = next(x for x in keep.cues if x.par is not None and x.par.attribute == a)
                    contradictions.append((other, c, a))
                    continue
                if a is not None:
                    keep.values[a] = c.value
                keep.cues.append(c)
            keep.keys |= p.keys
            keep.last = max(keep.last, p.last)
            persons.remove(p)

    vessel_owns = not persons and any(w in lex.vessels or w in lex.animals for w in low)
    for c in cues:
        if c.role != "pronoun" or vessel_owns:
            continue
        a = c.par.attribute
        target = None
        before = sorted((p for p in persons if p.number == "singular" and p.first < c.t0), key=lambda p: -p.last)
        for per in before:
            if per.values.get(a, c.value) == c.value:
                target = per
                break
        if target is None:
            after = sorted((p for p in persons if p.number == "singular" and p.first > c.t0), key=lambda p: p.first)
            for per in after:
                if per.values.get(a, c.value) == c.value:
                    target = per
                    break
        if target is None:
            persons.append(Person("singular", set(), {a: c.value}, [c], c.t0, c.t0))
        else:
            target.values[a] = c.value
            target.cues.append(c)
            target.last = max(target.last, c.t0)
            target.first = min(target.first, c.t0)
    persons.sort(key=lambda p: p.first)

    # numeric ages anchored on a pronoun ("in her 40s") join that pronoun's person
    for c in cues:
        if c.bind != "anchor":
            continue
        owner = next((p for p in persons for x in p.cues if x.role == "pronoun" and x.t0 == c.anchor), None)
        if owner is None:
            owner = next((p for p in reversed(persons) if p.first < c.t0 and p.number == "singular"), None)
        if owner is None:
            unattached.append(c)
            continue
        _attach(owner, c, contradictions)

    # tag soup with no person word ("asian, long hair, smile"): its attribute-only tags describe an
    # implied person (fail closed: a lone "old" tag is far likelier a person than a thing) unless the
    # only such tags are colour words and no other tag shows a person (hair, portrait, a correlated
    # word); the tags then swap together
    if not persons and pending_tags and _implied_person(tok, cs, lex, pending_tags):
        persons.append(Person("singular", set(), {}, [], pending_tags[0].t0, pending_tags[-1].t0))
    # attribute-only tags describe the prompt's one person
    singles = [p for p in persons if p.number == "singular"]
    for c in pending_tags:
        if len(persons) == 1 or (len(singles) == 1 and count_tags):
            _attach(singles[0] if singles else persons[0], c, contradictions)
        else:
            unattached.append(c)

    # an attribute said of the nearest person ("a woman with dark skin", "1girl, smiling, dark skin"): the
    # last person before it in its sentence, else the prompt's one person
    for c in [c for c in unattached if c.par is not None and c.par.attribute in lex.nearest_person]:
        before = [p for p in persons if p.first < c.t0 and tok.sentence(p.first) == tok.sentence(c.t0)]
        owner = before[-1] if before else (persons[0] if len(persons) == 1 else None)
        if owner is not None and _attach(owner, c, contradictions):
            unattached.remove(c)

    # a cell noun gives its age: "girl" a child, "grandmother" (read as an old woman) old age
    if lex.cells is not None and lex.cells.age in active:
        for p in persons:
            _cell_age(p, lex, contradictions)

    # age nouns used as modifiers ("senior woman") render as the attribute's adjective
    for p in persons:
        for c in p.cues:
            if c.par is not None and c.role == "noun" and c.par.modifier is not None:
                nxt = c.t1
                if nxt < n and gaps[nxt].strip(" \t") == "" and gaps[nxt] != "" and any(
                        x is not c and x.t0 == nxt and x.role == "noun" for x in p.cues) or (
                        nxt < n and low[nxt] in pn and gaps[nxt].strip(" \t") == "" and gaps[nxt] != ""):
                    c.par = lex.paradigms[c.par.modifier]
                    c.style = c.style if c.style in c.par.styles else "natural"
                    c.snapped = True
        for c in p.cues:
            c.person = p
    for k, p in enumerate(persons):
        p.ordinal = k
    possible = [(c, h) for c in unattached if (h := _possible_person(tok, cs, lex, c)) is not None]
    return Binding(persons, unattached, len(groups), count_tags, contradictions, possible)


def _attach(owner: Person, c: Cue, contradictions: list) -> bool:
    """Give ``c`` to ``owner``; a second value of an attribute the owner has is a contradiction instead."""
    a = c.par.attribute if c.par is not None else None
    if a is not None and a in owner.values and owner.values[a] != c.value:
        other = next(x for x in owner.cues if x.par is not None and x.par.attribute == a)
        contradictions.append((other, c, a))
        return False
    if a is not None:
        owner.values[a] = c.value
    owner.cues.append(c)
    return True


def _cell_age(p: Person, lex: Lexicon, contradictions: list) -> None:
    """The age a person's cell noun gives.  "young" beside a child noun reads as a child ("a young girl" is a
    girl, rendered "a girl"); an adult age beside it ("an old girl") is a contradiction."""
    cells = lex.cells
    age, child = cells.age, cells.child
    given = None
    for c in p.cues:
        fam = cells.family(c.par) if c.role == "noun" else None
        if fam is None:
            continue
        v = dict(c.implied).get(age) or (child if c.par is fam.child else None)
        if v is not None:
            given = (c, v)
    if given is None:
        return
    c, v = given
    have = p.values.get(age)
    if have is None or have == v:
        p.values[age] = v
        return
    ages = lex.attributes[age]
    if v == child and ages.index(have) == ages.index(child) + 1:
        for x in p.cues:
            if x.par is not None and x.par.attribute == age and x.value == have and child in x.par.forms:
                x.value = child
                x.snapped = True
        p.values[age] = child
        return
    other = next(x for x in p.cues if x.par is not None and x.par.attribute == age)
    contradictions.append((other, c, age))


def _implied_person(tok: Tokens, cs: Cues, lex: Lexicon, tags: list) -> bool:
    if not tok.n or tok.segment[-1] < 1:
        return False                                      # not tag soup: one segment
    for c in tags:
        if c.kind == "numeric" or (c.par is not None and c.surface.lower() not in lex.colour_words):
            return True                                   # "asian, ...", "middle-aged, office, tired"
        if c.kind == "sensitive" and c.surface.lower() not in lex.colour_words:
            return True
    low = tok.low
    return any(cs.at[k] is None and (w in lex.person_evidence or w in lex.leak_words) for k, w in enumerate(low))


def _possible_person(tok: Tokens, cs: Cues, lex: Lexicon, c: Cue) -> int | None:
    """An ethnicity or nationality word that describes no known person but a noun the lexicon does not
    know ("a Mexican abuela", "a Korean pop idol") may describe a person: fail closed.  Left alone
    when its phrase names a thing or an animal ("a Chinese lantern", "Thai green curry")."""
    if c.role != "adjective" or c.stype != "ethnicity" or c.negative or c.surface.lower() in lex.colour_words:
        return None
    low, gaps, at = tok.low, tok.gaps, cs.at
    phrase = []
    k = c.t1
    while k < tok.n and len(phrase) < 4 and gaps[k] in (" ", "-") and not cs.ignored[k]:
        w = low[k]
        if at[k] is not None:
            if at[k].role != "adjective":
                return None
            k = at[k].t1
            continue
        if w in lex.stop_words or w in lex.chain_breakers or not w.isalpha():
            break
        if phrase and w.endswith("ing") and w not in lex.ing_nouns:
            break                                         # "a Mexican abuela cooking": a participle ends it
        phrase.append(k)
        k += 1
    if not phrase:
        return None
    for k in phrase:
        w = low[k]
        sing = w[:-1] if w.endswith("s") and len(w) > 3 else w
        if (w in lex.non_person_heads or sing in lex.non_person_heads or w in lex.animals or sing in lex.animals
                or w in lex.part_words or w.endswith(lex.non_person_head_suffixes)):
            return None
    return phrase[-1]


def contradiction_error(tok: Tokens, contradictions: list, active: frozenset) -> ExpansionError | None:
    for a_cue, b_cue, a in contradictions:
        if a in active:
            return ExpansionError(
                f"refused: '{a_cue.surface}' and '{b_cue.surface}' give two different {a} values to one person, so "
                f"no candidate set can swap them coherently; rephrase "
                f"so each person has one {a}, or leave {a} out of the protected attributes")
    return None
