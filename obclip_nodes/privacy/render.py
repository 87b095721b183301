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
    key: tuple                      # the public template: literals, refs, slots
    values: tuple                   # the value of each slot
    slots: tuple                    # ((person ordinal, attribute), ...)
    refs: tuple
    literals: tuple
    normalised: bool
    persons: int                    # people with at least one slot
    snaps: tuple = ()               # (what the user wrote, what every candidate writes, attribute, value)


@dataclass
class Reading:
    tok: Tokens
    cues: Cues
    binding: Binding
    template: Template


def template(tok: Tokens, b: Binding, lex: Lexicon, active: frozenset) -> Template:
    text, low, words, gaps = tok.text, tok.low, tok.words, tok.gaps
    at = None
    slots, values, refs = [], [], []
    ordinal = 0
    normalised = False
    snaps = []
    attr_order = list(lex.attributes)
    for per in b.persons:
        used = False
        for a in attr_order:
            if a not in active:
                continue
            cl = [c for c in per.cues if c.par is not None and c.par.attribute == a and not c.negative]
            if not cl:
                continue
            used = True
            si = len(slots)
            slots.append((ordinal, a))
            values.append(per.values[a])
            for c in cl:
                refs.append((c.c0, c.c1, ("w", si, c.par.pid, c.style)))
                surface = text[c.c0:c.c1]
                rendered = apply_style(c.style, c.par.forms[c.value])
                if rendered != surface:
                    normalised = True
                    snaps.append((surface, rendered, a, c.value))
                p = c.t0 - 1
                if at is None:
                    at = {k for x in b.persons for y in x.cues for k in range(y.t0, y.t1)}
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
                    refs.append((tok.spans[p][0], tok.spans[p][1], ("a", si, c.par.pid, c.style, ast)))
        if used:
            ordinal += 1
    refs.sort(key=lambda r: r[0])
    literals, pos = [], 0
    for c0, c1, _ in refs:
        literals.append(text[pos:c0])
        pos = c1
    literals.append(text[pos:])
    ref_t, lit_t, slot_t = tuple(r[2] for r in refs), tuple(literals), tuple(slots)
    return Template((lit_t, ref_t, slot_t), tuple(values), slot_t, ref_t, lit_t, normalised, ordinal, tuple(snaps))


def read(text: str, lex: Lexicon, active: frozenset) -> Reading:
    """Stages 1-3 and the template of one text."""
    tok = tokenize(text)
    cs = find_cues(tok, lex)
    b = bind(tok, cs, lex, active)
    return Reading(tok, cs, b, template(tok, b, lex, active))


def renderers(t: Template, lex: Lexicon) -> list:
    """For each ref: (slot, {value: rendered string})."""
    out = []
    for ref in t.refs:
        par = paradigm_by_pid(lex, ref[2])
        if ref[0] == "w":
            out.append((ref[1], {v: apply_style(ref[3], s) for v, s in par.forms.items()}))
        else:
            out.append((ref[1], {v: article(ref[4], apply_style(ref[3], s)) for v, s in par.forms.items()}))
    return out


def render_all(t: Template, lex: Lexicon, active: frozenset) -> tuple[list, int, int]:
    """(candidates, real_index, combinations); real_index -1 when the real combination does not read back."""
    spaces = [lex.attributes[a] for _, a in t.slots]
    combos = 1
    for sp in spaces:
        combos *= len(sp)
    rends = renderers(t, lex)
    lits = t.literals
    cands: list[str] = []
    real_index = -1
    for vals in itertools.product(*spaces):
        parts = [lits[0]]
        for k, (si, table) in enumerate(rends):
            parts.append(table[vals[si]])
            parts.append(lits[k + 1])
        c = "".join(parts)
        if combos > 1:
            back = read(c, lex, active)
            if back.binding.contradictions or back.template.key != t.key or back.template.values != vals:
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
