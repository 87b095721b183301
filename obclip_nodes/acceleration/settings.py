"""The acceleration settings chosen on the client and applied to the cloud's model.

They are public (the same for every choice of real candidate) and travel as canonical JSON.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

STRATEGIES = ("uncond_dedup", "uncond_share", "batch_reuse", "attention_cache", "block_skip")
# Strategies whose ModelPatcher wrappers exist in this version; the rest are accepted and reported
# as not applied, so a user never believes an acceleration ran when it did not.
IMPLEMENTED: frozenset[str] = frozenset(STRATEGIES)
EXACT = frozenset({"uncond_dedup"})  # the only strategy that changes no number (up to float batching)
SKIP_MODES = ("up_path", "deepcache")

# The Cache Accelerator's presets: points on the frontier that `python -m obclip_nodes.bench frontier`
# measures (docs/acceleration.md has their measured speed and quality). "custom" uses the node's own inputs.
PRESETS: dict[str, dict] = {
    # changes no number: bit-identical outputs
    "exact": {"uncond_dedup": True},
    # dedup + shared uncond + batch reuse, then DeepCache-style: from step 3 every other step reuses the deep
    # features (only input block 0 and the last up block run), recomputed on the steps between
    "balanced": {"uncond_dedup": True, "uncond_share": True, "batch_reuse": True, "block_skip": True,
                 "skip_mode": "deepcache", "skip_branch": 0, "cache_point": 4, "skip_point": 3,
                 "skip_refresh_every": 2},
    # the same with a longer interval: the deep features recomputed on steps 2, 6, 10, ... and reused on the
    # three steps after each (an interval of 3 costs 3.11 cloud-only images at N = 30, k = 10; this one 2.54)
    "fastest": {"uncond_dedup": True, "uncond_share": True, "batch_reuse": True, "block_skip": True,
                "skip_mode": "deepcache", "skip_branch": 0, "cache_point": 4, "skip_point": 3,
                "skip_refresh_every": 4},
}
PRESET_NAMES = (*PRESETS, "custom")


@dataclass(frozen=True)
class AccelerationSettings:
    batch_reuse: bool = False       # paper Alg. 2: pivot attention map shared across the N rows (steps < r)
    attention_cache: bool = False   # T-GATE style: attention outputs cached after r, refreshed every R steps
    block_skip: bool = False        # DeepCache style, after the skip point
    uncond_dedup: bool = False      # exact: identical rows of a chunk (the uncond rows at step 0) run once
    uncond_share: bool = False      # ours, approximate: the uncond branch runs for the pivot row only
    cache_point: int = 3            # r, in cloud steps
    skip_point: int = 3             # s, in cloud steps
    refresh_every: int = 5          # attention-cache refresh interval R
    pivot_index: int = 0            # public, fixed: never depends on the real candidate's index
    skip_mode: str = "up_path"      # up_path: paper (down + mid cached, all up blocks run); deepcache
    skip_branch: int = 0            # input blocks 0..b always run (and, deepcache, the last b+1 up blocks)
    skip_refresh_every: int = 0     # DeepCache's cache interval: after s, deep features recomputed every M steps
                                    # (0: never, the paper's form)

    def validate(self) -> "AccelerationSettings":
        for name in ("cache_point", "skip_point", "refresh_every", "pivot_index", "skip_branch",
                     "skip_refresh_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"acceleration {name}={v!r} must be a non-negative integer")
        if self.refresh_every < 1:
            raise ValueError("acceleration refresh_every must be at least 1")
        if self.skip_mode not in SKIP_MODES:
            raise ValueError(f"acceleration skip_mode={self.skip_mode!r} must be one of {list(SKIP_MODES)}")
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
    def all_on(cls, **overrides) -> "AccelerationSettings":
        return cls(**{**{s: True for s in STRATEGIES}, **overrides}).validate()

    @classmethod
    def preset(cls, name: str) -> "AccelerationSettings":
        if name not in PRESETS:
            raise ValueError(f"unknown acceleration preset {name!r}; known: {list(PRESETS)} (or custom)")
        return cls.from_dict(PRESETS[name])

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
        if "skip_mode" in raw and not isinstance(raw["skip_mode"], str):
            raise ValueError("acceleration skip_mode must be a string")
        return cls(**raw).validate()
