//! `ami release --instance-id I --name N`: create → test → copy → share → finish → publish, each
//! stage shown with its state and duration. Resumable: everything a stage makes carries the release's
//! name (images) or a tag (the test mark, test instances), so a re-run finds what is done and
//! skips it instead of making it twice. Each stage (`stages`) plans typed calls (`calls`):
//! a dry run lists and checks them, the real run makes exactly them.

use anyhow::{Result, anyhow};
use chrono::Utc;
use indicatif::{MultiProgress, ProgressBar};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

mod calls;
mod stages;

use super::dry_run::PlannedCall;
use super::launch::{check_placement, launch_request};
use super::new_image::deprecation_at;
use crate::aws::instances::{InstanceInfo, LaunchRequest};
use crate::aws::lifecycle::CopyRequest;
use crate::aws::settle::Fresh;
use crate::aws::{Aws, Ec2};
use crate::cli::ReleaseArgs;
use crate::config::{Settings, validate_region};
use crate::error::{Outcome, one_line, usage};
use crate::interrupt;
use crate::model::Grantees;
use crate::model::{DeregistrationProtection, DryRunCheck, Image, ImageState};
use crate::output::{Printer, Render, TableStyle};
use calls::Call;
use stages::{Planned, ReleaseStage};

/// On the image once its test passed: a re-run does not test it again.
const TESTED_TAG: &str = "ami:release-tested";
/// On test instances: a re-run after a kill terminates the one left behind.
const TEST_INSTANCE_TAG: &str = "ami:release-test-of";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    /// Not reached yet.
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
    /// --dry-run: what it would do, with the calls.
    Planned,
    /// An earlier stage failed: never started (a re-run resumes here).
    NotStarted,
}

#[derive(Debug, Serialize)]
pub struct Stage {
    pub stage: StageName,
    pub state: StageState,
    pub duration_seconds: f64,
    /// What happened (or, with --dry-run, what would).
    pub detail: String,
    pub error: Option<String>,
    /// With --dry-run: the calls this stage would make, as `DryRunReport` lists them.
    pub calls: Vec<PlannedCall>,
}

#[derive(Debug, Serialize)]
pub struct ReleaseImage {
    pub image_id: String,
    pub state: ImageState,
}

#[derive(Debug, Serialize)]
pub struct ReleaseOutput {
    pub name: String,
    pub source_region: String,
    pub dry_run: bool,
    pub stages: Vec<Stage>,
    /// Every image of this release, by region: what to clean up if it is abandoned.
    pub images: BTreeMap<String, ReleaseImage>,
    pub test_instance: Option<InstanceInfo>,
    /// The SSM parameters of the publish stage, by region and name (with --dry-run: what would
    /// be written).
    pub parameters: BTreeMap<String, BTreeMap<String, Published>>,
}

/// One SSM parameter of the publish stage.
#[derive(Debug, Serialize)]
pub struct Published {
    pub image_id: Option<String>,
    pub status: PublishStatus,
    /// The value it held before, when it held another.
    pub previous: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishStatus {
    /// Created (it did not exist).
    Created,
    /// Held another image id; replaced (--overwrite-ssm).
    Replaced,
    /// Already held this image id (an earlier run published it).
    Unchanged,
    /// Holds another value and --overwrite-ssm was not given: left as it is.
    Refused,
    /// The read or the write failed.
    Failed,
    /// --dry-run: would be written.
    WouldWrite,
}

/// The stages, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    Create,
    Test,
    Copy,
    Share,
    Finish,
    Publish,
}

impl StageName {
    fn as_str(self) -> &'static str {
        match self {
            StageName::Create => "create",
            StageName::Test => "test",
            StageName::Copy => "copy",
            StageName::Share => "share",
            StageName::Finish => "finish",
            StageName::Publish => "publish",
        }
    }
}

const STAGES: [StageName; 6] = [
    StageName::Create,
    StageName::Test,
    StageName::Copy,
    StageName::Share,
    StageName::Finish,
    StageName::Publish,
];

struct Run<'a> {
    settings: &'a Settings,
    args: &'a ReleaseArgs,
    aws: Aws,
    region: String,
    targets: Vec<String>,
    grantees: Grantees,
    /// --complete-within in minutes: time-based copies.
    completion: Option<u32>,
    output: ReleaseOutput,
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
}

pub async fn run(settings: &Settings, args: &ReleaseArgs) -> Result<Outcome> {
    crate::ids::instance_id(&args.instance_id)?;
    crate::ids::image_name(&args.name)?;
    for name in &args.ssm_parameter {
        crate::ids::ssm_parameter_name(name)?;
    }
    let grantees = super::share::grantees(&args.share)?;
    let [region] = settings.regions.as_slice() else {
        return Err(usage(
            "release starts in one region: pass a single --region (copies go to --to-region)",
        ));
    };
    let mut targets = Vec::new();
    for target in &args.to_region {
        validate_region(target)?;
        if target == region {
            return Err(usage(format!(
                "--to-region {target} is the release's own region"
            )));
        }
        if !targets.contains(target) {
            targets.push(target.clone());
        }
    }
    if let Some(after) = args.deprecate_after {
        deprecation_at(after, Utc::now())?;
    }
    let completion = args
        .complete_within
        .map(super::copy::completion_minutes)
        .transpose()?;
    if let Some(name) = &args.role_name {
        crate::ids::role_name(name)?;
    }
    // Checked now, not at the test stage after the image is made.
    if !args.no_test {
        check_placement(&args.placement)?;
    }

    let aws = Aws::connect(settings).await?;
    let bars = crate::output::progress_lines(settings).map(|multi| {
        let bars = STAGES
            .iter()
            .map(|stage| {
                let bar = crate::output::progress_line(&multi, stage.as_str(), false);
                bar.set_message("pending");
                bar
            })
            .collect();
        (multi, bars)
    });
    let mut run = Run {
        settings,
        args,
        aws,
        region: region.clone(),
        targets,
        grantees,
        completion,
        output: ReleaseOutput {
            name: args.name.clone(),
            source_region: region.clone(),
            dry_run: settings.dry_run,
            stages: STAGES
                .iter()
                .map(|&stage| Stage {
                    stage,
                    state: StageState::Pending,
                    duration_seconds: 0.0,
                    detail: String::new(),
                    error: None,
                    calls: Vec::new(),
                })
                .collect(),
            images: BTreeMap::new(),
            test_instance: None,
            parameters: BTreeMap::new(),
        },
        bars,
    };
    let outcome = run.all_stages().await;
    // The live rows were for watching; the result below repeats them.
    if let Some((_, bars)) = &run.bars {
        for bar in bars {
            bar.finish_and_clear();
        }
    }
    Printer::new(settings).emit(&run.output)?;
    Ok(outcome)
}

/// Whether --protect switches protection on: where it is known to be off, a running cooldown
/// included (it only delays); a value this build does not know is left alone.
fn wants_protection(current: Option<&DeregistrationProtection>) -> bool {
    current.is_none_or(DeregistrationProtection::is_off)
}

/// What a stage ended with.
enum Ended {
    Done(String),
    Skipped(String),
    /// With --dry-run: what it would do, and the calls.
    Would(String, Vec<PlannedCall>),
}

impl Run<'_> {
    async fn all_stages(&mut self) -> Outcome {
        // Ctrl-C stops the stage under way (what AWS accepted carries on there; a re-run finds
        // it), reports, and exits 130; a second Ctrl-C exits at once.
        interrupt::watch(crate::output::interrupted);
        for (index, &name) in STAGES.iter().enumerate() {
            self.mark(index, StageState::Running, "running".into());
            let started = Instant::now();
            let stage = async {
                match name {
                    StageName::Create => self.stage::<stages::Create>().await,
                    StageName::Test => self.stage::<stages::Test>().await,
                    StageName::Copy => self.stage::<stages::Copy>().await,
                    StageName::Share => self.stage::<stages::Share>().await,
                    StageName::Finish => self.stage::<stages::Finish>().await,
                    StageName::Publish => self.stage::<stages::Publish>().await,
                }
            };
            let mut result = if name == StageName::Test && !interrupt::requested() {
                // Not cut short from outside: a launch in flight must finish, so that its
                // instance is known and terminated; the stage stops its own wait on Ctrl-C.
                stage.await
            } else {
                tokio::select! {
                    // A Ctrl-C already seen starts no stage.
                    biased;
                    _ = interrupt::wait() => Err(anyhow!(
                        "interrupted (Ctrl-C); re-run the same command to resume"
                    )),
                    result = stage => result,
                }
            };
            if interrupt::requested() && name == StageName::Test {
                result = Err(self.stop_test_instance().await);
            }
            let stage = &mut self.output.stages[index];
            stage.duration_seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
            let (state, detail) = match result {
                Ok(Ended::Done(detail)) => (StageState::Done, detail),
                Ok(Ended::Skipped(detail)) => (StageState::Skipped, detail),
                Ok(Ended::Would(detail, calls)) => {
                    stage.calls = calls;
                    (StageState::Planned, detail)
                }
                Err(err) => {
                    stage.error = Some(one_line(&err));
                    (StageState::Failed, "failed".to_string())
                }
            };
            let line = format!(
                "{} {:.1}s {detail}",
                state_word(state),
                stage.duration_seconds
            );
            stage.detail = detail;
            self.mark(index, state, line);
            if state == StageState::Failed {
                for later in index + 1..STAGES.len() {
                    self.output.stages[later].detail =
                        "not started: an earlier stage failed".into();
                    self.mark(later, StageState::NotStarted, "not started".into());
                }
                // Some regions finished: the release has images beyond its own region.
                let copied = self
                    .targets
                    .iter()
                    .any(|target| self.output.images.contains_key(target));
                return if copied {
                    Outcome::Partial
                } else {
                    Outcome::Failed
                };
            }
        }
        // A call AWS would refuse fails the dry run, as it would fail the real one.
        let denied = self
            .output
            .stages
            .iter()
            .flat_map(|stage| &stage.calls)
            .any(|call| matches!(call.aws, DryRunCheck::Denied(_)));
        if denied {
            Outcome::Failed
        } else {
            Outcome::Success
        }
    }

    /// After Ctrl-C in the test stage: the test instance must not outlive the release.
    async fn stop_test_instance(&mut self) -> anyhow::Error {
        if self.settings.dry_run {
            return anyhow!("interrupted (Ctrl-C); nothing was launched (dry run)");
        }
        let found = match self.output.test_instance.clone() {
            Some(instance) => Ok(vec![instance]),
            None => self.launched_tests().await,
        };
        let live: Vec<String> = match found {
            Ok(instances) => instances
                .into_iter()
                .filter(|instance| instance.state != "terminated")
                .map(|instance| instance.instance_id)
                .collect(),
            Err(err) => {
                return anyhow!(
                    "interrupted (Ctrl-C); could not look for a test instance ({}): a re-run \
                     terminates any it left",
                    one_line(&err)
                );
            }
        };
        if live.is_empty() {
            return match &self.output.test_instance {
                Some(instance) => anyhow!(
                    "interrupted (Ctrl-C); test instance {} is terminated",
                    instance.instance_id
                ),
                None => anyhow!("interrupted (Ctrl-C) before the test instance was launched"),
            };
        }
        let ids = live.join(", ");
        let ec2 = self.ec2();
        // Launched moments ago, it may be unknown to AWS still: not gone, so asked again.
        match ec2
            .once_caught_up(Fresh::Instance, || ec2.terminate_instances(&live))
            .await
        {
            Ok(()) => anyhow!(
                "interrupted (Ctrl-C); test instance {ids} is being terminated; re-run the same \
                 command to resume"
            ),
            Err(err) => anyhow!(
                "interrupted (Ctrl-C); test instance {ids} could not be terminated ({err}): \
                 terminate it by hand, or re-run the release, which does"
            ),
        }
    }

    /// Test instances launched by a RunInstances whose answer never came: found by their tag.
    async fn launched_tests(&self) -> Result<Vec<InstanceInfo>> {
        let Some(source) = self.source() else {
            return Ok(Vec::new());
        };
        let image_id = source.image_id.clone();
        self.ec2()
            .live_instances_tagged(TEST_INSTANCE_TAG, &image_id)
            .await
    }

    fn mark(&mut self, index: usize, state: StageState, message: String) {
        self.output.stages[index].state = state;
        if let Some((_, bars)) = &self.bars {
            bars[index].set_message(message);
        }
    }

    /// Every region of the release, the source's first, with this release's image there (if
    /// made yet).
    fn places(&self) -> Vec<(String, Option<String>)> {
        std::iter::once(self.region.clone())
            .chain(self.targets.iter().cloned())
            .map(|region| {
                let id = self.output.images.get(&region).map(|i| i.image_id.clone());
                (region, id)
            })
            .collect()
    }

    fn ec2(&self) -> Ec2 {
        self.aws.ec2(&self.region)
    }

    /// The CopyImage of this release's image into another region.
    fn copy_request<'r>(
        &'r self,
        source_id: &'r str,
        tags: &'r [(String, String)],
    ) -> CopyRequest<'r> {
        CopyRequest {
            source_region: &self.region,
            source_image_id: source_id,
            name: &self.args.name,
            description: None,
            encrypt: false,
            kms_key_id: None,
            tags,
            completion_minutes: self.completion,
        }
    }

    fn source(&self) -> Option<&ReleaseImage> {
        self.output.images.get(&self.region)
    }

    fn record(&mut self, image: &Image) {
        self.output.images.insert(
            image.region.clone(),
            ReleaseImage {
                image_id: image.image_id.clone(),
                state: image.state.clone(),
            },
        );
    }
    /// With --role-name: a warning per account and region whose Allowed AMIs settings would
    /// not let it use this release's image there.
    async fn allowed_warnings(&self) -> Result<Vec<String>> {
        let Some(role_name) = &self.args.role_name else {
            return Ok(Vec::new());
        };
        let mut images = Vec::new();
        for (region, id) in self.places() {
            if let Some(id) = id {
                images.push(self.aws.ec2(&region).new_image(&id).await?);
            }
        }
        let owner = self.aws.account_id(&self.region).await?;
        Ok(super::share::allowed_warnings(
            &self.aws,
            role_name,
            &owner,
            &images,
            &self.grantees.accounts,
        )
        .await
        .into_iter()
        .map(|warning| format!("warning: {warning}"))
        .collect())
    }

    fn who(&self) -> String {
        self.grantees
            .accounts
            .iter()
            .chain(&self.grantees.organizations)
            .chain(&self.grantees.organizational_units)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One stage: its plan, then with --dry-run the plan's calls listed and checked, or else
    /// those calls made.
    async fn stage<S: ReleaseStage>(&mut self) -> Result<Ended> {
        let work = match S::plan(self).await? {
            Planned::Skip(why) => return Ok(Ended::Skipped(why)),
            Planned::Work(work) => work,
        };
        let ended = if self.settings.dry_run {
            let mut planned = Vec::new();
            for call in &work.calls {
                let check = self.check(call).await?;
                planned.extend(call.planned(&check));
            }
            Ok(Ended::Would(work.intent, planned))
        } else {
            S::execute(self, work.calls).await
        };
        if work.refused.is_empty() {
            return ended;
        }
        let mut problems = work.refused;
        if let Err(err) = ended {
            problems.push(one_line(&err));
        }
        Err(anyhow!("{}", problems.join("; ")))
    }

    /// AWS's DryRun answer for a call, where the action has one and what it acts on exists.
    async fn check(&self, call: &Call) -> Result<DryRunCheck> {
        if let Some(why) = call.unchecked_reason() {
            return Ok(DryRunCheck::NotChecked(why.to_string()));
        }
        let ec2 = self.aws.ec2(call.region());
        match call {
            Call::CreateImage {
                instance_id,
                name,
                description,
                no_reboot,
                tags,
                ..
            } => {
                ec2.check_create_image(instance_id, name, description.as_deref(), *no_reboot, tags)
                    .await
            }
            Call::RunInstances { image, .. } => {
                let request = self.test_launch(image.id(&self.region)?)?;
                ec2.check_run_instances(&request).await
            }
            Call::CopyImage { source, tags, .. } => {
                let request = self.copy_request(source.id(&self.region)?, tags);
                ec2.check_copy_image(&request).await
            }
            other => Err(anyhow!("internal error: no DryRun form for {other:?}")),
        }
    }

    /// The test stage's RunInstances, the same for its DryRun check and its launch.
    fn test_launch(&self, image_id: &str) -> Result<LaunchRequest> {
        launch_request(
            image_id,
            &self.args.placement,
            &[
                (TEST_INSTANCE_TAG.to_string(), image_id.to_string()),
                (
                    "Name".to_string(),
                    format!("ami release test of {}", self.args.name),
                ),
            ],
            1,
        )
    }

    /// This release's image in a region, for a stage that needs it made.
    fn source_id(&self, region: &str) -> Result<&str> {
        self.output
            .images
            .get(region)
            .map(|image| image.image_id.as_str())
            .ok_or_else(|| anyhow!("no image of this release in {region}"))
    }

    /// The copies an earlier run made, as `REGION IMAGE`.
    fn found_copies(&self) -> Vec<String> {
        self.targets
            .iter()
            .filter_map(|target| {
                let image = self.output.images.get(target)?;
                Some(format!("{target} {}", image.image_id))
            })
            .collect()
    }
}

impl PublishStatus {
    /// How the stage's summary counts parameters in this status.
    fn summary_word(self) -> &'static str {
        match self {
            PublishStatus::Created => "created",
            PublishStatus::Replaced => "replaced",
            PublishStatus::Unchanged => "already published",
            PublishStatus::Refused | PublishStatus::Failed => "not published",
            PublishStatus::WouldWrite => "to write",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            PublishStatus::Created => "created",
            PublishStatus::Replaced => "replaced",
            PublishStatus::Unchanged => "unchanged",
            PublishStatus::Refused => "refused",
            PublishStatus::Failed => "failed",
            PublishStatus::WouldWrite => "would write",
        }
    }
}

fn state_word(state: StageState) -> &'static str {
    match state {
        StageState::Pending => "pending",
        StageState::Running => "running",
        StageState::Done => "done",
        StageState::Failed => "FAILED",
        StageState::Skipped => "skipped",
        StageState::Planned => "would run",
        StageState::NotStarted => "not started",
    }
}

impl Render for ReleaseOutput {
    fn render(&self, style: &TableStyle) -> String {
        let mut stages = style.table(&["STAGE", "STATE", "TIME", "DETAIL"]);
        for stage in &self.stages {
            let color = match stage.state {
                StageState::Done => Some(comfy_table::Color::Green),
                StageState::Failed => Some(comfy_table::Color::Red),
                StageState::Skipped => Some(comfy_table::Color::Yellow),
                _ => None,
            };
            let mut detail = stage.detail.clone();
            if let Some(error) = &stage.error {
                detail = error.clone();
            }
            for call in &stage.calls {
                detail.push_str(&format!(
                    "\n  {} {} in {}",
                    call.call, call.target, call.region
                ));
            }
            stages.add_row(vec![
                style.cell(stage.stage.as_str(), None),
                style.cell(state_word(stage.state), color),
                style.cell(format!("{:.1}s", stage.duration_seconds), None),
                style.cell(detail, None),
            ]);
        }
        let mut out = format!(
            "Release '{}' from {}:\n{stages}",
            self.name, self.source_region
        );
        if !self.images.is_empty() {
            let mut images = style.table(&["REGION", "IMAGE ID", "STATE"]);
            for (region, image) in &self.images {
                images.add_row(vec![
                    style.cell(region, None),
                    style.cell(&image.image_id, None),
                    style.cell(&image.state, None),
                ]);
            }
            out.push_str(&format!("\n{images}"));
        }
        if !self.parameters.is_empty() {
            let mut parameters = style.table(&["REGION", "SSM PARAMETER", "IMAGE ID", "STATUS"]);
            for (region, named) in &self.parameters {
                for (name, published) in named {
                    let color = matches!(
                        published.status,
                        PublishStatus::Refused | PublishStatus::Failed
                    )
                    .then_some(comfy_table::Color::Red);
                    parameters.add_row(vec![
                        style.cell(region, None),
                        style.cell(name, None),
                        style.cell(published.image_id.as_deref().unwrap_or("-"), None),
                        style.cell(published.status.as_str(), color),
                    ]);
                }
            }
            out.push_str(&format!("\n{parameters}"));
        }
        if self.stages.iter().any(|s| s.state == StageState::Failed) && !self.images.is_empty() {
            out.push_str(
                "\nRe-run the same command to resume, or remove what was made with \
                 `ami deregister IMAGE --cleanup --region REGION`.",
            );
        }
        if self.dry_run {
            out.push_str("\nDry run: nothing was changed.");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protect_switches_on_only_what_is_known_to_be_off() {
        let table = [
            (None, true),
            (Some("disabled"), true),
            (Some("disabled-until-2026-11-24T00:00:00.000Z"), true),
            (Some("enabled-without-cooldown"), false),
            (Some("enabled-with-cooldown"), false),
            (Some("something-new"), false),
        ];
        for (aws, wanted) in table {
            let current = aws.map(DeregistrationProtection::from);
            assert_eq!(wants_protection(current.as_ref()), wanted, "{aws:?}");
        }
    }
}
