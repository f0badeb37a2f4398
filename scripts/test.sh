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

# Clippy runs inside the test build (see cargo-env.sh).
source scripts/cargo-env.sh

# One emulator for every test binary; each test works in an account of its own on it.
echo "== clippy and tests" >&2
scripts/emulator.sh run cargo test --locked "$@"
