"""The request the client sends to the cloud, and the exact API graph it becomes.

Privacy invariant: every field here is public (the candidate list in canonical order and the
user's generation settings). The function that turns it into the server's graph uses fixed node
ids and a fixed key order, so the bytes sent are a function of these fields alone.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
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
# The Server Return input that binds the result to its requester: sha256 (hex) of a per-request random
# secret. Only the client holds the secret, and presents it once to fetch the result. It is drawn
# fresh for every request, independently of the prompt, like the prompt id.
RESULT_KEY_INPUT = "result_key_sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def new_result_key() -> tuple[str, str]:
    """-> (secret, sha256 hex of the secret): a fresh random pair per request."""
    secret = secrets.token_hex(32)
    return secret, result_key_hash(secret)


def result_key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def request_digest(*, candidates, negative: str, seed: int, steps: int, cloud_steps: int, cfg: float,
                   sampler: str, scheduler: str, width: int, height: int, acceleration: dict) -> str:
    """sha256 of the public fields the cloud samples with, in a canonical form both sides compute: the
    client from its request, the Server Sampler from the inputs it actually ran. A result computed for
    any other request (a swap) carries another digest and is refused by the client."""
    fields = {"candidates": list(candidates), "negative": str(negative), "seed": int(seed), "steps": int(steps),
              "cloud_steps": int(cloud_steps), "cfg": round(float(cfg), 2), "sampler": str(sampler),
              "scheduler": str(scheduler), "width": int(width), "height": int(height),
              "acceleration": acceleration if isinstance(acceleration, dict) else {}}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


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

    def digest(self) -> str:
        """What the payload's hand-off must carry for a result of this request (see request_digest)."""
        return request_digest(candidates=self.candidates, negative=self.negative, seed=self.seed,
                              steps=self.steps, cloud_steps=self.cloud_steps, cfg=self.cfg,
                              sampler=self.sampler, scheduler=self.scheduler, width=self.width,
                              height=self.height, acceleration=self.acceleration)

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


def build_server_prompt(req: CloudRequest, result_key_sha256: str = "") -> dict:
    """The API-format graph the cloud runs: load the large model, sample all N, return all N.

    With `result_key_sha256` (see new_result_key) the server keeps the result for the holder of the
    secret only; without it (an operator's own graph) nothing is kept for a fetch."""
    req.validate()
    ids = SERVER_NODE_IDS
    ret = {"latents": [ids["sampler"], 0], "handoff": [ids["sampler"], 1], "wire_dtype": req.wire_dtype}
    if result_key_sha256:
        if not _HEX64.fullmatch(result_key_sha256):
            raise ProtocolError("the result key must be a sha256 hex digest")
        ret[RESULT_KEY_INPUT] = result_key_sha256
    return {
        ids["loader"]: {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": req.checkpoint}},
        ids["sampler"]: {"class_type": SERVER_SAMPLER, "inputs": {
            "model": [ids["loader"], 0], "clip": [ids["loader"], 1], **req.sampler_inputs()}},
        ids["return"]: {"class_type": SERVER_RETURN, "inputs": ret},
    }


def _sampler_request(inputs: dict, checkpoint: str, wire_dtype: str) -> CloudRequest:
    """The CloudRequest behind a Server Sampler node's literal inputs; ProtocolError when malformed."""
    def need(name, kind):
        v = inputs.get(name)
        if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise ProtocolError(f"{name} must be a whole number, got {type(v).__name__}")
        if kind is float and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ProtocolError(f"{name} must be a number, got {type(v).__name__}")
        if kind is str and not isinstance(v, str):
            raise ProtocolError(f"{name} must be text, got {type(v).__name__}")
        return v
    raw = need("candidates", str)
    try:
        items = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("candidates must be a JSON list of prompt strings") from None
    if not isinstance(items, list):
        raise ProtocolError("candidates must be a JSON list of prompt strings")
    accel_raw = inputs.get("acceleration", "{}")
    try:
        accel = json.loads(accel_raw) if isinstance(accel_raw, str) else None
    except (ValueError, RecursionError):
        accel = None
    if not isinstance(accel, dict):
        raise ProtocolError("acceleration must be a JSON object")
    cfg = need("cfg", float)
    if not math.isfinite(cfg):
        raise ProtocolError(f"cfg={cfg} must be a finite number")
    return CloudRequest(candidates=tuple(items), checkpoint=checkpoint, negative=need("negative", str),
                        seed=need("seed", int), steps=need("steps", int), cloud_steps=need("cloud_steps", int),
                        cfg=float(cfg), sampler=need("sampler_name", str), scheduler=need("scheduler", str),
                        width=need("width", int), height=need("height", int), acceleration=accel,
                        wire_dtype=wire_dtype).validate()


def sampler_requests(graph) -> list[CloudRequest]:
    """Every Server Sampler in any API graph, as checked CloudRequests (literal inputs only: a linked
    candidate list comes from another node of the same graph and is checked when it runs)."""
    out = []
    for node in graph.values() if isinstance(graph, dict) else ():
        if isinstance(node, dict) and node.get("class_type") == SERVER_SAMPLER:
            inputs = node.get("inputs")
            if not isinstance(inputs, dict):
                raise ProtocolError(f"the {SERVER_SAMPLER} node has no inputs")
            if isinstance(inputs.get("candidates"), list):
                continue  # a link [node_id, slot]
            out.append(_sampler_request(inputs, "(any)", "float32"))
    return out


def parse_server_prompt(graph) -> tuple[CloudRequest, str]:
    """The exact graph build_server_prompt makes, and nothing else -> (request, result key hash).

    What a client tenant of a shared cloud may submit: refusing every other shape keeps tenants to the
    work the operator signed up for (no arbitrary graphs, no file-writing nodes)."""
    ids = SERVER_NODE_IDS
    if not isinstance(graph, dict) or set(graph) != set(ids.values()):
        raise ProtocolError(f"a client may submit only the ObCLIP request graph (nodes {sorted(ids.values())})")
    loader, sampler, ret = (graph[ids[k]] for k in ("loader", "sampler", "return"))
    for node, kind in ((loader, "CheckpointLoaderSimple"), (sampler, SERVER_SAMPLER), (ret, SERVER_RETURN)):
        if not isinstance(node, dict) or node.get("class_type") != kind or not isinstance(node.get("inputs"), dict):
            raise ProtocolError(f"a client may submit only the ObCLIP request graph (expected a {kind} node)")
    ckpt = loader["inputs"].get("ckpt_name")
    if set(loader["inputs"]) != {"ckpt_name"} or not isinstance(ckpt, str):
        raise ProtocolError("the checkpoint loader must have just a ckpt_name")
    si, ri = sampler["inputs"], ret["inputs"]
    if si.get("model") != [ids["loader"], 0] or si.get("clip") != [ids["loader"], 1] or \
            set(si) != {"model", "clip", *CloudRequest(("x",), "x").sampler_inputs()}:
        raise ProtocolError(f"the {SERVER_SAMPLER} node's inputs are not the request's fields")
    if ri.get("latents") != [ids["sampler"], 0] or ri.get("handoff") != [ids["sampler"], 1] or \
            set(ri) != {"latents", "handoff", "wire_dtype", RESULT_KEY_INPUT}:
        raise ProtocolError(f"the {SERVER_RETURN} node must carry the latents, hand-off, wire_dtype and "
                            f"{RESULT_KEY_INPUT}")
    key = ri[RESULT_KEY_INPUT]
    if not isinstance(key, str) or not _HEX64.fullmatch(key):
        raise ProtocolError(f"{RESULT_KEY_INPUT} must be a sha256 hex digest (update the ObCLIP client)")
    wire = ri["wire_dtype"]
    if wire not in WIRE_DTYPES:
        raise ProtocolError(f"wire_dtype must be one of {WIRE_DTYPES}")
    return _sampler_request(si, ckpt, wire), key


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
