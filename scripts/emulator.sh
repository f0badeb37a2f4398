#!/usr/bin/env bash
# The AWS emulator (moto + the project's fidelity layer) for tests and the local demo.
#
#   scripts/emulator.sh setup    create .emulator/venv with the pinned moto[server] (idempotent)
#   scripts/emulator.sh start    start on 127.0.0.1, a free port; prints the endpoint URL
#   scripts/emulator.sh stop     stop it
#   scripts/emulator.sh status   print the endpoint if it is running
#   scripts/emulator.sh run CMD  run CMD with AMI_EMULATOR_ENDPOINT set, starting the emulator
#                                first if needed (and stopping it afterwards if this started it)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="$root/.emulator"
venv="$state/venv"
requirements="$root/tests/emulator/requirements.txt"

python_bin() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
  echo "emulator: python3 not found; install Python 3.9 or newer" >&2
  exit 1
}

setup() {
  mkdir -p "$state"
  # The stamp records which requirements the venv was built from, so a change rebuilds it.
  local stamp="$venv/.requirements.sha256"
  local want
  want="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  echo "emulator: installing moto into $venv" >&2
  rm -rf "$venv"
  "$(python_bin)" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
}

running_pid() {
  local pid
  pid="$(cat "$state/pid" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    echo "$pid"
  fi
}

start() {
  setup
  if [[ -n "$(running_pid)" ]]; then
    cat "$state/endpoint"
    return
  fi
  rm -f "$state/endpoint"
  nohup "$venv/bin/python" "$root/tests/emulator/server.py" --port 0 \
    --endpoint-file "$state/endpoint" >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  for _ in $(seq 1 300); do
    if [[ -s "$state/endpoint" ]]; then
      cat "$state/endpoint"
      return
    fi
    if [[ -z "$(running_pid)" ]]; then
      echo "emulator: failed to start; log follows" >&2
      cat "$state/server.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "emulator: not ready after 30 s; see $state/server.log" >&2
  exit 1
}

stop() {
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    kill "$pid"
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$state/pid" "$state/endpoint"
}

run_with() {
  local endpoint
  if [[ -n "$(running_pid)" ]]; then
    endpoint="$(cat "$state/endpoint")"
  else
    endpoint="$(start)"
    trap stop EXIT
  fi
  AMI_EMULATOR_ENDPOINT="$endpoint" AMI_EMULATOR_LOG="$state/server.log" "$@"
}

case "${1:-}" in
  setup) setup ;;
  start) start ;;
  stop) stop ;;
  run)
    shift
    [[ $# -gt 0 ]] || { echo "usage: $0 run COMMAND [ARGS...]" >&2; exit 2; }
    run_with "$@"
    ;;
  status)
    if [[ -n "$(running_pid)" ]]; then cat "$state/endpoint"; else echo "emulator: not running" >&2; exit 1; fi
    ;;
  *)
    echo "usage: $0 setup|start|stop|status|run COMMAND..." >&2
    exit 2
    ;;
esac
