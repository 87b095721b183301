"""What one request to the cloud may ask for, and what a request body may look like.

Checked when the request is submitted (POST /prompt), before ComfyUI queues it: a refused request
costs the cloud nothing. The defaults are sane for a shared GPU; the operator changes them with
OBCLIP_SERVER_MAX_* (config.py).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from ..protocol.errors import ProtocolError
from ..protocol.request import SERVER_SAMPLER, CloudRequest

MAX_JSON_DEPTH = 64


class BadRequest(ValueError):
    """A request the server refuses; `kind` is the error type in the ComfyUI-shaped answer."""

    def __init__(self, message: str, kind: str = "obclip_bad_request", status: int = 400, extra=None):
        super().__init__(message)
        self.kind, self.status, self.extra = kind, status, extra or {}


@dataclass(frozen=True)
class Limits:
    """None: no limit (a server of one's own, where the operator set none)."""
    max_candidates: int | None = 256
    max_steps: int | None = 150
    max_pixels: int | None = 1024 * 1024
    max_prompt_chars: int | None = 2000
    max_body_bytes: int | None = 4096 * 1024
    max_queued_per_tenant: int = 32
    samplers: tuple = ()       # the server's own sampler and scheduler names (empty: not checked)
    schedulers: tuple = ()

    @classmethod
    def from_settings(cls, cfg, cloud: bool = True) -> "Limits":
        """On a cloud (auth on) every limit applies, defaults included. On a server without auth (a
        user's own ComfyUI, where the pack may run local simulations) only the limits the operator set."""
        def pick(name, scale=1):
            return cfg.values[name] * scale if cloud or name in cfg.given else None
        return cls(pick("server_max_candidates"), pick("server_max_steps"), pick("server_max_pixels"),
                   pick("server_max_prompt_chars"), pick("server_max_body_kb", 1024),
                   cfg.values["server_max_queued_per_tenant"])

    def check(self, req: CloudRequest) -> None:
        """Everything a request could fail on at run time, checked now against the server's own lists."""
        for what, text in [*(("a candidate", c) for c in req.candidates), ("the negative prompt", req.negative),
                           ("the checkpoint name", req.checkpoint)]:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequest(f"{what} holds a lone surrogate (\\ud800-\\udfff without its pair); send valid "
                                 "Unicode text") from None
        if self.samplers and req.sampler not in self.samplers:
            raise BadRequest(f"sampler {req.sampler[:40]!r} is not one of this server's samplers; use one of "
                             f"{', '.join(self.samplers[:12])}, ...", "obclip_bad_request",
                             extra={"samplers": list(self.samplers)})
        if self.schedulers and req.scheduler not in self.schedulers:
            raise BadRequest(f"scheduler {req.scheduler[:40]!r} is not one of this server's schedulers; use one "
                             f"of {', '.join(self.schedulers)}", extra={"schedulers": list(self.schedulers)})
        from ..acceleration.settings import AccelerationSettings
        try:
            AccelerationSettings.from_dict(req.acceleration)
        except (ValueError, TypeError) as e:
            raise BadRequest(f"acceleration: {e}") from None
        self.check_size(req)

    def check_size(self, req: CloudRequest) -> None:
        n = len(req.candidates)
        if self.max_candidates and n > self.max_candidates:
            raise BadRequest(f"this server accepts at most {self.max_candidates} ObCLIP candidates per request, "
                             f"got {n}; restrict the attributes in the Candidate Expander",
                             "obclip_too_many_candidates", extra={"max_candidates": self.max_candidates})
        if self.max_steps and req.steps > self.max_steps:
            raise BadRequest(f"this server runs at most {self.max_steps} steps per request, got steps={req.steps}; "
                             "lower steps", "obclip_limit", extra={"max_steps": self.max_steps})
        if self.max_pixels and req.width * req.height > self.max_pixels:
            raise BadRequest(f"this server renders at most {self.max_pixels} pixels (width*height) per image, got "
                             f"{req.width}x{req.height}={req.width * req.height}; lower width or height",
                             "obclip_limit", extra={"max_pixels": self.max_pixels})
        for what, text in [*(("a candidate", c) for c in req.candidates), ("the negative prompt", req.negative)]:
            if self.max_prompt_chars and len(text) > self.max_prompt_chars:
                raise BadRequest(f"{what} is {len(text)} characters; this server accepts at most "
                                 f"{self.max_prompt_chars}; shorten the prompt", "obclip_limit",
                                 extra={"max_prompt_chars": self.max_prompt_chars})


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON; send finite numbers")


def parse_json_body(raw: bytes, *, empty_ok: bool = False):
    """Strict JSON for the API routes: UTF-8, no NaN/Infinity, bounded nesting. BadRequest otherwise."""
    if not raw.strip():
        if empty_ok:
            return {}
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"the request body is not UTF-8 (byte {e.start}); send UTF-8 JSON") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest(f"the request body nests too deeply; at most {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:
        raise BadRequest(f"the request body is not valid JSON: {e}") from None
    stack = [(obj, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"the request body nests too deeply; at most {MAX_JSON_DEPTH} levels")
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
    return obj


def count_candidates(body) -> int:
    """The largest candidate list of any ObCLIP Server Sampler in a POST /prompt body (0 if none)."""
    most = 0
    graph = body.get("prompt") if isinstance(body, dict) else None
    for node in (graph or {}).values() if isinstance(graph, dict) else ():
        if isinstance(node, dict) and node.get("class_type") == SERVER_SAMPLER:
            value = (node.get("inputs") or {}).get("candidates")
            try:
                items = json.loads(value) if isinstance(value, str) else None
            except (ValueError, RecursionError):
                items = None
            if isinstance(items, list):
                most = max(most, len(items))
    return most


def as_bad_request(e: ProtocolError) -> BadRequest:
    return BadRequest(f"invalid ObCLIP request: {e}")


class RejectLimiter:
    """Refused requests per tenant: a bucket of `per_min` that refills evenly over a minute. While a
    tenant's bucket is empty every POST it sends is answered 429 at once, costing the server nothing."""

    def __init__(self, per_min: int):
        self.per_min = per_min
        self._buckets: dict[str, tuple[float, float]] = {}   # tenant -> (level, when)
        self._lock = threading.Lock()

    def _level(self, tenant: str, now: float) -> float:
        level, when = self._buckets.get(tenant, (float(self.per_min), now))
        return min(float(self.per_min), level + (now - when) * self.per_min / 60.0)

    def wait_s(self, tenant: str) -> float:
        """0 when the tenant may send; else the seconds until its next request is heard."""
        with self._lock:
            level = self._level(tenant, time.monotonic())
            return 0.0 if level >= 1.0 else (1.0 - level) * 60.0 / self.per_min

    def charge(self, tenant: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._buckets[tenant] = (max(0.0, self._level(tenant, now) - 1.0), now)
