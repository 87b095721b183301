"""The Candidate Expander: prompt -> the canonical candidate set of ObCLIP (Algorithm 1, lines 1-2).

The pipeline, one module per stage:

1. :mod:`.tokenize` -- words and gaps (weights, tag soup, Midjourney parameters);
2. :mod:`.cues` -- every sensitive word or phrase (lexicon forms, snaps, numeric ages,
   nationalities, sensitive types, names, unknown gendered words);
3. :mod:`.bind` -- which person each cue describes;
4. :mod:`.policy` -- protected / refused / explicitly allowed;
5. :mod:`.render` -- the template, every candidate, and the read-back check that makes the core
   property hold by construction.

N is the product of the value-space sizes of all slots (1 when nothing is found) unless the
read-back check drops combinations (only when the prompt's structure, e.g. which person a pronoun
refers to, depends on the values); ``server_learns`` says so when it happens.  Above ``max_candidates``
the full set C is cut into anonymity blocks (:mod:`.blocks`, a function of C alone) and only the real
candidate's block is returned: ``total`` is |C|, ``block_index`` / ``block_count`` place the block and
``block_learns`` says what it tells the server.

Normalisation: an ``a``/``an`` before a swapped word follows the swapped word, and a snapped word
("teenage", "Nigerian", "30-year-old") is written in its value's canonical form ("young", "Black",
"25-year-old") in every candidate, the real one included; ``Expansion.normalisations`` lists them.
Otherwise ``candidates[real_index]`` is the prompt verbatim.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import blocks as anonymity_blocks
from .bind import contradiction_error
from .cues import find_phrases
from .errors import ExpansionError
from .lexicon import Lexicon, load_lexicon
from .policy import Finding, decide, findings, refusal
from .readable import apply as apply_corrections
from .readable import check as check_readable
from .render import Reading, read, render_all
from .tokenize import tokenize


BLOCK_MAX_COMBINATIONS = 4096   # anonymity blocks are cut from C, rendered in full: the early guard


class CandidateList(tuple):
    """The public candidates (a plain tuple of prompts) plus the run's privacy settings, so that the
    node that sends them can check the negative prompt with the same lexicon and override."""

    lexicon: str | None = None
    allow_unprotected: bool = False
    block: dict | None = None           # Expansion.public_view()["block"] when these are an anonymity block

    @classmethod
    def of(cls, candidates, lexicon=None, allow_unprotected: bool = False, block=None) -> CandidateList:
        out = cls(candidates)
        out.lexicon = lexicon
        out.allow_unprotected = bool(allow_unprotected)
        out.block = dict(block) if block else None
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
    outcome: str = "protected"          # protected | allowed (a refusal raises ExpansionError)
    unprotected: tuple = ()             # Finding per word that reaches the server as written
    normalisations: tuple = ()          # "'teenage' -> 'young' (age: young)" per snapped word
    # anonymity blocks (blocks.py): the candidates are block ``block_index`` of ``block_count`` of the full set
    # of ``total`` candidates; all public (a function of the candidates alone)
    total: int = 0                      # |C|, the full candidate set (== n without blocks)
    block_index: int = 0
    block_count: int = 1
    block_learns: str = ""              # the joint constraint the block reveals, in words ("" without blocks);
                                        # server_learns starts with it and the block's place
    block_worst_ratio: float = 1.0      # max P(value | block) / P(value | C) over slots and values

    @property
    def blocked(self) -> bool:
        return self.block_count > 1

    @property
    def nothing_sensitive(self) -> bool:
        return self.n == 1 and not self.unprotected

    @property
    def n(self) -> int:
        return len(self.candidates)

    @property
    def real_prompt(self) -> str:
        return self.candidates[self.real_index]

    def public_view(self) -> dict:
        """JSON-able: exactly what the server may see.  Never contains the real index or prompt."""
        view = {
            "candidates": list(self.candidates),
            "attributes": list(self.attributes),
            "slots": [{"person": s["person"], "attribute": s["attribute"], "values": list(s["values"])}
                      for s in self.slots],
            "n": self.n,
        }
        if self.blocked:        # which block of the full set: the server can work it out from the candidates
            view["block"] = {"index": self.block_index, "count": self.block_count, "total": self.total}
        return view


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


def _too_many(lex: Lexicon, slots, n: int, cap: int, exact: bool, spaces=None, limit: str = "max_candidates={cap}",
              fix: str = "raise max_candidates") -> ExpansionError:
    attrs = sorted({a for _, a in slots})
    size = {a: max(len(sp) for (_, b), sp in zip(slots, spaces) if b == a) if spaces else len(lex.attributes[a])
            for a in attrs}
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
           f"more than {limit.format(cap=cap)}. ")
    if fits:
        opts = "; ".join(f"attributes={list(k)} (N={m}, drops {', '.join(a for a in attrs if a not in k)})"
                         for m, k in fits[:3])
        msg += f"Protect fewer attributes, e.g. {opts}; or {fix}."
    else:
        msg += f"Even one attribute is too many here: describe fewer people, or {fix}."
    return ExpansionError(msg)


def expand_prompt(prompt: str, attributes: Iterable[str] | None = None,
                  lexicon: str | os.PathLike | Lexicon | None = None, *, max_candidates: int = 40,
                  allow_unprotected: bool = False, flagger=None, blocks: bool = True,
                  max_combinations: int = BLOCK_MAX_COMBINATIONS) -> Expansion:
    """Expand ``prompt`` into ObCLIP's candidate set.  See the module docstring.

    Fails closed: a word that reveals a sensitive type and cannot be swapped raises
    :class:`ExpansionError` naming the word, its type and the fixes -- unless ``allow_unprotected``
    is on, in which case the expansion's ``outcome`` is ``"allowed"`` and ``unprotected`` lists the
    words that reach the server as written.  ``flagger`` (optional, a :class:`.flagger.ModelFlagger`)
    can only add such words.

    More than ``max_candidates`` candidates: with ``blocks`` (default) the full set C (at most
    ``max_combinations`` combinations) is cut into balanced anonymity blocks of at most ``max_candidates``
    and only the real candidate's block is returned (:mod:`.blocks`); without, a refusal."""
    if not isinstance(prompt, str):
        raise ExpansionError(f"the prompt must be text (str), not {type(prompt).__name__}; connect a text input")
    if not prompt.strip():
        raise ExpansionError("the prompt is empty; type a prompt to expand")
    if isinstance(max_candidates, bool) or not isinstance(max_candidates, int) or max_candidates < 1:
        raise ExpansionError(f"max_candidates must be a positive integer, not {max_candidates!r}")
    lex = load_lexicon(lexicon)
    active = _active(lex, attributes)
    tok = tokenize(prompt)
    corrections, unreadable = check_readable(tok, lex)
    text = apply_corrections(tok, corrections) if corrections else prompt
    real = read(text, lex, active)
    err = contradiction_error(real.tok, real.binding.contradictions, active)
    if err is not None:
        raise err
    found = [Finding(u.word, u.type, u.reason, u.fix) for u in unreadable]
    found += findings(real.tok, real.cues, real.binding, lex, active)
    if flagger is not None:
        found += _model_findings(text, flagger, real, found, lex)
    outcome = decide(found, bool(allow_unprotected), lex)
    t = real.template
    combos = 1
    for sp in t.spaces:
        combos *= len(sp)
    if blocks and combos > max_combinations:
        raise _too_many(lex, t.slots, combos, max_combinations, exact=False, spaces=t.spaces,
                        limit="the {cap} combinations that anonymity blocks are cut from",
                        fix="raise that limit (OBCLIP_BLOCK_MAX_COMBINATIONS; the time grows with it)")
    if not blocks and combos > max(16 * max_candidates, 64):
        raise _too_many(lex, t.slots, combos, max_candidates, exact=False, spaces=t.spaces)
    cands, real_index, combos = render_all(t, lex, active)
    if real_index < 0 or (combos > 1 and len(cands) < 2):
        # (one candidate of several combinations would be the prompt itself, sent with its sensitive words)
        raise ExpansionError(
            "could not build a candidate set that reads back the same for every candidate (the prompt's structure "
            "depends on its sensitive words in a way this expander cannot vary safely); rephrase, e.g. replace "
            "pronouns with nouns, or protect fewer attributes")
    total, block = len(cands), None
    if len(cands) > max_candidates:
        block = _block(lex, t, active, cands, real_index, combos, max_candidates) if blocks else None
        if block is None:
            raise _too_many(lex, t.slots, len(cands), max_candidates, exact=True, spaces=t.spaces)
        cands, real_index = [cands[k] for k in block.members], block.members.index(real_index)
    slots = tuple({"person": p, "attribute": a, "values": sp} for (p, a), sp in zip(t.slots, t.spaces))
    attrs = tuple(sorted({a for _, a in t.slots}))
    warnings = _leak_warnings(text, real, lex, active, attrs)
    learns = _server_learns(lex, t, slots, attrs, len(cands), combos, warnings, found, total)
    block_learns = "" if block is None else anonymity_blocks.constraint(_block_slots(t), block)
    if block is not None:
        learns = anonymity_blocks.describe(_block_slots(t), block) + " " + learns
    norms = tuple(f"'{c.written}' -> '{c.read_as}' (spelling)" for c in corrections)
    norms += tuple(f"'{w}' -> '{r}' ({a}: {v})" for w, r, a, v in t.snaps)
    return Expansion(candidates=tuple(cands), real_index=real_index, attributes=attrs, slots=slots,
                     server_learns=learns, leak_warnings=tuple(warnings), lexicon=lex.name, combinations=combos,
                     normalised=t.normalised or bool(corrections), prompt=prompt, outcome=outcome,
                     unprotected=tuple(found), normalisations=norms, total=total,
                     block_index=0 if block is None else block.index, block_count=1 if block is None else block.count,
                     block_learns=block_learns, block_worst_ratio=1.0 if block is None else block.worst_ratio)


def _block_slots(t) -> list:
    """(person, attribute, values) of every slot: each slot's own space (a cell noun's age holds 'child')."""
    return [(p, a, sp) for (p, a), sp in zip(t.slots, t.spaces)]


def _block(lex: Lexicon, t, active: frozenset, cands: list, real_index: int, combos: int, cap: int):
    """The real candidate's anonymity block of C (:mod:`.blocks`), or None when no block of 2 or more fits."""
    slots = _block_slots(t)
    index = [{v: i for i, v in enumerate(vals)} for _, _, vals in slots]
    full = len(cands) == combos
    coords = anonymity_blocks.coords_of_product([len(v) for _, _, v in slots]) if full else []
    # render_all keeps itertools.product order (candidate k is the k-th combination); should that ever change,
    # or when the read-back check or kinship dropped some, each candidate's values are read back instead
    if not full or coords[real_index] != tuple(ix[v] for ix, v in zip(index, t.values)):
        coords = [tuple(ix[v] for ix, v in zip(index, read(c, lex, active).template.values)) for c in cands]
    design = anonymity_blocks.choose(slots, cap, full_product=full)
    return None if design is None else anonymity_blocks.block_of(coords, design, real_index)


def _model_findings(prompt: str, flagger, real: Reading, found: list, lex: Lexicon) -> list:
    """Words the model flags that the vocabulary left alone: they can only add refusals."""
    covered = [(c.c0, c.c1) for c in real.cues.cues if c.par is not None or c.kind != "form"]
    known = {f.word.lower() for f in found}
    out = []
    for fl in flagger.flag(prompt):
        if not fl.word or fl.word.lower() in known or any(a < fl.end and fl.start < b for a, b in covered):
            continue
        known.add(fl.word.lower())
        out.append(Finding(fl.word, fl.type, f"the token-classification model flags it ({fl.score:.2f})",
                           lex.fixes.get(fl.type, "drop or rephrase it")))
    return out


def check_negative(negative: str, lexicon: str | os.PathLike | Lexicon | None = None, *,
                   allow_unprotected: bool = False) -> tuple:
    """The negative prompt goes to the server as it is, the same for every candidate, so any
    sensitive word in it ("male, beard") tells which candidate is real.  Returns the findings
    (empty when clean); raises :class:`ExpansionError` unless ``allow_unprotected``."""
    if negative is None or not str(negative).strip():
        return ()
    lex = load_lexicon(lexicon)
    negative = str(negative)
    tok = tokenize(negative)
    corrections, unreadable = check_readable(tok, lex)
    found = [Finding(u.word, u.type, u.reason, u.fix) for u in unreadable]
    r = read(apply_corrections(tok, corrections) if corrections else negative, lex, frozenset(lex.attributes))
    seen = set()
    for c in r.cues.cues:
        if c.kind == "form" and c.role == "pronoun":
            pass
        describes_any = c.par is not None or c.kind in ("name", "compound") or (
            c.kind == "sensitive" and (c.role != "context" or r.binding.persons or r.binding.heads))
        if c.par is not None and c.kind != "numeric" and c.person is None and c.role == "adjective":
            describes_any = c.surface.lower() not in lex.colour_words   # "old", "young" alone still reveal
        if not describes_any or (c.surface.lower(), c.stype) in seen:
            continue
        seen.add((c.surface.lower(), c.stype))
        found.append(Finding(c.surface, c.stype, "it is in the negative prompt, which the server reads as it is, "
                             "so it tells which candidate is real", "remove it from the negative prompt"))
    if found and not allow_unprotected:
        err = refusal(found, lex)
        raise ExpansionError("negative prompt " + str(err)) from None
    return tuple(found)


def _leak_warnings(prompt: str, real: Reading, lex: Lexicon, active: frozenset, attrs: tuple) -> list[str]:
    out: list[str] = []
    seen: set = set()

    def add(key, msg):
        if key not in seen:
            seen.add(key)
            out.append(msg)

    has_person = bool(real.binding.persons)
    for it in real.cues.cues:
        if it.par is None or it.kind == "numeric":
            continue
        surface = it.surface
        swapped = it.person is not None
        family = "/".join(it.par.forms.values())      # the same text whichever value is real
        for a, what in it.par.implies.items():
            if a in lex.attributes and (swapped or a in attrs) and not it.in_cell:
                add(("imp", family, a), f"'{family}' implies {a} ({what}), which is not swapped, so the server sees it")
        if not swapped and it.par.attribute in active and it.role != "pronoun" and has_person:
            if it in real.binding.unattached:
                add(("un", surface.lower()),
                    f"'{surface}' ({it.par.attribute}) was left unchanged because it does not describe a person "
                    f"here; if it does, put it right before the person word (e.g. '{surface} woman')")
    tok = real.tok
    covered = {k for it in real.cues.cues for k in range(it.t0, it.t1)}   # "aged" inside "middle-aged" is no leak
    for i, j, (word, a, kind) in find_phrases(tok.low, tok.gaps, lex.leak_words):
        if any(k in covered for k in range(i, j)):
            continue
        surface = prompt[tok.spans[i][0]:tok.spans[j - 1][1]]
        if kind == "unswapped":
            add(("lw", word.lower()),
                f"'{surface}' gives away {a} and is not swapped (it is not in lexicon '{lex.name}''s {a} forms); "
                f"the server sees it -- rephrase with a swappable word or use a custom lexicon")
        elif a in attrs:
            add(("lw", word.lower()),
                f"'{surface}' correlates with {a} but is identical in every candidate; under a non-uniform prior "
                f"it helps the server guess the real {a} -- remove it if {a} must stay private")
    return out


def _server_learns(lex: Lexicon, real, slots, attrs, n: int, combos: int, warnings, found=(), total=None) -> str:
    sent = ""
    if found:
        sent = (" ALLOWED UNPROTECTED: the server also reads " + ", ".join(f"'{f.word}' ({f.type})" for f in found)
                + " as written.")
    if n == 1:
        return (f"Nothing swappable was found (lexicon '{lex.name}'), so there is one candidate: the server sees "
                f"your prompt exactly and nothing is protected." + sent)
    spaces = "; ".join(dict.fromkeys(f"{s['attribute']}: {', '.join(s['values'])}" for s in slots))
    people = real.persons
    text = (f"The server receives all N={n} candidate prompts and cannot tell which one is yours: under a uniform "
            f"prior each is yours with probability 1/{n}. It learns every word that is the same in all candidates "
            f"(everything except the swapped words), that the prompt describes {people} "
            f"{'person' if people == 1 else 'people'} with {', '.join(attrs)} "
            f"({len(slots)} slot{'s' if len(slots) != 1 else ''}), the value spaces ({spaces}) and N. "
            f"It does not learn your values of {', '.join(attrs)}.")
    total = n if total is None else total
    if total < combos:
        text += (f" Only {total} of the {combos} combinations are candidates: the others would read as a differently "
                 f"structured prompt (for example a pronoun tied to another person) or make a child no younger than "
                 f"the person who calls them theirs, so the server also learns that the real combination is among "
                 f"these {total}.")
    if warnings:
        text += (f" {len(warnings)} leak warning(s): words that give away or correlate with these attributes stay "
                 f"visible, which weakens the 1/{n} bound when the server has a prior.")
    return text + sent
