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
      "leak_words": [                               # optional: words that correlate with an attribute
        {"word": "beard", "attribute": "gender", "kind": "correlated"}   # (kind "unswapped": refused)
      ],
      "snap": [                                     # optional: words swapped after snapping to a value
        {"word": "teenage", "attribute": "age", "value": "young", "paradigm": 0}   # rendered with paradigm #0
      ],
      "sensitive": [                                # optional: words that cannot be swapped -> refused
        {"type": "religion", "role": "adjective", "words": ["Muslim"], "fix": "..."}  # role: adjective|noun|context
      ],
      "numeric_ages": {"attribute": "age", "bands": [[0, 35, "young"], ...],        # optional: "30-year-old",
                       "years": {"young": 25, ...}, "decades": {"young": 20, ...}},  # "in her 40s", "aged 70"
      "demonyms": {"attribute": "ethnicity", "paradigm": 0, "subregion": {...},     # optional: nationality ->
                   "intermediate": {...}, "words": {...}, "fix": "..."},              # value (null: refused)
      "include": ["sensitive"]                      # optional: merge data/sensitive.json (shared vocabulary)
    }

A paradigm may also carry ``"modifier": K``: when one of its nouns stands right before another person
word ("senior woman"), it is rendered with the attribute's paradigm #K ("old woman") instead.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

from .errors import ExpansionError

PRESETS: tuple[str, ...] = ("default", "paper")

_DIR = Path(__file__).resolve().parent / "lexicons"
ROLES = ("noun", "adjective", "pronoun", "title")
CASES = ("subject", "object", "possessive", "independent", "reflexive")
STYLES = ("natural", "lower", "title", "upper")
_SURFACE_RE = re.compile(r"^[^\W_]+(?:[ '\-][^\W_]+)*$")
_WORD_RE = re.compile(r"[^\W_]+")
_DATA = Path(__file__).resolve().parent / "data"


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
    modifier: int | None = None     # pid of the paradigm that renders it before another person word

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Paradigm({self.attribute}/{self.role}:{'/'.join(self.forms.values())})"


@dataclass(frozen=True, eq=False)
class Entry:
    words: tuple[str, ...]
    seps: tuple[str, ...]
    paradigm: Paradigm | None       # form/snap: the paradigm that renders it; sensitive: None
    value: str | None
    kind: str = "form"                # form (a surface of the paradigm) | snap | sensitive
    stype: str = ""                   # sensitive: the attribute type it reveals
    role: str = ""                    # snap/sensitive: adjective | noun | context
    fix: str = ""                     # sensitive: how to fix a refusal
    surface: str = ""                 # the word as the lexicon writes it
    implied: tuple = ()               # cell snaps: ((attribute, value), ...) the word also gives ("grandmother": old)


_KIND_RANK = {"form": 0, "snap": 1, "sensitive": 2}


@dataclass(frozen=True, eq=False)
class Family:
    """One number (singular or plural) of the cell nouns: the adult noun paradigm (woman/man), the child
    noun paradigm (girl/boy) and the age adjective that an adult cell is written with (young/old)."""

    adult: Paradigm
    child: Paradigm
    adjective: Paradigm


@dataclass(frozen=True, eq=False)
class Cells:
    """Person words as cells of a grid: "girl" is (female, child), "old man" is (male, old).  A person named
    with a cell noun is rendered as the natural words of each cell (girl / boy / young woman / old man ...),
    so a child stays a child in the real candidate and no candidate reads "old girl"."""

    gender: str
    age: str
    child: str                                  # the age value that only cell nouns and age nouns can render
    families: tuple                             # Family per number
    merge: frozenset                            # pids of age adjectives read with an adjacent cell noun
    by_pid: dict                                # pid of an adult or child noun -> its Family
    child_capable: frozenset = frozenset()      # pids of other gender nouns a child can be called (daughter)

    def family(self, par: "Paradigm | None") -> "Family | None":
        return None if par is None else self.by_pid.get(par.pid)


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
    numeric_ages: dict | None = None
    fixes: dict = field(default_factory=dict)           # type -> generic fix text
    chain_breakers: frozenset = frozenset()
    colour_words: frozenset = frozenset()
    predicate_verbs: frozenset = frozenset()
    predicate_adverbs: frozenset = frozenset()
    ing_nouns: frozenset = frozenset()
    vessels: frozenset = frozenset()
    place_suffixes: frozenset = frozenset()
    place_prepositions: frozenset = frozenset()
    artist_markers: frozenset = frozenset()
    name_context: frozenset = frozenset()
    first_names: frozenset = frozenset()
    ambiguous_names: frozenset = frozenset()
    celebrities: frozenset = frozenset()
    part_words: frozenset = frozenset()
    gendered_titles: frozenset = frozenset()
    name_titles: frozenset = frozenset()
    place_prefixes: frozenset = frozenset()
    animals: frozenset = frozenset()
    demonym_pid: "int | None" = None
    agentive_suffixes: tuple = ()
    agentive_exceptions: frozenset = frozenset()
    non_person_heads: frozenset = frozenset()        # nouns a nationality may describe: "Thai food"
    non_person_head_suffixes: tuple = ()               # ... and noun endings that name things ("-ture")
    person_evidence: frozenset = frozenset()          # tags that show tag soup is about a person
    compound_suffixes: tuple = ()                       # ((suffix, value), ...) of unknown gendered words
    compound_exceptions: frozenset = frozenset()
    synthetic: dict = field(default_factory=dict)        # pid -> Paradigm made at run time (numeric ages)
    cells: "Cells | None" = None                         # person words as cells of gender x age (see Cells)
    nearest_person: frozenset = frozenset()              # attributes said of the nearest person ("with dark skin")

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
    nearest: set = set()
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
        if spec.get("nearest_person", False) is not False:
            if spec["nearest_person"] is not True:
                raise bad(f"attribute {aname!r}: \"nearest_person\" must be true or false")
            nearest.add(aname)
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
            if not isinstance(forms, dict) or not set(forms) <= set(values) or len(forms) < 2:
                raise bad(f"{where}: \"forms\" must give one surface for each of at least two values of {list(values)} "
                          f"(a value without a form is left out of the candidates of a word written with this paradigm)")
            for v, s in forms.items():
                if not isinstance(s, str) or not _SURFACE_RE.match(s):
                    raise bad(f"{where}: surface {s!r} must be letters with single spaces/hyphens/apostrophes")
            lows = [s.lower() for s in forms.values()]
            if len(set(lows)) != len(lows):
                raise bad(f"{where}: two values share a surface {forms}")
            implies = p.get("implies", {})
            if not isinstance(implies, dict) or not all(isinstance(x, str) for x in implies.values()):
                raise bad(f"{where}: \"implies\" must map attribute names to short descriptions")
            forms_ordered = {v: forms[v] for v in values if v in forms}
            modifier = p.get("modifier")
            if modifier is not None and (isinstance(modifier, bool) or not isinstance(modifier, int)
                                         or not 0 <= modifier < len(plist) or role != "noun"):
                raise bad(f"{where}: \"modifier\" must be the index of another paradigm of {aname!r} (nouns only)")
            par = Paradigm(len(paradigms), aname, role, number, case, nominal, forms_ordered, dict(implies),
                           _safe_styles(forms_ordered),
                           None if modifier is None else len(paradigms) - k + modifier)
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
    def wordlist(key: str, src=None) -> list[str]:
        val = (data if src is None else src).get(key, [])
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
    include = data.get("include", [])
    if not isinstance(include, list) or not all(x in ("sensitive",) for x in include):
        raise bad('"include" must be a list of shared vocabularies: "sensitive"')
    shared = _shared() if "sensitive" in include else {}
    first_words = {w for w in owner}

    def add_entry(word: str, e_kwargs: dict) -> None:
        if not isinstance(word, str) or not _SURFACE_RE.match(word):
            raise bad(f"{word!r} must be letters/digits with single spaces, hyphens or apostrophes")
        if word.lower() in first_words and e_kwargs["kind"] != "form":
            return                                   # a paradigm surface wins over snap/sensitive entries
        words, seps = split_surface(word)
        entries.setdefault(words[0], []).append(Entry(words, seps, surface=word, **e_kwargs))

    # snap: the word is swapped, rendered with one paradigm of its attribute
    for k, sn in enumerate(data.get("snap", [])):
        if (not isinstance(sn, dict) or sn.get("attribute") not in attributes
                or sn.get("value") not in attributes.get(sn.get("attribute"), ())
                or not isinstance(sn.get("paradigm"), int)):
            raise bad(f'snap #{k} must be {{"word", "attribute", "value", "paradigm": index}} with a known attribute/value')
        plist = [p for p in paradigms if p.attribute == sn["attribute"]]
        if not 0 <= sn["paradigm"] < len(plist):
            raise bad(f"snap #{k}: paradigm index {sn['paradigm']} out of range for {sn['attribute']!r}")
        par = plist[sn["paradigm"]]
        add_entry(sn.get("word"), dict(paradigm=par, value=sn["value"], kind="snap",
                                       role="noun" if par.role in ("noun", "title") else "adjective"))
    cells = _parse_cells(data.get("cells"), attributes, paradigms, add_entry, bad)
    # demonyms: generated table + the lexicon's region -> value map
    dem = data.get("demonyms")
    dem_pid = None
    if dem is not None:
        if not isinstance(dem, dict) or dem.get("attribute") not in attributes:
            raise bad('"demonyms" must name a known "attribute"')
        a = dem["attribute"]
        plist = [p for p in paradigms if p.attribute == a]
        par = plist[int(dem.get("paradigm", 0))]
        dem_pid = par.pid
        ppar = plist[int(dem["plural_paradigm"])] if dem.get("plural_paradigm") is not None else None
        for word, row in _demonyms().items():
            if word in dem.get("words", {}):
                v = dem["words"][word]
            elif row.get("intermediate") in dem.get("intermediate", {}):
                v = dem["intermediate"][row["intermediate"]]
            else:
                v = dem.get("subregion", {}).get(row.get("subregion"))
            if v is not None and v not in attributes[a]:
                raise bad(f"demonyms: value {v!r} is not a value of {a!r}")
            where = f"{word} ({row.get('country', '')})"
            if v is None:
                add_entry(word, dict(paradigm=None, value=None, kind="sensitive", stype=a, role="adjective",
                                     fix=dem.get("fix", "")))
                if not word.endswith(("ese", "ish", "ch", "sh", "ss", "i")):
                    add_entry(word + "s", dict(paradigm=None, value=None, kind="sensitive", stype=a, role="noun",
                                               fix=dem.get("fix", "")))
            else:
                add_entry(word, dict(paradigm=par, value=v, kind="snap", role="adjective", fix=where))
                if not word.endswith(("ese", "ish", "ch", "sh", "ss", "i")):
                    if ppar is not None:
                        add_entry(word + "s", dict(paradigm=ppar, value=v, kind="snap", role="noun", fix=where))
                    else:
                        add_entry(word + "s", dict(paradigm=None, value=None, kind="sensitive", stype=a, role="noun",
                                                   fix=f"write '{word} people' (swapped)"))
    # sensitive words: refused unless allowed
    fixes = dict(shared.get("fixes", {}))
    for src in ([shared] if shared else []) + [data]:
        for k, grp in enumerate(src.get("sensitive", [])):
            if (not isinstance(grp, dict) or not isinstance(grp.get("type"), str)
                    or grp.get("role") not in ("adjective", "noun", "context") or not isinstance(grp.get("words"), list)):
                raise bad(f'sensitive #{k} must be {{"type": str, "role": adjective|noun|context, "words": [...]}}')
            for w in grp["words"]:
                add_entry(w, dict(paradigm=None, value=None, kind="sensitive", stype=grp["type"], role=grp["role"],
                                  fix=grp.get("fix", "")))
    for lw in leaks_raw:
        if lw.get("kind") == "unswapped":
            add_entry(lw["word"], dict(paradigm=None, value=None, kind="sensitive", stype=lw["attribute"],
                                       role="adjective", fix=""))
    leak_words = [x for x in leak_words if x[1][2] == "correlated"]
    for lst in entries.values():
        lst.sort(key=lambda e: (-len(e.words), _KIND_RANK[e.kind]))
    num = data.get("numeric_ages")
    if num is not None:
        if (not isinstance(num, dict) or num.get("attribute") not in attributes
                or set(num.get("years", {})) != set(attributes[num["attribute"]])
                or set(num.get("decades", {})) != set(attributes[num["attribute"]])):
            raise bad('"numeric_ages" needs "attribute", "bands", and "years"/"decades" for every value')
        for lo, hi, v in num.get("bands", []):
            if v not in attributes[num["attribute"]]:
                raise bad(f"numeric_ages: band value {v!r} is not a value of {num['attribute']!r}")

    def fs(key: str, lower: bool = True) -> frozenset:
        vals = wordlist(key, shared) if shared else []
        return frozenset(w.lower() if lower else w for w in vals)

    desc = data.get("description", "")
    return Lexicon(name=name, description=desc if isinstance(desc, str) else "", source=source,
                   attributes=attributes, paradigms=paradigms, entries=entries, person_nouns=person_nouns,
                   stop_words=stop | pronoun_words, object_followers=followers, ignore_phrases=ignore_phrases,
                   leak_words=_phrase_index(leak_words), pronoun_words=pronoun_words, numeric_ages=num,
                   fixes=fixes, chain_breakers=fs("chain_breakers"), colour_words=fs("colour_words"),
                   predicate_verbs=fs("predicate_verbs"), predicate_adverbs=fs("predicate_adverbs"),
                   ing_nouns=fs("ing_nouns"), vessels=fs("vessels"), place_suffixes=fs("place_suffixes", False),
                   place_prepositions=fs("name_prepositions_before_places"), artist_markers=fs("artist_markers"),
                   name_context=fs("name_context_words"), first_names=_first_names() if shared else frozenset(),
                   ambiguous_names=fs("ambiguous_names", False), celebrities=fs("celebrities", False),
                   compound_suffixes=tuple(sorted(((suf, v) for v, sufs in shared.get("compound_suffixes", {}).items()
                                                   for suf in sufs), key=lambda x: -len(x[0]))),
                   compound_exceptions=fs("compound_exceptions"), part_words=fs("part_words"),
                   gendered_titles=fs("gendered_titles", False), name_titles=fs("name_titles"),
                   place_prefixes=fs("place_prefixes", False), animals=fs("animals"),
                   demonym_pid=dem_pid,
                   agentive_suffixes=tuple(sorted(fs("agentive_suffixes"), key=len, reverse=True)),
                   agentive_exceptions=fs("agentive_exceptions"), non_person_heads=fs("non_person_heads"),
                   non_person_head_suffixes=tuple(sorted(fs("non_person_head_suffixes"), key=len, reverse=True)),
                   person_evidence=fs("person_evidence"), cells=cells, nearest_person=frozenset(nearest))


def _parse_cells(spec, attributes, paradigms, add_entry, bad) -> "Cells | None":
    """The optional "cells" section: {"gender": "gender", "age": "age", "child": "child",
    "families": [{"adult": i, "child": j, "adjective": k}, ...] (paradigm indices within gender / age),
    "merge": [age paradigm indices], "snaps": [{"words": [...], "family": f, "gender": v, "age": v}]}."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("gender") not in attributes or spec.get("age") not in attributes \
            or spec.get("child") not in attributes.get(spec.get("age"), ()):
        raise bad('"cells" needs "gender" and "age" attributes and the "child" value of age')
    g, a = spec["gender"], spec["age"]
    gp = [p for p in paradigms if p.attribute == g]
    ap = [p for p in paradigms if p.attribute == a]

    def pick(lst, k, what):
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < len(lst):
            raise bad(f'cells: {what} must be a paradigm index')
        return lst[k]
    families, by_pid = [], {}
    for fam in spec.get("families", []):
        f = Family(pick(gp, fam.get("adult"), "adult"), pick(gp, fam.get("child"), "child"),
                   pick(ap, fam.get("adjective"), "adjective"))
        if set(f.adult.forms) != set(attributes[g]) or set(f.child.forms) != set(attributes[g]) \
                or set(f.adjective.forms) | {spec["child"]} != set(attributes[a]):
            raise bad("cells: a family's nouns need every gender value and its adjective every age value")
        families.append(f)
        by_pid[f.adult.pid] = f
        by_pid[f.child.pid] = f
    merge = frozenset(pick(ap, k, "merge").pid for k in spec.get("merge", []))
    for k, sn in enumerate(spec.get("snaps", [])):
        fam = families[sn["family"]] if isinstance(sn.get("family"), int) and 0 <= sn["family"] < len(families) \
            else None
        if fam is None or sn.get("gender") not in attributes[g] or sn.get("age") not in attributes[a]:
            raise bad(f"cells: snap #{k} needs a family index and a gender and an age value")
        par = fam.child if sn["age"] == spec["child"] else fam.adult
        for w in sn.get("words", []):
            add_entry(w, dict(paradigm=par, value=sn["gender"], kind="snap", role="noun",
                              implied=((a, sn["age"]),)))
    capable = frozenset(pick(gp, k, "child_capable").pid for k in spec.get("child_capable", []))
    return Cells(g, a, spec["child"], tuple(families), merge, by_pid, capable)


@cache
def _shared() -> dict:
    return json.loads((_DATA / "sensitive.json").read_text(encoding="utf-8"))


@cache
def _demonyms() -> dict:
    return json.loads((_DATA / "demonyms.json").read_text(encoding="utf-8"))["demonyms"]


@cache
def _first_names() -> frozenset:
    lines = (_DATA / "first_names.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(x.strip() for x in lines if x.strip() and not x.startswith("#"))


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


@cache
def _preset(name: str) -> Lexicon:
    path = _DIR / f"{name}.json"
    return parse_lexicon(_read_json(path, f"preset {name!r}"), f"preset {name!r}")


@lru_cache(maxsize=32)
def _from_file(path: str, mtime_ns: int, size: int) -> Lexicon:
    return parse_lexicon(_read_json(Path(path), path), path)


def load_lexicon(lexicon: str | os.PathLike | Lexicon | None = None) -> Lexicon:
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
