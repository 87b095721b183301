"""How the mini checkpoints are stored small (each file under 8 MB), and how they are read back.

Two packings, both undone by the model family's state-dict hooks at load (comfy_family.py), so the
models ComfyUI builds are ordinary float32 modules:
- token table: only the rows of tokens seen in training are stored (their ids and rows). Every other
  row is exactly zero anyway (zero init, never updated), so unpacking is lossless.
- int8 weights (the cloud UNet): weight-only, symmetric, one scale per output channel; biases and norm
  weights stay as they are. Unpacking gives float32 within half a quantisation step of the original.

Plain torch, no comfy.
"""
from __future__ import annotations

import torch

TOKEN_TABLE = "transformer.text_model.embeddings.token_embedding.weight"
_IDS, _ROWS = ".packed_ids", ".packed_rows"
SCALE = ".int8_scale"


def pack_token_table(sd: dict, prefix: str) -> dict:
    key = prefix + TOKEN_TABLE
    table = sd[key]
    ids = table.abs().sum(1).nonzero().flatten()
    out = {k: v for k, v in sd.items() if k != key}
    out[key + _IDS] = ids.to(torch.int64)
    out[key + _ROWS] = table[ids].contiguous()
    out[key + ".vocab_size"] = torch.tensor(table.shape[0], dtype=torch.int64)
    return out


def unpack_token_table(sd: dict, prefix: str) -> dict:
    key = prefix + TOKEN_TABLE
    if key + _IDS not in sd:
        return sd
    out = {k: v for k, v in sd.items() if not k.startswith(key + ".")}
    rows = sd[key + _ROWS]
    table = torch.zeros(int(sd[key + ".vocab_size"]), rows.shape[1], dtype=rows.dtype)
    table[sd[key + _IDS]] = rows
    out[key] = table
    return out


def quantize_int8(sd: dict) -> dict:
    """Every floating tensor with 2+ dims -> int8 plus a float32 scale per output channel."""
    out = {}
    for k, v in sd.items():
        if v.is_floating_point() and v.ndim >= 2:
            w = v.float()
            scale = w.abs().amax(dim=tuple(range(1, w.ndim)), keepdim=True).clamp_min(1e-12) / 127
            out[k] = (w / scale).round().clamp(-127, 127).to(torch.int8)
            out[k + SCALE] = scale
        else:
            out[k] = v
    return out


def dequantize_int8(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        if k.endswith(SCALE):
            continue
        out[k] = v.float() * sd[k + SCALE] if k + SCALE in sd else v
    return out
