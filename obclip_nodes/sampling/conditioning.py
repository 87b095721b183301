"""One CONDITIONING whose batch is N: row i of the latent batch sees prompt i.

ComfyUI uses a cond row-for-row when its batch equals the latent batch, so N prompts run in one
UNet call. ConditioningCombine would average them instead, which is why we build this ourselves.
"""
from __future__ import annotations

import math

import torch


def _repeat_to(t: torch.Tensor, tokens: int) -> torch.Tensor:
    # Repeating the whole token sequence leaves attention unchanged (CONDCrossAttn.concat does the same).
    return t.repeat(1, tokens // t.shape[1], 1)


def encode_batch(clip, texts) -> list:
    """Encode each text exactly as CLIPTextEncode does, then stack the rows."""
    if clip is None:
        raise ValueError("no text encoder: the checkpoint has no CLIP weights; load one with a CLIP loader")
    conds, pooled = [], []
    for text in texts:
        entry = clip.encode_from_tokens_scheduled(clip.tokenize(text))[0]
        conds.append(entry[0])
        pooled.append(entry[1].get("pooled_output"))
    tokens = math.lcm(*(c.shape[1] for c in conds))
    extra = {}
    if all(p is not None for p in pooled):
        extra["pooled_output"] = torch.cat(pooled)
    return [[torch.cat([_repeat_to(c, tokens) for c in conds]), extra]]


def encode_prompt_pair(clip, prompt: str, negative: str) -> tuple[list, list]:
    """(positive, negative) for one real prompt on the device: the Device Finisher's own text encoding,
    and what ObCLIP Encode Real Prompt outputs, so a conditioning chain in between starts from the same
    tensors."""
    return encode_batch(clip, [prompt]), encode_batch(clip, [negative])
