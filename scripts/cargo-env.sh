# Sourced by test.sh, demo.sh and the benchmarks, so that they all share one build.
#
# Clippy lints this crate during the build itself (clippy-driver as the workspace wrapper;
# warnings are denied by [lints] in Cargo.toml): one build of the SDK crates instead of a separate
# `cargo clippy` check build. The wrapper applies to this crate only; the dependencies are built
# as by plain cargo. Scripts that run the binary build it with `--tests`, so its dependencies get
# the same features as in the test build (dev-dependencies enable a few more) and are not
# compiled a second time.
# Build with the rust-version Cargo.toml declares, so the declaration stays true: that toolchain
# when rustup has it, else the default one if it is that version. Any other only warns, unless
# AMI_REQUIRE_DECLARED_RUST=true (CI's declared-version job) makes it an error: the job that tests
# on stable must keep working when a new stable comes out.
declared="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../Cargo.toml")"
if rustup run "$declared" rustc --version >/dev/null 2>&1; then
  export RUSTUP_TOOLCHAIN="$declared"
elif [[ "$(rustc --version | cut -d' ' -f2)" != "$declared" ]]; then
  message="Cargo.toml declares rust-version $declared, but rustc is $(rustc --version | cut -d' ' -f2); install it with: rustup toolchain install $declared"
  if [[ "${AMI_REQUIRE_DECLARED_RUST:-}" == "true" ]]; then
    echo "$message" >&2
    return 1 2>/dev/null || exit 1
  fi
  echo "warning: $message" >&2
fi

if driver="$(rustup which clippy-driver 2>/dev/null)" || driver="$(command -v clippy-driver)"; then
  export RUSTC_WORKSPACE_WRAPPER="$driver"
else
  echo "clippy-driver not found; install it with: rustup component add clippy" >&2
  return 1 2>/dev/null || exit 1
fi
