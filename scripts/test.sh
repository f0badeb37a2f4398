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

# The emulator's venv installs while Rust builds (pip waits on the network, cargo on the CPU).
scripts/emulator.sh setup &
setup=$!

echo "== rustfmt" >&2
cargo fmt --all -- --check

# Clippy runs inside the test build (see cargo-env.sh).
source scripts/cargo-env.sh

echo "== clippy and build" >&2
cargo test --locked --no-run "$@"
wait "$setup"

# One emulator for every test binary; each test works in an account of its own on it.
echo "== tests" >&2
scripts/emulator.sh run cargo test --locked "$@"
