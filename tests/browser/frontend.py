"""What both browser modules share: Debian's Chromium, the host's frontend and where screenshots go."""
from __future__ import annotations

import json
from pathlib import Path

from obclip_nodes.harness.host import REPO, comfyui_dir

CHROMIUM = "/usr/bin/chromium"
# Playwright adds --headless and a fresh temporary --user-data-dir itself
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS_ROOT = Path(__file__).parent / "artifacts"


def host_version() -> str:
    return (comfyui_dir() / "comfyui_version.py").read_text().split('__version__ = "')[1].split('"')[0]


ARTIFACTS = ARTIFACTS_ROOT / host_version()


def frontend_root() -> str:
    import comfyui_frontend_package
    return str(Path(comfyui_frontend_package.__file__).parent / "static")


def controlnet_names() -> set[str]:
    return {n["inputs"]["control_net_name"] for p in (REPO / "workflows" / "api").glob("*.json")
            for n in json.loads(p.read_text()).values() if isinstance(n["inputs"].get("control_net_name"), str)}
