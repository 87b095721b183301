"""Batched per-candidate sampling on the cloud, and the exact hand-off to the device.

Needs ComfyUI's `comfy` package (imported inside ComfyUI, or in-process with args.cpu set).
"""
from .conditioning import encode_batch
from .partial import partial_sample
from .finish import finish_sample
from .compat import IncompatibleModelError, model_signature, check_device_model

__all__ = ["encode_batch", "partial_sample", "finish_sample", "IncompatibleModelError",
           "model_signature", "check_device_model"]
