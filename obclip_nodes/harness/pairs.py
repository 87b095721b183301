"""The test models' cloud -> device pairs, built from published architectures (harness/test_models.py).

SD1.x: SD1.5 on the cloud, BK-SDM-Small on the device (the paper's headline pair).
SDXL family: a full SDXL (2.6 B UNet, about 14 GB in float32 on the CPU with its text encoders) next to a
device model does not fit the 24 GB test machines with the other tests' servers, so the cloud role is taken
by the smallest published SDXL-family architecture, Segmind Vega (0.75 B), and the device by KOALA-700M.
Both are exact published architectures that ComfyUI detects as Segmind_Vega and KOALA_700M.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .host import REPO

SD15_PAIR = ("sd15", "bk-sdm-small")
SDXL_PAIR = ("vega", "koala-700m")


def ensure(names) -> list[Path]:
    """Single-file checkpoints of `names`, built once into the cache. A missing one is built in a separate
    process: building imports diffusers and holds GBs this process should not keep."""
    from . import test_models
    paths = [test_models.cache_dir() / test_models.filename(n) for n in names]
    missing = [n for n, p in zip(names, paths) if not p.exists()]
    if missing:
        subprocess.run([sys.executable, "-m", "obclip_nodes.harness.test_models", *missing], check=True,
                       cwd=str(REPO), stdout=subprocess.DEVNULL)
    return paths
