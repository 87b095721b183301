from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m obclip_nodes.bench NAME [args]; NAME is one of: {', '.join(available())}")
        return 0 if argv else 2
    name = argv[0].replace("-", "_")  # `device-models` runs bench/device_models.py
    if name not in available():
        print(f"unknown benchmark {name!r}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    try:
        result = importlib.import_module(f"obclip_nodes.bench.{name}").run(argv[1:])
    except Exception as e:  # a clear one-line failure and a non-zero exit, never a silent partial report
        print(json.dumps({"benchmark": name, "ok": False, "error": f"{type(e).__name__}: {e}"}, indent=2))
        return 1
    print(json.dumps({"benchmark": name, **result}, indent=2))
    return 0 if result.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
