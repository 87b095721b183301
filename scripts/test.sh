#!/usr/bin/env bash
# The README's test command (./run.sh test; .ci/run calls it):
#   1. the plain unit tests (tests/unit: no ComfyUI) once;
#   2. every test that touches ComfyUI (tests/integration: nodes, servers, demo; tests/browser) on each host:
#      the pinned ComfyUI 0.3.75 (or $COMFYUI_DIR) and, when ../shared/hosts/ is beside the checkout, ComfyUI 0.33.0.
# It always ends with a summary that names the hosts it tested, and says plainly when it tested only one.
# Arguments pass through to every pytest run; paths among them replace the default test folders.
#   --quick   the edit-run loop (a few minutes): lint, the unit tests, and ONE end-to-end run of the shipped
#             workflow on a cloud and a device server per host ($QUICK_E2E). Not what CI runs: run the whole
#             command before you push.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
HOSTS_DIR=${OBCLIP_HOSTS_DIR:-$ROOT/../shared/hosts}
LOGS="$ROOT/.cache/test-logs"
mkdir -p "$LOGS"
SECONDS=0

hosts=("${COMFYUI_DIR:-pinned}")
note=""
if [ -n "${COMFYUI_DIR:-}" ]; then
  note="tested ONE host: COMFYUI_DIR=$COMFYUI_DIR was given, so only that ComfyUI was tested"
elif [ -f "$HOSTS_DIR/comfyui-0.33.0.tar.gz" ]; then
  hosts+=(shared)
else
  note="tested ONE host (0.3.75): $HOSTS_DIR/comfyui-0.33.0.tar.gz is not here, so ComfyUI 0.33.0 was NOT tested"
fi

QUICK_E2E=tests/integration/test_e2e_servers.py::test_hybrid_workflow_end_to_end_and_what_the_cloud_saw
paths=() opts=() quick=0
for a in "$@"; do
  if [ "$a" = "--quick" ]; then quick=1
  elif [ -e "${a%%::*}" ]; then paths+=("$a"); else opts+=("$a"); fi
done

declare -a names pys trees setup_pids
setup_host() {  # index: set up (or check: a few seconds) host i, into "$LOGS/setup-$i.line"
  ( set -o pipefail; scripts/setup.sh "${hosts[$1]}" | tail -n 1 >"$LOGS/setup-$1.line" )
}
need_host() {  # index: host i's python, tree and version, once its setup ended
  [ -z "${names[$1]:-}" ] || return 0
  if [ -n "${setup_pids[$1]:-}" ]; then wait "${setup_pids[$1]}"; else setup_host "$1"; fi \
    || { echo "test: setting up host '${hosts[$1]}' failed" >&2; exit 1; }
  IFS=$'\t' read -r py tree version <"$LOGS/setup-$1.line"
  names[$1]=$version pys[$1]=$py trees[$1]=$tree
}
need_host 0
# the other hosts are set up in the background, after the first (apt-get runs one at a time), while the
# first host's tests run; each is waited for before its own tests
for i in "${!hosts[@]}"; do
  [ "$i" -eq 0 ] || { setup_host "$i" & setup_pids[$i]=$!; }
done

summary=() failed=0
log_of() { echo "$LOGS/$(echo "$1" | tr -c 'A-Za-z0-9.\n' '-').log"; }
run_pytest() {  # label python tree pytest-args... ; the slowest tests in the log and every test's time in a
  local label=$1 py=$2 tree=$3; shift 3  # JUnit file beside it: the time budget is watched
  local log; log=$(log_of "$label")
  COMFYUI_DIR=$tree "$py" -m pytest --durations=15 --junitxml="${log%.log}.xml" "$@"
}
record() {  # label rc seconds
  local label=$1 rc=$2 secs=$3 log result
  log=$(log_of "$label")
  result=$(grep -E '^=+ .*(passed|failed|error|no tests ran|skipped|deselected).* in [0-9.]+s' "$log" | tail -n 1 \
           | sed -E 's/^=+ //; s/ =+$//')
  if [ "$rc" -eq 5 ]; then rc=0; result="no tests selected"; fi
  [ "$rc" -eq 0 ] || failed=1
  summary+=("$(printf '%-34s %s  [%ss wall, exit %s]' "$label" "${result:-no result line (exit $rc)}" "$secs" "$rc")")
}
phase() {  # label python tree pytest-args...: in the foreground, its output on the terminal and in its log
  local label=$1 t0=$SECONDS rc
  echo "=== $label ===" >&2
  run_pytest "$@" 2>&1 | tee "$(log_of "$label")"
  rc=${PIPESTATUS[0]}
  record "$label" "$rc" $((SECONDS - t0))
}
# The unit tests (plain Python, one core) run beside the first host's tests, which spend much of their time
# waiting on server start-ups and I/O; their output is shown when they end. They run at a lower priority
# (nice): the host's tests are the longer path, and the unit tests fill the time they leave a core idle.
bg_label="" bg_pid=""
phase_in_background() {  # label python tree pytest-args...
  bg_label=$1
  local log t0=$SECONDS; log=$(log_of "$bg_label")
  echo "=== $bg_label (in the background; output below when it ends) ===" >&2
  ( [ $quick -eq 1 ] || renice -n 10 -p $BASHPID >/dev/null 2>&1 || true  # --quick: they are the longer path
    run_pytest "$@" >"$log" 2>&1; echo "$? $((SECONDS - t0))" >"$log.rc" ) &
  bg_pid=$!
}
finish_background() {
  [ -n "$bg_pid" ] || return 0
  wait "$bg_pid"
  local log; log=$(log_of "$bg_label")
  echo "=== $bg_label ===" >&2
  cat "$log"
  read -r rc secs <"$log.rc"
  record "$bg_label" "$rc" "$secs"
  rm -f "$log.rc"
  bg_pid=""
}

if [ ${#paths[@]} -gt 0 ]; then
  for i in "${!hosts[@]}"; do
    need_host "$i"
    phase "ComfyUI ${names[$i]}" "${pys[$i]}" "${trees[$i]}" "${paths[@]}" "${opts[@]}"
  done
else
  t0=$SECONDS
  if "${pys[0]}" -m ruff check . >"$LOGS/lint.log" 2>&1; then
    summary+=("$(printf '%-34s %s  [%ss wall]' "lint (ruff check .)" "clean" $((SECONDS - t0)))")
  else
    cat "$LOGS/lint.log"; failed=1
    summary+=("$(printf '%-34s %s' "lint (ruff check .)" "FAILED: see above")")
  fi
  phase_in_background "unit (no ComfyUI, run once)" "${pys[0]}" "${trees[0]}" tests/unit "${opts[@]}"
  if [ $quick -eq 1 ]; then
    for i in "${!hosts[@]}"; do  # the unit tests run on beside both hosts' one run each
      need_host "$i"
      phase "ComfyUI ${names[$i]} (quick: one e2e)" "${pys[$i]}" "${trees[$i]}" "$QUICK_E2E" "${opts[@]}"
    done
  else
    for i in "${!hosts[@]}"; do
      need_host "$i"
      phase "ComfyUI ${names[$i]} (${trees[$i]##*/})" "${pys[$i]}" "${trees[$i]}" tests/integration tests/browser "${opts[@]}"
      [ "$i" -gt 0 ] || finish_background  # before the second host: its tests are not slowed by them
    done
  fi
  finish_background
fi

echo
echo "=== ObCLIP test summary ($((SECONDS / 60)) min $((SECONDS % 60)) s) ==="
for s in "${summary[@]}"; do echo "$s"; done
echo "hosts tested: ${names[*]}"
[ -z "$note" ] || echo "NOTE: $note"
[ $quick -eq 0 ] || echo "NOTE: --quick ran the unit tests and one end-to-end run per host, not the whole suite (CI runs ./run.sh test)"
exit $failed
