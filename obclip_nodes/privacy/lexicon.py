"""Lexicons: the sensitive attributes, their value spaces and every surface form, as data.

A lexicon is one JSON file.  Two ship with the package (``lexicons/default.json`` and
``lexicons/paper.json``); a user file with the same schema can be passed by path.

Schema (version 1)
------------------
::

    {
      "schema": 1,                        # required, must be 1
      "name": "my-lexicon",               # required, shown to the user
      "description": "...",               # optional
      "attributes": {                     # required, at least one attribute
        "gender": {
          "values": ["female", "male"],   # the value space, in canonical order (>= 2 values)
          "paradigms": [                  # one row of surface forms per way of saying it
            {"role": "noun", "forms": {"female": "woman", "male": "man"}},
            {"role": "noun", "number": "plural", "forms": {"female": "women", "male": "men"}},
            {"role": "noun", "forms": {"female": "girl", "male": "boy"},
             "implies": {"age": "a child"}},               # optional: what else the word gives away
            {"role": "adjective", "nominal": true,         # "a female doctor"; nominal: "a female." too
             "forms": {"female": "female", "male": "male"}},
            {"role": "pronoun", "case": "subject", "forms": {"female": "she", "male": "he"}},
            {"role": "title", "forms": {"female": "Ms", "male": "Mr"}}
          ]
        },
        ...
      },
      "person_nouns": ["person", "doctor", ...],    # optional: attribute-free nouns naming a person
                                                    # (regular plurals are added automatically)
      "stop_words": ["a", "the", "with", ...],      # optional: words that end an adjective chain
      "object_followers": ["up", "tightly", ...],   # optional: words after which "her" is an object
      "ignore_phrases": ["man-made", "years old"],  # optional: never touched ("man-made" stays)
      "leak_words": [                               # optional: words that give an attribute away
        {"word": "beard", "attribute": "gender", "kind": "correlated"},
        {"word": "Mrs", "attribute": "gender", "kind": "unswapped"}
      ]
    }

Rules a paradigm must follow (checked on load; a violation is an ``ExpansionError`` naming the
file and the entry):

* ``role`` is one of ``noun``, ``adjective``, ``pronoun``, ``title``; ``number`` is ``singular``
  (default) or ``plural``; pronouns need ``case``: ``subject``, ``object``, ``possessive``,
  ``independent`` or ``reflexive``.
* ``forms`` gives exactly one surface for *every* value of the attribute (so every candidate can
  be written), and the surfaces of one paradigm differ (compared case-insensitively).
* A surface may belong to one paradigm only (case-insensitively, across all attributes), because
  the word the user wrote must tell which paradigm it came from.  The one exception is a pronoun
  shared by two pronoun paradigms of the same attribute (``her`` = object or possessive, ``his`` =
  possessive or independent); the expander decides between them from the next word, which is the
  same in every candidate.
* Surfaces are letters, with single spaces, hyphens or apostrophes between words.

Capitalisation: a form is written in the lexicon in its natural case ("woman", "Asian", "Mr").
A user's word is matched case-insensitively and its style is one of *natural*, *lower*, *title*
(first letter capital) or *upper*; the same style is applied to every value.  A style that could
be confused with an earlier one for some value of the paradigm (e.g. *title* for "Asian", which is
already natural) is not offered; a word written in such a style is left unchanged and reported.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from .errors import ExpansionError

PRESETS: tuple[str, ...] = ("default", "paper")

_DIR = Path(__file__).resolve().parent / "lexicons"
ROLES = ("noun", "adjective", "pronoun", "title")
CASES = ("subject", "object", "possessive", "independent", "reflexive")
STYLES = ("natural", "lower", "title", "upper")
_SURFACE_RE = re.compile(r"^[^\W\d_]+(?:[ '\-][^\W\d_]+)*$")
_WORD_RE = re.compile(r"[^\W\d_]+")


def apply_style(style: str, natural: str) -> str:
    if style == "natural":
        return natural
    if style == "lower":
        return natural.lower()
    if style == "upper":
        return natural.upper()
    low = natural.lower()
    return low[:1].upper() + low[1:]


def split_surface(surface: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return (lower-case words, separators between them) of a surface form."""
    words = tuple(m.group(0).lower() for m in _WORD_RE.finditer(surface))
    spans = [m.span() for m in _WORD_RE.finditer(surface)]
    seps = tuple(surface[spans[i][1]:spans[i + 1][0]] for i in range(len(spans) - 1))
    return words, seps


@dataclass(frozen=True, eq=False)
class Paradigm:
    pid: int
    attribute: str
    role: str
    number: str
    case: str | None
    nominal: bool
    forms: Mapping[str, str]          # value -> natural surface
    implies: Mapping[str, str]
    styles: tuple[str, ...]           # styles that are safe for this paradigm, in detection order

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Paradigm({self.attribute}/{self.role}:{'/'.join(self.forms.values())})"


@dataclass(frozen=True, eq=False)
class Entry:
    words: tuple[str, ...]
    seps: tuple[str, ...]
    paradigm: Paradigm
    value: str


@dataclass(eq=False)
class Lexicon:
    """A loaded, validated lexicon.  Build with :func:`load_lexicon`."""

    name: str
    description: str
    source: str
    attributes: dict[str, tuple[str, ...]]            # attribute -> values (canonical order)
    paradigms: list[Paradigm]
    entries: dict[str, list[Entry]]                   # first word (lower) -> entries, longest first
    person_nouns: dict[str, str]                      # lower word -> "singular" | "plural"
    stop_words: frozenset[str]
    object_followers: frozenset[str]
    ignore_phrases: dict                              # see _phrase_index; payload None
    leak_words: dict                                  # see _phrase_index; payload (word, attribute, kind)
    pronoun_words: frozenset[str] = field(default_factory=frozenset)

    def __repr__(self) -> str:
        return f"Lexicon({self.name!r}, attributes={list(self.attributes)})"


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _safe_styles(forms: Mapping[str, str]) -> tuple[str, ...]:
    chosen: list[str] = []
    for style in STYLES:
        ok = True
        for nat in forms.values():
            s = apply_style(style, nat)
            if any(apply_style(e, nat) == s for e in chosen):
                ok = False
                break
        if ok:
            chosen.append(style)
    return tuple(chosen)


def _phrase_index(phrases) -> dict[str, list[tuple[tuple[str, ...], tuple[str, ...], object]]]:
    """first word (lower) -> [(words, separators, payload)], longest first; matched token by token."""
    index: dict = {}
    for phrase, payload in phrases:
        words, seps = split_surface(phrase)
        if words:
            index.setdefault(words[0], []).append((words, seps, payload))
    for lst in index.values():
        lst.sort(key=lambda e: -len(e[0]))
    return index


def parse_lexicon(data: object, source: str = "<data>") -> Lexicon:
    """Validate a decoded JSON object and build a :class:`Lexicon`."""

    def bad(msg: str) -> ExpansionError:
        return ExpansionError(f"bad lexicon {source}: {msg} (see the schema in obclip_nodes/privacy/lexicon.py)")

    if not isinstance(data, dict):
        raise bad("the top level must be a JSON object")
    if data.get("schema") != 1:
        raise bad('"schema" must be 1')
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise bad('"name" must be a non-empty string')
    attrs = data.get("attributes")
    if not isinstance(attrs, dict) or not attrs:
        raise bad('"attributes" must be a non-empty object')
    attributes: dict[str, tuple[str, ...]] = {}
    paradigms: list[Paradigm] = []
    entries: dict[str, list[Entry]] = {}
    owner: dict[str, Paradigm] = {}
    for aname, spec in attrs.items():
        if not isinstance(aname, str) or not re.fullmatch(r"[a-z][a-z0-9_\-]*", aname):
            raise bad(f"attribute name {aname!r} must be lower-case letters, digits, '_' or '-'")
        if not isinstance(spec, dict):
            raise bad(f"attribute {aname!r} must be an object")
        values = spec.get("values")
        if (not isinstance(values, list) or len(values) < 2 or not all(isinstance(v, str) and v for v in values)
                or len(set(values)) != len(values)):
            raise bad(f"attribute {aname!r}: \"values\" must list at least 2 distinct non-empty strings")
        attributes[aname] = tuple(values)
        plist = spec.get("paradigms")
        if not isinstance(plist, list) or not plist:
            raise bad(f"attribute {aname!r}: \"paradigms\" must be a non-empty list")
        for k, p in enumerate(plist):
            where = f"attribute {aname!r} paradigm #{k}"
            if not isinstance(p, dict):
                raise bad(f"{where} must be an object")
            role = p.get("role")
            if role not in ROLES:
                raise bad(f"{where}: \"role\" must be one of {', '.join(ROLES)}")
            number = p.get("number", "singular")
            if number not in ("singular", "plural"):
                raise bad(f"{where}: \"number\" must be singular or plural")
            case = p.get("case")
            if role == "pronoun" and case not in CASES:
                raise bad(f"{where}: a pronoun needs \"case\", one of {', '.join(CASES)}")
            if role != "pronoun" and case is not None:
                raise bad(f"{where}: only pronouns have a \"case\"")
            nominal = p.get("nominal", False)
            if not isinstance(nominal, bool) or (nominal and role != "adjective"):
                raise bad(f"{where}: \"nominal\" is a boolean allowed on adjectives only")
            forms = p.get("forms")
            if not isinstance(forms, dict) or set(forms) != set(values):
                raise bad(f"{where}: \"forms\" must give exactly one surface for each value {list(values)}")
            for v, s in forms.items():
                if not isinstance(s, str) or not _SURFACE_RE.match(s):
                    raise bad(f"{where}: surface {s!r} must be letters with single spaces/hyphens/apostrophes")
            lows = [s.lower() for s in forms.values()]
            if len(set(lows)) != len(lows):
                raise bad(f"{where}: two values share a surface {forms}")
            implies = p.get("implies", {})
            if not isinstance(implies, dict) or not all(isinstance(x, str) for x in implies.values()):
                raise bad(f"{where}: \"implies\" must map attribute names to short descriptions")
            forms_ordered = {v: forms[v] for v in values}
            par = Paradigm(len(paradigms), aname, role, number, case, nominal, forms_ordered, dict(implies),
                           _safe_styles(forms_ordered))
            paradigms.append(par)
            for v, s in forms_ordered.items():
                low = s.lower()
                prev = owner.get(low)
                if prev is not None:
                    shared_ok = (prev.role == "pronoun" and role == "pronoun" and prev.attribute == aname
                                 and prev.case != case)
                    if not shared_ok:
                        raise bad(f"{where}: surface {s!r} already belongs to another paradigm "
                                  f"({prev.attribute}/{prev.role}); a word must name one paradigm only")
                owner[low] = par
                words, seps = split_surface(s)
                entries.setdefault(words[0], []).append(Entry(words, seps, par, v))
    for lst in entries.values():
        lst.sort(key=lambda e: -len(e.words))

    def wordlist(key: str) -> list[str]:
        val = data.get(key, [])
        if not isinstance(val, list) or not all(isinstance(w, str) and w for w in val):
            raise bad(f'"{key}" must be a list of non-empty strings')
        return val

    person_nouns: dict[str, str] = {}
    irregular = {"person": "people", "child": "children", "woman": "women", "man": "men", "fiance": "fiances"}
    for w in wordlist("person_nouns"):
        lw = w.lower()
        if lw in owner:
            raise bad(f"person noun {w!r} is also an attribute surface; list it in one place only")
        person_nouns.setdefault(lw, "singular")
        pl = irregular.get(lw) or _plural(lw)
        if pl not in owner:
            person_nouns.setdefault(pl, "plural")
    for lw in ("people", "children", "couple", "twins"):
        if lw in person_nouns:
            person_nouns[lw] = "plural"
    stop = frozenset(w.lower() for w in wordlist("stop_words"))
    followers = frozenset(w.lower() for w in wordlist("object_followers"))
    for w in stop | followers:
        if w in owner and owner[w].role != "pronoun":
            raise bad(f"{w!r} is listed as a stop word/object follower but is also an attribute surface")
    ignore_phrases = _phrase_index((w, None) for w in wordlist("ignore_phrases"))
    leaks_raw = data.get("leak_words", [])
    if not isinstance(leaks_raw, list):
        raise bad('"leak_words" must be a list')
    leak_words = []
    for k, lw in enumerate(leaks_raw):
        if (not isinstance(lw, dict) or not isinstance(lw.get("word"), str) or not lw["word"]
                or not isinstance(lw.get("attribute"), str) or lw.get("kind", "correlated") not in ("correlated", "unswapped")):
            raise bad(f'leak_words #{k} must be {{"word": str, "attribute": str, "kind": "correlated"|"unswapped"}}')
        leak_words.append((lw["word"], (lw["word"], lw["attribute"], lw.get("kind", "correlated"))))
    pronoun_words = frozenset(s.lower() for p in paradigms if p.role == "pronoun" for s in p.forms.values())
    desc = data.get("description", "")
    return Lexicon(name=name, description=desc if isinstance(desc, str) else "", source=source,
                   attributes=attributes, paradigms=paradigms, entries=entries, person_nouns=person_nouns,
                   stop_words=stop | pronoun_words, object_followers=followers, ignore_phrases=ignore_phrases,
                   leak_words=_phrase_index(leak_words), pronoun_words=pronoun_words)


def _read_json(path: Path, source: str) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExpansionError(f"lexicon file {source} does not exist; give a path to a JSON lexicon "
                             f"or one of the presets {', '.join(PRESETS)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ExpansionError(f"cannot read lexicon file {source}: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ExpansionError(f"bad lexicon {source}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None


@lru_cache(maxsize=None)
def _preset(name: str) -> Lexicon:
    path = _DIR / f"{name}.json"
    return parse_lexicon(_read_json(path, f"preset {name!r}"), f"preset {name!r}")


@lru_cache(maxsize=32)
def _from_file(path: str, mtime_ns: int, size: int) -> Lexicon:
    return parse_lexicon(_read_json(Path(path), path), path)


def load_lexicon(lexicon: "str | os.PathLike | Lexicon | None" = None) -> Lexicon:
    """None -> the "default" preset; a preset name; a path to a JSON lexicon; or a Lexicon."""
    if lexicon is None:
        return _preset("default")
    if isinstance(lexicon, Lexicon):
        return lexicon
    if isinstance(lexicon, str) and lexicon in PRESETS:
        return _preset(lexicon)
    if isinstance(lexicon, (str, os.PathLike)):
        p = Path(os.fspath(lexicon)).expanduser()
        if not p.is_file():
            raise ExpansionError(f"lexicon {os.fspath(lexicon)!r} is neither a preset ({', '.join(PRESETS)}) "
                                 f"nor an existing JSON file")
        st = p.stat()
        return _from_file(str(p.resolve()), st.st_mtime_ns, st.st_size)
    raise ExpansionError(f"lexicon must be None, a preset name ({', '.join(PRESETS)}), a path or a Lexicon, "
                         f"not {type(lexicon).__name__}")
