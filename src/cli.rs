//! Command-line definitions: every flag is defined here once; help text comes from these docs.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// The version and the git revision it was built from (see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("AMI_GIT_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "ami",
    version = VERSION,
    about = "Manage the whole life of Amazon Machine Images",
    long_about = "Manage the whole life of Amazon Machine Images on AWS EC2.\n\n\
        Credentials, region and endpoint resolve like the AWS CLI: flag, then environment \
        (AWS_REGION, AWS_DEFAULT_REGION, AWS_PROFILE, AWS_ENDPOINT_URL), then the profile's config.",
    after_help = "Exit codes: 0 success, 1 failure, 2 invalid input (nothing changed), 3 partial failure, \
        130 interrupted (Ctrl-C)."
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
    /// One JSON document per line: across accounts, a line per account as it finishes
    Jsonl,
}

/// `--action`: the CLI's spelling of `plan::retention::RetireAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionArg {
    Deregister,
    Deprecate,
    Disable,
}

impl From<ActionArg> for crate::plan::retention::RetireAction {
    fn from(arg: ActionArg) -> Self {
        use crate::plan::retention::RetireAction;
        match arg {
            ActionArg::Deregister => RetireAction::Deregister,
            ActionArg::Deprecate => RetireAction::Deprecate,
            ActionArg::Disable => RetireAction::Disable,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List AMIs in every state (disabled and deprecated too; not deregistered ones), oldest first
    List(ListArgs),
    /// Create an image from an instance
    Create(CreateArgs),
    /// Register an image from EBS snapshots or from an instance-store bundle in S3
    Register(RegisterArgs),
    /// Copy an image to other regions (each copy gets its own id)
    Copy(CopyArgs),
    /// Show or change who may launch an image (and create volumes from its snapshots)
    Share(ShareArgs),
    /// Launch instances from an image, to test it (--terminate-after for a smoke test)
    Launch(LaunchArgs),
    /// Create → test → copy → share an image in one resumable command
    #[command(long_about = "Ship an image in one command, stage by stage:\n\n\
        1. create: the image from --instance-id, named --name, waited until available;\n\
        2. test: one instance launched from it until running, then terminated (--no-test skips);\n\
        3. copy: to every --to-region, waited until available;\n\
        4. share: with --account / --org-arn / --ou-arn (and --with-snapshots) in every region;\n\
        5. finish: --deprecate-after and --protect on every image.\n\n\
        Re-running the same release resumes it: what is already done is found by name and \
        skipped, never made twice. A failed stage stops the release (exit 1, or 3 when some \
        regions finished) and the output lists every image made so far. --dry-run prints the \
        stages and the calls they would make.")]
    Release(ReleaseArgs),
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
    /// Retire images by retention rules (keep the newest N per family, age) and sweep orphans
    #[command(
        long_about = "Retire images by retention rules and sweep orphaned snapshots; made \
        for cron.\n\n\
        Images are grouped into families (by name without its trailing date/version, by \
        --name-pattern, or by tags); --keep N keeps the newest N of each, --older-than and \
        --unused-for add age rules. Never retired: images in use (instances, every launch template \
        version, launch configurations), images tagged retain=true (--keep-tag), images of other \
        accounts, public images (unless --include-public), protected images. Retired images go \
        with the snapshots and bundles only they use, through the same planner as `ami \
        deregister --cleanup`. Without a terminal it needs --yes; --dry-run shows the plan."
    )]
    Cleanup(CleanupArgs),
    /// Carry out a reviewed cleanup plan, re-checking every item against the account first
    #[command(
        long_about = "Carry out a plan written by `ami cleanup --plan-out`.\n\n\
        Every item is checked against the account as it is now: an image that is gone, changed \
        or now in use is skipped with the reason; a snapshot another image now uses is kept; \
        nothing that was not in the reviewed plan is deleted."
    )]
    Apply(ApplyArgs),
    /// Bring images and snapshots back from the Recycle Bin (an image with its snapshots)
    #[command(
        long_about = "Bring images (ami-...) and snapshots (snap-...) back from the Recycle Bin.\n\n\
        An image comes back with the snapshots it needs: those the bin shows as made for it first, \
        then the image, then any other snapshot its block-device mapping names that is still in \
        the bin; one that is gone for good is reported missing (the image cannot launch without \
        it). An id neither in the bin nor in the account stops the command before any change \
        (exit 2); one already out of the bin is reported present, so running the same command \
        again finishes an interrupted restore. Only what a Recycle Bin retention rule kept can be \
        restored: `ami list --recycle-bin` shows \
        what is there and until when."
    )]
    Restore(RestoreArgs),
    /// Print a shell completion script: bash, zsh, fish or powershell
    #[command(
        long_about = "Print a completion script for the shell, generated from these definitions.\n\n\
        bash:       ami completions bash > ~/.local/share/bash-completion/completions/ami\n\
        zsh:        ami completions zsh > \"${fpath[1]}/_ami\"\n\
        fish:       ami completions fish > ~/.config/fish/completions/ami.fish\n\
        powershell: ami completions powershell >> $PROFILE"
    )]
    Completions(CompletionsArgs),
    /// Print the man page (roff): `ami man | man -l -`, or `ami man VERB` for one verb
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub accounts: AccountArgs,

    /// Retire images shared with other accounts without checking whether those accounts use them
    #[arg(long)]
    pub ignore_consumers: bool,

    /// How long to wait for image usage reports on images shared with other accounts (an image
    /// whose report is not ready by then is kept), e.g. 10m
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

    /// Every region enabled for the account (instead of --region)
    #[arg(long)]
    pub all_regions: bool,

    /// Rules from a TOML file (see docs/usage.md) instead of the selection flags below
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "group_by", "name_pattern", "name", "tags", "keep", "older_than", "unused_for",
        "keep_tag", "include_public", "action", "orphans", "orphan_bundles",
    ])]
    pub policy: Option<std::path::PathBuf>,

    /// How to form families: `name`, or `tag:KEY[,tag:KEY...]`
    #[arg(long, default_value = "name", value_name = "name|tag:KEY,...", value_parser = parse_group_by)]
    pub group_by: GroupByArg,

    /// With --group-by name: a regex whose first capture group is the family
    #[arg(long, value_name = "REGEX")]
    pub name_pattern: Option<String>,

    /// Only images whose name matches this glob
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,

    /// Only images with this tag; repeatable (all must match)
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// Keep the newest N images of each family
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,

    /// Only retire images created longer ago than this, e.g. 90d
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Option<std::time::Duration>,

    /// Only retire images not launched for this long (kept where the endpoint cannot say)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub unused_for: Option<std::time::Duration>,

    /// Images with this tag are never retired
    #[arg(long, value_name = "KEY=VALUE", default_value = "retain=true", value_parser = parse_tag)]
    pub keep_tag: (String, String),

    /// Public images may be retired too
    #[arg(long)]
    pub include_public: bool,

    /// What retiring means: deregister (with the snapshots and bundles only they use), or a
    /// gentler first stage: deprecate (now) or disable
    #[arg(long, value_enum, default_value_t = ActionArg::Deregister)]
    pub action: ActionArg,

    /// Also delete orphaned snapshots: made for an image (CreateImage/CopyImage) that no longer
    /// exists, and used by no image. Snapshots made by hand are never touched
    #[arg(long)]
    pub orphans: bool,

    /// An image the rule retires takes every copy of it (copies of copies included) in every
    /// enabled region with it, found by lineage; each copy is still kept by its own region's
    /// checks (in use, keep tag, protected, ...)
    #[arg(long)]
    pub with_copies: bool,

    /// Also delete bundles under this S3 prefix whose manifest no registered image uses (the
    /// manifest and exactly its parts, as for deregister); repeatable
    #[arg(long, value_name = "S3_URL")]
    pub orphan_bundles: Vec<String>,

    /// Write the plan to FILE for review and change nothing; `ami apply FILE` carries it out
    #[arg(long, value_name = "FILE")]
    pub plan_out: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan written by `ami cleanup --plan-out`
    #[arg(value_name = "PLAN_FILE")]
    pub plan: std::path::PathBuf,

    /// The role to assume in the accounts an image is shared with, to check they do not use it
    #[arg(long, value_name = "NAME")]
    pub role_name: Option<String>,

    /// Retire images shared with other accounts without checking whether those use them
    #[arg(long)]
    pub ignore_consumers: bool,

    /// How long to wait for image usage reports on images shared with other accounts (an image
    /// whose report is not ready by then is kept), e.g. 10m
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

/// Waiting for an image to become available.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the image is available (the default on a terminal)
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,

    /// Return as soon as AWS accepted the request
    #[arg(long)]
    pub no_wait: bool,

    /// How long to wait, e.g. 45m, 2h
    #[arg(long, value_name = "DURATION", default_value = "60m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

/// What to do with a new image once it exists.
#[derive(Debug, Args)]
pub struct NewImageArgs {
    /// Tag the image (and its snapshots); repeatable
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// Turn on deregistration protection
    #[arg(long)]
    pub protect: bool,

    /// Deprecate the image after this long, e.g. 90d
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub deprecate_after: Option<std::time::Duration>,

    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Where and how test instances run (`launch`, and the test stage of `release`).
#[derive(Debug, Args)]
pub struct PlacementArgs {
    #[arg(long, default_value = "t3.micro")]
    pub instance_type: String,

    /// Launch into this subnet (its VPC and Availability Zone)
    #[arg(long, value_name = "SUBNET_ID", conflicts_with = "availability_zone")]
    pub subnet_id: Option<String>,

    /// Launch in this Availability Zone (default subnet)
    #[arg(long, value_name = "AZ")]
    pub availability_zone: Option<String>,

    #[arg(long)]
    pub key_name: Option<String>,

    /// A security group; repeatable
    #[arg(long = "security-group-id", value_name = "SG_ID")]
    pub security_group_ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The image to launch
    #[arg(value_name = "AMI_ID")]
    pub image_id: String,

    #[command(flatten)]
    pub placement: PlacementArgs,

    /// User data from this file (at most 16 KiB)
    #[arg(long, value_name = "FILE")]
    pub user_data: Option<std::path::PathBuf>,

    /// Tag the instances (and their volumes); repeatable
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// How many instances
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=20))]
    pub count: i32,

    /// Wait until the instances are running, with progress
    #[arg(long)]
    pub wait: bool,

    /// Smoke test: wait until running, run --check if given, then terminate
    #[arg(long)]
    pub terminate_after: bool,

    /// With --terminate-after: a shell command run once the instances are running, with
    /// AMI_INSTANCE_ID, AMI_INSTANCE_IDS, AMI_IMAGE_ID, AMI_REGION, AMI_AVAILABILITY_ZONE,
    /// AMI_PRIVATE_IP and AMI_PUBLIC_IP set; a non-zero exit fails the launch (exit 1)
    #[arg(long, value_name = "COMMAND", requires = "terminate_after")]
    pub check: Option<String>,

    /// How long to wait for running (and for terminated)
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The instance to image
    #[arg(long, value_name = "INSTANCE_ID")]
    pub instance_id: String,

    /// The image name, the same in every region: how a re-run finds what is done
    #[arg(long)]
    pub name: String,

    #[arg(long)]
    pub description: Option<String>,

    /// Do not reboot the instance before imaging it
    #[arg(long)]
    pub no_reboot: bool,

    /// Tag the image, its snapshots and its copies; repeatable
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// Skip the test stage
    #[arg(long)]
    pub no_test: bool,

    #[command(flatten)]
    pub placement: PlacementArgs,

    /// A region to copy to; repeatable
    #[arg(long, value_name = "REGION")]
    pub to_region: Vec<String>,

    /// Time-based copies: each copy's snapshots done within this long (15m to 48h, in steps of
    /// 15 minutes)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub complete_within: Option<std::time::Duration>,

    #[command(flatten)]
    pub share: GranteeArgs,

    /// The role to assume in each --account, to warn when its Allowed AMIs settings would not
    /// let it use the image
    #[arg(long, value_name = "NAME")]
    pub role_name: Option<String>,

    /// Also grant the accounts create-volume permission on the snapshots
    #[arg(long)]
    pub with_snapshots: bool,

    /// Deprecate every image after this long, e.g. 90d
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub deprecate_after: Option<std::time::Duration>,

    /// Turn on deregistration protection on every image
    #[arg(long)]
    pub protect: bool,

    /// Last stage: write the image id to this SSM parameter (data type aws:ec2:image) in every
    /// region of the release; repeatable
    #[arg(long, value_name = "NAME")]
    pub ssm_parameter: Vec<String>,

    /// Replace a parameter that holds another value (without it, the publish stage fails on it)
    #[arg(long, requires = "ssm_parameter")]
    pub overwrite_ssm: bool,

    /// How long to wait for each image or instance, e.g. 45m, 2h
    #[arg(long, value_name = "DURATION", default_value = "60m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

/// Who to share an image with (`share`, and the share stage of `release`).
#[derive(Debug, Args, Clone)]
pub struct GranteeArgs {
    /// An AWS account id (12 digits); repeatable
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub account: Vec<String>,

    /// An organization ARN; repeatable
    #[arg(long, value_name = "ARN")]
    pub org_arn: Vec<String>,

    /// An organizational unit ARN; repeatable
    #[arg(long, value_name = "ARN")]
    pub ou_arn: Vec<String>,
}

/// Which accounts a verb works in: the caller's (default), one role's, or many.
#[derive(Debug, Args, Clone, Default)]
pub struct AccountArgs {
    /// Work in the account of this role, assumed once
    #[arg(long, value_name = "ARN", conflicts_with_all = ["accounts", "accounts_from_org"])]
    pub role_arn: Option<String>,

    /// Work in each of these accounts (comma-separated), assuming --role-name in each
    #[arg(
        long,
        value_name = "ID,ID,...",
        value_delimiter = ',',
        requires = "role_name",
        conflicts_with = "accounts_from_org"
    )]
    pub accounts: Vec<String>,

    /// Work in every active account of the organization, assuming --role-name in each
    #[arg(long, requires = "role_name")]
    pub accounts_from_org: bool,

    /// The role to assume in each account; also used to check the accounts an image is shared
    /// with before it is retired
    #[arg(long, value_name = "NAME")]
    pub role_name: Option<String>,

    /// At most this many accounts in flight at once (default 64: each account runs its regions
    /// concurrently with connections of its own)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_accounts: Option<u16>,

    /// Work on the K-th (from 0) of N disjoint parts of the accounts; `auto/N` takes K from
    /// JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch
    /// array job)
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<ShardArg>,
}

/// `--shard K/N` as given: K may be left to the scheduler (`auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardArg {
    pub index: Option<u32>,
    pub count: u32,
}

/// `K/N` with 0 <= K < N, or `auto/N`.
pub fn parse_shard(raw: &str) -> Result<ShardArg, String> {
    let bad = || format!("expected K/N (0 <= K < N) or auto/N, got '{raw}'");
    let (index, count) = raw.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.parse().map_err(|_| bad())?;
    if count == 0 {
        return Err(bad());
    }
    let index = match index {
        "auto" => None,
        index => {
            let index: u32 = index.parse().map_err(|_| bad())?;
            if index >= count {
                return Err(bad());
            }
            Some(index)
        }
    };
    Ok(ShardArg { index, count })
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// A verb, for its own page (ami-VERB(1))
    pub verb: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The instance to image
    #[arg(long, value_name = "INSTANCE_ID")]
    pub instance_id: String,

    /// The image name (unique in the region)
    #[arg(long)]
    pub name: String,

    #[arg(long)]
    pub description: Option<String>,

    /// Do not reboot the instance first. By default AWS reboots it, so the file systems are
    /// consistent; without the reboot, the image may hold a half-written file system
    #[arg(long)]
    pub no_reboot: bool,

    #[command(flatten)]
    pub new_image: NewImageArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["root_snapshot", "manifest"])))]
pub struct RegisterArgs {
    /// The image name (unique in the region)
    #[arg(long)]
    pub name: String,

    #[arg(long)]
    pub description: Option<String>,

    /// EBS-backed: the root volume's snapshot
    #[arg(long, value_name = "SNAPSHOT_ID")]
    pub root_snapshot: Option<String>,

    /// EBS-backed: a data volume, e.g. /dev/xvdb=snap-0123...; repeatable
    #[arg(long, value_name = "DEVICE=SNAPSHOT_ID", value_parser = parse_device_snapshot, requires = "root_snapshot")]
    pub data_snapshot: Vec<(String, String)>,

    #[arg(long, default_value = "/dev/xvda", requires = "root_snapshot")]
    pub root_device_name: String,

    #[arg(long, default_value = "x86_64", value_parser = ["x86_64", "arm64", "i386", "x86_64_mac", "arm64_mac"])]
    pub architecture: String,

    #[arg(long, value_parser = ["legacy-bios", "uefi", "uefi-preferred"], requires = "root_snapshot")]
    pub boot_mode: Option<String>,

    /// Enhanced networking (ENA)
    #[arg(long, requires = "root_snapshot")]
    pub ena: bool,

    /// Require IMDSv2 on instances launched from the image
    #[arg(long, requires = "root_snapshot")]
    pub imds_v2: bool,

    /// NitroTPM 2.0
    #[arg(long, requires = "root_snapshot")]
    pub tpm: bool,

    #[arg(long, default_value = "gp3", value_parser = ["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"], requires = "root_snapshot")]
    pub volume_type: String,

    /// Instance-store: the bundle manifest, s3://bucket/prefix/name.manifest.xml (checked before
    /// registering: it must parse, and every part it lists must exist)
    #[arg(long, value_name = "S3_URL")]
    pub manifest: Option<String>,

    #[command(flatten)]
    pub new_image: NewImageArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("targets").required(true).args(["to_region", "to_regions"])))]
pub struct CopyArgs {
    #[command(flatten)]
    pub accounts: AccountArgs,

    /// The image to copy
    #[arg(value_name = "AMI_ID")]
    pub image_id: String,

    /// A region to copy to; repeatable
    #[arg(long, value_name = "REGION")]
    pub to_region: Vec<String>,

    /// `all`: every region enabled for the account but the source
    #[arg(long, value_name = "all", value_parser = ["all"])]
    pub to_regions: Option<String>,

    /// Where the image is (default: --region / AWS_REGION)
    #[arg(long, value_name = "REGION")]
    pub source_region: Option<String>,

    /// Name of the copies (default: the source's name)
    #[arg(long)]
    pub name: Option<String>,

    #[arg(long)]
    pub description: Option<String>,

    /// Encrypt the copies' snapshots (with the default EBS key unless --kms-key-id)
    #[arg(long)]
    pub encrypt: bool,

    /// KMS key for the copies: KEY for every region, or REGION=KEY; repeatable
    #[arg(long, value_name = "KEY|REGION=KEY")]
    pub kms_key_id: Vec<String>,

    /// Do not copy the source's tags (copied by default)
    #[arg(long)]
    pub no_copy_tags: bool,

    /// Tag the copies and their snapshots, on top of the source's tags; repeatable
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// A time-based copy: every snapshot copied within this long, 15m to 48h in steps of 15
    /// minutes, e.g. 2h (billed per GiB copied)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub complete_within: Option<std::time::Duration>,

    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct ShareArgs {
    #[command(flatten)]
    pub accounts: AccountArgs,

    /// The image; with no grantee, its current permissions are shown
    #[arg(value_name = "AMI_ID")]
    pub image_id: String,

    #[command(flatten)]
    pub share: GranteeArgs,

    /// Everyone: needs --confirm-public or a yes at the prompt, even with --yes
    #[arg(long)]
    pub public: bool,

    /// Confirms --public
    #[arg(long, requires = "public")]
    pub confirm_public: bool,

    /// Remove these permissions instead of granting them
    #[arg(long)]
    pub revoke: bool,

    /// Also grant create-volume permission on the image's snapshots (accounts and public only)
    #[arg(long)]
    pub with_snapshots: bool,

    /// Apply to every copy of this image too (copies of copies included), in every enabled
    /// region, found by where AWS records each image came from, never by name
    #[arg(long)]
    pub all_copies: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The images and snapshots to restore, in one region
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeregisterArgs {
    /// The role to assume in the accounts an image is shared with, to check they do not use it
    #[arg(long, value_name = "NAME")]
    pub role_name: Option<String>,

    /// Deregister images shared with other accounts without checking whether those use them
    #[arg(long)]
    pub ignore_consumers: bool,

    /// How long to wait for image usage reports on images shared with other accounts (an image
    /// whose report is not ready by then is kept), e.g. 10m
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

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

    /// Also every copy of the image (copies of copies included) in every enabled region, found
    /// by where AWS records each came from: one plan, one prompt; each region planned on its own
    #[arg(long)]
    pub all_copies: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub accounts: AccountArgs,

    /// Only images whose name matches this glob (`*` and `?`)
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,

    /// Only images with this tag; repeat to require several (all must match)
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// Whose images: `self`, an account id, or an alias such as `amazon`
    #[arg(long, value_name = "OWNER", default_value = "self")]
    pub owner: String,

    /// Also show who each image is shared with: one DescribeImageAttribute per image (EC2 has no
    /// bulk form), minutes for thousands of images. `ami share AMI` shows one image's
    #[arg(long, conflicts_with = "no_shares")]
    pub shares: bool,

    /// Do not read who images are shared with (the default; kept for scripts written before)
    #[arg(long)]
    pub no_shares: bool,

    /// List what is in the Recycle Bin instead (images and snapshots, and when each leaves it)
    #[arg(long, conflicts_with_all = ["name", "tags", "shares", "no_shares"])]
    pub recycle_bin: bool,

    /// Show the images as a forest: each under the image it was made from (copied, or built
    /// from an instance of it)
    #[arg(long, conflicts_with = "recycle_bin")]
    pub tree: bool,

    /// Also read each image's whole ancestry chain (GetImageAncestry: one call per image)
    #[arg(long, conflicts_with = "recycle_bin")]
    pub ancestry: bool,

    /// List every image of the account built on or copied from this one, in every enabled
    /// region: what is built on a base
    #[arg(long, value_name = "AMI_ID", conflicts_with_all = ["recycle_bin", "tree"])]
    pub descendants: Option<String>,
}

/// `--group-by` (and a policy's `group_by`): families by name, or by the values of these tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupByArg {
    Name,
    Tags(Vec<String>),
}

pub fn parse_group_by(raw: &str) -> Result<GroupByArg, String> {
    if raw == "name" {
        return Ok(GroupByArg::Name);
    }
    let mut keys = Vec::new();
    for part in raw.split(',') {
        match part.trim().strip_prefix("tag:") {
            Some(key) if !key.is_empty() => keys.push(key.to_string()),
            _ => {
                return Err(format!(
                    "group by '{raw}': expected name or tag:KEY[,tag:KEY...]"
                ));
            }
        }
    }
    Ok(GroupByArg::Tags(keys))
}

/// `KEY=VALUE`; the value may be empty, the key may not.
pub fn parse_tag(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{raw}'")),
    }
}

/// Durations such as `90d`, `12h`, `45m` (see `crate::duration`).
pub fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(raw)
}

/// `DEVICE=SNAPSHOT_ID` for data volumes.
pub fn parse_device_snapshot(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((device, snapshot))
            if device.starts_with("/dev/") && snapshot.starts_with("snap-") =>
        {
            Ok((device.to_string(), snapshot.to_string()))
        }
        _ => Err(format!(
            "expected DEVICE=SNAPSHOT_ID such as /dev/xvdb=snap-0123..., got '{raw}'"
        )),
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

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ami").chain(args.iter().copied()))
    }

    fn cleanup(args: &[&str]) -> CleanupArgs {
        let mut all = vec!["cleanup"];
        all.extend(args);
        match parse(&all).unwrap().command {
            Command::Cleanup(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn global_flags_go_anywhere_and_default_as_the_aws_cli_does() {
        let cli = parse(&[
            "list",
            "--region",
            "eu-west-1",
            "--output",
            "json",
            "--dry-run",
        ])
        .unwrap();
        assert_eq!(cli.global.region, ["eu-west-1"]);
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert!(cli.global.dry_run);
        let cli = parse(&["--yes", "list"]).unwrap();
        assert!(cli.global.yes);
        assert_eq!(cli.global.output, OutputFormat::Table);
        match parse(&["list"]).unwrap().command {
            Command::List(args) => assert_eq!(args.owner, "self"),
            other => panic!("{other:?}"),
        }
        assert!(
            parse(&["list", "-v", "-q"]).is_err(),
            "verbose and quiet conflict"
        );
    }

    #[test]
    fn unknown_verbs_and_flags_are_refused() {
        let err = parse(&["frobnicate"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidSubcommand);
        assert_eq!(err.exit_code(), 2);
        let err = parse(&["list", "--colour", "never"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
        assert!(parse(&["list", "--output", "yaml"]).is_err());
    }

    #[test]
    fn cleanup_selection() {
        let args = cleanup(&["--keep", "2"]);
        assert_eq!(args.group_by, GroupByArg::Name);
        assert_eq!(args.action, ActionArg::Deregister);
        let args = cleanup(&[
            "--keep",
            "2",
            "--group-by",
            "tag:app,tag:env",
            "--action",
            "disable",
        ]);
        assert_eq!(
            args.group_by,
            GroupByArg::Tags(vec!["app".into(), "env".into()])
        );
        assert_eq!(args.action, ActionArg::Disable);
        for bad in [
            &["--group-by", "tags"][..],
            &["--group-by", "tag:"],
            &["--action", "nuke"],
            &["--keep", "two"],
            &["--older-than", "soon"],
            &["--policy", "p.toml", "--keep", "2"],
        ] {
            let mut all = vec!["cleanup"];
            all.extend(bad);
            assert!(parse(&all).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn group_by() {
        assert_eq!(parse_group_by("name"), Ok(GroupByArg::Name));
        assert_eq!(
            parse_group_by("tag:app"),
            Ok(GroupByArg::Tags(vec!["app".into()]))
        );
        assert!(
            parse_group_by("tag:app,name")
                .unwrap_err()
                .contains("expected name or tag:KEY")
        );
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
    fn durations() {
        assert_eq!(
            parse_duration("90d"),
            Ok(std::time::Duration::from_secs(90 * 86400))
        );
        assert_eq!(
            parse_duration("45m"),
            Ok(std::time::Duration::from_secs(45 * 60))
        );
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("'soon'"));
    }

    #[test]
    fn shards() {
        assert_eq!(
            parse_shard("2/5"),
            Ok(ShardArg {
                index: Some(2),
                count: 5
            })
        );
        assert_eq!(
            parse_shard("auto/3"),
            Ok(ShardArg {
                index: None,
                count: 3
            })
        );
        for bad in ["5/5", "1/0", "x/2", "2", "-1/3", "1/3/4"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn device_snapshots() {
        assert_eq!(
            parse_device_snapshot("/dev/xvdb=snap-1"),
            Ok(("/dev/xvdb".into(), "snap-1".into()))
        );
        assert!(parse_device_snapshot("xvdb=snap-1").is_err());
        assert!(parse_device_snapshot("/dev/xvdb=vol-1").is_err());
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
