//! Command-line definitions: every flag is defined here once; help text comes from these docs.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ami",
    version,
    about = "Manage the whole life of Amazon Machine Images",
    long_about = "Manage the whole life of Amazon Machine Images on AWS EC2.\n\n\
        Credentials, region and endpoint resolve like the AWS CLI: flag, then environment \
        (AWS_REGION, AWS_DEFAULT_REGION, AWS_PROFILE, AWS_ENDPOINT_URL), then the profile's config.",
    after_help = "Exit codes: 0 success, 1 failure, 2 invalid input (nothing changed), 3 partial failure."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// AWS region; repeat for verbs that span regions [env: AWS_REGION, AWS_DEFAULT_REGION]
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Vec<String>,

    /// Named profile from the AWS config files [env: AWS_PROFILE]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,

    /// Send requests to this endpoint instead of AWS's [env: AWS_ENDPOINT_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Output format: `table` for people, `json` (one document on stdout) for programs
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Do not ask for confirmation
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,

    /// Show what would be done and change nothing
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// More log output on stderr (-v, -vv)
    #[arg(long, short = 'v', global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,

    /// Never show progress bars
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// When to use colour in tables
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Attempts per AWS request, retries included (adaptive retry mode) [env: AWS_MAX_ATTEMPTS]
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List AMIs (all states, disabled and deprecated included), oldest first
    List(ListArgs),
    /// Deregister AMIs; with --cleanup also delete the snapshots and S3 bundles only they use
    #[command(
        long_about = "Deregister AMIs; with --cleanup also delete the snapshots and S3 bundles \
        that belong to them and to nothing else.\n\n\
        The plan is shown first: every image, snapshot and bundle with what will happen to it and \
        why. On a terminal `ami` asks once; elsewhere it needs --yes. --dry-run shows the plan and \
        changes nothing. Images in use (instances, launch templates, launch configurations) or \
        protected from deregistration are left alone, as is anything another image still uses."
    )]
    Deregister(DeregisterArgs),
}

#[derive(Debug, Args)]
pub struct DeregisterArgs {
    /// The images to deregister, in one region
    #[arg(value_name = "AMI_ID", required = true)]
    pub image_ids: Vec<String>,

    /// Also delete the EBS snapshots / S3 bundle (manifest and its parts) only these images use
    #[arg(long)]
    pub cleanup: bool,

    /// Deregister even images in use (snapshots other images use are still kept)
    #[arg(long)]
    pub force: bool,

    /// Terminate the instances launched from these images first (they are listed in the plan)
    #[arg(long)]
    pub terminate_instances: bool,

    /// Delete a bundle's S3 bucket when the cleanup leaves it empty
    #[arg(long, requires = "cleanup")]
    pub delete_empty_bucket: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only images whose name matches this glob (`*` and `?`)
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,

    /// Only images with this tag; repeat to require several (all must match)
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// Whose images: `self`, an account id, or an alias such as `amazon`
    #[arg(long, value_name = "OWNER", default_value = "self")]
    pub owner: String,
}

/// `KEY=VALUE`; the value may be empty, the key may not.
pub fn parse_tag(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{raw}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tags_parse() {
        assert_eq!(parse_tag("app=web"), Ok(("app".into(), "web".into())));
        assert_eq!(parse_tag("empty="), Ok(("empty".into(), String::new())));
        assert_eq!(parse_tag("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_tag("novalue").is_err());
        assert!(parse_tag("=v").is_err());
    }

    #[test]
    fn global_flags_work_after_the_verb() {
        let cli = Cli::try_parse_from([
            "ami",
            "list",
            "--region",
            "eu-west-1",
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.global.region, ["eu-west-1", "us-east-1"]);
        assert_eq!(cli.global.output, OutputFormat::Json);
    }
}
