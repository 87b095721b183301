"""Runs the ComfyUI main.py in the working directory with PyTorch's oneDNN convolutions turned off.

Lab only: the test suite starts its servers through this (ComfyServer(onednn=False)). The tests run the
published architectures at 4x4 latents, where oneDNN spends nearly all of a UNet call re-laying out the
convolution weights: a full-size SD1.5 UNet call took 1.19 s with it and 0.33 s without on the 2-core test
machine. NNPACK is off too: without oneDNN, PyTorch hands batches of 16 rows and more (N = 8 with CFG) to
NNPACK, which took 8.3 s for the same call at 16 rows where the plain im2col path takes 2.0 s (at 2 and 6 rows
the two are the same path: 0.40 s and 0.84 s). On that path every image of a batch reads all the weights again, so
the launcher also installs batched_conv.py (one matrix product for the whole batch where the weights dominate:
0.40 / 0.57 / 0.81 s at 2 / 6 / 16 rows), and encode_memo.py (each text encoded once per server: a
77-token CLIP pass costs as much as a UNet call at these latents). Everything else is ComfyUI's own start-up;
users' servers never run this file.

Usage (cwd = the ComfyUI tree): python /path/to/comfy_main.py [main.py arguments]. Run as a file, not with -m,
so the server imports nothing of the pack's lab code (test_shipped_pack checks that).
"""
from __future__ import annotations

import os
import runpy
import sys


def _load_beside(name: str):
    """A lab module next to this file, loaded by path under a private name: the server's sys.modules gets
    no obclip_nodes package before ComfyUI imports the pack itself."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"_obclip_lab_{name}", os.path.join(os.path.dirname(
        os.path.abspath(__file__)), f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    # exactly what `python main.py` would have: the ComfyUI tree first, never this folder (its queue.py
    # would shadow the standard library's)
    sys.path[0] = os.getcwd()
    sys.argv[0] = os.path.join(os.getcwd(), "main.py")
    import torch
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    _load_beside("batched_conv").install()
    _load_beside("encode_memo").install_after_import()  # once ComfyUI imports comfy.sd, never before
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
