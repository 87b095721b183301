"""Hand-off metadata: what the device needs to continue the cloud's trajectory exactly.

The server reports the model family, the latent space, the prediction type and the exact sigma
schedule it sampled on; the device checks its own model against this before finishing.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from .errors import ProtocolError

HANDOFF_VERSION = 1


@dataclass(frozen=True)
class Handoff:
    family: str            # ComfyUI model config class, e.g. "SD15", "SDXL", "KOALA_700M"
    latent_format: str     # comfy.latent_formats class name, e.g. "SD15", "SDXL"
    scale_factor: float
    latent_channels: int
    model_type: str        # "EPS", "V_PREDICTION", ...
    sigma_min: float
    sigma_max: float
    steps: int             # T, the whole schedule
    cloud_steps: int       # k, steps run on the cloud
    sampler: str
    scheduler: str
    seed: int
    sigmas: tuple[float, ...] = field(default_factory=tuple)  # the full schedule, len T+1 (last is 0)
    latent_shape: tuple[int, ...] = ()  # [C, H, W] of every row the cloud returned
    server_report: dict = field(default_factory=dict, compare=False)  # e.g. acceleration statistics
    request_digest: str = ""  # protocol.request.request_digest of the inputs the cloud sampled with
    version: int = HANDOFF_VERSION

    @property
    def stop_sigma(self) -> float:
        """The noise level the cloud left the latents at (0 when it ran every step)."""
        return self.sigmas[self.cloud_steps]

    @property
    def remaining_sigmas(self) -> tuple[float, ...]:
        return self.sigmas[self.cloud_steps:]

    def validate(self) -> "Handoff":
        if self.version != HANDOFF_VERSION:
            raise ProtocolError(f"hand-off version {self.version} is not {HANDOFF_VERSION}: "
                                "update the ObCLIP pack on the client or on the cloud server so both match")
        if not (1 <= self.cloud_steps <= self.steps):
            raise ProtocolError(f"hand-off says the cloud ran {self.cloud_steps} of {self.steps} steps; "
                                "expected 1 <= k <= T")
        if len(self.sigmas) != self.steps + 1:
            raise ProtocolError(f"hand-off carries {len(self.sigmas)} sigmas for {self.steps} steps; "
                                f"expected {self.steps + 1}")
        if any(not math.isfinite(s) or s < 0 for s in self.sigmas):
            raise ProtocolError("hand-off sigmas must be finite and non-negative")
        if any(b > a for a, b in zip(self.sigmas, self.sigmas[1:])):
            raise ProtocolError("hand-off sigmas must not increase")
        if not isinstance(self.server_report, dict):
            raise ProtocolError("hand-off server_report must be a JSON object")
        if self.latent_channels < 1 or self.scale_factor <= 0:
            raise ProtocolError("hand-off latent channels and scale factor must be positive")
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Handoff":
        try:
            raw = json.loads(text)
        except (TypeError, ValueError) as e:
            raise ProtocolError(f"hand-off metadata is not JSON: {e}") from None
        if not isinstance(raw, dict):
            raise ProtocolError("hand-off metadata must be a JSON object")
        known = set(cls.__dataclass_fields__)
        missing = sorted(known - set(raw) - {"version", "server_report", "latent_shape", "request_digest"})
        if missing:
            raise ProtocolError(f"hand-off metadata lacks {missing}: the cloud runs an older ObCLIP pack")
        try:
            h = cls(**{k: raw[k] for k in known if k in raw})
            h = cls(**{**asdict(h), "sigmas": tuple(float(s) for s in h.sigmas),
                       "latent_shape": tuple(int(d) for d in h.latent_shape),
                       "steps": int(h.steps), "cloud_steps": int(h.cloud_steps), "seed": int(h.seed),
                       "latent_channels": int(h.latent_channels), "scale_factor": float(h.scale_factor),
                       "sigma_min": float(h.sigma_min), "sigma_max": float(h.sigma_max)})
        except (TypeError, ValueError) as e:
            raise ProtocolError(f"hand-off metadata has a field of the wrong type: {e}") from None
        return h.validate()
