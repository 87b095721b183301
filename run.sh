#!/usr/bin/env bash
# The two README commands:
#   ./run.sh demo   set up (idempotent), start a "cloud" and a "device" ComfyUI on loopback, queue the
#                   shipped workflow on the device, save the image, print a JSON report, stop the servers
#   ./run.sh test   set up (idempotent) and run the whole test suite (what CI runs)
# Anything after the command goes to the demo or to pytest.
set -euo pipefail
cd "$(dirname "$0")"
cmd=${1:-}
shift || true
case "$cmd" in
  demo) scripts/setup.sh && exec .venv/bin/python -m obclip_nodes.bench demo "$@" ;;
  test) scripts/setup.sh && exec .venv/bin/python -m pytest tests "$@" ;;
  bench) scripts/setup.sh && exec .venv/bin/python -m obclip_nodes.bench "$@" ;;
  *) echo "usage: ./run.sh demo | test | bench NAME" >&2; exit 2 ;;
esac
