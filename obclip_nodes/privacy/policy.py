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
            elif c in cs.case_misses:
                reason = "its capitalisation cannot be varied safely"
            else:
                reason = f"lexicon '{lex.name}' has no value space that swaps it"
            add(Finding(c.surface, c.stype, reason, c.fix or generic))
        elif c.par is not None and c.person is not None and c.par.attribute not in active:
            add(Finding(c.surface, c.par.attribute, "its attribute is not in the protected attributes",
                        f"add {c.par.attribute} to attributes", by_choice=True))
    return out


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
