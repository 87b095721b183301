"""The Candidate Expander: prompt -> the canonical candidate set of ObCLIP (Algorithm 1, lines 1-2).

How it works
------------
1. **Parse.**  The prompt is split into letter-runs ("words") and the text between them.  Words
   are matched against the lexicon (longest match first; ``ignore_phrases`` are skipped).  Each
   match is a *paradigm* (a row such as woman/man) and a *value* (female), written in a *style*
   (natural, lower, title, upper).
2. **People.**  Person heads are gendered nouns, titles, nominal adjectives ("an Asian" in the
   ``paper`` preset) and attribute-free person nouns (doctor, person, ...); adjacent heads form one
   head ("woman doctor").  An age/ethnicity/gender adjective describes the head it precedes when
   only adjectives, at most three other words (not stop words) and ``, - ( ) [ ] :`` or weights lie
   between ("young red haired woman", "a (young:1.2) woman"), else the head right before it
   ("woman asian").  Otherwise it does not describe a person and is left alone ("black cat",
   "white wine", "old house", "a young forest").  "the/this/that <noun>" in a later sentence joins
   the most recent earlier person that shares the noun and agrees on every known attribute; a pronoun joins the
   most recent earlier singular person that agrees on gender (else the next one, else it is a
   person of its own).  ``her`` is possessive when a non-function word follows it, else an object;
   ``his`` likewise possessive or independent ("hers").
3. **Template.**  Every (person, attribute) with at least one word is a *slot*; the template is
   the text with each slot word (and each ``a``/``an`` right before one) cut out.  The values of
   a slot are the attribute's whole value space, in lexicon order.
4. **Candidates.**  All combinations in canonical order (``itertools.product`` over slots in
   order of first mention, attributes in lexicon order, values in lexicon order) are rendered,
   and a combination is kept only if parsing its text gives back *this template and these
   values*.  That check makes the core property hold by construction::

       for every candidate c of expand_prompt(p):
           expand_prompt(c).candidates == expand_prompt(p).candidates   # same strings, same order
           expand_prompt(c).candidates[expand_prompt(c).real_index] == c

   N is the product of the value-space sizes of all slots (1 when nothing is found) unless
   the check drops combinations (only when the prompt's structure, e.g. which person a pronoun
   refers to, depends on the values); ``server_learns`` says so when it happens.

Normalisation: none, except that an ``a``/``an`` right before a swapped word is rewritten by the
same rule in every candidate ("a old man" becomes "an old man" in the real candidate too;
``Expansion.normalised`` is then True).  Otherwise ``candidates[real_index]`` is the prompt verbatim.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from typing import Iterable

from .errors import ExpansionError
from .lexicon import Lexicon, Paradigm, apply_style, load_lexicon

_WORD_RE = re.compile(r"[^\W\d_]+")
_SPLIT_RE = re.compile(r"([^\W\d_]+)")
_CHAIN_GAP_RE = re.compile(r"^(?:[ \t,\-()\[\]{}:]|\d+(?:\.\d+)?)*$")
_SENTENCE_END_RE = re.compile(r"[.;!?]")
_BACK_GAP_RE = re.compile(r"^[ \t,]*$")
_ARTICLE_GAP_RE = re.compile(r"^[ \t(\[{]+$")
_DETERMINERS = frozenset({"a", "an", "the", "one", "this", "that", "another", "every", "each", "any", "some"})
_DEFINITE = frozenset({"the", "this", "that", "these", "those"})
_MAX_FREE_WORDS = 3
_AN_EXCEPTIONS = ("eu", "uni", "use", "usu", "uti", "one", "once", "ewe", "ufo", "uk")
_AN_H = ("hour", "honest", "honor", "honour", "heir")


def _needs_an(word: str) -> bool:
    w = word.lower()
    if w.startswith(_AN_H):
        return True
    return w[:1] in "aeiou" and not w.startswith(_AN_EXCEPTIONS)


def _article(style: str, surface: str) -> str:
    return apply_style(style, "an" if _needs_an(surface) else "a")


def _find_phrases(low: list, gaps: list, index: dict):
    """Yield (first token, end token, payload) of non-overlapping phrase matches, longest first."""
    n = len(low)
    done = 0
    for i in [i for i, w in enumerate(low) if w in index]:
        if i < done:
            continue
        for words, seps, payload in index[low[i]]:
            k = len(words)
            if i + k > n:
                continue
            for j in range(1, k):
                if low[i + j] != words[j] or gaps[i + j] != seps[j - 1]:
                    break
            else:
                yield (i, i + k, payload)
                done = i + k
                break


@dataclass(eq=False)
class _Item:
    t0: int                # first token
    t1: int                # one past the last token
    c0: int                # char span
    c1: int
    par: Paradigm
    value: str
    style: str
    person: "_Person | None" = None


@dataclass(eq=False)
class _Group:               # one head (run of person nouns) plus the adjectives that describe it
    t0: int
    t1: int
    number: str
    keys: set
    items: list
    start: int = 0          # first token of the head and its adjectives


@dataclass(eq=False)
class _Person:
    number: str
    keys: set
    values: dict
    items: list
    first: int
    last: int


@dataclass
class _Parse:
    key: tuple                      # the public template: literals, refs, slots
    values: tuple                   # the value of each slot
    slots: tuple                    # ((person ordinal, attribute), ...)
    refs: tuple
    literals: tuple
    normalised: bool
    persons: int
    # local-only diagnostics (never part of the template)
    items: list = field(default_factory=list)
    unattached: list = field(default_factory=list)
    case_misses: list = field(default_factory=list)


def _parse(text: str, lex: Lexicon, active: frozenset, collect: bool = False) -> _Parse:
    parts = _SPLIT_RE.split(text)          # gap0, word0, gap1, word1, ..., gapN
    words = parts[1::2]
    gaps = parts[0::2]                      # gaps[i]: the text right before word i
    n = len(words)
    if n == 0:
        return _Parse(((text,), (), ()), (), (), (), (text,), False, 0)
    offs = list(itertools.accumulate(map(len, parts)))   # word i spans offs[2i]:offs[2i+1]
    lowtext = text.lower()
    low = _SPLIT_RE.split(lowtext)[1::2] if len(lowtext) == len(text) else []
    if len(low) != n:
        low = [w.lower() for w in words]
    gap = gaps.__getitem__
    ignored = [False] * n
    if lex.ignore_phrases and not lex.ignore_phrases.keys().isdisjoint(low):
        for i, j, _ in _find_phrases(low, gaps, lex.ignore_phrases):
            for k in range(i, j):
                ignored[k] = True

    # -- 1. lexicon matches -------------------------------------------------------------------
    items: list[_Item] = []
    item_at: list[_Item | None] = [None] * n
    case_misses: list[str] = []
    entries = lex.entries
    free_from = 0
    for i in [i for i, w in enumerate(low) if w in entries]:
        if i < free_from or ignored[i]:
            continue
        matched = None
        for e in entries[low[i]]:
            k = len(e.words)
            if matched is not None and k < len(matched[0].words):
                break
            if i + k > n:
                continue
            ok = True
            for j in range(1, k):
                if ignored[i + j] or low[i + j] != e.words[j] or gaps[i + j] != e.seps[j - 1]:
                    ok = False
                    break
            if ok:
                if matched is None:
                    matched = [e]
                else:
                    matched.append(e)
        if matched is None:
            continue
        k = len(matched[0].words)
        c0, c1 = offs[2 * i], offs[2 * (i + k) - 1]
        surface = text[c0:c1]
        readings = []
        for e in matched:
            nat = e.paradigm.forms[e.value]
            for st in e.paradigm.styles:
                if apply_style(st, nat) == surface:
                    readings.append((e, st))
                    break
        free_from = i + k
        if not readings:
            if collect:
                case_misses.append(surface)
            continue
        if len(readings) > 1:       # her (object|possessive), his (possessive|independent)
            nxt = i + k
            dependent = (nxt < n and not ignored[nxt] and gaps[nxt] != "" and gaps[nxt].strip(" \t") == ""
                         and low[nxt] not in lex.stop_words and low[nxt] not in lex.object_followers)
            want = ("possessive",) if dependent else ("object", "independent")
            pick = [r for r in readings if r[0].paradigm.case in want]
            readings = pick or readings[:1]
        e, st = readings[0]
        it = _Item(i, i + k, c0, c1, e.paradigm, e.value, st)
        items.append(it)
        for j in range(i, i + k):
            item_at[j] = it

    # -- 2. heads -----------------------------------------------------------------------------
    pn = lex.person_nouns
    heads = {}                      # token -> (number, key, item or None, end token)
    for it in items:
        if it.par.role == "noun":
            heads[it.t0] = (it.par.number, ("p", it.par.pid), it, it.t1)
        elif it.par.role == "title":
            heads[it.t0] = ("title", ("p", it.par.pid), it, it.t1)
    for i in [i for i, w in enumerate(low) if w in pn]:
        if item_at[i] is None and not ignored[i]:
            heads[i] = (pn[low[i]], ("w", low[i]), None, i + 1)
    groups: list[_Group] = []
    group_at: dict[int, _Group] = {}      # first token -> group
    group_end: dict[int, _Group] = {}     # last token -> group
    g = None
    for i in sorted(heads):
        number, key, it, end = heads[i]
        if (g is not None and number != "title" and g.number != "title" and g.t1 == i
                and gaps[i] != "" and gaps[i].strip(" \t") == ""):
            g.t1 = end
            g.number = number
            g.keys.add(key)
            if it is not None:
                g.items.append(it)
            continue
        g = _Group(i, end, number, {key}, [it] if it is not None else [])
        groups.append(g)
    for g in groups:
        if g.number == "title":
            g.number = "singular"
    for g in groups:
        group_at[g.t0] = g
        group_end[g.t1 - 1] = g

    adjectives = [it for it in items if it.par.role == "adjective"]

    def forward(it: _Item) -> _Group | None:
        pos = it.t1
        free = 0
        while pos < n:
            if not _CHAIN_GAP_RE.match(gap(pos)):
                return None
            g = group_at.get(pos)
            if g is not None:
                return g
            nxt = item_at[pos]
            if nxt is not None:
                if nxt.par.role != "adjective":
                    return None
                pos = nxt.t1
                continue
            if ignored[pos] or low[pos] in lex.stop_words:
                return None
            free += 1
            if free > _MAX_FREE_WORDS:
                return None
            pos += 1
        return None

    # nominal adjectives ("an Asian", "the female") become heads of their own
    for it in adjectives:
        if not it.par.nominal or forward(it) is not None:
            continue
        p = it.t0 - 1
        if p < 0 or low[p] not in _DETERMINERS or gap(it.t0).strip(" \t") != "" or item_at[p] is not None:
            continue
        q = it.t1
        if q < n and gap(q).strip(" \t") == "" and low[q] not in lex.stop_words:
            continue
        g = _Group(it.t0, it.t1, "singular", {("p", it.par.pid)}, [it])
        groups.append(g)
        group_at[g.t0] = g
        group_end[g.t1 - 1] = g
    groups.sort(key=lambda g: g.t0)
    for g in groups:
        g.start = g.t0

    unattached: list[_Item] = []
    for it in adjectives:
        if it in (g.items[0] for g in groups if g.items and g.t0 == it.t0):
            continue
        g = forward(it)
        if g is None:
            p = it.t0 - 1
            if p >= 0 and p in group_end and _BACK_GAP_RE.match(gap(it.t0)):
                g = group_end[p]
        if g is None:
            unattached.append(it)
            continue
        g.items.append(it)
        if it.t0 < g.start:
            g.start = it.t0

    # -- 3. people: coreference of definite mentions, then pronouns ------------------------------
    persons: list[_Person] = []

    def values_of(itms) -> dict:
        vals: dict = {}
        for it in itms:
            a = it.par.attribute
            if a in vals and vals[a] != it.value:
                if a in active:
                    other = next(x for x in itms if x.par.attribute == a and x.value == vals[a])
                    raise ExpansionError(
                        f"'{text[other.c0:other.c1]}' and '{text[it.c0:it.c1]}' give two different {a} values to one "
                        f"person; rephrase so each person has one {a}, or leave {a} out of the protected attributes")
                continue
            vals[a] = it.value
        return vals

    sentence = None
    for g in groups:
        vals = values_of(g.items)
        target = None
        s = g.start - 1
        if s >= 0 and low[s] in _DEFINITE and item_at[s] is None and gap(g.start).strip(" \t") == "":
            if sentence is None:
                sentence = list(itertools.accumulate(1 if _SENTENCE_END_RE.search(x) else 0 for x in gaps))
            for per in sorted(persons, key=lambda p: -p.last):
                if sentence[per.last] == sentence[g.start]:
                    continue
                if per.number == g.number and per.keys & g.keys and all(
                        per.values.get(a, v) == v for a, v in vals.items()):
                    target = per
                    break
        if target is None:
            persons.append(_Person(g.number, set(g.keys), vals, list(g.items), g.start, g.t1 - 1))
        else:
            target.keys |= g.keys
            target.values.update(vals)
            target.items.extend(g.items)
            target.last = g.t1 - 1
    for it in items:
        if it.par.role != "pronoun":
            continue
        a = it.par.attribute
        target = None
        before = sorted((p for p in persons if p.number == "singular" and p.first < it.t0), key=lambda p: -p.last)
        for per in before:
            if per.values.get(a, it.value) == it.value:
                target = per
                break
        if target is None:
            after = sorted((p for p in persons if p.number == "singular" and p.first > it.t0), key=lambda p: p.first)
            for per in after:
                if per.values.get(a, it.value) == it.value:
                    target = per
                    break
        if target is None:
            persons.append(_Person("singular", set(), {a: it.value}, [it], it.t0, it.t0))
        else:
            target.values[a] = it.value
            target.items.append(it)
            target.last = max(target.last, it.t0)
            target.first = min(target.first, it.t0)

    # -- 4. slots and template ------------------------------------------------------------------
    persons.sort(key=lambda p: p.first)
    slots = []
    values = []
    refs = []                      # (c0, c1, ref)
    ordinal = 0
    attr_order = list(lex.attributes)
    normalised = False
    for per in persons:
        used = False
        for a in attr_order:
            if a not in active:
                continue
            its = [it for it in per.items if it.par.attribute == a]
            if not its:
                continue
            used = True
            si = len(slots)
            slots.append((ordinal, a))
            values.append(per.values[a])
            for it in its:
                it.person = per
                refs.append((it.c0, it.c1, ("w", si, it.par.pid, it.style)))
                p = it.t0 - 1
                if p >= 0 and low[p] in ("a", "an") and item_at[p] is None and not ignored[p] \
                        and _ARTICLE_GAP_RE.match(gap(it.t0)):
                    art = words[p]
                    if art in ("a", "an"):
                        ast = "lower"
                    elif art == "An":
                        ast = "title"
                    elif art == "AN":
                        ast = "upper"
                    elif art == "A":
                        ast = "upper" if it.style == "upper" else "title"
                    else:
                        continue
                    if art != _article(ast, text[it.c0:it.c1]):
                        normalised = True
                    refs.append((offs[2 * p], offs[2 * p + 1], ("a", si, it.par.pid, it.style, ast)))
        if used:
            ordinal += 1
    refs.sort(key=lambda r: r[0])
    literals = []
    pos = 0
    for c0, c1, _ in refs:
        literals.append(text[pos:c0])
        pos = c1
    literals.append(text[pos:])
    ref_t = tuple(r[2] for r in refs)
    lit_t = tuple(literals)
    slot_t = tuple(slots)
    res = _Parse((lit_t, ref_t, slot_t), tuple(values), slot_t, ref_t, lit_t, normalised, ordinal)
    if collect:
        res.items = items
        res.unattached = unattached
        res.case_misses = case_misses
        res.persons = ordinal
        res.all_persons = len(persons)  # type: ignore[attr-defined]
    return res


def _renderers(parse: _Parse, lex: Lexicon):
    """For each ref: a dict value -> rendered string."""
    out = []
    for ref in parse.refs:
        par = lex.paradigms[ref[2]]
        if ref[0] == "w":
            out.append((ref[1], {v: apply_style(ref[3], s) for v, s in par.forms.items()}))
        else:
            out.append((ref[1], {v: _article(ref[4], apply_style(ref[3], s)) for v, s in par.forms.items()}))
    return out


@dataclass(frozen=True)
class Expansion:
    """The result of :func:`expand_prompt`.

    Public (may be sent to / shown to the server): ``candidates``, ``attributes``, ``slots``, ``n``
    -- exactly :meth:`public_view`.  Private: ``real_index`` and ``prompt``; never send them.
    """

    candidates: tuple[str, ...]
    real_index: int = field(repr=False)
    attributes: tuple[str, ...]
    slots: tuple[dict, ...]
    server_learns: str
    leak_warnings: tuple[str, ...]
    lexicon: str
    combinations: int                 # product of the value-space sizes (N unless some were dropped)
    normalised: bool = False
    prompt: str = field(default="", repr=False)

    @property
    def n(self) -> int:
        return len(self.candidates)

    @property
    def real_prompt(self) -> str:
        return self.candidates[self.real_index]

    def public_view(self) -> dict:
        """JSON-able: exactly what the server may see.  Never contains the real index or prompt."""
        return {
            "candidates": list(self.candidates),
            "attributes": list(self.attributes),
            "slots": [{"person": s["person"], "attribute": s["attribute"], "values": list(s["values"])}
                      for s in self.slots],
            "n": self.n,
        }


def _active(lex: Lexicon, attributes) -> frozenset:
    if attributes is None:
        return frozenset(lex.attributes)
    if isinstance(attributes, str):
        attributes = [a for a in re.split(r"[\s,]+", attributes) if a]
    try:
        names = list(attributes)
    except TypeError:
        raise ExpansionError(f"attributes must be a list of attribute names such as {list(lex.attributes)}, "
                             f"not {type(attributes).__name__}") from None
    unknown = [a for a in names if not isinstance(a, str) or a not in lex.attributes]
    if unknown:
        raise ExpansionError(f"unknown attribute(s) {', '.join(map(repr, unknown))} for lexicon '{lex.name}'; "
                             f"known attributes: {', '.join(lex.attributes)}")
    return frozenset(names)


def _too_many(lex: Lexicon, slots, n: int, cap: int, exact: bool) -> ExpansionError:
    attrs = sorted({a for _, a in slots})
    size = {a: len(lex.attributes[a]) for a in attrs}
    per_attr = {a: sum(1 for _, b in slots if b == a) for a in attrs}
    formula = " x ".join(f"{a} {size[a]}" + (f"^{per_attr[a]}" if per_attr[a] > 1 else "") for a in attrs)
    fits = []
    for r in range(len(attrs) - 1, 0, -1):
        for keep in itertools.combinations(attrs, r):
            m = 1
            for a in keep:
                m *= size[a] ** per_attr[a]
            if m <= cap:
                fits.append((m, keep))
    fits.sort(key=lambda x: (-x[0], x[1]))
    what = "" if exact else "at least "
    msg = (f"this prompt would need {what}{n} candidates ({formula}, over {len({p for p, _ in slots})} person(s)), "
           f"more than max_candidates={cap}. ")
    if fits:
        opts = "; ".join(f"attributes={list(k)} (N={m}, drops {', '.join(a for a in attrs if a not in k)})"
                         for m, k in fits[:3])
        msg += f"Protect fewer attributes, e.g. {opts}; or raise max_candidates."
    else:
        msg += "Even one attribute is too many here: describe fewer people, or raise max_candidates."
    return ExpansionError(msg)


def expand_prompt(prompt: str, attributes: Iterable[str] | None = None,
                  lexicon: "str | os.PathLike | Lexicon | None" = None, *, max_candidates: int = 32) -> Expansion:
    """Expand ``prompt`` into ObCLIP's candidate set.  See the module docstring."""
    if not isinstance(prompt, str):
        raise ExpansionError(f"the prompt must be text (str), not {type(prompt).__name__}; connect a text input")
    if not prompt.strip():
        raise ExpansionError("the prompt is empty; type a prompt to expand")
    if isinstance(max_candidates, bool) or not isinstance(max_candidates, int) or max_candidates < 1:
        raise ExpansionError(f"max_candidates must be a positive integer, not {max_candidates!r}")
    lex = load_lexicon(lexicon)
    active = _active(lex, attributes)
    real = _parse(prompt, lex, active, collect=True)
    spaces = [lex.attributes[a] for _, a in real.slots]
    combos = 1
    for sp in spaces:
        combos *= len(sp)
    if combos > max(16 * max_candidates, 64):
        raise _too_many(lex, real.slots, combos, max_candidates, exact=False)
    rends = _renderers(real, lex)
    lits = real.literals
    cands: list[str] = []
    real_index = -1
    for vals in itertools.product(*spaces):
        parts = [lits[0]]
        for k, (si, table) in enumerate(rends):
            parts.append(table[vals[si]])
            parts.append(lits[k + 1])
        c = "".join(parts)
        if combos > 1:
            try:
                back = _parse(c, lex, active)
            except ExpansionError:
                continue
            if back.key != real.key or back.values != vals:
                continue
        if vals == real.values:
            real_index = len(cands)
        cands.append(c)
    if real_index < 0:
        raise ExpansionError(
            "could not build a candidate set that reads back the same for every candidate (the prompt's structure "
            "depends on its sensitive words in a way this expander cannot vary safely); rephrase, e.g. replace "
            "pronouns with nouns, or protect fewer attributes")
    if len(cands) > max_candidates:
        raise _too_many(lex, real.slots, len(cands), max_candidates, exact=True)
    slots = tuple({"person": p, "attribute": a, "values": tuple(lex.attributes[a])} for p, a in real.slots)
    attrs = tuple(sorted({a for _, a in real.slots}))
    warnings = _leak_warnings(prompt, real, lex, active, attrs)
    learns = _server_learns(lex, real, slots, attrs, len(cands), combos, warnings)
    return Expansion(candidates=tuple(cands), real_index=real_index, attributes=attrs, slots=slots,
                     server_learns=learns, leak_warnings=tuple(warnings), lexicon=lex.name, combinations=combos,
                     normalised=real.normalised, prompt=prompt)


def _leak_warnings(prompt: str, real: _Parse, lex: Lexicon, active: frozenset, attrs: tuple) -> list[str]:
    out: list[str] = []
    seen: set = set()

    def add(key, msg):
        if key not in seen:
            seen.add(key)
            out.append(msg)

    has_person = getattr(real, "all_persons", 0) > 0
    for it in real.items:
        surface = prompt[it.c0:it.c1]
        swapped = it.person is not None
        family = "/".join(it.par.forms.values())      # the same text whichever value is real
        for a, what in it.par.implies.items():
            if a in lex.attributes and (swapped or a in attrs):
                if a in attrs and swapped:
                    add(("imp", family, a),
                        f"'{family}' is swapped for {it.par.attribute} but also implies {a} ({what}); with {a} "
                        f"protected, candidates that contradict it look implausible to the server")
                else:
                    add(("imp", family, a),
                        f"'{family}' implies {a} ({what}), which is not swapped, so the server sees it")
        if not swapped and it.par.attribute in active and it.par.role != "pronoun" and has_person:
            if it in real.unattached:
                add(("un", surface.lower()),
                    f"'{surface}' ({it.par.attribute}) was left unchanged because it does not describe a person "
                    f"here; if it does, put it right before the person word (e.g. '{surface} woman')")
    for s in real.case_misses:
        add(("case", s.lower()),
            f"'{s}' looks like a sensitive word but its capitalisation cannot be varied safely, so it was left "
            f"unchanged and the server sees it; write it in lower case or in the lexicon's usual case")
    parts = _SPLIT_RE.split(prompt)
    offs = list(itertools.accumulate(map(len, parts)))
    covered = {k for it in real.items for k in range(it.t0, it.t1)}   # "aged" inside "middle-aged" is no leak
    for i, j, (word, a, kind) in _find_phrases([w.lower() for w in parts[1::2]], parts[0::2], lex.leak_words):
        if any(k in covered for k in range(i, j)):
            continue
        surface = prompt[offs[2 * i]:offs[2 * j - 1]]
        if kind == "unswapped":
            add(("lw", word.lower()),
                f"'{surface}' gives away {a} and is not swapped (it is not in lexicon '{lex.name}''s {a} forms); "
                f"the server sees it -- rephrase with a swappable word or use a custom lexicon")
        elif a in attrs:
            add(("lw", word.lower()),
                f"'{surface}' correlates with {a} but is identical in every candidate; under a non-uniform prior "
                f"it helps the server guess the real {a} -- remove it if {a} must stay private")
    return out


def _server_learns(lex: Lexicon, real: _Parse, slots, attrs, n: int, combos: int, warnings) -> str:
    if n == 1:
        return (f"Nothing sensitive was found (lexicon '{lex.name}'), so there is one candidate: the server sees "
                f"your prompt exactly and nothing is protected.")
    spaces = "; ".join(f"{a}: {', '.join(lex.attributes[a])}" for a in attrs)
    people = real.persons
    text = (f"The server receives all N={n} candidate prompts and cannot tell which one is yours: under a uniform "
            f"prior each is yours with probability 1/{n}. It learns every word that is the same in all candidates "
            f"(everything except the swapped words), that the prompt describes {people} "
            f"{'person' if people == 1 else 'people'} with {', '.join(attrs)} "
            f"({len(slots)} slot{'s' if len(slots) != 1 else ''}), the value spaces ({spaces}) and N. "
            f"It does not learn your values of {', '.join(attrs)}.")
    if n < combos:
        text += (f" Only {n} of the {combos} combinations are candidates: the others would read as a differently "
                 f"structured prompt (for example a pronoun tied to another person), so the server also learns that "
                 f"the real combination is among these {n}.")
    if warnings:
        text += (f" {len(warnings)} leak warning(s): words that give away or correlate with these attributes stay "
                 f"visible, which weakens the 1/{n} bound when the server has a prior.")
    return text
