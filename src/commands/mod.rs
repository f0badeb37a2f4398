//! One module per verb; each resolves its input, calls the service layer and emits one document.

pub mod cleanup;
pub mod copy;
pub mod create;
pub mod deregister;
pub mod list;
mod new_image;
mod policy;
pub mod register;
mod retire;
mod review;
pub mod share;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::error::Outcome;

pub async fn run(cli: Cli) -> Result<Outcome> {
    let settings = Settings::resolve(&cli.global).await?;
    match cli.command {
        Command::List(args) => list::run(&settings, &args).await,
        Command::Create(args) => create::run(&settings, &args).await,
        Command::Register(args) => register::run(&settings, &args).await,
        Command::Copy(args) => copy::run(&settings, &args).await,
        Command::Share(args) => share::run(&settings, &args).await,
        Command::Deregister(args) => deregister::run(&settings, &args).await,
        Command::Cleanup(args) => cleanup::run(&settings, &args).await,
        Command::Apply(args) => cleanup::apply(&settings, &args).await,
    }
}
