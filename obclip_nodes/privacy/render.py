"""Stage 5, render and re-check.

Every (person, protected attribute) with at least one bound, swappable cue is a *slot*; the template
is the prompt with each slot word (and each ``a``/``an`` right before one) cut out.  All value
combinations are rendered in canonical order (``itertools.product`` over slots in order of first
mention, values in lexicon order) and a combination is kept only if reading its text back gives
*this template and these values* -- which makes the core property hold by construction::

    for every candidate c of expand_prompt(p):
        expand_prompt(c).candidates == expand_prompt(p).candidates      # same strings, same order

Snapped words ("teenage" -> "young", "Nigerian" -> "Black", "30" -> "25") are written in the
value's canonical form in *every* candidate, the real one included; that is the only change made
to the user's words, and :attr:`Expansion.normalisations` lists each one.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

from .bind import Binding, bind
from .cues import Cues, find_cues, paradigm_by_pid
from .lexicon import Lexicon, apply_style
from .tokenize import Tokens, tokenize

_ARTICLE_GAP_RE = re.compile(r"^[ \t(\[{]+$")
_AN_EXCEPTIONS = ("eu", "uni", "use", "usu", "uti", "one", "once", "ewe", "ufo", "uk")
_AN_H = ("hour", "honest", "honor", "honour", "heir")
_DIGIT_AN = ("8", "11", "18")


def needs_an(word: str) -> bool:
    w = word.lower()
    if w[:1].isdigit():
        return w.startswith(_DIGIT_AN) and not w.startswith(("110", "111", "180", "181", "80", "81", "88"))
    if w.startswith(_AN_H):
        return True
    return w[:1] in "aeiou" and not w.startswith(_AN_EXCEPTIONS)


def article(style: str, surface: str) -> str:
    return apply_style(style, "an" if needs_an(surface) else "a")


@dataclass
class Template:
    key: tuple                      # the public template: literals, refs, slots and their value spaces
    values: tuple                   # the value of each slot
    slots: tuple                    # ((person ordinal, attribute), ...)
    refs: tuple
    literals: tuple
    normalised: bool
    persons: int                    # people with at least one slot
    snaps: tuple = ()               # (what the user wrote, what every candidate writes, attribute, value)
    spaces: tuple = ()              # the values each slot takes (a word that cannot write a value leaves it out)
    older: tuple = ()               # (age slot, age slot): the first person is older ("an old man and his grandson")


@dataclass
class Reading:
    tok: Tokens
    cues: Cues
    binding: Binding
    template: Template


def _cell_plan(per, lex: Lexicon, active: frozenset, tok: Tokens):
    """How a person named with a cell noun is written: ("j", noun, adjective) when the age stands right before
    the noun ("old woman") or only in the noun ("girl", "grandmother") -- the phrase is one cell, rendered
    whole; ("n", noun, None) when the age is said elsewhere ("an old Asian woman", "a 30-year-old woman") --
    only the noun follows the age (girl for a child, woman otherwise).  None: no cell."""
    cells = lex.cells
    if cells is None or cells.age not in active or cells.gender not in active or cells.age not in per.values:
        return None
    noun = next((c for c in per.cues if c.role == "noun" and not c.negative and cells.family(c.par) is not None), None)
    if noun is None:
        return None
    ages = [c for c in per.cues if c.par is not None and c.par.attribute == cells.age and not c.negative]
    adj = next((c for c in ages if c.t1 == noun.t0 and c.par.role == "adjective" and c.kind in ("form", "snap")
                and c.par.pid in cells.merge and tok.gaps[noun.t0] == " "), None)
    if adj is not None and len(ages) == 1:
        return ("j", noun, adj)
    if not ages:
        return ("j", noun, None)
    return ("n", noun, None)


def _cell_table(kind: str, fam, style: str, gender_values, age_values, child: str) -> dict:
    out = {}
    for g in gender_values:
        for a in age_values:
            if a == child:
                text = fam.child.forms[g]
            elif kind == "j":
                text = f"{fam.adjective.forms[a]} {fam.adult.forms[g]}"
            else:
                text = fam.adult.forms[g]
            out[(g, a)] = apply_style(style, text)
    return out


def template(tok: Tokens, b: Binding, lex: Lexicon, active: frozenset) -> Template:
    text, low, words, gaps = tok.text, tok.low, tok.words, tok.gaps
    at = {k for x in b.persons for y in x.cues for k in range(y.t0, y.t1)}
    cells = lex.cells
    slots, values, refs = [], [], []          # refs: (c0, c1, key, rendered for the real values)
    ordinal = 0
    normalised = False
    snaps = []
    attr_order = list(lex.attributes)
    age_slot = {}                              # id(person) -> its age slot
    for per in b.persons:
        plan = _cell_plan(per, lex, active, tok)
        joint = {id(plan[1])} | ({id(plan[2])} if plan[2] is not None else set()) if plan else set()
        slot_of = {}
        for a in attr_order:
            if a not in active:
                continue
            cl = [c for c in per.cues if c.par is not None and c.par.attribute == a and not c.negative]
            if not cl and not (plan and a == cells.age):
                continue
            slot_of[a] = len(slots)
            slots.append((ordinal, a))
            values.append(per.values[a])
        if not slot_of:
            continue
        ordinal += 1
        if cells is not None and cells.age in slot_of:
            age_slot[id(per)] = slot_of[cells.age]
        mine = []
        for c in per.cues:
            if c.par is None or c.negative or c.par.attribute not in slot_of or id(c) in joint:
                continue
            key = ("w", slot_of[c.par.attribute], c.par.pid, c.style)
            mine.append((c.c0, c.c1, key, apply_style(c.style, c.par.forms[c.value]), c, c.par.attribute))
        if plan:
            kind, noun, adj = plan
            first = adj or noun
            fam = cells.family(noun.par)
            style = first.style if first.style in ("natural", "lower", "title", "upper") else "natural"
            key = (kind, slot_of[cells.gender], slot_of[cells.age], fam.adult.pid, style)
            vals = (per.values[cells.gender], per.values[cells.age])
            rendered = _cell_table(kind, fam, style, (vals[0],), (vals[1],), cells.child)[vals]
            noun.in_cell = True
            mine.append((first.c0, noun.c1, key, rendered, first, cells.age if kind == "j" else cells.gender))
        for c0, c1, key, rendered, c, a in mine:
            refs.append((c0, c1, key))
            surface = text[c0:c1]
            if rendered != surface:
                normalised = True
                snaps.append((surface, rendered, a, per.values[a]))
            p = c.t0 - 1
            if p >= 0 and low[p] in ("a", "an") and p not in at and _ARTICLE_GAP_RE.match(gaps[c.t0]):
                art = words[p]
                if art in ("a", "an"):
                    ast = "lower"
                elif art == "An":
                    ast = "title"
                elif art == "AN":
                    ast = "upper"
                elif art == "A":
                    ast = "upper" if c.style == "upper" else "title"
                else:
                    continue
                if art != article(ast, rendered):
                    normalised = True
                refs.append((tok.spans[p][0], tok.spans[p][1], ("a", key, ast)))
    refs.sort(key=lambda r: r[0])
    literals, pos = [], 0
    for c0, c1, _ in refs:
        literals.append(text[pos:c0])
        pos = c1
    literals.append(text[pos:])
    ref_t, lit_t, slot_t = tuple(r[2] for r in refs), tuple(literals), tuple(slots)
    spaces = _spaces(ref_t, slot_t, lex)
    older = _older(tok, b, lex, age_slot, spaces)
    return Template((lit_t, ref_t, slot_t, spaces, older), tuple(values), slot_t, ref_t, lit_t, normalised, ordinal,
                    tuple(snaps), spaces, older)


def _older(tok: Tokens, b: Binding, lex: Lexicon, age_slot: dict, spaces: tuple) -> tuple:
    """Kinship keeps candidates coherent: a child a person calls theirs ("an old man and his grandson", "a young
    mom with her toddler") is younger than that person in every candidate, so no candidate reads "a girl and
    her senior".  The child is a person whose age space holds the child value, named right after the other
    person's possessive pronoun; the pair is public (the same words in every candidate)."""
    cells = lex.cells
    if cells is None or len(age_slot) < 2:
        return ()
    out = []
    for a in b.persons:
        for c in a.cues:
            if c.role != "pronoun" or c.par is None or c.par.case != "possessive" or id(a) not in age_slot:
                continue
            for other in b.persons:
                if other is a or id(other) not in age_slot or not 0 <= other.first - c.t1 <= 1:
                    continue
                if cells.child in spaces[age_slot[id(other)]] and all(
                        tok.gaps[k].strip(" \t") == "" for k in range(c.t1, other.first + 1)):
                    out.append((age_slot[id(a)], age_slot[id(other)]))
    return tuple(sorted(set(out)))


def _spaces(refs: tuple, slots: tuple, lex: Lexicon) -> tuple:
    """Each slot's values: those every word of the slot can write.  The cell value "child" only where a cell
    noun or an age noun writes it (no "little doctor")."""
    cells = lex.cells
    out = []
    for si, (person, a) in enumerate(slots):
        vals = list(lex.attributes[a])
        child_ok = False
        for ref in refs:
            if ref[0] == "w" and ref[1] == si:
                par = paradigm_by_pid(lex, ref[2])
                vals = [v for v in vals if v in par.forms]
                child_ok = child_ok or par.role == "noun"
            elif ref[0] in ("j", "n") and si in ref[1:3]:
                child_ok = True
            elif cells is not None and ref[0] == "w" and ref[2] in cells.child_capable and slots[ref[1]][0] == person:
                child_ok = True                       # "his teenage daughter": a child may be called so
        if cells is not None and a == cells.age and not child_ok:
            vals = [v for v in vals if v != cells.child]
        out.append(tuple(vals))
    return tuple(out)


def read(text: str, lex: Lexicon, active: frozenset) -> Reading:
    """Stages 1-3 and the template of one text."""
    tok = tokenize(text)
    cs = find_cues(tok, lex)
    b = bind(tok, cs, lex, active)
    return Reading(tok, cs, b, template(tok, b, lex, active))


@lru_cache(maxsize=16384)
def read_back(text: str, lex: Lexicon, active: frozenset) -> tuple[bool, tuple, tuple]:
    """What render_all checks of a candidate read back: (contradicts itself, template key, slot values).
    Memoised (a lexicon is never changed once loaded): checking closure expands every candidate of a block,
    and each of them renders and reads back the same product, thousands of texts for two described people."""
    r = read(text, lex, active)
    return bool(r.binding.contradictions), r.template.key, r.template.values


def renderers(t: Template, lex: Lexicon) -> list:
    """For each ref: (slot indices, {values of those slots: rendered string})."""

    def table(key):
        if key[0] == "w":
            par = paradigm_by_pid(lex, key[2])
            return (key[1],), {(v,): apply_style(key[3], par.forms[v]) for v in t.spaces[key[1]]}
        if key[0] in ("j", "n"):
            fam = lex.cells.by_pid[key[3]]
            return (key[1], key[2]), _cell_table(key[0], fam, key[4], t.spaces[key[1]], t.spaces[key[2]],
                                                 lex.cells.child)
        sis, inner = table(key[1])
        return sis, {vals: article(key[2], s) for vals, s in inner.items()}

    return [table(ref) for ref in t.refs]


def render_all(t: Template, lex: Lexicon, active: frozenset) -> tuple[list, int, int]:
    """(candidates, real_index, combinations); real_index -1 when the real combination does not read back."""
    spaces = t.spaces
    combos = 1
    for sp in spaces:
        combos *= len(sp)
    rends = renderers(t, lex)
    lits = t.literals
    cands: list[str] = []
    real_index = -1
    rank = [{v: k for k, v in enumerate(lex.attributes[a])} for _, a in t.slots]     # the attribute's own order
    for vals in itertools.product(*spaces):
        if any(rank[o][vals[o]] <= rank[y][vals[y]] for o, y in t.older):
            continue                                   # a parent no older than their child
        parts = [lits[0]]
        for k, (sis, tab) in enumerate(rends):
            parts.append(tab[tuple(vals[s] for s in sis)])
            parts.append(lits[k + 1])
        c = "".join(parts)
        if combos > 1:
            contradicts, key, values = read_back(c, lex, active)
            if contradicts or key != t.key or values != vals:
                continue
        if vals == t.values:
            real_index = len(cands)
        cands.append(c)
    return cands, real_index, combos


def coherence_failures(candidates, lex: Lexicon, active: frozenset) -> list[str]:
    """Candidates that contradict themselves: one person given two values of an attribute, or a word
    that implies a value (girl -> young) next to a different swapped value.  The server could throw
    such a candidate out, so the real protection would be smaller than N."""
    bad = []
    for c in candidates:
        r = read(c, lex, active)
        # a contradiction, or a word the reader had to rewrite (an implied value next to a different one,
        # "a old"): either way the text is not a candidate the expander would write
        if r.binding.contradictions or r.template.normalised:
            bad.append(c)
    return bad
