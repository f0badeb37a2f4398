//! `ami cleanup`: retention for cron. Per region (concurrently): read the estate once
//! (`gather`), decide each image by the retention rules (`plan::rules`), plan the retired images'
//! snapshots and bundles with the same planner as `ami deregister --cleanup`, sweep orphaned
//! snapshots, then act (`execute`) through the same retirement path, and report (`report`).
//! `review` is the plan file of `--plan-out` and `ami apply`.

mod execute;
mod gather;
mod report;
pub mod review;

use anyhow::Result;
use futures::{StreamExt, stream};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::aws::Aws;
use crate::cli::CleanupArgs;
use crate::config::Settings;
use crate::error::{Outcome, one_line, usage};
use crate::model::Image;
use crate::output::{Printer, spinner};
use crate::plan::orphans::{OrphanBundlePlan, OrphanPlan};
use crate::plan::retention::{Decision, RetireAction};

use super::policy::Rule;
use crate::commands::retire::{RetireReport, Status, load_region};
use execute::{execute_region, remove_stale_marks};
use gather::{Copies, Mode, plan_region, sweep_bundles};

#[derive(Debug, Serialize)]
pub struct CleanupOutput {
    pub dry_run: bool,
    pub regions: Vec<RegionCleanup>,
}

#[derive(Debug, Serialize)]
pub struct RegionCleanup {
    pub region: String,
    /// The account the region was read as (null when it could not be read).
    pub account_id: Option<String>,
    /// Every candidate image: retire or keep, and why.
    pub decisions: Vec<Decision>,
    /// The retired images with their snapshots and bundles (as `ami deregister` reports them),
    /// with --action deregister.
    pub retire: Option<RetireReport>,
    /// With --action deprecate or disable: each selected image and what was done to it.
    pub staged: Vec<StagedReport>,
    pub orphans: Vec<OrphanReport>,
    pub orphan_bundles: Vec<OrphanBundleReport>,
    /// Set when the region could not be read or planned at all: nothing is done in it.
    pub error: Option<String>,
    /// What could not be done although the region was planned (an orphan-bundle sweep that
    /// could not run, a stale mark that could not be removed); each counts as a failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The region's images, for judging bundles against every region of the run (not reported).
    #[serde(skip)]
    pub images: Option<Vec<Image>>,
    /// Pending-cleanup marks on snapshots whose image still exists, by image (removed on
    /// execution; not reported).
    #[serde(skip)]
    pub stale_marks: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct StagedReport {
    pub image_id: String,
    pub action: RetireAction,
    pub status: Status,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OrphanBundleReport {
    #[serde(flatten)]
    pub plan: OrphanBundlePlan,
    pub status: Status,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OrphanReport {
    #[serde(flatten)]
    pub plan: OrphanPlan,
    pub status: Status,
    pub error: Option<String>,
    /// AWS's error code, when AWS refused the deletion (`error` has its message).
    pub code: Option<String>,
}

pub async fn run(settings: &Settings, args: &CleanupArgs) -> Result<Outcome> {
    let (policy_regions, rules) = match &args.policy {
        Some(path) => super::policy::load(path)?,
        None => (None, vec![super::policy::from_args(args)?]),
    };
    // Writing a plan for review changes nothing.
    let planning_only = settings.dry_run || args.plan_out.is_some();
    if args.plan_out.is_some() && rules.iter().any(|rule| !rule.orphan_bundles.is_empty()) {
        return Err(usage(
            "--plan-out does not cover orphan bundles yet: sweep them with a separate run",
        ));
    }
    require_confirmation_path(settings, planning_only)?;
    if args.accounts.is_fleet() {
        if args.plan_out.is_some() {
            return Err(usage(
                "--plan-out writes one account's plan: run it per account (or with --role-arn)",
            ));
        }
        if !planning_only && !settings.yes {
            return Err(usage(
                "a cleanup across accounts does not ask per account: pass --yes (or --dry-run to see the plans)",
            ));
        }
    }
    let role_name = args.accounts.role_name.clone();
    super::fleet::run(settings, &args.accounts, |aws| {
        let aws = aws
            .with_consumers(role_name.clone(), args.ignore_consumers)
            .with_reports(args.timeout, crate::output::report_progress(settings));
        cleanup_in(
            aws,
            settings,
            args,
            &rules,
            policy_regions.clone(),
            planning_only,
        )
    })
    .await
}

async fn cleanup_in(
    aws: Aws,
    settings: &Settings,
    args: &CleanupArgs,
    rules: &[Rule],
    policy_regions: Option<Vec<String>>,
    planning_only: bool,
) -> Result<(CleanupOutput, Outcome)> {
    let regions = if args.all_regions {
        aws.ec2(&settings.regions[0]).enabled_regions().await?
    } else {
        policy_regions.unwrap_or_else(|| settings.regions.clone())
    };
    let source = Source::Rules(rules);
    // Copies are found once every region's verdicts are in: nothing is retired as it is planned.
    let with_copies = rules.iter().any(|rule| rule.with_copies);
    let mut output = plan_regions(
        settings,
        &aws,
        &regions,
        &source,
        planning_only,
        !with_copies,
    )
    .await;
    if with_copies {
        add_copies(&aws, &mut output, rules, &source).await;
    }
    if let Some(path) = &args.plan_out {
        let file = review::PlanFile::from_output(&output, rules)?;
        file.write(path)?;
        if !settings.quiet {
            crate::output::message(format!(
                "ami cleanup: plan written to {} ({}); review it, then `ami apply {}`",
                path.display(),
                output.summary().trim_end_matches('.'),
                path.display()
            ));
        }
    }
    finish(settings, &aws, output, planning_only).await
}

/// `ami apply FILE`: the reviewed plan, re-checked against the account as it is now.
pub async fn apply(settings: &Settings, args: &crate::cli::ApplyArgs) -> Result<Outcome> {
    let file = review::PlanFile::read(&args.plan)?;
    require_confirmation_path(settings, settings.dry_run)?;
    if let Some(name) = &args.role_name {
        crate::ids::role_name(name)?;
    }
    let aws = Aws::connect(settings)
        .await?
        .with_consumers(args.role_name.clone(), args.ignore_consumers)
        .with_reports(args.timeout, crate::output::report_progress(settings));
    let regions: Vec<String> = file.regions.iter().map(|r| r.region.clone()).collect();
    let wrong_account = |account: &str| {
        usage(format!(
            "the plan was made for account {}, but these credentials are account {account}; nothing was changed",
            file.account_id
        ))
    };
    // An unattended apply changes things while it plans: the account is checked first.
    if settings.yes && !settings.dry_run {
        for region in &regions {
            let account = aws.account_id(region).await?;
            if account != file.account_id {
                return Err(wrong_account(&account));
            }
        }
    }
    let source = Source::Reviewed(&file);
    let output = plan_regions(settings, &aws, &regions, &source, settings.dry_run, true).await;
    for region in &output.regions {
        if let Some(account) = &region.account_id
            && account != &file.account_id
        {
            return Err(wrong_account(account));
        }
    }
    let (output, outcome) = finish(settings, &aws, output, settings.dry_run).await?;
    Printer::new(settings).emit(&output)?;
    Ok(outcome)
}

/// Where the images to retire come from: rules, or a reviewed plan.
enum Source<'a> {
    Rules(&'a [Rule]),
    Reviewed(&'a review::PlanFile),
}

fn require_confirmation_path(settings: &Settings, planning_only: bool) -> Result<()> {
    let interactive = settings.can_prompt();
    if !planning_only && !settings.yes && !interactive {
        return Err(usage(
            "refusing to change anything without confirmation: pass --yes (or --dry-run to see the plan)",
        ));
    }
    Ok(())
}

/// Plans every region. An unattended run (`--yes`, nothing only planned) also retires each
/// region's images as their checks come in (`retire::stream`); the rest is done by `finish`.
async fn plan_regions(
    settings: &Settings,
    aws: &Aws,
    regions: &[String],
    source: &Source<'_>,
    dry_run: bool,
    may_stream: bool,
) -> CleanupOutput {
    let streaming = settings.yes && !dry_run && may_stream;
    let no_copies = Copies::default();
    let doing = if streaming { "cleaning up" } else { "planning" };
    let progress = spinner(settings, format!("{doing} in {} region(s)", regions.len()));
    let mut planned: Vec<RegionCleanup> = stream::iter(regions.to_vec())
        .map(|region| async move {
            let mode = match streaming {
                true => Mode::Execute,
                false => Mode::Plan { dry_run },
            };
            match plan_region(aws, &region, source, mode, &no_copies).await {
                Ok(planned) => planned,
                Err(err) => RegionCleanup {
                    region,
                    account_id: None,
                    decisions: Vec::new(),
                    retire: None,
                    staged: Vec::new(),
                    orphans: Vec::new(),
                    orphan_bundles: Vec::new(),
                    error: Some(one_line(&err)),
                    problems: Vec::new(),
                    images: None,
                    stale_marks: BTreeMap::new(),
                },
            }
        })
        .buffer_unordered(crate::concurrency::REGIONS)
        .collect()
        .await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    planned.sort_by(|a, b| a.region.cmp(&b.region));
    if let Source::Rules(rules) = source {
        let mut sweeps: Vec<(String, String)> = rules
            .iter()
            .flat_map(|rule| rule.orphan_bundles.iter().cloned())
            .collect();
        sweeps.sort();
        sweeps.dedup();
        for (bucket, prefix) in sweeps {
            plan_orphan_bundles(aws, &mut planned, &bucket, &prefix).await;
        }
    }
    CleanupOutput {
        dry_run,
        regions: planned,
    }
}

/// `with_copies` rules: every image such a rule retires takes its copies (found by lineage in
/// every enabled region) with it, by what the plan does to the image itself (none when the
/// planner keeps it). Each region holding copies is planned again with them, by its own facts; a
/// region outside the run is added. What cannot be searched or planned is a problem of the
/// source's region (nothing there is retired as a copy).
async fn add_copies(aws: &Aws, output: &mut CleanupOutput, rules: &[Rule], source: &Source<'_>) {
    use crate::plan::retention::Verdict;
    use crate::plan::rules::CopyOf;
    let mut by_region: BTreeMap<String, Vec<CopyOf>> = BTreeMap::new();
    for region in output.regions.iter_mut() {
        if region.error.is_some() {
            continue;
        }
        let Some(images) = &region.images else {
            continue;
        };
        for decision in region
            .decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Retire)
        {
            let Some(rule) = rules
                .iter()
                .find(|rule| rule.with_copies && rule.label == decision.rule)
            else {
                continue;
            };
            let Some(action) = planned_action(region, &decision.image_id) else {
                continue;
            };
            let Some(image) = images.iter().find(|i| i.image_id == decision.image_id) else {
                continue;
            };
            match crate::commands::copies::copies_everywhere(aws, &region.region, image).await {
                Ok(copies) => {
                    for (unread, why) in copies.unread {
                        region.problems.push(format!(
                            "{unread}: could not be searched for copies of {}, so none there is \
                             retired with it: {why}",
                            image.image_id
                        ));
                    }
                    for copy in copies.images {
                        let Some(parent) = copy.source() else {
                            continue;
                        };
                        by_region
                            .entry(copy.region.clone())
                            .or_default()
                            .push(CopyOf {
                                image_id: copy.image_id,
                                source: parent,
                                retired: image.reference(),
                                rule: rule.label.clone(),
                                action,
                            });
                    }
                }
                Err(err) => region.problems.push(format!(
                    "the copies of {} could not be looked for, so none is retired with it: {}",
                    image.image_id,
                    one_line(&err)
                )),
            }
        }
    }
    for (region, copies) in by_region {
        let existing = output.regions.iter().position(|r| r.region == region);
        let failed = match existing {
            Some(index) if output.regions[index].error.is_some() => {
                Some("the region could not be planned".to_string())
            }
            _ => None,
        };
        let planned = match failed {
            Some(why) => Err(anyhow::anyhow!(why)),
            None => {
                let copies = Copies {
                    images: &copies,
                    only: existing.is_none(),
                };
                let mode = Mode::Plan {
                    dry_run: output.dry_run,
                };
                plan_region(aws, &region, source, mode, &copies).await
            }
        };
        let planned = match planned {
            Ok(planned) => planned,
            Err(err) => {
                let why = one_line(&err);
                for copy in &copies {
                    if let Some(home) = output
                        .regions
                        .iter_mut()
                        .find(|r| r.region == copy.retired.region)
                    {
                        home.problems.push(format!(
                            "{} in {region}, a copy of {}, is not retired with it: {why}",
                            copy.image_id, copy.retired.image_id
                        ));
                    }
                }
                continue;
            }
        };
        match existing {
            Some(index) => {
                // The run-wide bundle sweep's reports, and the problems found since the region
                // was first planned, stay with it.
                let before = &mut output.regions[index];
                let mut planned = planned;
                planned.orphan_bundles = std::mem::take(&mut before.orphan_bundles);
                for problem in std::mem::take(&mut before.problems) {
                    if !planned.problems.contains(&problem) {
                        planned.problems.push(problem);
                    }
                }
                *before = planned;
            }
            None => output.regions.push(planned),
        }
    }
    output.regions.sort_by(|a, b| a.region.cmp(&b.region));
}

/// What the region's plan does to an image: deregister it (the planner does not keep it), or a
/// staged action; None when it stays.
fn planned_action(region: &RegionCleanup, image_id: &str) -> Option<RetireAction> {
    let deregistered = region.retire.as_ref().is_some_and(|retire| {
        retire.images.iter().any(|image| {
            image.plan.image_id == image_id
                && image.plan.action == crate::plan::ImageAction::Deregister
        })
    });
    if deregistered {
        return Some(RetireAction::Deregister);
    }
    region
        .staged
        .iter()
        .find(|staged| staged.image_id == image_id)
        .map(|staged| staged.action)
}

/// Bundles under one prefix, judged once for the whole run: against the images of every region
/// in it and of the bucket's own region (an image registers a bundle from its region's bucket,
/// whatever region the run started in). A region whose images could not be read keeps every
/// bundle. The reports go to the bucket's region when it is in the run, else to the first one.
async fn plan_orphan_bundles(aws: &Aws, planned: &mut [RegionCleanup], bucket: &str, prefix: &str) {
    let Some(first) = planned.first().map(|r| r.region.clone()) else {
        return;
    };
    let bucket_region = match aws.s3(&first).bucket_region(bucket).await {
        Ok(region) => region,
        Err(err) => {
            planned[0].problems.push(format!(
                "orphan bundles under s3://{bucket}/{prefix} not swept: {err}"
            ));
            return;
        }
    };
    let mut images: Vec<Image> = Vec::new();
    let mut unreadable: Vec<String> = Vec::new();
    for region in planned.iter() {
        match &region.images {
            Some(found) => images.extend(found.iter().cloned()),
            None => unreadable.push(region.region.clone()),
        }
    }
    if !planned.iter().any(|r| r.region == bucket_region) {
        match load_region(aws, &bucket_region).await {
            Ok(facts) => images.extend(facts.images),
            Err(_) => unreadable.push(bucket_region.clone()),
        }
    }
    let index = planned
        .iter()
        .position(|r| r.region == bucket_region && r.images.is_some())
        .unwrap_or(0);
    match sweep_bundles(aws, &bucket_region, &images, bucket, prefix, &unreadable).await {
        Ok(plans) => planned[index]
            .orphan_bundles
            .extend(plans.into_iter().map(|plan| OrphanBundleReport {
                status: plan.action.into(),
                plan,
                error: None,
            })),
        Err(err) => planned[index].problems.push(format!(
            "orphan bundles under s3://{bucket}/{prefix} not swept: {}",
            one_line(&err)
        )),
    }
}

/// Confirm (or take --yes), execute every region concurrently; the result to report.
async fn finish(
    settings: &Settings,
    aws: &Aws,
    mut output: CleanupOutput,
    planning_only: bool,
) -> Result<(CleanupOutput, Outcome)> {
    let printer = Printer::new(settings);
    let has_work = output
        .regions
        .iter()
        .filter(|r| r.error.is_none())
        .any(|r| {
            r.retire.as_ref().is_some_and(RetireReport::has_work)
                || r.staged.iter().any(|s| s.status == Status::Planned)
                || r.orphans.iter().any(|o| o.status == Status::Planned)
                || r.orphan_bundles.iter().any(|o| o.status == Status::Planned)
        });
    if !planning_only && has_work {
        if !settings.yes {
            printer.emit(&output)?;
            crate::commands::retire::ask(&format!("{} Proceed?", output.summary()))?;
        }
        for region in output.regions.iter_mut() {
            remove_stale_marks(aws, region).await;
        }
        let progress = spinner(settings, "cleaning up");
        stream::iter(output.regions.iter_mut())
            .for_each_concurrent(crate::concurrency::REGIONS, |region| async move {
                execute_region(aws, region).await
            })
            .await;
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
    }
    // Nothing to confirm but stale marks: only an unattended run (--yes) removes them.
    if !planning_only && !has_work && settings.yes {
        for region in output.regions.iter_mut() {
            remove_stale_marks(aws, region).await;
        }
    }
    if !planning_only && !settings.quiet {
        crate::output::message(format!("ami cleanup: {}", output.result_line()));
    }
    let outcome = output.outcome();
    Ok((output, outcome))
}
