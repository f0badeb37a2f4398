//! `ami release --instance-id I --name N`: create → test → copy → share → finish → publish, each
//! stage shown with its state and duration. Resumable: everything a stage makes carries the release's
//! name (images) or a tag (the test mark, test instances), so a re-run finds what is done and
//! skips it instead of making it twice.

use anyhow::{Result, anyhow};
use chrono::Utc;
use futures::{StreamExt, stream};
use indicatif::{MultiProgress, ProgressBar};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

use super::copy::copy_one;
use super::dry_run::PlannedCall;
use super::launch::{check_placement, launch_request, refuse_unlaunchable, terminate};
use super::new_image::{
    MadeFrom, deprecation_at, existing_named, made_image, wait_until_available,
};
use super::share::{ShareAction, share_image};
use crate::aws::instances::InstanceInfo;
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
use crate::plan::state::Standing;

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

/// One call a stage would make, as a `DryRunReport` lists it.
fn planned(region: &str, call: &str, target: impl Into<String>, aws: DryRunCheck) -> PlannedCall {
    PlannedCall {
        region: region.to_string(),
        call: call.to_string(),
        target: target.into(),
        aws,
    }
}

fn not_yet(why: &str) -> DryRunCheck {
    DryRunCheck::NotChecked(why.to_string())
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
                    StageName::Create => self.create().await,
                    StageName::Test => self.test().await,
                    StageName::Copy => self.copy().await,
                    StageName::Share => self.share().await,
                    StageName::Finish => self.finish().await,
                    StageName::Publish => self.publish().await,
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

    async fn create(&mut self) -> Result<Ended> {
        let ec2 = self.ec2();
        let args = self.args;
        let existing = existing_named(&ec2, &args.name).await?;
        match existing
            .as_ref()
            .map(|image| (image, Standing::of(&image.state)))
        {
            Some((image, Standing::Launchable)) => {
                let image = image.clone();
                self.record(&image);
                Ok(Ended::Skipped(format!(
                    "{} exists (made by an earlier run)",
                    image.image_id
                )))
            }
            Some((image, Standing::InProgress)) => {
                let image = image.clone();
                self.record(&image);
                if self.settings.dry_run {
                    return Ok(Ended::Would(
                        format!("wait until {} is available", image.image_id),
                        Vec::new(),
                    ));
                }
                let image = wait_until_available(&ec2, &image.image_id, args.timeout, None).await?;
                self.record(&image);
                Ok(Ended::Done(format!(
                    "{} (made by an earlier run) is available",
                    image.image_id
                )))
            }
            Some((image, _)) => {
                let image = image.clone();
                self.record(&image);
                Err(anyhow!(
                    "{} named '{}' is {}: deregister it (ami deregister {} --cleanup) and re-run",
                    image.image_id,
                    args.name,
                    image.state,
                    image.image_id
                ))
            }
            None if self.settings.dry_run => {
                let check = ec2
                    .check_create_image(
                        &args.instance_id,
                        &args.name,
                        args.description.as_deref(),
                        args.no_reboot,
                        &args.tags,
                    )
                    .await?;
                Ok(Ended::Would(
                    format!(
                        "create '{}' from {}, then wait until it is available",
                        args.name, args.instance_id
                    ),
                    vec![planned(
                        &self.region,
                        "ec2:CreateImage",
                        format!("InstanceId={} Name={}", args.instance_id, args.name),
                        check,
                    )],
                ))
            }
            None => {
                let made = ec2
                    .create_image(
                        &args.instance_id,
                        &args.name,
                        args.description.as_deref(),
                        args.no_reboot,
                        &args.tags,
                    )
                    .await?;
                let from = MadeFrom::Instance(&args.instance_id);
                let image_id = made_image(&ec2, &args.name, from, made).await?;
                self.output.images.insert(
                    self.region.clone(),
                    ReleaseImage {
                        image_id: image_id.clone(),
                        state: ImageState::Pending,
                    },
                );
                let image = wait_until_available(&ec2, &image_id, args.timeout, None).await?;
                self.record(&image);
                Ok(Ended::Done(format!("{image_id} created and available")))
            }
        }
    }

    /// The calls of the test stage: RunInstances (with AWS's DryRun answer when the image
    /// exists), then terminating the instance and tagging the image tested.
    fn test_calls(
        &self,
        image_id: &str,
        run: DryRunCheck,
        leftovers: &[String],
    ) -> Vec<PlannedCall> {
        let region = &self.region;
        let later = || not_yet("the test instance does not exist yet");
        let mut calls = Vec::new();
        if !leftovers.is_empty() {
            calls.push(planned(
                region,
                "ec2:TerminateInstances",
                format!("{} (left by an interrupted run)", leftovers.join(", ")),
                not_yet("TerminateInstances is not asked in a dry run"),
            ));
        }
        calls.extend([
            planned(
                region,
                "ec2:RunInstances",
                format!(
                    "ImageId={image_id} InstanceType={}",
                    self.args.placement.instance_type
                ),
                run,
            ),
            planned(
                region,
                "ec2:TerminateInstances",
                "the test instance",
                later(),
            ),
            planned(
                region,
                "ec2:CreateTags",
                format!("{TESTED_TAG} on {image_id}"),
                later(),
            ),
        ]);
        calls
    }

    async fn test(&mut self) -> Result<Ended> {
        if self.args.no_test {
            return Ok(Ended::Skipped("--no-test".into()));
        }
        let ec2 = self.ec2();
        let Some(source) = self.source() else {
            return Ok(Ended::Would(
                "launch one instance from the new image, wait until running, terminate it".into(),
                self.test_calls(
                    "(the new image)",
                    DryRunCheck::NotChecked("the image does not exist yet".into()),
                    &[],
                ),
            ));
        };
        let image_id = source.image_id.clone();
        let image = ec2.new_image(&image_id).await?;
        if let Some(when) = image.tags.get(TESTED_TAG) {
            return Ok(Ended::Skipped(format!("tested by an earlier run ({when})")));
        }
        let leftovers: Vec<String> = ec2
            .live_instances_tagged(TEST_INSTANCE_TAG, &image_id)
            .await?
            .into_iter()
            .map(|i| i.instance_id)
            .collect();
        let mut request = launch_request(
            &image_id,
            &self.args.placement,
            &[
                (TEST_INSTANCE_TAG.to_string(), image_id.clone()),
                (
                    "Name".to_string(),
                    format!("ami release test of {}", self.args.name),
                ),
            ],
            1,
        )?;
        if self.settings.dry_run {
            request.dry_run = true;
            ec2.run_instances(&request).await?;
            let calls = self.test_calls(&image_id, DryRunCheck::Allowed, &leftovers);
            return Ok(Ended::Would(format!("test {image_id}"), calls));
        }
        refuse_unlaunchable(&image)?;
        if !leftovers.is_empty() {
            // TerminateInstances is sent whatever happens; Ctrl-C only stops the wait for it.
            ec2.terminate_instances(&leftovers).await?;
            tokio::select! {
                terminated = ec2.wait_terminated(&leftovers, self.args.timeout) => {
                    terminated?;
                }
                _ = interrupt::wait() => {}
            }
        }
        // The stage is not cut short from outside: after Ctrl-C it launches nothing new.
        if interrupt::requested() {
            return Err(anyhow!("interrupted (Ctrl-C) before the test launch"));
        }
        let launched = ec2
            .once_caught_up(Fresh::Image, || ec2.run_instances(&request))
            .await?;
        let ids: Vec<String> = launched.iter().map(|i| i.instance_id.clone()).collect();
        self.output.test_instance = launched.into_iter().next();
        let running = tokio::select! {
            running = ec2.wait_running(&ids, self.args.timeout) => running,
            _ = interrupt::wait() => Err(anyhow!("interrupted (Ctrl-C) while the test instance started")),
        };
        if let Ok(running) = &running {
            self.output.test_instance = running.first().cloned();
        }
        // Whatever happened, the test instance goes.
        let terminated = terminate(&ec2, &ids, self.args.timeout, None).await;
        if let Ok(terminated) = &terminated {
            self.output.test_instance = terminated.first().cloned();
        }
        let running = running?;
        let terminated = terminated?;
        let zone = running
            .first()
            .and_then(|i| i.availability_zone.clone())
            .unwrap_or_else(|| "-".into());
        self.output.test_instance = terminated.into_iter().next();
        let tested = [(
            TESTED_TAG.to_string(),
            Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )];
        ec2.once_caught_up(Fresh::Image, || {
            ec2.tag_resources(std::slice::from_ref(&image_id), &tested)
        })
        .await?;
        Ok(Ended::Done(format!(
            "{} ran in {zone}, then was terminated",
            ids.join(", ")
        )))
    }

    /// The copies a dry run would make, with AWS's DryRun answer when the source exists; the
    /// copies an earlier run made are recorded.
    async fn dry_copy(&mut self, source_id: Option<String>) -> Result<Ended> {
        let mut calls = Vec::new();
        for target in self.targets.clone() {
            let ec2 = self.aws.ec2(&target);
            // The new image has no copies yet; an earlier run's image may.
            let existing = match &source_id {
                Some(source_id) => {
                    let request = self.copy_request(source_id, &[]);
                    super::copy::existing_copy(&ec2, &request).await?
                }
                None => None,
            };
            if let Some(image) = existing {
                self.record(&image);
                continue;
            }
            let check = match &source_id {
                Some(source_id) => {
                    let request = self.copy_request(source_id, &[]);
                    ec2.check_copy_image(&request).await?
                }
                None => not_yet("the image to copy does not exist yet"),
            };
            calls.push(planned(
                &target,
                "ec2:CopyImage",
                format!(
                    "SourceImageId={} SourceRegion={} Name={}{}",
                    source_id.as_deref().unwrap_or("(the new image)"),
                    self.region,
                    self.args.name,
                    super::copy::completion_note(self.completion)
                ),
                check,
            ));
        }
        if calls.is_empty() {
            return Ok(Ended::Skipped("every copy exists".into()));
        }
        Ok(Ended::Would(
            format!(
                "copy to {}, then wait until every copy is available",
                self.targets.join(", ")
            ),
            calls,
        ))
    }

    async fn copy(&mut self) -> Result<Ended> {
        if self.targets.is_empty() {
            return Ok(Ended::Skipped("no --to-region".into()));
        }
        let source_id = self.source().map(|s| s.image_id.clone());
        if self.settings.dry_run {
            return self.dry_copy(source_id).await;
        }
        let source_id = source_id.ok_or_else(|| anyhow!("no source image to copy"))?;
        let source = self.ec2().new_image(&source_id).await?;
        // The test mark belongs to the source's own test, not to the copies.
        let mut source_tags = source.tags.clone();
        source_tags.remove(TESTED_TAG);
        let tags = super::copy::copy_tags(&source_tags, true, &[]);
        let aws = &self.aws;
        let (name, region, timeout) = (&self.args.name, &self.region, self.args.timeout);
        let completion = self.completion;
        let results: Vec<(String, Result<super::copy::CopyEntry>)> =
            stream::iter(self.targets.clone())
                .map(|target| {
                    let ec2 = aws.ec2(&target);
                    let tags = &tags;
                    let source_id = &source_id;
                    async move {
                        let request = CopyRequest {
                            source_region: region,
                            source_image_id: source_id,
                            name,
                            description: None,
                            encrypt: false,
                            kms_key_id: None,
                            tags,
                            completion_minutes: completion,
                        };
                        let entry = copy_one(&ec2, &request, tags, Some(timeout), None).await;
                        (target, entry)
                    }
                })
                .buffer_unordered(crate::concurrency::REGIONS)
                .collect()
                .await;
        let mut made = Vec::new();
        let mut found = Vec::new();
        let mut failed = Vec::new();
        for (target, result) in results {
            match result {
                Ok(entry) => {
                    let image_id = entry.image_id.unwrap_or_default();
                    if entry.status == super::copy::CopyStatus::Created {
                        made.push(format!("{target} {image_id}"));
                    } else {
                        found.push(format!("{target} {image_id}"));
                    }
                    self.output.images.insert(
                        target,
                        ReleaseImage {
                            image_id,
                            state: entry
                                .state
                                .unwrap_or_else(|| ImageState::Other(String::new())),
                        },
                    );
                }
                Err(err) => failed.push(format!("{target}: {}", one_line(&err))),
            }
        }
        if !failed.is_empty() {
            return Err(anyhow!("{}", failed.join("; ")));
        }
        let mut detail = Vec::new();
        if !made.is_empty() {
            detail.push(format!("copied to {}", made.join(", ")));
        }
        if !found.is_empty() {
            detail.push(format!("found from an earlier run: {}", found.join(", ")));
        }
        Ok(if made.is_empty() {
            Ended::Skipped(detail.join("; "))
        } else {
            Ended::Done(detail.join("; "))
        })
    }

    async fn share(&mut self) -> Result<Ended> {
        if self.grantees.is_empty() {
            return Ok(Ended::Skipped("no --account, --org-arn or --ou-arn".into()));
        }
        let who = self.who();
        let places = self.places();
        if self.settings.dry_run {
            let later = || not_yet("the image does not exist yet");
            let calls = places
                .iter()
                .flat_map(|(region, id)| {
                    let id = id.clone().unwrap_or_else(|| "(the new image)".into());
                    let mut calls = vec![planned(
                        region,
                        "ec2:ModifyImageAttribute",
                        format!("{id} launchPermission add {who}"),
                        later(),
                    )];
                    if self.args.with_snapshots && !self.grantees.accounts.is_empty() {
                        calls.push(planned(
                            region,
                            "ec2:ModifySnapshotAttribute",
                            format!(
                                "{id}'s snapshots createVolumePermission add {}",
                                self.grantees.accounts.join(", ")
                            ),
                            later(),
                        ));
                    }
                    calls
                })
                .collect();
            return Ok(Ended::Would(format!("share with {who}"), calls));
        }
        let aws = &self.aws;
        let grantees = &self.grantees;
        let with_snapshots = self.args.with_snapshots;
        let results: Vec<(String, Result<bool>)> = stream::iter(places)
            .map(|(region, id)| async move {
                let result = match id {
                    Some(id) => share_image(
                        &aws.ec2(&region),
                        &id,
                        grantees,
                        ShareAction::Grant,
                        with_snapshots,
                    )
                    .await
                    .map(|shared| shared.changed),
                    None => Err(anyhow!("no image of this release in {region}")),
                };
                (region, result)
            })
            .buffer_unordered(crate::concurrency::REGIONS)
            .collect()
            .await;
        let mut changed = Vec::new();
        let mut already = Vec::new();
        let mut failed = Vec::new();
        for (region, result) in results {
            match result {
                Ok(true) => changed.push(region),
                Ok(false) => already.push(region),
                Err(err) => failed.push(format!("{region}: {}", one_line(&err))),
            }
        }
        changed.sort();
        already.sort();
        if !failed.is_empty() {
            return Err(anyhow!("{}", failed.join("; ")));
        }
        let mut detail = Vec::new();
        if !changed.is_empty() {
            detail.push(format!("shared with {who} in {}", changed.join(", ")));
        }
        if !already.is_empty() {
            detail.push(format!("already shared in {}", already.join(", ")));
        }
        // A warning only: the grants are made, whatever it finds or fails to read.
        match self.allowed_warnings().await {
            Ok(warnings) => detail.extend(warnings),
            Err(err) => detail.push(format!(
                "warning: the consumers' Allowed AMIs settings were not checked: {}",
                one_line(&err)
            )),
        }
        Ok(if changed.is_empty() {
            Ended::Skipped(detail.join("; "))
        } else {
            Ended::Done(detail.join("; "))
        })
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

    async fn finish(&mut self) -> Result<Ended> {
        let args = self.args;
        if args.deprecate_after.is_none() && !args.protect {
            return Ok(Ended::Skipped("no --deprecate-after or --protect".into()));
        }
        let places: Vec<(String, String)> = self
            .output
            .images
            .iter()
            .map(|(region, image)| (region.clone(), image.image_id.clone()))
            .collect();
        if self.settings.dry_run {
            let mut calls = Vec::new();
            for region in std::iter::once(&self.region).chain(&self.targets) {
                let id = self
                    .output
                    .images
                    .get(region)
                    .map(|i| i.image_id.clone())
                    .unwrap_or_else(|| "(the new image)".into());
                let later = || not_yet("checked when the image is there");
                if let Some(after) = args.deprecate_after {
                    calls.push(planned(
                        region,
                        "ec2:EnableImageDeprecation",
                        format!("{id}, {} from now", crate::duration::format(after)),
                        later(),
                    ));
                }
                if args.protect {
                    calls.push(planned(
                        region,
                        "ec2:EnableImageDeregistrationProtection",
                        id.clone(),
                        later(),
                    ));
                }
            }
            return Ok(Ended::Would("deprecation and protection".into(), calls));
        }
        let (mut deprecated, mut protected) = (0, 0);
        for (region, image_id) in places {
            let ec2 = self.aws.ec2(&region);
            let image = ec2.new_image(&image_id).await?;
            if let Some(after) = args.deprecate_after
                && image.deprecation_time.is_none()
            {
                let at = deprecation_at(after, Utc::now())?;
                ec2.once_caught_up(Fresh::Image, || ec2.enable_deprecation(&image_id, at))
                    .await?;
                deprecated += 1;
            }
            if args.protect && wants_protection(image.deregistration_protection.as_ref()) {
                ec2.once_caught_up(Fresh::Image, || ec2.enable_protection(&image_id))
                    .await?;
                protected += 1;
            }
        }
        Ok(if deprecated + protected == 0 {
            Ended::Skipped("already set on every image".into())
        } else {
            Ended::Done(format!(
                "deprecation set on {deprecated}, protection on {protected} image(s)"
            ))
        })
    }
}

impl Run<'_> {
    /// Writes each region's image id to every `--ssm-parameter` there. A parameter that already
    /// holds the id is left alone (a re-run changes nothing); one holding another value is
    /// replaced only with `--overwrite-ssm`.
    async fn publish(&mut self) -> Result<Ended> {
        let names = &self.args.ssm_parameter;
        if names.is_empty() {
            return Ok(Ended::Skipped("no --ssm-parameter".into()));
        }
        let overwrite = self.args.overwrite_ssm;
        let dry_run = self.settings.dry_run;
        let places = self.places();
        let aws = &self.aws;
        let results: Vec<(String, ParameterOutcomes)> = stream::iter(places)
            .map(|(region, image_id)| async move {
                let ssm = aws.ssm(&region);
                let mut outcomes = BTreeMap::new();
                for name in names {
                    let outcome =
                        publish_one(&ssm, name, image_id.as_deref(), overwrite, dry_run).await;
                    outcomes.insert(name.clone(), outcome);
                }
                (region, outcomes)
            })
            .buffer_unordered(crate::concurrency::REGIONS)
            .collect()
            .await;
        let mut calls = Vec::new();
        let mut problems = Vec::new();
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut all_unchanged = true;
        for (region, outcomes) in results {
            for (name, (published, problem)) in outcomes {
                all_unchanged &= published.status == PublishStatus::Unchanged;
                *counts.entry(published.status.summary_word()).or_default() += 1;
                if published.status == PublishStatus::WouldWrite {
                    calls.push(planned(
                        &region,
                        "ssm:PutParameter",
                        format!(
                            "Name={name} Value={} DataType=aws:ec2:image{}",
                            published.image_id.as_deref().unwrap_or("(the new image)"),
                            if published.previous.is_some() {
                                " Overwrite=true"
                            } else {
                                ""
                            }
                        ),
                        not_yet("SSM's PutParameter has no DryRun form"),
                    ));
                }
                if let Some(problem) = problem {
                    problems.push(format!("{region} {name}: {problem}"));
                }
                self.output
                    .parameters
                    .entry(region.clone())
                    .or_default()
                    .insert(name, published);
            }
        }
        problems.sort();
        calls.sort_by(|a: &PlannedCall, b| (&a.region, &a.target).cmp(&(&b.region, &b.target)));
        let summary = counts
            .iter()
            .map(|(word, n)| format!("{n} {word}"))
            .collect::<Vec<_>>()
            .join(", ");
        if !problems.is_empty() {
            return Err(anyhow!("{}", problems.join("; ")));
        }
        Ok(if dry_run && !calls.is_empty() {
            Ended::Would(format!("SSM parameters: {summary}"), calls)
        } else if all_unchanged {
            Ended::Skipped(format!("SSM parameters: {summary}"))
        } else {
            Ended::Done(format!("SSM parameters: {summary}"))
        })
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

/// Per parameter name: what was done, and why it was not published when it was not.
type ParameterOutcomes = BTreeMap<String, (Published, Option<String>)>;

/// One parameter in one region: what it holds decides what is done. Returns the outcome and,
/// when the parameter was not published, why.
async fn publish_one(
    ssm: &crate::aws::ssm::Ssm,
    name: &str,
    image_id: Option<&str>,
    overwrite: bool,
    dry_run: bool,
) -> (Published, Option<String>) {
    let published = |status, previous: Option<String>| Published {
        image_id: image_id.map(str::to_string),
        status,
        previous,
    };
    let current = match ssm.parameter_value(name).await {
        Ok(Some((_, data_type))) if data_type != crate::aws::ssm::IMAGE_DATA_TYPE => {
            // SSM never changes a parameter's data type: overwriting it would fail.
            let why = format!(
                "is a parameter of data type {data_type}, not {}: delete it or choose another name",
                crate::aws::ssm::IMAGE_DATA_TYPE
            );
            return (published(PublishStatus::Refused, None), Some(why));
        }
        Ok(current) => current.map(|(value, _)| value),
        Err(err) => return (published(PublishStatus::Failed, None), Some(one_line(&err))),
    };
    let status = match (&current, image_id) {
        (Some(value), Some(id)) if value == id => {
            return (published(PublishStatus::Unchanged, None), None);
        }
        (Some(value), _) if !overwrite => {
            let why = format!("holds {value}; --overwrite-ssm to replace it");
            return (published(PublishStatus::Refused, current), Some(why));
        }
        (Some(_), _) => PublishStatus::Replaced,
        (None, _) => PublishStatus::Created,
    };
    if dry_run {
        return (published(PublishStatus::WouldWrite, current), None);
    }
    let Some(id) = image_id else {
        let why = "no image of this release in this region".to_string();
        return (published(PublishStatus::Failed, current), Some(why));
    };
    if let Err(err) = ssm.publish_image_id(name, id, current.is_some()).await {
        return (
            published(PublishStatus::Failed, current),
            Some(one_line(&err)),
        );
    }
    // SSM validates an aws:ec2:image value after answering: published once it holds the id.
    match ssm.read_back_image_id(name, id).await {
        Ok(Some(held)) if held == id => (published(status, current), None),
        Ok(held) => {
            let why = format!(
                "PutParameter answered, but after {} the parameter {} (SSM validates \
                 aws:ec2:image values after answering, and drops one that is not an available \
                 image of the region)",
                crate::duration::format(ssm.consistency_timeout()),
                match held {
                    Some(value) => format!("still holds {value}"),
                    None => "does not exist".to_string(),
                }
            );
            (published(PublishStatus::Failed, current), Some(why))
        }
        Err(err) => (
            published(PublishStatus::Failed, current),
            Some(one_line(&err)),
        ),
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
