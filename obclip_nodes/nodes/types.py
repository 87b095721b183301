"""Custom socket types of the pack. OBCLIP_SELECTION is private: only client nodes accept it."""
from __future__ import annotations

from dataclasses import dataclass

from .v3 import io

Candidates = io.Custom("OBCLIP_CANDIDATES")     # public: tuple[str, ...] in canonical order
Selection = io.Custom("OBCLIP_SELECTION")       # private: which candidate is real
HandoffType = io.Custom("OBCLIP_HANDOFF")       # protocol.Handoff reported by the cloud
Acceleration = io.Custom("OBCLIP_ACCELERATION")  # acceleration.AccelerationSettings


@dataclass(frozen=True)
class PrivateSelection:
    real_index: int
    prompt: str
    n: int

    def __repr__(self) -> str:  # keep the real index out of logs and tracebacks
        return f"PrivateSelection(n={self.n}, real_index=<hidden>)"

    __str__ = __repr__
