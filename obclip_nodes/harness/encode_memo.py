"""Lab only: each text encoder encodes a given token list once per process, then answers from memory.

The test suite encodes the same few prompts hundreds of times (every candidate list, every reference run, on
every test), and at the tests' 4x4 latents one CLIP-L encoding costs as much as an SD1.5 UNet call (0.25 s
on the 2-core test machine) and one SDXL encoding (CLIP-L + bigG) 1.15 s, two to three UNet calls: a 77-token
transformer pass is compute-bound, whatever the latent size. Encoding is deterministic, so the suite keeps
the first result per (text encoder, tokens, options) and hands out copies.

Scope, so a hit is always what ComfyUI would have computed:
- keyed on the text encoder module itself (weakly: a reloaded checkpoint is a new encoder, so loading is
  still exercised by every test that loads), the frozen tokens, return_pooled/return_dict and the clip
  layer (CLIPSetLastLayer);
- only for an unpatched encoder: any LoRA weight patch, hook, scheduled hook or object patch other than a
  plain value (ComfyUI 0.33 sets the compute dtype as one: it is part of the key) makes it step aside, as do
  tokens carrying embedding tensors (textual inversion);
- results are copied out, so a caller that changes a tensor in place cannot change a later answer.

Installed by tests/conftest.py (the test process) and harness/comfy_main.py (the suite's servers); users'
servers and the demo never load it. tests/integration/test_encode_memo.py holds it to ComfyUI's own
encoding.
"""
from __future__ import annotations

import functools
import weakref

_MEMO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # encoder module -> {key: result}
STATS = {"hits": 0, "misses": 0, "bypassed": 0}
_ORIGINAL = None


class _Unhashable(Exception):
    pass


def _freeze(x):
    if isinstance(x, (str, int, float, bool, type(None))):
        return x
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    if isinstance(x, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    raise _Unhashable(type(x).__name__)  # an embedding tensor or anything else: not memoised


def _unpatched(clip) -> bool:
    p = clip.patcher
    return (not p.patches and not getattr(p, "weight_wrapper_patches", None)
            and not getattr(p, "hook_patches", None) and getattr(p, "forced_hooks", None) is None
            and getattr(clip, "apply_hooks_to_conds", None) is None)


def _object_patches(clip) -> tuple:
    """Plain-value object patches are part of the key (ComfyUI 0.33 sets the encoder's compute dtype as one,
    manual_cast_dtype); any other object patch makes the memo step aside."""
    import torch
    items = sorted(clip.patcher.object_patches.items())
    if not all(isinstance(v, (torch.dtype, str, int, float, bool, type(None))) for _, v in items):
        raise _Unhashable("object patch")
    return tuple((k, str(v)) for k, v in items)


def key_of(clip, tokens, return_pooled, return_dict):
    """The memo key, or None where the encoding must run (patched encoder, unhashable tokens)."""
    if not _unpatched(clip):
        return None
    try:
        return (_freeze(tokens), str(return_pooled), bool(return_dict), clip.layer_idx, _object_patches(clip))
    except _Unhashable:
        return None


def _copy(x):
    import torch
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, tuple):
        return tuple(_copy(v) for v in x)
    if isinstance(x, list):
        return [_copy(v) for v in x]
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    return x


def _memo_encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
    key = key_of(self, tokens, return_pooled, return_dict)
    if key is None:
        STATS["bypassed"] += 1
        return _ORIGINAL(self, tokens, return_pooled=return_pooled, return_dict=return_dict)
    per_encoder = _MEMO.setdefault(self.cond_stage_model, {})
    if key in per_encoder:
        STATS["hits"] += 1
    else:
        STATS["misses"] += 1
        per_encoder[key] = _copy(_ORIGINAL(self, tokens, return_pooled=return_pooled, return_dict=return_dict))
    return _copy(per_encoder[key])


def install(sd_module=None) -> None:
    """Wrap comfy.sd.CLIP.encode_from_tokens (idempotent). sd_module: comfy.sd, where the caller has it."""
    global _ORIGINAL
    if sd_module is None:
        import comfy.sd as sd_module
    clip_cls = sd_module.CLIP
    if getattr(clip_cls.encode_from_tokens, "_obclip_memo", False):
        return
    _ORIGINAL = clip_cls.encode_from_tokens
    wrapped = functools.wraps(_ORIGINAL)(_memo_encode_from_tokens)
    wrapped._obclip_memo = True
    clip_cls.encode_from_tokens = wrapped


def install_after_import() -> None:
    """For a process that has not imported ComfyUI yet (the lab launcher): install as soon as comfy.sd is
    imported, without importing it early (ComfyUI parses its command line when comfy.cli_args loads)."""
    import importlib.abc
    import sys

    class _AfterComfySd(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "comfy.sd":
                return None
            sys.meta_path.remove(self)
            import importlib.util
            spec = importlib.util.find_spec(name)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_then_install(module):
                exec_module(module)
                install(module)
            spec.loader.exec_module = exec_then_install
            return spec
    sys.meta_path.insert(0, _AfterComfySd())
