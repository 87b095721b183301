"""Where the ComfyUI host tree and the project's venv are."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"


def comfyui_dir() -> Path:
    """$COMFYUI_DIR, else what scripts/setup.sh recorded, else the extracted pinned tree."""
    env = os.environ.get("COMFYUI_DIR")
    recorded = REPO / ".venv" / ".comfyui-dir"
    if env:
        path = Path(env)
    elif recorded.exists():
        path = Path(recorded.read_text().strip())
    else:
        path = REPO / ".deps" / "ComfyUI"
    if not (path / "main.py").exists():
        raise RuntimeError(f"no ComfyUI tree at {path}; run scripts/setup.sh (or set COMFYUI_DIR)")
    return path


def import_comfy() -> Path:
    """Make `comfy` importable in this process, on the CPU (must run before other comfy imports)."""
    root = comfyui_dir()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    return root
