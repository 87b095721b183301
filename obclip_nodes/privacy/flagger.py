"""Optional second opinion: a ``transformers`` token-classification model that flags names (and any
other type its labels name) that the vocabulary missed.  Off by default; it may only *add* refusals,
never remove protection.

    flagger = ModelFlagger("/path/to/local/ner-model")          # a local directory, never a download
    expand_prompt("Zorblax Quux on stage", flagger=flagger)      # -> ExpansionError naming 'Zorblax Quux'

``transformers`` (and torch) are imported when a flagger is built, not when the privacy package is.
The label map turns the model's entity groups into sensitive types; entities the map does not name
are ignored.  A flagged span that overlaps a word the expander swaps is not flagged again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import ExpansionError

DEFAULT_LABELS = {"PER": "name", "PERSON": "name", "NORP": "ethnicity", "RELIGION": "religion",
                  "DISABILITY": "disability", "ORIENTATION": "orientation"}


@dataclass(frozen=True)
class Flag:
    word: str
    type: str
    start: int
    end: int
    score: float


class ModelFlagger:
    def __init__(self, model_dir: "str | os.PathLike", labels: "dict | None" = None, threshold: float = 0.5):
        path = os.fspath(model_dir)
        if not os.path.isdir(path):
            raise ExpansionError(f"flagger model directory {path!r} does not exist; give a local directory with a "
                                 f"token-classification model (config.json, weights, tokenizer)")
        try:
            from transformers import pipeline
        except ImportError:
            raise ExpansionError("the model flagger needs the 'transformers' package; install it or leave the "
                                 "flagger off") from None
        try:
            self._pipe = pipeline("token-classification", model=path, tokenizer=path,
                                  aggregation_strategy="simple", device=-1)
        except Exception as e:  # noqa: BLE001 - a bad directory is a clear error, not a traceback
            raise ExpansionError(f"cannot load the flagger model from {path!r}: {type(e).__name__}: {e}") from None
        self.labels = dict(DEFAULT_LABELS if labels is None else labels)
        self.threshold = float(threshold)

    def flag(self, text: str) -> list[Flag]:
        out = []
        for ent in self._pipe(text):
            group = str(ent.get("entity_group") or ent.get("entity") or "").upper().removeprefix("B-").removeprefix("I-")
            kind = self.labels.get(group)
            if kind is None or float(ent.get("score", 0.0)) < self.threshold:
                continue
            s, e = int(ent["start"]), int(ent["end"])
            out.append(Flag(text[s:e].strip(), kind, s, e, float(ent["score"])))
        return out
