"""The acceleration settings chosen on the client and applied to the cloud's model.

They are public (the same for every choice of real candidate) and travel as canonical JSON.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

STRATEGIES = ("batch_reuse", "attention_cache", "block_skip", "uncond_dedup")
# Strategies whose ModelPatcher wrappers exist in this version; the rest are accepted and reported
# as not applied, so a user never believes an acceleration ran when it did not.
IMPLEMENTED: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AccelerationSettings:
    batch_reuse: bool = False       # paper Alg. 2: pivot attention map shared across the N rows
    attention_cache: bool = False   # T-GATE style, after the cache point
    block_skip: bool = False        # DeepCache style, after the skip point
    uncond_dedup: bool = False      # shared noise + shared negative: compute the uncond branch once
    cache_point: int = 3            # r, in cloud steps
    skip_point: int = 3             # s, in cloud steps
    refresh_every: int = 5          # attention-cache refresh interval
    pivot_index: int = 0            # public, fixed: never the real candidate's index

    def validate(self) -> "AccelerationSettings":
        for name in ("cache_point", "skip_point", "refresh_every", "pivot_index"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"acceleration {name}={v!r} must be a non-negative integer")
        if self.refresh_every < 1:
            raise ValueError("acceleration refresh_every must be at least 1")
        return self

    @property
    def requested(self) -> tuple[str, ...]:
        return tuple(s for s in STRATEGIES if getattr(self, s))

    @property
    def applied(self) -> tuple[str, ...]:
        return tuple(s for s in self.requested if s in IMPLEMENTED)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict | None) -> "AccelerationSettings":
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown acceleration settings {unknown}; known: {sorted(known)}")
        for s in STRATEGIES:
            if s in raw and not isinstance(raw[s], bool):
                raise ValueError(f"acceleration {s} must be true or false")
        return cls(**raw).validate()
