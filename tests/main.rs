//! The integration tests: the real `ami` binary against the emulator, one test binary for all of
//! them (one build and one link instead of one per file; `cargo test deregister::` runs a file).

mod common;

mod cleanup;
mod cli;
mod credentials;
mod deregister;
mod dry_run;
mod fleet;
mod iam;
mod lifecycle;
mod lineage;
mod list;
mod recycle_bin;
mod resilience;
mod schema;
mod timing;
