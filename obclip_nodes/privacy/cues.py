"""Stage 2, find cues: every word or phrase that says something sensitive about a person.

A :class:`Cue` is one of

* ``form``: a surface of a lexicon paradigm ("woman", "Asian", "she") -- swappable as written;
* ``snap``: a word the lexicon maps onto one value of an attribute ("teenage" -> young, "Nigerian"
  -> black) -- swapped, rendered with that value's paradigm form (the node shows the snap);
* ``numeric``: an age in digits ("30-year-old", "in her 40s", "aged 70", "45 yo", "a woman, 65")
  -- swapped over the age value space, the number snapped to the value's canonical age;
* ``sensitive``: a word that reveals a type the lexicon cannot swap (religion, disability, ...);
* ``name``: a personal or celebrity name;
* ``compound``: an unknown word built on a gendered noun ("postman", "showgirl").

Whether a cue describes a person, and which one, is decided by :mod:`.bind`; what happens to it by
:mod:`.policy`.  Nothing here depends on which candidate is real beyond the words themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .lexicon import Lexicon, Paradigm, apply_style
from .tokenize import Tokens

_NUM_SHAPES = (
    # (kind, bind, regex): group n is the number
    ("years", "both", re.compile(r"\b(?P<n>\d{1,3})(?:[ \t]*-?[ \t]*(?:years?|yrs?)[ \t]*-?[ \t]*old\b"
                                 r"|[ \t]*-?[ \t]*(?:yo|y/o|yrs?)\b)", re.IGNORECASE)),
    ("decades", "anchor", re.compile(r"\b(?:in|during)[ \t]+(?P<pro>her|his|their|my|your)[ \t]+"
                                     r"(?:(?:early|mid|late)[ \t-]+)?(?P<n>[1-9]0|teen)'?s\b", re.IGNORECASE)),
    ("words", "both", re.compile(r"\b(?P<n>(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
                                 r"(?:[ -](?:one|two|three|four|five|six|seven|eight|nine))?|ten|eleven|twelve|"
                                 r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)[ \t]*-?[ \t]*years?"
                                 r"[ \t]*-?[ \t]*old\b", re.IGNORECASE)),
    ("years", "anchor", re.compile(r"\b(?P<pro>she|he)[ \t]+(?:is|was|turns|turned|just[ \t]+turned)[ \t]+"
                                   r"(?P<n>\d{1,3})\b(?![.:,]\d)(?![ \t]*(?:%|percent|cm|kg|km|m\b|mm|ft|feet|"
                                   r"inches|lbs|pounds|minutes|hours|seconds|times|points|years?[ \t]+ago))",
                                   re.IGNORECASE)),
    ("years", "back", re.compile(r"(?<=[^\W\d_])[ \t]*\((?P<n>\d{1,3})\)")),
    ("years", "back", re.compile(r"\baged?[ \t]+(?P<n>\d{1,3})\b(?![.:]\d)", re.IGNORECASE)),
    ("years", "back", re.compile(r"(?<=[^\W\d_])[ \t]*,[ \t]*(?P<n>\d{1,3})(?=[ \t]*(?:[,.;)\n]|$))")),
)


_DIGIT_RE = re.compile(r"\d")


@dataclass(eq=False)
class Cue:
    t0: int                      # first word
    t1: int                      # one past the last word
    c0: int                      # char span that is swapped / reported
    c1: int
    kind: str                    # form | snap | numeric | sensitive | name | compound
    role: str                    # noun | adjective | pronoun | title | context
    stype: str                   # the attribute type it reveals
    par: Paradigm | None = None
    value: str | None = None
    style: str = "natural"
    surface: str = ""
    fix: str = ""
    bind: str = "both"           # numeric: forward/back/both/anchor
    anchor: int = -1             # numeric "in her 40s": the word of the pronoun
    negative: bool = False
    person: object = None        # set by bind
    snapped: bool = False        # rendered differently from what the user wrote
    implied: tuple = ()          # ((attribute, value), ...) the word also gives: "grandmother" -> (age, old)
    in_cell: bool = False        # written as a cell of gender x age by render (its implied age is swapped)

    @property
    def swappable(self) -> bool:
        return self.par is not None


@dataclass(eq=False)
class Cues:
    cues: list
    at: list                     # word -> the cue covering it (or None)
    ignored: list                # word inside an ignore phrase


def _style_of(surface: str, natural: str) -> str:
    if surface == natural:
        return "natural"
    if surface == natural.lower():
        return "lower"
    if surface == natural.upper():
        return "upper"
    return "title" if surface[:1].isupper() else "natural"


def _render_style(style: str, par: Paradigm) -> str:
    return style if style in par.styles else ("lower" if style == "lower" and "lower" in par.styles else "natural")


def numeric_paradigm(lex: Lexicon, kind: str, suffix: str) -> Paradigm:
    """The synthetic paradigm of one numeric shape: {young: '25'+suffix, ...} (stable pid per shape)."""
    pid = f"num:{kind}:{suffix.lower()}"
    par = lex.synthetic.get(pid)
    if par is None:
        cfg = lex.numeric_ages
        canon = cfg["years" if kind == "words" else kind]
        forms = {v: number_words(canon[v]) if kind == "words" else f"{canon[v]}{suffix}"
                 for v in lex.attributes[cfg["attribute"]]}
        par = Paradigm(pid, cfg["attribute"], "adjective", "singular", None, False, forms, {}, ("natural",))
        lex.synthetic[pid] = par
    return par


def paradigm_by_pid(lex: Lexicon, pid) -> Paradigm:
    return lex.paradigms[pid] if isinstance(pid, int) else lex.synthetic[pid]


_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
          "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
          "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_NUMBER_WORDS = {v: k for k, v in {**_UNITS, **_TENS}.items()}


def _word_number(w: str) -> int:
    if w in _UNITS:
        return _UNITS[w]
    tens, _, unit = w.replace(" ", "-").partition("-")
    return _TENS[tens] + _UNITS.get(unit, 0)


def number_words(n: int) -> str:
    if n in _NUMBER_WORDS:
        return _NUMBER_WORDS[n]
    return f"{_NUMBER_WORDS[n - n % 10]}-{_NUMBER_WORDS[n % 10]}"


def _band(lex: Lexicon, n: int) -> str | None:
    for lo, hi, v in lex.numeric_ages["bands"]:
        if lo <= n <= hi:
            return v
    return None


def find_cues(tok: Tokens, lex: Lexicon, *, full: bool = True) -> Cues:
    """All cues of the prompt.  ``full=False`` finds only swappable cues (used to re-read candidates,
    which differ from the prompt only in swapped words)."""
    n, low, gaps, text = tok.n, tok.low, tok.gaps, tok.text
    ignored = [False] * n
    if lex.ignore_phrases and not lex.ignore_phrases.keys().isdisjoint(low):
        for i, j, _ in find_phrases(low, gaps, lex.ignore_phrases):
            for k in range(i, j):
                ignored[k] = True
    cues: list[Cue] = []
    at: list = [None] * n

    def put(c: Cue) -> None:
        cues.append(c)
        for k in range(c.t0, c.t1):
            at[k] = c

    # -- numbers first: "30-year-old" must not read as the adjective "old"
    if lex.numeric_ages is not None and (_DIGIT_RE.search(text) or "year" in text.lower() or "teens" in low):
        starts = {c0: i for i, (c0, _) in enumerate(tok.spans)}
        ends = {c1: i for i, (_, c1) in enumerate(tok.spans)}
        for kind, bind, rx in _NUM_SHAPES:
            for m in rx.finditer(text):
                i = starts.get(m.start("n"))
                if i is None or at[i] is not None:
                    continue
                digits = m.group("n")
                word = tok.words[i]
                if kind == "words":
                    num = _word_number(digits.lower())
                    suffix = ""
                    word = digits
                elif digits.lower() == "teen":
                    num, suffix = 10, "s"
                else:
                    num = int(digits)
                    suffix = word[len(digits):] if word.startswith(digits) else ""
                v = _band(lex, num + 5 if kind == "decades" else num)
                if v is None:
                    continue
                first = starts.get(m.start(), i)
                last = ends.get(m.end())
                if last is None:
                    last = max(k for k in range(i, n) if tok.spans[k][0] < m.end())
                par = numeric_paradigm(lex, kind, suffix)
                span = (m.start("n"), m.end("n")) if kind == "words" else tok.spans[i]
                c = Cue(min(first, i), last + 1, *span, "numeric", "adjective", par.attribute, par, v,
                        "natural", word, bind=bind, negative=tok.negative[i])
                c.snapped = par.forms[v] != word
                if bind == "anchor":
                    c.anchor = starts.get(m.start("pro"), -1)
                    c.t0 = c.t1 - 1
                put(c)

    # -- lexicon entries: paradigm forms, snaps, sensitive words (longest match first)
    entries = lex.entries
    free_from = 0
    for i in [i for i, w in enumerate(low) if w in entries]:
        if i < free_from or ignored[i] or at[i] is not None:
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
                if ignored[i + j] or at[i + j] is not None or low[i + j] != e.words[j] or gaps[i + j] != e.seps[j - 1]:
                    ok = False
                    break
            if ok:
                if matched is None:
                    matched = [e]
                elif e.kind == matched[0].kind:
                    matched.append(e)
        if matched is None:
            continue
        k = len(matched[0].words)
        c0, c1 = tok.spans[i][0], tok.spans[i + k - 1][1]
        surface = text[c0:c1]
        free_from = i + k
        e0 = matched[0]
        if e0.kind == "sensitive":
            if not full:
                continue
            # "Asian-American": a nationality after a hyphen adds to the ethnicity word before it
            if i > 0 and gaps[i] in ("-", " ") and at[i - 1] is not None and at[i - 1].stype == e0.stype \
                    and at[i - 1].par is not None:
                _to_demonym_paradigm(at[i - 1], lex)
                continue
            put(Cue(i, i + k, c0, c1, "sensitive", e0.role, e0.stype, surface=surface, fix=e0.fix,
                    negative=tok.negative[i]))
            continue
        if e0.kind in ("snap", "form") and surface[:1].isupper() and i + k < n and gaps[i + k] == " " \
                and tok.words[i + k] in lex.place_suffixes:
            continue                                  # "Kings Canyon", "Queens Park", "Old Town": places
        if e0.kind in ("snap", "form") and (e0.paradigm.role == "noun" or e0.paradigm.attribute == "age") \
                and i + k < n and gaps[i + k] in (" ", "-") and low[i + k] in lex.animals:
            continue                                  # "mother bear", "baby elephant", "young lion": animals
        if e0.kind in ("snap", "form") and e0.paradigm.role == "noun" and e0.paradigm.number == "plural" \
                and i + k < n and (gaps[i + k] in ("'", "\u2019") and low[i + k] == "s"
                                   or gaps[i + k][:2] in ("' ", "\u2019 ")):
            continue                                  # "men's watch", "ladies' shoes": a product category
        if e0.kind == "snap":
            if i > 0 and gaps[i] in ("-", " ") and at[i - 1] is not None and at[i - 1].par is not None \
                    and at[i - 1].stype == e0.paradigm.attribute and e0.role == "adjective" and e0.fix:
                _to_demonym_paradigm(at[i - 1], lex)
                continue                              # "Asian-American", "Black British": one ethnicity word
            par = e0.paradigm
            style = _render_style(_style_of(surface, e0.surface), par)
            c = Cue(i, i + k, c0, c1, "snap", e0.role, par.attribute, par, e0.value, style, surface, e0.fix,
                    negative=tok.negative[i], implied=e0.implied)
            c.snapped = True
            put(c)
            continue
        readings = []
        for e in matched:
            nat = e.paradigm.forms[e.value]
            for st in e.paradigm.styles:
                if apply_style(st, nat) == surface:
                    readings.append((e, st))
                    break
        if not readings:
            # a capitalisation no style of the paradigm writes safely ("Middle-Aged", "ASIAN" beside "Asian"): the
            # word is written in the paradigm's own case in every candidate, the real one included (a
            # normalisation the node shows), rather than refused
            e = matched[0]
            st = "title" if surface[:1].isupper() and "title" in e.paradigm.styles else "natural"
            c = Cue(i, i + k, c0, c1, "form", e.paradigm.role, e.paradigm.attribute, e.paradigm, e.value, st, surface,
                    negative=tok.negative[i])
            c.snapped = True
            put(c)
            continue
        if len(readings) > 1:       # her (object|possessive), his (possessive|independent)
            nxt = i + k
            dependent = (nxt < n and not ignored[nxt] and gaps[nxt] != "" and gaps[nxt].strip(" \t") == ""
                         and low[nxt] not in lex.stop_words and low[nxt] not in lex.object_followers)
            want = ("possessive",) if dependent else ("object", "independent")
            pick = [r for r in readings if r[0].paradigm.case in want]
            readings = pick or readings[:1]
        e, st = readings[0]
        put(Cue(i, i + k, c0, c1, "form", e.paradigm.role, e.paradigm.attribute, e.paradigm, e.value, st, surface,
                negative=tok.negative[i]))

    # "in her forties", "in his late 20s": an age after "in <pronoun>" describes the pronoun's person
    if lex.numeric_ages is not None:
        age = lex.numeric_ages["attribute"]
        for c in cues:
            if c.par is not None and c.par.attribute == age and c.role == "adjective" and c.bind != "anchor":
                k = c.t0 - 1
                if k >= 0 and low[k] in ("early", "mid", "late") and at[k] is None:
                    k -= 1
                if k >= 1 and at[k] is not None and at[k].role == "pronoun" and low[k - 1] in ("in", "during"):
                    c.bind, c.anchor = "anchor", k
    if full:
        _names(tok, lex, at, ignored, put)
        _compounds(tok, lex, at, ignored, put)
    cues.sort(key=lambda c: c.t0)
    return Cues(cues, at, ignored)


def _names(tok: Tokens, lex: Lexicon, at, ignored, put) -> None:
    if not lex.first_names:
        return
    words, low, gaps, n = tok.words, tok.low, tok.gaps, tok.n

    def capital(w: str) -> bool:
        return len(w) > 1 and w[0].isupper() and not w.isupper() and w[1:].islower()

    for i in range(n - 1):
        if words[i] in lex.gendered_titles and at[i] is None and capital(words[i + 1]) and gaps[i + 1] in (" ", ". "):
            put(Cue(i, i + 1, *tok.spans[i], "sensitive", "noun", "gender", surface=words[i],
                    fix="write Ms or Mr (swapped), or drop the title"))
    caps = sum(1 for k in range(1, n) if words[k][:1].isupper() and not re.search(r"[.!?]", gaps[k]))
    lowercase_prompt = n >= 3 and caps <= 2 + n // 4          # not Title Case, where every word is capitalised
    i = 0
    while i < n:
        w = words[i]
        if at[i] is not None or ignored[i] or not capital(w):
            i += 1
            continue
        prev = low[i - 1] if i > 0 else ""
        named = (prev in lex.name_context and gaps[i].strip() == "") or (
            prev in lex.name_titles and gaps[i] in (" ", ". ") and capital(words[i - 1])
            and words[i] not in lex.place_suffixes and low[i] not in lex.stop_words)
        known = w in lex.first_names or w in lex.celebrities or (
            prev in lex.person_nouns and gaps[i] == " " and i + 1 <= n and low[i] not in lex.stop_words
            and w not in lex.place_prefixes and w not in lex.place_suffixes)
        # an unknown "Firstname Lastname" in a prompt that is otherwise written in lower case
        pair = (not known and not named and lowercase_prompt and i + 1 < n and capital(words[i + 1])
                and gaps[i + 1] == " " and at[i + 1] is None and w not in lex.place_prefixes
                and words[i + 1] not in lex.place_suffixes and low[i] not in lex.stop_words
                and low[i + 1] not in lex.stop_words and (i == 0 or gaps[i].strip() in ("", ",", "("))
                and prev not in ("on", "by"))
        if not (known or named or pair):
            i += 1
            continue
        j = i + 1
        while j < n and capital(words[j]) and gaps[j] in (" ", "-") and at[j] is None \
                and words[j] not in lex.place_suffixes and low[j] not in lex.stop_words:
            j += 1
        has_surname = j > i + 1
        if j < n and gaps[j] == " " and words[j] in lex.place_suffixes:
            i = j + 1
            continue                                            # Victoria Station, Mother's Day
        if any(low[k] in lex.artist_markers for k in range(max(0, i - 4), i)):
            i = j
            continue                                            # "art by Greg Rutkowski": the artist
        if prev in lex.place_prepositions and not has_surname:
            i = j
            continue                                            # "in Sydney"
        strong = named or has_surname or w in lex.celebrities or (i > 0 and at[i - 1] is not None
                                                                    and at[i - 1].role == "noun")
        if w in lex.ambiguous_names and not strong:
            i = j
            continue
        c0, c1 = tok.spans[i][0], tok.spans[j - 1][1]
        put(Cue(i, j, c0, c1, "name", "noun", "name", surface=tok.text[c0:c1], negative=tok.negative[i]))
        i = j


def _compounds(tok: Tokens, lex: Lexicon, at, ignored, put) -> None:
    if not lex.compound_suffixes:
        return
    ends = tuple(suf for suf, _ in lex.compound_suffixes)
    for i, w in enumerate(tok.low):
        if len(w) < 6 or not w.endswith(ends) or at[i] is not None or ignored[i] or w in lex.compound_exceptions \
                or w in lex.person_nouns:
            continue
        word = tok.words[i]
        if word[:1].isupper() and (word in lex.first_names or (i + 1 < tok.n and tok.gaps[i + 1] == " "
                                                                and tok.words[i + 1][:1].isupper())):
            continue                                  # "Norman Rockwell", "Herman Melville": a name, not a -man word
        for suf, value in lex.compound_suffixes:
            if w.endswith(suf) and len(w) - len(suf) >= 3 and w[:-len(suf)].isalpha():
                put(Cue(i, i + 1, *tok.spans[i], "compound", "noun", "gender", surface=tok.words[i], value=None,
                        fix="use a neutral word (e.g. 'worker', 'person', 'carrier') or a pair the lexicon swaps "
                            "(woman/man, firewoman/fireman)",
                        negative=tok.negative[i]))
                break


def _to_demonym_paradigm(c: Cue, lex: Lexicon) -> None:
    """'African American' -> 'Black American': before a nationality, an ethnicity word renders with the
    paradigm the nationalities snap to, so no candidate reads 'Latin American American'."""
    if lex.demonym_pid is not None and c.par is not None and c.par.pid != lex.demonym_pid and c.kind in ("form", "snap"):
        par = lex.paradigms[lex.demonym_pid]
        if par.attribute == c.par.attribute:
            c.par = par
            c.style = c.style if c.style in par.styles else "natural"
            c.snapped = True


def find_phrases(low: list, gaps: list, index: dict):
    """Yield (first word, end word, payload) of non-overlapping phrase matches, longest first."""
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
