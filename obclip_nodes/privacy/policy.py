"""Stage 4, decide the policy: every prompt is *protected*, *refused* or *explicitly allowed*.

* **protected**: every sensitive word that describes a person is swapped within a value space
  (or there is none: N = 1, nothing to hide).
* **refused**: some word reveals a sensitive type and cannot be swapped -- a religion, a
  disability, a name, a nationality with no value, an unknown gendered word, a sensitive word in a
  Midjourney ``--no`` parameter -- and the override is off.  :class:`~.errors.ExpansionError`
  names each word, its type and concrete fixes.
* **allowed**: the same words, but ``allow_unprotected`` is on (or the caller left the word's
  attribute out of ``attributes``); the listed words reach the server as written.

Correlated words (beard, lipstick, dress) and words that imply another attribute stay *leak
warnings*: the 1/N guarantee still holds under a uniform prior.
"""

from __future__ import annotations

from dataclasses import dataclass

from .bind import Binding
from .cues import Cues
from .errors import ExpansionError
from .lexicon import Lexicon
from .tokenize import Tokens

OUTCOMES = ("protected", "refused", "allowed")
_SCENE_TYPES = frozenset({"religion", "orientation"})
_TYPE_NAMES = {"name": "a personal name", "gender": "gender", "age": "age", "ethnicity": "ethnicity"}


@dataclass(frozen=True)
class Finding:
    """One word that would reach the server unprotected."""

    word: str
    type: str             # gender, age, ethnicity, religion, disability, orientation, body, name, ...
    reason: str
    fix: str
    by_choice: bool = False     # its attribute was left out of ``attributes`` by the caller

    def line(self) -> str:
        return f"'{self.word}' ({self.type}): {self.reason}. Fix: {self.fix}"


def findings(tok: Tokens, cs: Cues, b: Binding, lex: Lexicon, active: frozenset) -> list[Finding]:
    """The words that reveal a sensitive type and are not swapped, in prompt order."""
    out: list[Finding] = []
    seen: set = set()
    has_person = bool(b.persons) or b.heads > 0

    def add(f: Finding) -> None:
        key = (f.word.lower(), f.type)
        if key not in seen:
            seen.add(key)
            out.append(f)

    for c in cs.cues:
        generic = lex.fixes.get(c.stype, "drop the word or use a lexicon that swaps it")
        if c.negative and (c.par is not None or c.kind != "form"):
            add(Finding(c.surface, c.stype, "it is in a Midjourney --no parameter, which the server reads as it is "
                        "(a negative tells which candidate is real)", "remove it from --no"))
            continue
        if c.kind in ("sensitive", "name", "compound"):
            describes = (c.role == "noun" or (c.role == "adjective" and c.person is not None)
                         or (c.role == "context" and has_person)
                         # "a gay wedding with two grooms", "a Catholic wedding, bride and groom": these
                         # types describe the people of the scene even when they modify a thing
                         or (c.role == "adjective" and has_person and c.stype in _SCENE_TYPES))
            if not describes:
                continue
            if c.kind == "name":
                reason = "names a real person, which no candidate can hide"
            elif c.kind == "compound":
                reason = "reads as a gendered person word that the lexicon cannot swap"
            else:
                reason = f"lexicon '{lex.name}' has no value space that swaps it"
            add(Finding(c.surface, c.stype, reason, c.fix or generic))
        elif c.par is not None and c.person is not None and c.par.attribute not in active:
            add(Finding(c.surface, c.par.attribute, "its attribute is not in the protected attributes",
                        f"add {c.par.attribute} to attributes", by_choice=True))
        if c.par is not None and c.person is not None and not c.in_cell and not c.negative:
            # a word that names a value of a second attribute ("girl": a child) is swapped as a cell or refused,
            # never warned and sent
            for a, what in list(c.par.implies.items()) + [(a, v) for a, v in c.implied]:
                if a not in lex.attributes:
                    continue
                if a not in active:
                    add(Finding(c.surface, a, f"it also names the person's {a} ({what}), which is not in the protected "
                                f"attributes", f"add {a} to attributes", by_choice=True))
                elif lex.cells is not None and a == lex.cells.age and lex.cells.gender not in active:
                    add(Finding(c.surface, a, f"it also names the person's {a} ({what}), which is swapped only together "
                                f"with {lex.cells.gender}", f"add {lex.cells.gender} to attributes (a "
                                f"'{c.surface}' is swapped as a cell of {lex.cells.gender} and {a})"))
                else:
                    add(Finding(c.surface, a, f"it also names the person's {a} ({what}), which lexicon '{lex.name}' "
                                f"cannot swap with this word", "describe the person with words the lexicon swaps "
                                "(e.g. 'a young woman', 'an old man'), or use the default preset"))
    for c, h in b.possible:
        if c.par is not None and c.par.attribute not in active:
            continue
        phrase = tok.text[c.c0:tok.spans[h][1]]
        head = tok.words[h]
        add(Finding(phrase, c.stype, f"'{c.surface}' describes '{head}', which the lexicon knows neither as a "
                    f"person nor as a thing, so it may reveal a person's {c.stype}",
                    f"if '{head}' is a person, name them with a person word the lexicon swaps (e.g. "
                    f"'a {c.surface} woman', 'a {c.surface} singer'); if it is a thing, add '{head.lower()}' to "
                    f"non_person_heads in the lexicon data"))
    # a person whose gender no word swaps, but whom a gender-correlated word describes ("a redhead in a
    # green dress", "a doctor with a beard"): with N = 1 the correlated word tells the server the gender
    gender = "gender"
    # (a word that implies the gender, "Latina", already carries its own leak warning)
    if has_person and gender in lex.attributes and gender in active and not any(
            gender in p.values or any(c.par is not None and gender in c.par.implies for c in p.cues)
            for p in b.persons):
        for i, j, w in _correlated(tok, cs, lex, gender):
            add(Finding(w, gender, f"it correlates with {gender} and no {gender} word of the prompt is swapped, so "
                        f"the server reads it as the person's {gender}",
                        f"name the person with a word the lexicon swaps (e.g. 'a woman in a dress', 'a man with a "
                        f"beard'), or drop '{w}'"))
    return out


def _correlated(tok: Tokens, cs: Cues, lex: Lexicon, attribute: str):
    """(first word, end word, surface) of each leak word that correlates with ``attribute``."""
    low, gaps, idx = tok.low, tok.gaps, lex.leak_words
    for i, w in enumerate(low):
        if w not in idx or cs.at[i] is not None or cs.ignored[i] or tok.negative[i]:
            continue
        for words, seps, (word, a, kind) in idx[w]:
            k = len(words)
            if a == attribute and i + k <= tok.n and all(
                    low[i + j] == words[j] and gaps[i + j] == seps[j - 1] for j in range(1, k)) and not (
                    i + k < tok.n and gaps[i + k] in (" ", "-") and low[i + k] in lex.part_words):   # "blonde hair"
                yield i, i + k, tok.text[tok.spans[i][0]:tok.spans[i + k - 1][1]]
                break


def refusal(found: list[Finding], lex: Lexicon) -> ExpansionError:
    lines = [f"refused: {len(found)} word(s) would reach the server unprotected, so nothing was sent "
             f"(lexicon '{lex.name}'):"]
    lines += [f"  - {f.line()}" for f in found]
    lines.append("Or turn on allow_unprotected to send these words as written (the badge then shows it in red).")
    err = ExpansionError("\n".join(lines))
    err.findings = tuple(found)  # type: ignore[attr-defined]
    return err


def decide(found: list[Finding], allow_unprotected: bool, lex: Lexicon) -> str:
    """protected | allowed; raises the refusal."""
    must = [f for f in found if not f.by_choice]
    if must and not allow_unprotected:
        raise refusal(must, lex)
    return "allowed" if found else "protected"
