# Sourced by the benchmarks: run from the repository root, with the emulator running (started,
# and the test build made, if it is not) and these set: root, py, ami, ep, work.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -z "${AMI_EMULATOR_ENDPOINT:-}" ]]; then
  scripts/emulator.sh setup
  source scripts/cargo-env.sh
  cargo build --quiet --locked --tests
  exec scripts/emulator.sh run "$0" "$@"
fi
py="$root/.emulator/venv/bin/python"
# AMI_BENCH_BINARY: another build of ami to measure (an earlier commit's, to compare).
ami="${AMI_BENCH_BINARY:-$root/target/debug/ami}"
ep="$AMI_EMULATOR_ENDPOINT"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
# A fresh 12-digit account id for a run (the emulator keeps each account apart); $1 is added, so
# the accounts of one run differ.
new_account() { printf '%012d' $(( (RANDOM << 15 | RANDOM) % 1000000000000 + ${1:-0} )); }
