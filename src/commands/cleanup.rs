//! `ami cleanup`: retention for cron. Per region (concurrently): read the estate once, decide each
//! image by the retention rules, plan the retired images' snapshots and bundles with the same
//! planner as `ami deregister --cleanup`, sweep orphaned snapshots, then act through the same
//! retirement path.

use anyhow::Result;
use chrono::Utc;
use futures::{StreamExt, stream};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::aws::Aws;
use crate::cli::{CleanupArgs, RetireAction};
use crate::config::Settings;
use crate::error::{Outcome, one_line, usage};
use crate::interrupt;
use crate::model::Image;
use crate::output::{Printer, Render, TableStyle, spinner};
use crate::plan::manifest::split_location;
use crate::plan::orphans::{OrphanBundlePlan, OrphanPlan, orphans};
use crate::plan::retention::{Decision, Verdict, select};
use crate::plan::{self, Request};

use super::policy::Rule;
use super::retire::{
    ExecuteOptions, RetireReport, Status, complete_inventory, deletion_status, execute,
    load_region, usage_of,
};

/// Regions are independent endpoints with their own rate limits.
const REGION_CONCURRENCY: usize = 4;
/// Manifests read at once while sweeping bundles.
const BUNDLE_READS: usize = 4;
/// DeleteSnapshot calls for orphans in flight per region.
const ORPHAN_CONCURRENCY: usize = 8;

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
        let aws = aws.with_consumers(role_name.clone(), args.ignore_consumers);
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
    let output = plan_regions(settings, &aws, &regions, &source, planning_only).await;
    if let Some(path) = &args.plan_out {
        let file = super::review::PlanFile::from_output(&output, rules)?;
        file.write(path)?;
        if !settings.quiet {
            eprintln!(
                "ami cleanup: plan written to {} ({}); review it, then `ami apply {}`",
                path.display(),
                output.summary().trim_end_matches('.'),
                path.display()
            );
        }
    }
    finish(settings, &aws, output, planning_only).await
}

/// `ami apply FILE`: the reviewed plan, re-checked against the account as it is now.
pub async fn apply(settings: &Settings, args: &crate::cli::ApplyArgs) -> Result<Outcome> {
    let file = super::review::PlanFile::read(&args.plan)?;
    require_confirmation_path(settings, settings.dry_run)?;
    if let Some(name) = &args.role_name {
        crate::ids::role_name(name)?;
    }
    let aws = Aws::connect(settings)
        .await?
        .with_consumers(args.role_name.clone(), args.ignore_consumers);
    let regions: Vec<String> = file.regions.iter().map(|r| r.region.clone()).collect();
    let source = Source::Reviewed(&file);
    let output = plan_regions(settings, &aws, &regions, &source, settings.dry_run).await;
    for region in &output.regions {
        if let Some(account) = &region.account_id
            && account != &file.account_id
        {
            return Err(usage(format!(
                "the plan was made for account {}, but these credentials are account {account}; nothing was changed",
                file.account_id
            )));
        }
    }
    let (output, outcome) = finish(settings, &aws, output, settings.dry_run).await?;
    Printer::new(settings).emit(&output)?;
    Ok(outcome)
}

/// Where the images to retire come from: rules, or a reviewed plan.
enum Source<'a> {
    Rules(&'a [Rule]),
    Reviewed(&'a super::review::PlanFile),
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

async fn plan_regions(
    settings: &Settings,
    aws: &Aws,
    regions: &[String],
    source: &Source<'_>,
    dry_run: bool,
) -> CleanupOutput {
    let progress = spinner(settings, format!("planning in {} region(s)", regions.len()));
    let mut planned: Vec<RegionCleanup> = stream::iter(regions.to_vec())
        .map(|region| async move {
            match plan_region(aws, &region, source, dry_run).await {
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
        .buffer_unordered(REGION_CONCURRENCY)
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
            super::retire::ask(&format!("{} Proceed?", output.summary()))?;
        }
        for region in output.regions.iter_mut() {
            remove_stale_marks(aws, region).await;
        }
        let progress = spinner(settings, "cleaning up");
        stream::iter(output.regions.iter_mut())
            .for_each_concurrent(REGION_CONCURRENCY, |region| async move {
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
        eprintln!("ami cleanup: {}", output.result_line());
    }
    let outcome = output.outcome();
    Ok((output, outcome))
}

fn candidate(image: &Image, rule: &Rule) -> bool {
    rule.name_filter
        .as_ref()
        .is_none_or(|regex| image.name.as_deref().is_some_and(|n| regex.is_match(n)))
        && rule
            .tags
            .iter()
            .all(|(key, value)| image.tags.get(key) == Some(value))
}

/// Every rule decides on its own candidates; an image any rule keeps stays (when in doubt,
/// keep); the gentler action wins when rules disagree; then one plan for the region.
async fn plan_region(
    aws: &Aws,
    region: &str,
    source: &Source<'_>,
    dry_run: bool,
) -> Result<RegionCleanup> {
    let facts = load_region(aws, region).await?;
    let (rules, review): (&[Rule], Option<&super::review::RegionReview>) = match source {
        Source::Rules(rules) => (rules, None),
        Source::Reviewed(file) => (&[], file.regions.iter().find(|r| r.region == region)),
    };
    let mut candidate_ids: BTreeSet<String> = BTreeSet::new();
    for rule in rules.iter().filter(|rule| rule.selects_images()) {
        candidate_ids.extend(
            facts
                .images
                .iter()
                .filter(|image| candidate(image, rule))
                .map(|image| image.image_id.clone()),
        );
    }
    if let Some(review) = review {
        candidate_ids.extend(review.images.iter().map(|image| image.image_id.clone()));
    }
    let usage = if candidate_ids.is_empty() {
        Default::default()
    } else {
        usage_of(aws, region, &candidate_ids.into_iter().collect::<Vec<_>>()).await?
    };
    let now = Utc::now();
    let decide_with = |users: &BTreeMap<String, Vec<crate::plan::ImageUser>>| {
        decide(rules, review, &facts.images, &facts.account_id, users, now)
    };
    let (mut decisions, mut actions) = decide_with(&usage.users);
    // Images about to go (or become unlaunchable) may be in use in the accounts they are shared
    // with: look there (one launch-permission read per image), and decide again with what is found.
    let leaving: Vec<String> = actions
        .iter()
        .filter(|(_, action)| **action != RetireAction::Deprecate)
        .map(|(id, _)| id.clone())
        .collect();
    let mut usage = usage;
    let consumers = aws
        .consumer_usage(region, &facts.account_id, &leaving)
        .await?;
    if !consumers.users.is_empty() || !consumers.notes.is_empty() {
        usage.merge(consumers);
        (decisions, actions) = decide_with(&usage.users);
    }
    let mut targets: Vec<String> = actions
        .iter()
        .filter(|(_, action)| **action == RetireAction::Deregister)
        .map(|(id, _)| id.clone())
        .collect();
    // Retirements an interrupted run left unfinished: the image is gone, its snapshots are still
    // marked for deletion. The planner checks them as for any target (not used by any image).
    let (unfinished, stale_marks) = if review.is_some() {
        Default::default()
    } else {
        unfinished_retirements(aws, region, &facts.images).await?
    };
    targets.extend(unfinished.keys().cloned());
    let retire = if targets.is_empty() {
        None
    } else {
        let (inventory, notes) = complete_inventory(
            aws,
            region,
            super::retire::RegionFacts {
                account_id: facts.account_id.clone(),
                images: facts.images.clone(),
            },
            &targets,
            Some(usage),
            unfinished,
        )
        .await?;
        let plan = plan::plan(
            &inventory,
            &Request {
                targets,
                cleanup: true,
                force: false,
                terminate_instances: false,
                now,
                reviewed: review.map(super::review::RegionReview::limits),
            },
        );
        Some(RetireReport::new(region, dry_run, true, plan, notes))
    };
    let staged = staged_reports(&facts.images, &actions);
    let sweep =
        rules.iter().any(|rule| rule.orphans) || review.is_some_and(|r| !r.orphans.is_empty());
    let orphan_reports = if sweep {
        let snapshots = aws.ec2(region).all_owned_snapshots().await?;
        let mut found = orphans(&snapshots, &facts.images);
        if let Some(review) = review {
            found.retain(|orphan| review.orphans.contains(&orphan.snapshot_id));
        }
        found
            .into_iter()
            .map(|plan| OrphanReport {
                status: plan.action.into(),
                plan,
                error: None,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(RegionCleanup {
        region: region.to_string(),
        account_id: Some(facts.account_id.clone()),
        decisions,
        retire,
        staged,
        orphans: orphan_reports,
        orphan_bundles: Vec::new(),
        error: None,
        problems: Vec::new(),
        images: Some(facts.images),
        stale_marks: stale_marks
            .into_iter()
            .map(|(image, snapshots)| (image, snapshots.into_keys().collect()))
            .collect(),
    })
}

/// Snapshots marked for deletion on behalf of images that are gone, by image.
/// Also the marks whose image still exists: left by a run killed before it deregistered the
/// image. They are removed when this run executes, so that no later run deletes those snapshots
/// once the image goes for another reason.
async fn unfinished_retirements(
    aws: &Aws,
    region: &str,
    images: &[Image],
) -> Result<(PendingByImage, PendingByImage)> {
    let (stale, gone) = aws
        .ec2(region)
        .all_pending_cleanup()
        .await?
        .into_iter()
        .partition(|(image_id, _)| images.iter().any(|image| &image.image_id == image_id));
    Ok((gone, stale))
}

type PendingByImage = BTreeMap<String, BTreeMap<String, crate::plan::SnapshotInfo>>;

/// Every rule's verdicts, the reviewed plan's re-check, and keep-wins: the decisions and the
/// action for each image to retire.
fn decide(
    rules: &[Rule],
    review: Option<&super::review::RegionReview>,
    images: &[Image],
    account_id: &str,
    users: &BTreeMap<String, Vec<crate::plan::ImageUser>>,
    now: chrono::DateTime<Utc>,
) -> (Vec<Decision>, BTreeMap<String, RetireAction>) {
    let mut decisions: Vec<Decision> = Vec::new();
    let mut actions: BTreeMap<String, RetireAction> = BTreeMap::new();
    for rule in rules.iter().filter(|rule| rule.selects_images()) {
        let candidates: Vec<Image> = images
            .iter()
            .filter(|image| candidate(image, rule))
            .cloned()
            .collect();
        for mut decision in select(&candidates, users, account_id, &rule.retention, now) {
            decision.rule = rule.label.clone();
            if decision.verdict == Verdict::Retire {
                let gentlest = match actions.get(&decision.image_id) {
                    Some(RetireAction::Deregister) | None => rule.action,
                    Some(existing) => *existing,
                };
                actions.insert(decision.image_id.clone(), gentlest);
            }
            decisions.push(decision);
        }
    }
    if let Some(review) = review {
        for (mut decision, action) in review.recheck(images) {
            // Deregistration is re-checked by the planner; a staged action is checked here.
            if decision.verdict == Verdict::Retire
                && action != RetireAction::Deregister
                && let Some(users) = users.get(&decision.image_id).filter(|u| !u.is_empty())
            {
                decision.verdict = Verdict::Keep;
                decision.reason = format!("now in use by {}", plan::describe_users(users));
            }
            if decision.verdict == Verdict::Retire {
                actions.insert(decision.image_id.clone(), action);
            }
            decisions.push(decision);
        }
    }
    let kept: BTreeMap<String, String> = decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Keep)
        .map(|d| {
            (
                d.image_id.clone(),
                d.rule.clone().unwrap_or_else(|| "the rule".into()),
            )
        })
        .collect();
    for decision in decisions
        .iter_mut()
        .filter(|d| d.verdict == Verdict::Retire)
    {
        if let Some(rule) = kept.get(&decision.image_id) {
            decision.verdict = Verdict::Keep;
            decision.reason = format!("{}; but kept by {rule}", decision.reason);
            actions.remove(&decision.image_id);
        }
    }
    (decisions, actions)
}

/// Manifests under `prefix` that none of `images` uses, and their parts; `region` is the bucket's.
async fn sweep_bundles(
    aws: &Aws,
    region: &str,
    images: &[Image],
    bucket: &str,
    prefix: &str,
    unreadable: &[String],
) -> Result<Vec<crate::plan::orphans::OrphanBundlePlan>> {
    let s3 = aws.s3(region);
    let used_locations: BTreeSet<(String, String)> = images
        .iter()
        .filter(|image| image.is_instance_store())
        .filter_map(|image| image.image_location.as_deref().and_then(split_location))
        .map(|(bucket, key, _)| (bucket, key))
        .collect();
    let keys: Vec<String> = s3
        .list_objects(bucket, prefix)
        .await?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let unused: Vec<String> = keys
        .iter()
        .filter(|key| key.ends_with(".manifest.xml"))
        .filter(|key| !used_locations.contains(&(bucket.to_string(), (*key).clone())))
        .cloned()
        .collect();
    let used: Vec<(String, String)> = used_locations
        .iter()
        .filter(|(b, _)| b == bucket)
        .cloned()
        .collect();
    let read = |key: String| {
        let s3 = s3.clone();
        let prefix = match key.rfind('/') {
            Some(index) => key[..=index].to_string(),
            None => String::new(),
        };
        async move { s3.bundle_facts(bucket, &key, &prefix).await }
    };
    let unused_facts: Vec<_> = stream::iter(unused)
        .map(read)
        .buffered(BUNDLE_READS)
        .collect()
        .await;
    let used_facts: Vec<_> = stream::iter(used.into_iter().map(|(_, key)| key))
        .map(read)
        .buffered(BUNDLE_READS)
        .collect()
        .await;
    Ok(crate::plan::orphans::orphan_bundles(
        region,
        &unused_facts,
        &used_facts,
        unreadable,
    ))
}

/// Deprecating or disabling instead of deregistering; an image already in that state is done.
fn staged_reports(images: &[Image], actions: &BTreeMap<String, RetireAction>) -> Vec<StagedReport> {
    let now = Utc::now();
    actions
        .iter()
        .filter(|(_, action)| **action != RetireAction::Deregister)
        .map(|(image_id, action)| {
            let image = images.iter().find(|i| &i.image_id == image_id);
            let already = image.is_some_and(|image| match action {
                RetireAction::Disable => image.state == "disabled",
                RetireAction::Deprecate => image.deprecation_time.is_some_and(|t| t <= now),
                RetireAction::Deregister => false,
            });
            StagedReport {
                image_id: image_id.clone(),
                action: *action,
                status: if already {
                    Status::Done
                } else {
                    Status::Planned
                },
                error: already.then(|| "already in that state".to_string()),
            }
        })
        .collect()
}

/// Marks whose image still exists are removed before anything else is done: an image this run
/// retires is marked again by its own retirement, for exactly the snapshots it deletes.
async fn remove_stale_marks(aws: &Aws, region: &mut RegionCleanup) {
    for (image_id, snapshots) in std::mem::take(&mut region.stale_marks) {
        if interrupt::requested() {
            return;
        }
        if let Err(err) = aws
            .ec2(&region.region)
            .unmark_pending_cleanup(&image_id, &snapshots)
            .await
        {
            region.problems.push(format!(
                "the ami:cleanup-pending-for tag on {} (left for {image_id}, which still exists) \
                 could not be removed: {err}",
                snapshots.join(", ")
            ));
        }
    }
}

async fn execute_region(aws: &Aws, region: &mut RegionCleanup) {
    interrupt::watch();
    if region.error.is_some() {
        // Not planned (or not shown): nothing is done in it.
        return;
    }
    if let Some(report) = region.retire.as_mut()
        && report.has_work()
    {
        execute(aws, &region.region, ExecuteOptions::default(), report).await;
        report.tally_left_behind();
    }
    let ec2 = aws.ec2(&region.region);
    for staged in region
        .staged
        .iter_mut()
        .filter(|s| s.status == Status::Planned)
    {
        if interrupt::requested() {
            staged.status = Status::NotStarted;
            continue;
        }
        let result = match staged.action {
            RetireAction::Deprecate => ec2.enable_deprecation(&staged.image_id, Utc::now()).await,
            RetireAction::Disable => ec2.disable_image(&staged.image_id).await,
            RetireAction::Deregister => Ok(()),
        };
        match result {
            Ok(()) => staged.status = Status::Done,
            Err(err) => {
                staged.status = Status::Failed;
                staged.error = Some(one_line(&err));
            }
        }
    }
    for bundle in region
        .orphan_bundles
        .iter_mut()
        .filter(|b| b.status == Status::Planned)
    {
        if interrupt::requested() {
            bundle.status = Status::NotStarted;
            continue;
        }
        let outcome = aws
            .s3(&bundle.plan.region)
            .delete_bundle(&bundle.plan.bucket, &bundle.plan.objects)
            .await;
        if outcome.failed.is_empty() {
            bundle.status = Status::Done;
        } else {
            bundle.status = Status::Failed;
            bundle.error = Some(
                outcome
                    .failed
                    .iter()
                    .map(|(key, error)| format!("{key}: {error}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
    }
    let planned: Vec<(usize, String)> = region
        .orphans
        .iter()
        .enumerate()
        .filter(|(_, o)| o.status == Status::Planned)
        .map(|(index, o)| (index, o.plan.snapshot_id.clone()))
        .collect();
    let results: Vec<(usize, _)> = stream::iter(planned)
        .filter(|_| futures::future::ready(!interrupt::requested()))
        .map(|(index, id)| {
            let ec2 = ec2.clone();
            async move { (index, ec2.delete_snapshot(&id).await) }
        })
        .buffer_unordered(ORPHAN_CONCURRENCY)
        .collect()
        .await;
    for (index, result) in results {
        let orphan = &mut region.orphans[index];
        (orphan.status, orphan.error) = deletion_status(result);
    }
    for orphan in region
        .orphans
        .iter_mut()
        .filter(|o| o.status == Status::Planned && interrupt::requested())
    {
        orphan.status = Status::NotStarted;
    }
}

impl CleanupOutput {
    fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for region in &self.regions {
            *counts.entry("kept").or_default() += region
                .decisions
                .iter()
                .filter(|d| d.verdict == Verdict::Keep)
                .count();
            if let Some(report) = &region.retire {
                *counts.entry("images").or_default() += report
                    .images
                    .iter()
                    .filter(|i| i.status == Status::Done || i.status == Status::Planned)
                    .count();
                *counts.entry("snapshots").or_default() += report
                    .snapshots
                    .iter()
                    .filter(|s| s.status == Status::Done || s.status == Status::Planned)
                    .count();
                *counts.entry("failed").or_default() += report
                    .images
                    .iter()
                    .filter(|i| i.status == Status::Failed)
                    .count()
                    + report
                        .snapshots
                        .iter()
                        .filter(|s| s.status == Status::Failed)
                        .count()
                    + report
                        .bundles
                        .iter()
                        .filter(|b| b.status == Status::Failed)
                        .count();
            }
            *counts.entry("images").or_default() += region
                .staged
                .iter()
                .filter(|s| s.status == Status::Done || s.status == Status::Planned)
                .count();
            *counts.entry("failed").or_default() += region
                .staged
                .iter()
                .filter(|s| s.status == Status::Failed)
                .count();
            *counts.entry("orphans").or_default() += region
                .orphans
                .iter()
                .filter(|o| o.status == Status::Done || o.status == Status::Planned)
                .count();
            *counts.entry("bundles").or_default() += region
                .orphan_bundles
                .iter()
                .filter(|b| b.status == Status::Done || b.status == Status::Planned)
                .count();
            *counts.entry("failed").or_default() += region
                .orphan_bundles
                .iter()
                .filter(|b| b.status == Status::Failed)
                .count();
            *counts.entry("failed").or_default() += region
                .orphans
                .iter()
                .filter(|o| o.status == Status::Failed)
                .count()
                + usize::from(region.error.is_some())
                + region.problems.len();
            let not_started = |status: &Status| *status == Status::NotStarted;
            *counts.entry("not_started").or_default() += region
                .retire
                .iter()
                .map(|r| {
                    r.images.iter().filter(|i| not_started(&i.status)).count()
                        + r.snapshots
                            .iter()
                            .filter(|s| not_started(&s.status))
                            .count()
                        + r.bundles.iter().filter(|b| not_started(&b.status)).count()
                })
                .sum::<usize>()
                + region
                    .staged
                    .iter()
                    .filter(|s| not_started(&s.status))
                    .count()
                + region
                    .orphans
                    .iter()
                    .filter(|o| not_started(&o.status))
                    .count()
                + region
                    .orphan_bundles
                    .iter()
                    .filter(|b| not_started(&b.status))
                    .count();
        }
        counts
    }

    fn summary(&self) -> String {
        let c = self.counts();
        let get = |key: &str| c.get(key).copied().unwrap_or(0);
        format!(
            "Retire {} image(s) with {} snapshot(s), delete {} orphaned snapshot(s) and {} orphaned bundle(s), keep {} image(s) in {} region(s).",
            get("images"),
            get("snapshots"),
            get("orphans"),
            get("bundles"),
            get("kept"),
            self.regions.len()
        )
    }

    /// One line for cron logs.
    fn result_line(&self) -> String {
        let c = self.counts();
        let get = |key: &str| c.get(key).copied().unwrap_or(0);
        let mut line = format!(
            "retired {} image(s), deleted {} snapshot(s), {} orphan(s) and {} orphaned bundle(s), kept {} image(s), {} failure(s) in {} region(s)",
            get("images"),
            get("snapshots"),
            get("orphans"),
            get("bundles"),
            get("kept"),
            get("failed"),
            self.regions.len()
        );
        if get("not_started") > 0 {
            line.push_str(&format!(
                "; interrupted: {} item(s) not started, a re-run does them",
                get("not_started")
            ));
        }
        line
    }

    fn outcome(&self) -> Outcome {
        let failed = self.counts().get("failed").copied().unwrap_or(0);
        if failed == 0 || self.dry_run && self.regions.iter().all(|r| r.error.is_none()) {
            return Outcome::Success;
        }
        let done = self.regions.iter().any(|r| {
            r.retire
                .as_ref()
                .is_some_and(|report| report.images.iter().any(|i| i.status == Status::Done))
                || r.staged.iter().any(|s| s.status == Status::Done)
                || r.orphans.iter().any(|o| o.status == Status::Done)
                || r.orphan_bundles.iter().any(|b| b.status == Status::Done)
                || (self.dry_run && r.error.is_none())
        });
        if done {
            Outcome::Partial
        } else {
            Outcome::Failed
        }
    }
}

impl Render for CleanupOutput {
    fn render(&self, style: &TableStyle) -> String {
        let mut out = Vec::new();
        for region in &self.regions {
            out.push(format!("== {}", region.region));
            if let Some(error) = &region.error {
                out.push(format!("FAILED: {error}"));
                continue;
            }
            for problem in &region.problems {
                out.push(format!("FAILED: {problem}"));
            }
            if !region.decisions.is_empty() {
                let mut table =
                    style.table(&["FAMILY", "IMAGE", "NAME", "CREATED", "DECISION", "WHY"]);
                let mut decisions: Vec<&Decision> = region.decisions.iter().collect();
                decisions.sort_by(|a, b| {
                    (&a.family, std::cmp::Reverse(a.creation_date))
                        .cmp(&(&b.family, std::cmp::Reverse(b.creation_date)))
                });
                for decision in decisions {
                    let color =
                        (decision.verdict == Verdict::Retire).then_some(comfy_table::Color::Yellow);
                    table.add_row(vec![
                        style.cell(decision.family.as_deref().unwrap_or("-"), None),
                        style.cell(&decision.image_id, None),
                        style.cell(decision.name.as_deref().unwrap_or("-"), None),
                        style.cell(
                            decision
                                .creation_date
                                .map(|t| t.format("%Y-%m-%d").to_string())
                                .unwrap_or_else(|| "-".into()),
                            None,
                        ),
                        style.cell(
                            match decision.verdict {
                                Verdict::Retire => "retire",
                                Verdict::Keep => "keep",
                            },
                            color,
                        ),
                        style.cell(&decision.reason, None),
                    ]);
                }
                out.push(table.to_string());
            }
            if let Some(report) = &region.retire {
                out.push(report.render(style));
            }
            if !region.staged.is_empty() {
                let mut table = style.table(&["IMAGE", "ACTION", "STATUS", "NOTE"]);
                for staged in &region.staged {
                    table.add_row(vec![
                        style.cell(&staged.image_id, None),
                        style.cell(format!("{:?}", staged.action).to_lowercase(), None),
                        super::retire::status_cell(style, staged.status, self.dry_run),
                        style.cell(staged.error.as_deref().unwrap_or(""), None),
                    ]);
                }
                out.push(table.to_string());
            }
            if !region.orphan_bundles.is_empty() {
                let mut table =
                    style.table(&["ORPHAN BUNDLE", "OBJECTS", "BYTES", "STATUS", "WHY"]);
                for bundle in &region.orphan_bundles {
                    table.add_row(vec![
                        style.cell(
                            format!("s3://{}/{}", bundle.plan.bucket, bundle.plan.manifest_key),
                            None,
                        ),
                        style.cell(bundle.plan.objects.len(), None),
                        style.cell(bundle.plan.bytes, None),
                        super::retire::status_cell(style, bundle.status, self.dry_run),
                        style.cell(
                            match &bundle.error {
                                Some(error) => format!("{}: {error}", bundle.plan.reason),
                                None => bundle.plan.reason.clone(),
                            },
                            None,
                        ),
                    ]);
                }
                out.push(table.to_string());
            }
            if !region.orphans.is_empty() {
                let mut table =
                    style.table(&["ORPHAN SNAPSHOT", "MADE FOR", "SIZE", "STATUS", "WHY"]);
                for orphan in &region.orphans {
                    table.add_row(vec![
                        style.cell(&orphan.plan.snapshot_id, None),
                        style.cell(&orphan.plan.image_id, None),
                        style.cell(format!("{} GiB", orphan.plan.size_gib), None),
                        super::retire::status_cell(style, orphan.status, self.dry_run),
                        style.cell(
                            match &orphan.error {
                                Some(error) => format!("{}: {error}", orphan.plan.reason),
                                None => orphan.plan.reason.clone(),
                            },
                            None,
                        ),
                    ]);
                }
                out.push(table.to_string());
            }
        }
        out.push(if self.dry_run {
            format!("{} (dry run: nothing was changed)", self.summary())
        } else {
            self.result_line()
        });
        out.join("\n\n")
    }
}
