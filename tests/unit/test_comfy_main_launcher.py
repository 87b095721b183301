"""The test servers' launcher (obclip_nodes/harness/comfy_main.py) runs the main.py of its working directory as
`python main.py` would, with oneDNN and NNPACK convolutions off, the batched convolution installed (harness/batched_conv.py) and the
harness folder kept off sys.path."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from obclip_nodes.harness import comfy_main

PROBE = """import json, os, sys, torch
print(json.dumps({"name": __name__, "argv": sys.argv, "path0": sys.path[0], "onednn": torch.backends.mkldnn.enabled,
                  "nnpack": torch._C._get_nnpack_enabled(),
                  "conv2d": torch.nn.functional.conv2d.__module__,
                  "obclip_modules": sorted(m for m in sys.modules if m.startswith("obclip")),
                  "harness_on_path": any(p.endswith("harness") for p in sys.path)}))
"""


def test_launcher_runs_main_py_with_onednn_and_nnpack_off_and_the_batched_convolution(tmp_path: Path):
    (tmp_path / "main.py").write_text(PROBE)
    out = subprocess.run([sys.executable, comfy_main.__file__, "--cpu", "--port", "1"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen == {"name": "__main__", "argv": [str(tmp_path / "main.py"), "--cpu", "--port", "1"],
                    "path0": str(tmp_path), "onednn": False, "nnpack": False,
                    "conv2d": "_obclip_lab_batched_conv", "obclip_modules": [],
                    "harness_on_path": False}
