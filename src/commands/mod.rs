//! One module per verb; each resolves its input, calls the service layer and emits one document.

pub mod cleanup;
mod copies;
pub mod copy;
pub mod create;
pub mod deregister;
mod dry_run;
mod fleet;
pub mod launch;
pub mod list;
mod new_image;
mod policy;
pub mod register;
pub mod release;
pub mod restore;
mod retire;
pub mod share;
pub mod shell;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::error::Outcome;

pub async fn run(cli: Cli) -> Result<Outcome> {
    // Local verbs: no AWS settings needed.
    match &cli.command {
        Command::Completions(args) => return shell::completions(args),
        Command::Man(args) => return shell::man(args),
        _ => {}
    }
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
        Command::Launch(args) => launch::run(&settings, &args).await,
        Command::Release(args) => release::run(&settings, &args).await,
        Command::Restore(args) => restore::run(&settings, &args).await,
        Command::Completions(_) | Command::Man(_) => unreachable!("handled above"),
    }
}
