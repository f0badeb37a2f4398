//! `ami`: manage the whole life of Amazon Machine Images.
//!
//! `main` only parses arguments, runs the command and maps the outcome to an exit code; everything
//! else lives in the modules below.

mod aws;
mod cli;
mod commands;
mod concurrency;
mod config;
mod duration;
mod error;
mod ids;
mod interrupt;
mod model;
mod output;
mod plan;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    config::drop_empty_aws_env();
    let cli = cli::Cli::parse();
    output::init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ami: error: cannot start the async runtime: {err}");
            return ExitCode::from(error::EXIT_FAILURE);
        }
    };
    let outcome = runtime.block_on(commands::run(cli));
    let (code, line) = error::report(outcome);
    if let Some(line) = line {
        output::error(line);
    }
    ExitCode::from(code)
}
