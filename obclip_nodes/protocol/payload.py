"""The latent batch on the wire: safetensors bytes (never pickle), checksummed, then base64.

The hand-off metadata rides inside the safetensors header so the checksum covers it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from dataclasses import dataclass

import torch
from safetensors.torch import load as st_load, save as st_save

from .errors import ProtocolError
from .handoff import Handoff

TENSOR_KEY = "latents"
META_KEY = "obclip_handoff"
# The ui keys the server's return node emits (ComfyUI requires list values).
UI_PAYLOAD, UI_SHA256, UI_ROWS = "obclip_payload", "obclip_sha256", "obclip_rows"
# When the server holds the bytes for a binary fetch instead of inlining them as base64:
UI_FETCH, UI_NBYTES = "obclip_fetch", "obclip_nbytes"
DEFAULT_MAX_BYTES = 512 * 2**20


@dataclass(frozen=True)
class LatentPayload:
    latents: torch.Tensor      # [N, C, H, W] float32, raw VAE space with leftover noise
    handoff: Handoff
    sha256: str
    nbytes: int                # size of the safetensors bytes
    wire_dtype: str = "float32"

WIRE_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def encode_payload_bytes(latents: torch.Tensor, handoff: Handoff,
                         wire_dtype: str = "float32") -> tuple[bytes, str, int]:
    """-> (safetensors bytes, their sha256, row count). The hand-off rides in the header."""
    handoff.validate()
    if wire_dtype not in WIRE_TORCH_DTYPES:
        raise ProtocolError(f"wire dtype {wire_dtype!r} must be one of {sorted(WIRE_TORCH_DTYPES)}")
    t = latents.detach().to("cpu", torch.float32)
    if wire_dtype == "float16" and t.abs().max() > torch.finfo(torch.float16).max:
        raise ProtocolError("latents exceed the float16 range; use the float32 wire precision")
    t = t.to(WIRE_TORCH_DTYPES[wire_dtype]).contiguous()
    if t.ndim != 4:
        raise ProtocolError(f"latents must be [N, C, H, W], got shape {tuple(t.shape)}")
    raw = st_save({TENSOR_KEY: t}, metadata={META_KEY: handoff.to_json()})  # one key: stable bytes
    return raw, hashlib.sha256(raw).hexdigest(), int(t.shape[0])


def encode_payload(latents: torch.Tensor, handoff: Handoff, wire_dtype: str = "float32") -> dict:
    """-> the server node's ui dict: base64 safetensors, its sha256 and the row count."""
    raw, sha, rows = encode_payload_bytes(latents, handoff, wire_dtype)
    return {UI_PAYLOAD: [base64.b64encode(raw).decode("ascii")], UI_SHA256: [sha], UI_ROWS: [rows]}


def fetch_ui(path: str, sha: str, rows: int, nbytes: int) -> dict:
    """-> the server node's ui dict when the bytes wait on the server for one binary GET."""
    return {UI_FETCH: [path], UI_SHA256: [sha], UI_ROWS: [int(rows)], UI_NBYTES: [int(nbytes)]}


def _safetensors_metadata(raw: bytes) -> dict:
    if len(raw) < 8:
        raise ProtocolError("latent payload is truncated")
    (hlen,) = struct.unpack("<Q", raw[:8])
    if hlen > len(raw) - 8:
        raise ProtocolError("latent payload header is truncated")
    try:
        header = json.loads(raw[8:8 + hlen])
    except ValueError:
        raise ProtocolError("latent payload header is not valid safetensors JSON") from None
    return header.get("__metadata__") or {}


def decode_payload(ui: dict, expected_rows: int, *, max_bytes: int = DEFAULT_MAX_BYTES,
                   expected_hw: tuple[int, int] | None = None) -> LatentPayload:
    """Verify and decode what the server's return node produced; refuse anything unexpected."""
    try:
        b64, sha, rows = ui[UI_PAYLOAD][0], ui[UI_SHA256][0], int(ui[UI_ROWS][0])
    except (KeyError, IndexError, TypeError, ValueError):
        raise ProtocolError("the cloud's result has no ObCLIP latent payload; is the ObCLIP pack "
                            "installed and up to date on the cloud server?") from None
    if not isinstance(b64, str) or len(b64) > (max_bytes * 4) // 3 + 8:
        raise ProtocolError(f"latent payload is larger than the {max_bytes} byte limit")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("latent payload is not valid base64") from None
    return decode_payload_bytes(raw, sha, rows, expected_rows, max_bytes=max_bytes, expected_hw=expected_hw)


def decode_payload_bytes(raw: bytes, sha: str, rows: int, expected_rows: int, *,
                         max_bytes: int = DEFAULT_MAX_BYTES,
                         expected_hw: tuple[int, int] | None = None) -> LatentPayload:
    """Verify and decode the raw safetensors bytes of a payload (checksum, header, shape, values)."""
    if len(raw) > max_bytes:
        raise ProtocolError(f"latent payload is larger than the {max_bytes} byte limit")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha:
        raise ProtocolError(f"latent payload checksum mismatch (got {digest[:12]}, expected {str(sha)[:12]}): "
                            "the transfer was corrupted; run again")
    handoff = Handoff.from_json(_safetensors_metadata(raw).get(META_KEY, "null"))
    try:
        tensors = st_load(raw)
    except Exception as e:  # safetensors raises its own error types
        raise ProtocolError(f"latent payload is not valid safetensors: {e}") from None
    if set(tensors) != {TENSOR_KEY}:
        raise ProtocolError(f"latent payload holds {sorted(tensors)}, expected only {TENSOR_KEY!r}")
    t = tensors[TENSOR_KEY]
    if t.dtype not in (torch.float32, torch.float16) or t.ndim != 4:
        raise ProtocolError(f"latent payload is {t.dtype} {tuple(t.shape)}, expected float32 or float16 "
                            "[N, C, H, W]")
    wire_dtype = "float16" if t.dtype == torch.float16 else "float32"
    t = t.to(torch.float32)
    if t.shape[0] != rows or rows != expected_rows:
        raise ProtocolError(f"the cloud returned {t.shape[0]} latent rows (announced {rows}) for "
                            f"{expected_rows} candidates; every candidate's latent must come back")
    if t.shape[1] != handoff.latent_channels:
        raise ProtocolError(f"latents have {t.shape[1]} channels but the hand-off says {handoff.latent_channels}")
    if expected_hw is not None and tuple(t.shape[2:]) != tuple(expected_hw):
        raise ProtocolError(f"the cloud returned latents of {t.shape[2]}x{t.shape[3]} but the request asked for "
                            f"{expected_hw[0]}x{expected_hw[1]} (width and height / 8); the cloud did not run "
                            "the requested size")
    if not torch.isfinite(t).all():
        raise ProtocolError("the cloud returned latents with NaN or infinite values")
    return LatentPayload(latents=t, handoff=handoff, sha256=digest, nbytes=len(raw), wire_dtype=wire_dtype)
