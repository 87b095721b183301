"""The test servers' launcher (obclip_nodes/harness/comfy_main.py) runs the main.py of its working directory as
`python main.py` would, with oneDNN and NNPACK convolutions off, the batched convolution installed
(harness/batched_conv.py), the text encoding memo installed once ComfyUI imports comfy.sd
(harness/encode_memo.py) and the harness folder kept off sys.path."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from obclip_nodes.harness import comfy_main

PROBE = """import json, os, sys, torch
comfy_sd_before_main = "comfy.sd" in sys.modules
import comfy.sd
print(json.dumps({"comfy_sd_before_main": comfy_sd_before_main,
                  "encode_memo": getattr(comfy.sd.CLIP.encode_from_tokens, "_obclip_memo", False),
                  "encode": comfy.sd.CLIP().encode_from_tokens([[(1, 1.0)]], return_pooled=True),
"name": __name__, "argv": sys.argv, "path0": sys.path[0], "onednn": torch.backends.mkldnn.enabled,
                  "nnpack": torch._C._get_nnpack_enabled(),
                  "conv2d": torch.nn.functional.conv2d.__module__,
                  "obclip_modules": sorted(m for m in sys.modules if m.startswith("obclip")),
                  "harness_on_path": any(p.endswith("harness") for p in sys.path)}))
"""


FAKE_SD = """
class _Patcher:
    patches, object_patches, forced_hooks = {}, {}, None


class CLIP:
    layer_idx = None

    def __init__(self):
        self.patcher, self.cond_stage_model = _Patcher(), self

    def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
        return ("cond", "pooled") if return_pooled else "cond"
"""


def test_launcher_runs_main_py_with_onednn_and_nnpack_off_and_the_batched_convolution(tmp_path: Path):
    (tmp_path / "main.py").write_text(PROBE)
    (tmp_path / "comfy").mkdir()  # a stand-in for ComfyUI's comfy.sd: the launcher wraps its CLIP encoding
    (tmp_path / "comfy" / "__init__.py").write_text("")
    (tmp_path / "comfy" / "sd.py").write_text(FAKE_SD)
    out = subprocess.run([sys.executable, comfy_main.__file__, "--cpu", "--port", "1"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen == {"comfy_sd_before_main": False, "encode_memo": True, "encode": ["cond", "pooled"],
                    "name": "__main__", "argv": [str(tmp_path / "main.py"), "--cpu", "--port", "1"],
                    "path0": str(tmp_path), "onednn": False, "nnpack": False,
                    "conv2d": "_obclip_lab_batched_conv", "obclip_modules": [],
                    "harness_on_path": False}
