"""The test suite's convolution (obclip_nodes/harness/batched_conv.py) is PyTorch's convolution: same values on
the shapes the suite's published architectures use, PyTorch's own path for everything it does not cover."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from obclip_nodes.harness import batched_conv

# (batch, in channels, map, out channels, kernel, stride, padding): the SD-family UNets' and VAEs' convolutions
# at the suite's 4x4 to 8x8 latents (3x3 same-size, 1x1 skips and projections, 3x3 stride-2 downsampling, the
# VAE's downsampling after its own asymmetric pad, non-square maps, the conv_in/conv_out ends)
SHAPES = [
    (2, 4, (4, 4), 320, 3, 1, 1),       # UNet conv_in
    (6, 320, (4, 4), 320, 3, 1, 1),
    (16, 320, (4, 4), 320, 3, 2, 1),    # downsample
    (6, 640, (2, 2), 1280, 1, 1, 0),    # resnet skip
    (3, 2560, (1, 1), 1280, 3, 1, 1),   # the innermost SD1.5 resnet at a 4x4 latent
    (2, 1920, (2, 2), 640, 3, 1, 1),
    (2, 320, (5, 6), 4, 3, 1, 1),       # conv_out, a 40x48 image
    (4, 128, (33, 33), 128, 3, 2, 0),   # VAE downsample after its (0, 1, 0, 1) pad: too large, PyTorch's path
    (2, 512, (8, 8), 512, 3, 1, 1),     # VAE decoder mid block
    (2, 8, (4, 4), 8, 1, 1, 0),         # VAE quant_conv
    (5, 3, (7, 5), 16, (3, 1), (2, 1), (1, 0)),  # asymmetric kernel, stride and padding
]


@pytest.fixture(autouse=True)
def plain_convolutions(monkeypatch):
    """As the suite runs (tests/conftest.py): oneDNN off, so PyTorch's own path is the plain one."""
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)


@pytest.mark.parametrize("b,c,hw,o,k,s,p", SHAPES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_same_values_as_pytorch(b, c, hw, o, k, s, p, with_bias):
    g = torch.Generator().manual_seed(b * 1000 + c + o)
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.randn(b, c, *hw, generator=g)
    w = torch.randn(o, c, kh, kw, generator=g) / (c * kh * kw) ** 0.5
    bias = torch.randn(o, generator=g) if with_bias else None
    ours = batched_conv.conv2d(x, w, bias, s, p)
    ref = batched_conv._TORCH_CONV2D(x, w, bias, s, p)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype and ours.is_contiguous()
    scale = ref.abs().max().item()
    assert scale > 0.5  # the comparison is about real values
    assert (ours - ref).abs().max().item() <= 1e-5 * scale
    # and as accurate as PyTorch's own float32 convolution, against a float64 one
    exact = batched_conv._TORCH_CONV2D(x.double(), w.double(), None if bias is None else bias.double(), s, p)
    ours_err, torch_err = ((ours.double() - exact).abs().max().item(), (ref.double() - exact).abs().max().item())
    assert ours_err <= max(2 * torch_err, 1e-6 * scale), (ours_err, torch_err)


def test_it_computes_the_suites_shapes_itself():
    """The speed-up is real only if the UNet-sized calls take the batched path."""
    covered = [(b, c, hw, o, k, s, p) for b, c, hw, o, k, s, p in SHAPES
               if batched_conv.covers(torch.zeros(b, c, *hw), torch.zeros(o, c, k, k) if isinstance(k, int)
                                      else torch.zeros(o, c, *k), s, p, 1, 1)]
    assert [(c, hw, o) for _, c, hw, o, *_ in covered] == [
        (4, (4, 4), 320), (320, (4, 4), 320), (320, (4, 4), 320), (640, (2, 2), 1280), (2560, (1, 1), 1280),
        (1920, (2, 2), 640)]
    # maps large for their channel count stay with PyTorch (unfolding them costs more than it saves)
    assert not batched_conv.covers(torch.zeros(6, 128, 4, 4), torch.zeros(128, 128, 3, 3), 1, 1, 1, 1)


@pytest.mark.parametrize("case", ["covered (the control)", "one image", "groups", "dilation", "same padding",
                                  "float64", "large map", "huge unfold", "oneDNN on"])
def test_what_it_does_not_cover_goes_to_pytorch(case, monkeypatch):
    x, w, kw = torch.randn(2, 4, 2, 2), torch.randn(128, 4, 3, 3), {"padding": 1}
    if case == "one image":
        x = x[:1]
    elif case == "groups":
        w, kw = torch.randn(128, 2, 3, 3), {"groups": 2, "padding": 1}
    elif case == "dilation":
        kw = {"dilation": 2, "padding": 2}
    elif case == "same padding":
        kw = {"padding": "same"}
    elif case == "float64":
        x, w = x.double(), w.double()
    elif case == "large map":
        x = torch.randn(2, 4, 6, 6)
    elif case == "huge unfold":
        monkeypatch.setattr(batched_conv, "MAX_UNFOLDED", 100)
    elif case == "oneDNN on":
        monkeypatch.setattr(torch.backends.mkldnn, "enabled", True)
    calls, torch_conv2d = [], batched_conv._TORCH_CONV2D
    monkeypatch.setattr(batched_conv, "_TORCH_CONV2D", lambda *a: calls.append(a) or torch_conv2d(*a))
    args = (None, 1, kw.get("padding", 0), kw.get("dilation", 1), kw.get("groups", 1))
    out = batched_conv.conv2d(x, w, *args)
    if case.startswith("covered"):
        assert calls == [] and torch.allclose(out, torch_conv2d(x, w, *args), rtol=0, atol=1e-5)
    else:
        assert len(calls) == 1 and torch.equal(out, torch_conv2d(x, w, *args))


def test_install_routes_nn_conv2d_through_it(monkeypatch):
    monkeypatch.setattr(F, "conv2d", batched_conv._TORCH_CONV2D)
    conv = torch.nn.Conv2d(4, 128, 3, padding=1)
    x = torch.randn(3, 4, 2, 2)
    ref = conv(x)
    batched_conv.install()
    assert batched_conv.installed()
    seen = []
    monkeypatch.setattr(batched_conv, "covers", lambda *a: seen.append(a[0].shape) or True)
    assert torch.allclose(conv(x), ref, rtol=0, atol=1e-5)
    assert seen == [x.shape]
