"""Stage 1, tokenise: the prompt as words and the text between them.

A *word* is a run of letters and digits ("woman", "1girl", "30", "40s").  Everything else is a
*gap*: spaces, punctuation, prompt-weight syntax ("(young:1.2)" keeps the word ``young`` and makes
``:1.2`` part of a gap), LoRA/embedding tags (``<lora:name:0.8>``, ``embedding:name``) and
Midjourney parameters (``--ar 16:9 --v 6``).  A Midjourney ``--no ...`` parameter is a negative
prompt: its words stay words, flagged ``negative`` so that the policy stage can treat them like
the negative prompt.

*Segments* are the comma/newline/``|``/``BREAK`` separated parts of the prompt: in tag soup
("1girl, solo, old, asian") a segment that holds only attribute words is a tag that describes the
prompt's one person.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

WORD_RE = re.compile(r"[^\W_]+")
# spans that are never words: weights, LoRA/embedding tags, Midjourney parameters (but not --no)
_MASK_RE = re.compile(
    r"<[^<>\n]{0,200}>"                                   # <lora:name:0.8>, <hypernet:...>
    r"|\bembedding:[^\s,()]+"                             # embedding:name
    r"|:\s*[-+]?\d*\.?\d+"                                # :1.2 weights (also the 9 of 16:9)
    r"|--no\b"                                           # the --no keyword (its words stay words)
    r"|--(?!no\b)[a-zA-Z]+(?:[ \t]+(?!--)[^\s,]+)?"       # --ar 16:9, --v 6, --style raw, --tile
)
_NEG_RE = re.compile(r"--no\b([^\n]*?)(?=\s--[a-zA-Z]|$)", re.MULTILINE)


@dataclass(eq=False)
class Tokens:
    text: str
    words: list            # word i as written
    low: list              # word i lower-cased
    gaps: list             # gaps[i]: the text right before word i; gaps[n]: the tail
    spans: list            # (c0, c1) of word i
    segment: list          # segment number of word i
    negative: list         # word i is inside a Midjourney --no parameter
    _sentence: list | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.words)

    def sentence(self, i: int) -> int:
        """Sentence number of word i ('.', ';', '!' or '?' in a gap ends a sentence)."""
        if self._sentence is None:
            self._sentence = list(itertools.accumulate(1 if re.search(r"[.;!?]", g) else 0 for g in self.gaps))
        return self._sentence[i]

    def segment_words(self, seg: int) -> range:
        lo = self.segment.index(seg)
        hi = lo
        while hi < self.n and self.segment[hi] == seg:
            hi += 1
        return range(lo, hi)


def tokenize(text: str) -> Tokens:
    masked: list[tuple[int, int]] = [m.span() for m in _MASK_RE.finditer(text)] if (
        ":" in text or "<" in text or "--" in text) else []
    negs: list[tuple[int, int]] = [m.span(1) for m in _NEG_RE.finditer(text)] if "--no" in text else []
    scan = text
    if masked:                       # blank the masked spans (same length, so spans stay valid), scan once
        chars = list(text)
        for a, b in masked:
            chars[a:b] = "\x01" * (b - a)
        scan = "".join(chars)
    ms = list(WORD_RE.finditer(scan))
    words = [m.group(0) for m in ms]
    spans = [m.span() for m in ms]
    gaps = []
    pos = 0
    for c0, c1 in spans:
        gaps.append(text[pos:c0])
        pos = c1
    gaps.append(text[pos:])
    seg, segment = 0, []
    for i in range(len(words)):
        if i and ("," in gaps[i] or "\n" in gaps[i] or "|" in gaps[i] or words[i] == "BREAK"
                  or words[i - 1] == "BREAK"):
            seg += 1
        segment.append(seg)
    negative = [any(a <= c0 < b for a, b in negs) for c0, _ in spans] if negs else [False] * len(words)
    return Tokens(text, words, [w.lower() for w in words], gaps, spans, segment, negative)
