"""Lab only: a 2-D convolution that unfolds the whole batch and runs ONE matrix product, for the test suite.

Why: the suite runs the published architectures (full-size SD1.5, BK-SDM, the SDXL family, their VAEs) at
4x4 to 8x8 latents, where a convolution costs what reading its weights costs. With oneDNN and NNPACK off (see
comfy_main.py), PyTorch's CPU path (`_slow_conv2d_forward`) runs im2col and a matrix product per IMAGE, so
each row of a batch reads every weight again: an SD1.5 UNet call at a 4x4 latent took 0.43 / 0.88 / 2.04 s at
2 / 6 / 16 rows on the 2-core test machine, and 0.40 / 0.57 / 0.81 s with this path. The result is the same
convolution (same operands, one product instead of B): tests/unit/test_batched_conv.py holds it to
F.conv2d, and to PyTorch's own accuracy, on the SD-family UNet and VAE convolution shapes.

It replaces torch.nn.functional.conv2d in the test process (tests/conftest.py) and in every server the
harness starts (comfy_main.py); users' servers and the demo never load this file. Anything it does not cover
(one image, groups, dilation, string padding, maps large for their channel count, half precision, CUDA, oneDNN
turned back on) goes to PyTorch's own convolution unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_TORCH_CONV2D = F.conv2d
# The im2col matrix of one call is (C*kh*kw) x (B*Ho*Wo) floats: beyond this many, memory would matter more
# than the saved weight reads (the suite's latents and VAE feature maps stay far below it).
MAX_UNFOLDED = 1 << 25  # 32 Mi floats, 128 MiB
# Only where reading the weights is the cost: at least this many output channels per output position of an
# image. Measured on the 2-core machine (3x3, C = O, 2 / 6 / 16 rows, this path's time over PyTorch's): 2x2 maps
# at 128 channels 0.95 / 0.39 / 0.29, 4x4 at 1280 0.69 / 0.49 / 0.43; but 4x4 at 128 channels 2.6 / 2.7 / 2.1
# and 16x16 at 320 1.1 / 1.2 / 1.6 (unfolding costs more than it saves; the mini world's 64x64 VAE is there).
# Whole SD1.5 UNet calls at a 4x4 latent, threshold 20 / 32 / none: 16 rows 0.81 / 0.97 / 0.83 s.
MIN_CHANNELS_PER_POSITION = 20


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def covers(x: torch.Tensor, weight: torch.Tensor, stride, padding, dilation, groups) -> bool:
    """Whether conv2d below computes this call itself (otherwise it is PyTorch's)."""
    if (groups != 1 or isinstance(padding, str) or x.dim() != 4 or weight.dim() != 4 or x.shape[0] < 2
            or x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32
            or _pair(dilation) != (1, 1) or torch.backends.mkldnn.enabled):  # oneDNN on: a test wants it
        return False
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    o, _, kh, kw = weight.shape
    ho, wo = (x.shape[2] + 2 * ph - kh) // sh + 1, (x.shape[3] + 2 * pw - kw) // sw + 1
    return (0 < ho * wo and o >= MIN_CHANNELS_PER_POSITION * ho * wo
            and x.shape[1] * kh * kw * x.shape[0] * ho * wo <= MAX_UNFOLDED)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if not covers(input, weight, stride, padding, dilation, groups):
        return _TORCH_CONV2D(input, weight, bias, stride, padding, dilation, groups)
    b, c, h, w = input.shape
    o, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    cols = F.unfold(input, (kh, kw), padding=(ph, pw), stride=(sh, sw))  # b, c*kh*kw, ho*wo
    cols = cols.transpose(0, 1).reshape(c * kh * kw, b * ho * wo)
    out = weight.reshape(o, -1) @ cols                                   # o, b*ho*wo
    out = out.reshape(o, b, ho, wo).transpose(0, 1)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out.contiguous()


def install() -> None:
    """Every later F.conv2d call (nn.Conv2d and ComfyUI's ops look it up per call) goes through conv2d."""
    F.conv2d = conv2d


def installed() -> bool:
    return F.conv2d is conv2d
