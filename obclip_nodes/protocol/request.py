"""The request the client sends to the cloud, and the exact API graph it becomes.

Privacy invariant: every field here is public (the candidate list in canonical order and the
user's generation settings). The function that turns it into the server's graph uses fixed node
ids and a fixed key order, so the bytes sent are a function of these fields alone.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from .errors import ProtocolError

SERVER_SAMPLER = "ObCLIPServerSampler"
SERVER_RETURN = "ObCLIPServerReturn"
# Fixed ids: the graph's node ids must not vary with anything but the public request.
SERVER_NODE_IDS = {"loader": "1", "sampler": "2", "return": "3"}
MAX_CANDIDATES = 256
MAX_SIDE = 8192


@dataclass(frozen=True)
class CloudRequest:
    candidates: tuple[str, ...]
    checkpoint: str
    negative: str = ""
    seed: int = 0
    steps: int = 20
    cloud_steps: int = 8
    cfg: float = 7.0
    sampler: str = "euler"
    scheduler: str = "normal"
    width: int = 512
    height: int = 512
    acceleration: dict = field(default_factory=dict)

    def validate(self) -> "CloudRequest":
        c = self.candidates
        if not isinstance(c, tuple) or not c or not all(isinstance(s, str) and s.strip() for s in c):
            raise ProtocolError("candidates must be a non-empty list of non-empty strings "
                                "(connect an ObCLIP Candidate Expander)")
        if len(set(c)) != len(c):
            raise ProtocolError("candidates contain duplicates; the expander's list must be used unchanged")
        if len(c) > MAX_CANDIDATES:
            raise ProtocolError(f"{len(c)} candidates exceed the wire limit of {MAX_CANDIDATES}; "
                                "restrict the attributes in the Candidate Expander")
        if not isinstance(self.checkpoint, str) or not self.checkpoint.strip():
            raise ProtocolError("the cloud checkpoint name is empty: type the name of a checkpoint "
                                "installed on the cloud server")
        if not (1 <= self.steps <= 10000):
            raise ProtocolError(f"steps={self.steps} must be between 1 and 10000")
        if not (1 <= self.cloud_steps <= self.steps):
            raise ProtocolError(f"cloud_steps={self.cloud_steps} must be between 1 and steps={self.steps}")
        if not math.isfinite(self.cfg) or self.cfg < 0:
            raise ProtocolError(f"cfg={self.cfg} must be a finite number >= 0")
        for name, v in (("width", self.width), ("height", self.height)):
            if not (16 <= v <= MAX_SIDE) or v % 8:
                raise ProtocolError(f"{name}={v} must be a multiple of 8 between 16 and {MAX_SIDE}")
        if not (0 <= self.seed <= 0xFFFFFFFFFFFFFFFF):
            raise ProtocolError(f"seed={self.seed} must be between 0 and 2**64-1")
        if not isinstance(self.acceleration, dict):
            raise ProtocolError("acceleration settings must be a JSON object")
        return self

    def sampler_inputs(self) -> dict:
        """Widget values of the server sampler node, in a fixed order."""
        return {
            "candidates": json.dumps(list(self.candidates), ensure_ascii=False),
            "negative": self.negative,
            "seed": int(self.seed),
            "steps": int(self.steps),
            "cloud_steps": int(self.cloud_steps),
            "cfg": float(self.cfg),
            "sampler_name": self.sampler,
            "scheduler": self.scheduler,
            "width": int(self.width),
            "height": int(self.height),
            "acceleration": json.dumps(self.acceleration, sort_keys=True, separators=(",", ":")),
        }


def build_server_prompt(req: CloudRequest) -> dict:
    """The API-format graph the cloud runs: load the large model, sample all N, return all N."""
    req.validate()
    ids = SERVER_NODE_IDS
    return {
        ids["loader"]: {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": req.checkpoint}},
        ids["sampler"]: {"class_type": SERVER_SAMPLER, "inputs": {
            "model": [ids["loader"], 0], "clip": [ids["loader"], 1], **req.sampler_inputs()}},
        ids["return"]: {"class_type": SERVER_RETURN, "inputs": {
            "latents": [ids["sampler"], 0], "handoff": [ids["sampler"], 1]}},
    }


def encode_body(obj: dict) -> bytes:
    """Canonical JSON bytes for everything posted to the server (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
