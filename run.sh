#!/usr/bin/env bash
# The two README commands:
#   ./run.sh demo   set up (idempotent), start a "cloud" and a "device" ComfyUI on loopback, queue the
#                   shipped workflow on the device, save the image, print a JSON report, stop the servers
#   ./run.sh test   set up (idempotent) and run the whole test suite (what CI runs): unit tests once, everything
#                   that touches ComfyUI on each host (0.3.75, and 0.33.0 when ../shared/hosts/ is present)
# Anything after the command goes to the demo or to pytest.
# Host: the pinned ComfyUI 0.3.75 by default; COMFYUI_DIR=/path/to/ComfyUI for your own tree, or
# OBCLIP_HOST=shared for the 0.33.0 tree from ../shared/hosts/ (demo and bench).
set -euo pipefail
cd "$(dirname "$0")"
cmd=${1:-}
shift || true
host() { scripts/setup.sh "${OBCLIP_HOST:-${COMFYUI_DIR:-pinned}}" | tail -n 1; }
case "$cmd" in
  demo|bench)
    line=$(host)
    IFS=$'\t' read -r py tree _ <<<"$line"
    [ "$cmd" = demo ] && set -- demo "$@"
    COMFYUI_DIR=$tree exec "$py" -m obclip_nodes.bench "$@" ;;
  test) exec scripts/test.sh "$@" ;;
  *) echo "usage: ./run.sh demo | test | bench NAME" >&2; exit 2 ;;
esac
