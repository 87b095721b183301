"""Render captions to 64x64 portraits, and read the attributes back from the pixels.

Protected attributes use the `paper` preset's value spaces (so the Candidate Expander swaps exactly
these words); the others are non-sensitive details the server may see. Each attribute owns a
disjoint image region, so the reader is the renderer's exact inverse.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

SIZE = 64
_PAPER = json.loads((Path(__file__).resolve().parents[1] / "privacy" / "lexicons" / "paper.json").read_text())
_VALUES = {k: tuple(v["values"]) for k, v in _PAPER["attributes"].items()}

PROTECTED = ("gender", "age", "ethnicity")
ATTRIBUTES = {
    "gender": _VALUES["gender"],            # code: hair length (long hair reaches the shoulders)
    "age": _VALUES["age"],                  # code: hair colour
    "ethnicity": _VALUES["ethnicity"],      # code: one of five synthetic face tints
    "background": ("blue", "green", "grey", "orange"),
    "shirt": ("red", "yellow", "purple", "teal"),
    "glasses": (False, True),
    "hat": (False, True),
}
# Colour codes, far apart so a reader can classify by nearest colour.
_HAIR = {"young": (0.25, 0.15, 0.05), "middle-aged": (0.55, 0.45, 0.35), "old": (0.95, 0.95, 0.95)}
_SKIN = {"caucasian": (0.95, 0.80, 0.70), "african": (0.35, 0.20, 0.12), "asian": (0.95, 0.85, 0.45),
         "indian": (0.65, 0.42, 0.25), "european": (0.85, 0.60, 0.60)}
_BACKGROUND = {"blue": (0.2, 0.3, 0.9), "green": (0.2, 0.7, 0.3), "grey": (0.5, 0.5, 0.5),
               "orange": (0.95, 0.55, 0.1)}
_SHIRT = {"red": (0.85, 0.1, 0.1), "yellow": (0.95, 0.9, 0.1), "purple": (0.5, 0.1, 0.6),
          "teal": (0.0, 0.55, 0.55)}
_GLASSES, _HAT = (0.05, 0.05, 0.05), (0.1, 0.1, 0.35)
_WORD = {"male": "man", "female": "woman"}
_ETHNIC_WORD = {v: v.capitalize() for v in _VALUES["ethnicity"]}


@dataclass(frozen=True)
class Portrait:
    gender: str
    age: str
    ethnicity: str
    background: str
    shirt: str
    glasses: bool
    hat: bool

    @classmethod
    def all(cls):
        names = [f.name for f in fields(cls)]
        return [cls(**dict(zip(names, combo))) for combo in itertools.product(*(ATTRIBUTES[n] for n in names))]


def caption(p: Portrait) -> str:
    """The phrasing the Candidate Expander handles: its swaps keep the caption a valid caption."""
    article = "an" if p.age[0] in "aeiou" else "a"
    extras = [f"wearing a {p.shirt} shirt"]
    if p.glasses:
        extras.append("with glasses")
    if p.hat:
        extras.append("with a hat")
    return (f"portrait photo of {article} {p.age} {_ETHNIC_WORD[p.ethnicity]} {_WORD[p.gender]}, "
            f"{', '.join(extras)}, {p.background} background")


_CAPTION_RE = re.compile(r"portrait photo of an? (?P<age>[a-z-]+) (?P<eth>[A-Za-z]+) (?P<noun>man|woman), "
                         r"wearing a (?P<shirt>[a-z]+) shirt(?P<glasses>, with glasses)?(?P<hat>, with a hat)?, "
                         r"(?P<bg>[a-z]+) background$")


def parse_caption(text: str) -> Portrait:
    m = _CAPTION_RE.match(text.strip())
    if not m:
        raise ValueError(f"not a miniworld caption: {text!r}")
    return Portrait(gender={v: k for k, v in _WORD.items()}[m["noun"]], age=m["age"], ethnicity=m["eth"].lower(),
                    background=m["bg"], shirt=m["shirt"], glasses=bool(m["glasses"]), hat=bool(m["hat"]))


def render(p: Portrait) -> np.ndarray:
    """-> float32 [64, 64, 3] in 0..1. Regions: background, shirt (bottom), face (centre), hair
    (top of head, plus shoulder-length locks for long hair), glasses band, hat brim."""
    img = np.empty((SIZE, SIZE, 3), np.float32)
    img[:] = _BACKGROUND[p.background]
    img[48:, 12:52] = _SHIRT[p.shirt]
    img[18:42, 22:42] = _SKIN[p.ethnicity]
    img[10:18, 20:44] = _HAIR[p.age]
    if p.gender == "female":                       # long hair: locks down both sides to the shoulders
        img[14:48, 16:22] = _HAIR[p.age]
        img[14:48, 42:48] = _HAIR[p.age]
    if p.glasses:
        img[25:28, 24:40] = _GLASSES
    if p.hat:
        img[4:10, 18:46] = _HAT
    return img


def _nearest(pixel: np.ndarray, table: dict):
    return min(table, key=lambda k: float(np.sum((pixel - np.asarray(table[k])) ** 2)))


# Where the reader looks: (rows, cols) of each region whose mean colour it classifies.
REGIONS = {
    "hair": (slice(11, 17), slice(24, 40)),
    "locks": (slice(30, 46), slice(17, 21)),
    "background": (slice(30, 46), slice(2, 10)),
    "face": (slice(30, 40), slice(26, 38)),
    "shirt": (slice(52, 62), slice(26, 38)),
    "glasses": (slice(25, 28), slice(26, 38)),
    "hat": (slice(5, 9), slice(26, 38)),
}


def features(img: np.ndarray) -> np.ndarray:
    """The reader's features: the mean RGB of each region (21 numbers), for a Frechet distance."""
    img = np.asarray(img, np.float32)
    return np.concatenate([img[ys, xs].reshape(-1, 3).mean(0) for ys, xs in REGIONS.values()])


def read(img: np.ndarray) -> Portrait:
    """The renderer's inverse, from region means (robust to mild noise)."""
    f = dict(zip(REGIONS, features(img).reshape(-1, 3)))
    hair, locks, background = f["hair"], f["locks"], f["background"]
    return Portrait(
        gender="female" if np.sum((locks - hair) ** 2) < np.sum((locks - background) ** 2) else "male",
        age=_nearest(hair, _HAIR),
        ethnicity=_nearest(f["face"], _SKIN),
        background=_nearest(background, _BACKGROUND),
        shirt=_nearest(f["shirt"], _SHIRT),
        glasses=bool(np.sum((f["glasses"] - np.asarray(_GLASSES)) ** 2) < 0.05),
        hat=bool(np.sum((f["hat"] - np.asarray(_HAT)) ** 2) < 0.05),
    )
