//! `ami completions SHELL` and `ami man [VERB]`: generated from the clap definitions, so they
//! never drift from the real flags.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs, Shell};
use crate::error::{Outcome, usage};

pub fn completions(args: &CompletionsArgs) -> Result<Outcome> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ami", &mut out);
    write_stdout(&out)
}

pub fn man(args: &ManArgs) -> Result<Outcome> {
    let mut command = Cli::command();
    command.build();
    let page = match &args.verb {
        None => command,
        Some(verb) => {
            let Some(sub) = command.find_subcommand(verb) else {
                let verbs: Vec<String> = command
                    .get_subcommands()
                    .map(|c| c.get_name().to_string())
                    .collect();
                return Err(usage(format!(
                    "'{verb}' is not a verb of ami (one of: {})",
                    verbs.join(", ")
                )));
            };
            // ami-VERB(1), as git and cargo name their per-command pages.
            sub.clone().name(format!("ami-{verb}"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<Outcome> {
    crate::output::write_stdout(bytes)?;
    Ok(Outcome::Success)
}
