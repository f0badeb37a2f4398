#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the emulator's venv, checks formatting and
# lints, then runs every test (unit tests and the binary against the emulator).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v cargo >/dev/null 2>&1; then
  echo "test: cargo not found; install Rust from https://rustup.rs" >&2
  exit 1
fi

scripts/emulator.sh setup

echo "== rustfmt" >&2
cargo fmt --all -- --check
echo "== clippy" >&2
cargo clippy --all-targets --locked -- -D warnings

# One emulator for every test binary; each test works in an account of its own on it.
started=""
if ! endpoint="$(scripts/emulator.sh status 2>/dev/null)"; then
  endpoint="$(scripts/emulator.sh start)"
  started=yes
fi
cleanup() { [[ -n "$started" ]] && scripts/emulator.sh stop; }
trap cleanup EXIT

echo "== tests (emulator at $endpoint)" >&2
AMI_TEST_ENDPOINT="$endpoint" cargo test --locked "$@"
