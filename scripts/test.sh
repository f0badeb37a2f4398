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

# Clippy lints this crate during the test build itself (clippy-driver as the workspace wrapper,
# warnings denied by [lints] in Cargo.toml): one build of the SDK crates instead of a separate
# `cargo clippy` check build of them, which took a third of a cold run. Every target the tests
# build is linted, as with `cargo clippy --all-targets -- -D warnings`.
if driver="$(rustup which clippy-driver 2>/dev/null)" || driver="$(command -v clippy-driver)"; then
  export RUSTC_WORKSPACE_WRAPPER="$driver"
else
  echo "test: clippy-driver not found; install it with: rustup component add clippy" >&2
  exit 1
fi

# One emulator for every test binary; each test works in an account of its own on it.
echo "== clippy and tests" >&2
scripts/emulator.sh run cargo test --locked "$@"
