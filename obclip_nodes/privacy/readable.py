"""Stage 1b, can the expander read the prompt?  Default deny for what it cannot read.

The lexicon knows English words.  A word it cannot read may still name a person's gender, age or
ethnicity to the image model ("una mujer joven", "yound woman"), so:

* **Language.**  A letter outside the Latin script (一个女孩, девушка, فتاة) and a word that is rare in
  English but common in another language ("mujer", "jeune", "ragazza") cannot be read: each is a
  finding of type ``language`` naming the language it looks like, and the run is refused unless the
  override is on.  A prompt with English plus a few foreign words is judged word by word, so a
  loanword that English uses ("sombrero", "paella", "hijab") passes.
* **Spelling.**  A word that is not English but within a small edit distance of a word the lexicon
  knows ("yound", "eldery", "asain", "hispanci") is read as that word: the prompt is corrected before
  the other stages run (the node shows each correction), or, when two lexicon words are equally
  close, refused with "did you mean".  A person word with a bare ``s`` ("womans face") is read as the
  possessive ("woman's").

Frequencies come from ``wordfreq`` (Apache-2.0 code; CC-BY-SA data) and distances from ``rapidfuzz``
(MIT); both are pure lookups after a one-time load (about 0.3 s), so a prompt costs microseconds.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from functools import cache

from .errors import ExpansionError
from .lexicon import Lexicon
from .tokenize import Tokens

# Other languages whose words are checked against English, with the names a message uses.
LANGUAGES = {"es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese", "nl": "Dutch",
             "pl": "Polish", "sv": "Swedish", "tr": "Turkish", "id": "Indonesian"}
_SCRIPTS = {"CJK": "Chinese or Japanese", "HIRAGANA": "Japanese", "KATAKANA": "Japanese", "HANGUL": "Korean",
            "CYRILLIC": "Russian or another Cyrillic-script language", "ARABIC": "Arabic", "HEBREW": "Hebrew",
            "GREEK": "Greek", "DEVANAGARI": "Hindi or another Devanagari-script language", "THAI": "Thai",
            "BENGALI": "Bengali", "TAMIL": "Tamil", "ARMENIAN": "Armenian", "GEORGIAN": "Georgian"}
ENGLISH_ZIPF = 2.5          # at or above: an English word (sombrero 2.6, paella 2.6; mujer 2.3, jeune 2.4)
FOREIGN_ZIPF = 3.5          # a lone foreign word: another language uses it at least this often ...
FOREIGN_MARGIN = 1.5        # ... and this much more often than English does ("abuela": es 4.6, en 2.3)
TYPO_ZIPF = 2.0             # below: not an English word, so a near miss of a lexicon word is a misspelling
TYPO_ZIPF_BEFORE_PERSON = 3.5   # right before a person word a rarer-than-common word is read too ("yung man")
_FLOOR = 1.0                # the frequency a language's list gives a word it does not hold
_FIX_LANGUAGE = "write the prompt in English (the expander reads English only), or turn on allow_unprotected"


@dataclass(frozen=True)
class Correction:
    word: int                 # token index
    written: str
    read_as: str


@dataclass(frozen=True)
class Unreadable:
    word: str
    type: str                 # language | the type of the lexicon word it may misspell
    reason: str
    fix: str


def _zipf(freq: float) -> float:
    return math.log10(freq * 1e9) if freq > 0 else 0.0


@cache
def _tables():
    try:
        import wordfreq
        from rapidfuzz.distance import OSA, Indel
        from rapidfuzz.process import extract
    except ImportError as e:   # fail closed: without the gate nothing can be called readable
        raise ExpansionError(f"the language and spelling check needs the '{e.name}' package; install the pack's "
                             f"requirements (pip install -r requirements.txt in the pack's folder)") from None
    english = wordfreq.get_frequency_dict("en", "best")
    others = {code: wordfreq.get_frequency_dict(code, "small") for code in LANGUAGES}
    return english, others, OSA, extract, Indel.normalized_similarity


def _script(ch: str) -> str | None:
    """The script of a letter outside Latin, or None for Latin (and for digits and marks)."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    head = name.split(" ", 1)[0]
    if head == "LATIN" or not name:
        return None
    return head


@cache
def _targets(lex: Lexicon) -> tuple:
    """Single lexicon words a misspelling may stand for (4+ letters), and what each reveals."""
    out = {}
    for first, entries in lex.entries.items():
        for e in entries:
            if len(e.words) == 1 and len(first) >= 4 and first.isalpha():
                out.setdefault(first, (e.paradigm.attribute, e.value) if e.paradigm is not None else (e.stype, None))
    return tuple(out), out


@cache
def _short_targets(lex: Lexicon) -> tuple:
    return tuple(w for w, es in lex.entries.items() if len(w) == 3 and w.isalpha()
                 and any(len(e.words) == 1 and e.kind != "sensitive" for e in es))


def _max_distance(word: str) -> int:
    return 1 if len(word) < 8 else 2


def check(tok: Tokens, lex: Lexicon) -> tuple[list[Correction], list[Unreadable]]:
    """(corrections to apply, words that cannot be read) of a tokenised prompt."""
    english, others, osa, extract, indel = _tables()
    corrections: list[Correction] = []
    unreadable: list[Unreadable] = []
    entries, pn = lex.entries, lex.person_nouns
    names, names_lower = lex.first_names, None
    targets, reveals = _targets(lex)
    scripts: dict[str, list[str]] = {}
    for w in tok.words:
        for ch in w:
            s = _script(ch)
            if s is not None:
                scripts.setdefault(s, []).append(w)
                break
    for s, words in scripts.items():
        shown = " ".join(dict.fromkeys(words))[:40]
        unreadable.append(Unreadable(shown, "language", f"it is written in {_SCRIPTS.get(s, s.title() + ' script')}, "
                                     f"which the expander cannot read, so it cannot tell whether it names a person's "
                                     f"gender, age or ethnicity", _FIX_LANGUAGE))
    # the prompt's language: naive Bayes over the words' frequencies (unknown words at a floor), so a prompt
    # whose words are together likelier German than English is German even where each could be English
    votes = {c: 0.0 for c in others}
    strong = {c: [] for c in others}
    counted = 0
    for i, low in enumerate(tok.low):
        # the lexicon's own words are English by definition and are what differs between candidates: leaving
        # them out keeps the verdict the same for every candidate ("men" is Swedish for "but")
        if not low.isalpha() or any(_script(ch) for ch in low) or low in entries or low in pn:
            continue
        counted += 1
        en = max(_zipf(english.get(low, 0.0)), _FLOOR)
        for c, d in others.items():
            diff = max(_zipf(d.get(low, 0.0)), _FLOOR) - en
            votes[c] += diff
            if diff >= 1.0 and len(low) >= 2:
                strong[c].append(i)
    code = max(votes, key=votes.get) if votes else None
    whole = code is not None and len(strong[code]) >= 2 and votes[code] >= 0.5 * counted
    flagged = set()
    foreign = []
    if whole:
        flagged.update(strong[code])
        shown = " ".join(tok.words[i] for i in strong[code][:4]) + (" ..." if len(strong[code]) > 4 else "")
        unreadable.append(Unreadable(shown, "language", f"the prompt looks like {LANGUAGES[code]}, "
                                     f"which the expander cannot read, so it cannot tell whether it names a person's "
                                     f"gender, age or ethnicity", _FIX_LANGUAGE))
    else:
        for i, low in enumerate(tok.low):
            if len(low) < 3 or not low.isalpha() or low in entries or low in pn or low in lex.stop_words:
                continue
            en = _zipf(english.get(low, 0.0))
            if en >= ENGLISH_ZIPF + (0 if low.isascii() else 0.5):      # "señor" 2.7: accents are evidence
                continue
            c, best = max(((c, _zipf(d.get(low, 0.0))) for c, d in others.items()), key=lambda x: x[1])
            if _lone_foreign_person(tok, lex, i, best, best - en):
                foreign.append((i, c))
    for i, c in foreign:
        flagged.add(i)
        unreadable.append(Unreadable(tok.words[i], "language", f"it looks like {LANGUAGES[c]}, which the expander cannot read, so it "
                                     f"cannot tell whether it names a person's gender, age or ethnicity",
                                     _FIX_LANGUAGE))
    for i, low in enumerate(tok.low):
        if i in flagged or len(low) < 3 or not low.isalpha() or low in entries or low in pn or low in lex.stop_words:
            continue
        if any(_script(ch) for ch in low):
            continue
        word = tok.words[i]
        mid_capital = word[:1].isupper() and i > 0 and tok.segment[i - 1] == tok.segment[i] and \
            not tok.gaps[i].rstrip().endswith((".", "!", "?", "(", "["))
        en = _zipf(english.get(low, 0.0))
        # a person word with a bare possessive s: "womans face" -> "woman's face", "womens portrait" -> "women's"
        if low.endswith("s") and low[:-1] in entries and i + 1 < tok.n and not (
                tok.gaps[i + 1].strip() or tok.low[i + 1] in lex.stop_words):
            stem = low[:-1]
            nouns = [e for e in entries[stem] if e.paradigm is not None and e.paradigm.role == "noun" and len(e.words) == 1]
            if nouns:       # a plural already ends the word ("womens" -> "women"); a singular takes the possessive
                plural = any(e.paradigm.number == "plural" for e in nouns)
                corrections.append(Correction(i, word, word[:-1] + ("" if plural else "'s")))
                continue
        # (any lexicon word counts: "girl" and "young woman" are candidates of one cell)
        before_person = i + 1 < tok.n and tok.gaps[i + 1] == " " and (tok.low[i + 1] in pn or tok.low[i + 1] in entries)
        if en >= (TYPO_ZIPF_BEFORE_PERSON if before_person else TYPO_ZIPF) or mid_capital or len(low) < 3 \
                or not low.isascii():
            continue
        if names_lower is None:
            names_lower = {n.lower() for n in names}
        if low in names_lower:
            continue
        near = extract(low, targets, scorer=osa.distance, score_cutoff=_max_distance(low), limit=4)
        if len(low) == 3:       # "grl": only a missing letter of a 4-letter word, or "mna": a swap of a 3-letter one
            near = [x for x in near if len(x[0]) == 4]
            near += [(t, 1, None) for t in _short_targets(lex) if sorted(t) == sorted(low) and t != low]
        if not near:
            continue
        d0 = min(d for _, d, _ in near)
        best = sorted({t for t, d, _ in near if d == d0}, key=lambda t: (-indel(low, t), t))
        if len({reveals.get(t) for t in best}) == 1 or len(best) == 1:    # "eldery": elderly or elder, both old
            corrections.append(Correction(i, word, _same_case(word, best[0])))
        else:
            unreadable.append(Unreadable(word, (reveals.get(best[0]) or ("gender", None))[0], "it is not an English word, and it is as close to "
                                         + " as to ".join(f"'{b}'" for b in best) + " (an image model may read it "
                                         "as either)", "did you mean " + " or ".join(f"'{b}'" for b in best)
                                         + "? Correct the spelling"))
    return corrections, unreadable


_PERSON_SLOT_BEFORE = frozenset({"a", "an", "the", "my", "his", "her", "our", "their", "your", "this", "that"})


def _lone_foreign_person(tok: Tokens, lex: Lexicon, i: int, best: float, margin: float) -> bool:
    """A foreign word in an English prompt that stands where a person word would: after an article, a
    possessive or a sensitive word ("a Mexican abuela"), or as a tag of its own.  Names of things
    the lexicon knows (dishes, buildings, animals), artists' names and weak evidence pass."""
    low = tok.low[i]
    if best < FOREIGN_ZIPF or margin < FOREIGN_MARGIN or low in lex.non_person_heads or low in lex.animals or low in lex.part_words:
        return False
    if any(w in lex.artist_markers for w in tok.low[max(0, i - 3):i]):
        return False
    seg = tok.segment_words(tok.segment[i])
    if len(seg) == 1:
        return True                                    # a tag of its own: "abuela, kitchen, warm light"
    if i == 0 or tok.gaps[i] not in (" ", "-"):
        return i == seg.start
    prev = tok.low[i - 1]
    if prev in _PERSON_SLOT_BEFORE or prev in lex.entries:
        return True                                    # "an abuela", "Italian nonna", "little Mädchen"
    if i >= 2 and tok.gaps[i - 1] == " " and tok.low[i - 2] in _PERSON_SLOT_BEFORE and prev.isalpha() \
            and prev not in lex.stop_words:
        return True                                    # "a beautiful mujer"
    return False


def _same_case(written: str, word: str) -> str:
    if written.isupper() and len(written) > 1:
        return word.upper()
    if written[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def apply(tok: Tokens, corrections: list[Correction]) -> str:
    """The prompt with every correction written in."""
    parts, pos = [], 0
    for c in sorted(corrections, key=lambda c: c.word):
        c0, c1 = tok.spans[c.word]
        parts.append(tok.text[pos:c0])
        parts.append(c.read_as)
        pos = c1
    parts.append(tok.text[pos:])
    return "".join(parts)
