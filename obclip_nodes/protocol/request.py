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
# What protocol.routes.INFO answers: a few bytes that say the pack is on the server.
PACK_INFO = {"pack": "obclip", "protocol": 1}
MAX_CANDIDATES = 256
MAX_SIDE = 8192
# float32 keeps the hand-off exact; float16 halves the bytes at ~5e-4 relative rounding.
WIRE_DTYPES = ("float32", "float16")


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
    wire_dtype: str = "float32"

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
        if self.wire_dtype not in WIRE_DTYPES:
            raise ProtocolError(f"wire dtype {self.wire_dtype!r} must be one of {WIRE_DTYPES}")
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
            "latents": [ids["sampler"], 0], "handoff": [ids["sampler"], 1], "wire_dtype": req.wire_dtype}},
    }


def encode_body(obj: dict) -> bytes:
    """Canonical JSON bytes for everything posted to the server (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


STOCK_SAVE_PREFIX = "obclip/latents"  # fixed: the file names asked for never depend on the real candidate


def stock_node_ids(n: int) -> dict:
    """Fixed ids of the stock-nodes graph: a function of N only."""
    return {"loader": "1", "negative": "2", "empty": "3",
            "positive": [f"p{i}" for i in range(n)], "sampler": [f"k{i}" for i in range(n)],
            "save": [f"s{i}" for i in range(n)]}


def build_stock_prompt(req: CloudRequest) -> dict:
    """The same cloud work with stock ComfyUI nodes only, for a cloud without this pack.

    One KSamplerAdvanced per candidate (steps 0..k, leftover noise kept, batch-1 noise of the seed:
    row i equals the pack's batched row i) and one SaveLatent per candidate, fetched with /view.
    The acceleration settings cannot be honoured by stock nodes and are not sent.
    """
    req.validate()
    ids = stock_node_ids(len(req.candidates))
    graph = {
        ids["loader"]: {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": req.checkpoint}},
        ids["negative"]: {"class_type": "CLIPTextEncode", "inputs": {"text": req.negative, "clip": [ids["loader"], 1]}},
        ids["empty"]: {"class_type": "EmptyLatentImage", "inputs": {
            "width": int(req.width), "height": int(req.height), "batch_size": 1}},
    }
    for i, text in enumerate(req.candidates):
        p, k, s = ids["positive"][i], ids["sampler"][i], ids["save"][i]
        graph[p] = {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": [ids["loader"], 1]}}
        graph[k] = {"class_type": "KSamplerAdvanced", "inputs": {
            "model": [ids["loader"], 0], "positive": [p, 0], "negative": [ids["negative"], 0],
            "latent_image": [ids["empty"], 0], "add_noise": "enable", "noise_seed": int(req.seed),
            "steps": int(req.steps), "cfg": float(req.cfg), "sampler_name": req.sampler,
            "scheduler": req.scheduler, "start_at_step": 0, "end_at_step": int(req.cloud_steps),
            "return_with_leftover_noise": "enable"}}
        graph[s] = {"class_type": "SaveLatent", "inputs": {"samples": [k, 0], "filename_prefix": STOCK_SAVE_PREFIX}}
    return graph
