//! Reading a region for a cleanup and planning it: the rules' decisions, the retirement plan,
//! unfinished retirements, orphaned snapshots and bundles.

use anyhow::Result;
use chrono::Utc;
use futures::{StreamExt, stream};
use std::collections::{BTreeMap, BTreeSet};

use super::execute::unmark;
use super::review::RegionReview;
use super::{OrphanReport, RegionCleanup, Source, StagedReport};
use crate::aws::Aws;
use crate::commands::policy::Rule;
use crate::commands::retire::{
    ReadAhead, Reader, RetireReport, Status, Streaming, absorb, complete_inventory,
    consumer_usage_of, load_region, stream as stream_retirement, usage_of,
};
use crate::model::Image;
use crate::plan::manifest::split_location;
use crate::plan::orphans::orphans;
use crate::plan::retention::RetireAction;
use crate::plan::rules::CopyOf;
use crate::plan::{self, Request};

/// Copies to retire with their source in a region (`with_copies` rules).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Copies<'a> {
    pub images: &'a [CopyOf],
    /// The region is not in the run: only these copies are planned there.
    pub only: bool,
}

/// Manifests read at once while sweeping bundles.
const BUNDLE_READS: usize = 4;

/// Candidates from which a streamed cleanup reads every snapshot ahead (a few pages of
/// DescribeSnapshots); below, the filtered lookups of the targets' snapshots cost less.
const READ_AHEAD_FROM: usize = 100;

/// Every rule decides on its own candidates; an image any rule keeps stays (when in doubt,
/// keep); the gentler action wins when rules disagree; then one plan for the region.
///
/// `stream` (unattended runs): the retirement is executed here, while the consumer checks are
/// read (`retire::stream`), and the region comes back with its results; staged actions and
/// orphans are still done afterwards.
pub(super) async fn plan_region(
    aws: &Aws,
    region: &str,
    source: &Source<'_>,
    dry_run: bool,
    stream: bool,
    copies: &Copies<'_>,
) -> Result<RegionCleanup> {
    let facts = load_region(aws, region).await?;
    let (all_rules, review): (&[Rule], Option<&RegionReview>) = match source {
        Source::Rules(rules) => (rules, None),
        Source::Reviewed(file) => (&[], file.regions.iter().find(|r| r.region == region)),
    };
    // A region outside the run, planned only for the copies retired with their source: no rule
    // selects anything there, no orphan is swept, no earlier retirement finished.
    let rules: &[Rule] = if copies.only { &[] } else { all_rules };
    let mut candidate_ids: BTreeSet<String> = BTreeSet::new();
    for rule in rules.iter().filter(|rule| rule.selects_images()) {
        candidate_ids.extend(
            facts
                .images
                .iter()
                .filter(|image| rule.looks_at(image))
                .map(|image| image.image_id.clone()),
        );
    }
    if let Some(review) = review {
        candidate_ids.extend(review.images.iter().map(|image| image.image_id.clone()));
    }
    candidate_ids.extend(copies.images.iter().map(|copy| copy.image_id.clone()));
    // A large unattended cleanup reads the region-wide facts it will need at the same time.
    let read_ahead = stream && candidate_ids.len() > READ_AHEAD_FROM;
    let (usage, mut ahead) = tokio::join!(
        async {
            match candidate_ids.is_empty() {
                true => Ok(Default::default()),
                false => {
                    usage_of(aws, region, &candidate_ids.into_iter().collect::<Vec<_>>()).await
                }
            }
        },
        async {
            match read_ahead {
                true => ReadAhead::read(aws, region).await,
                false => ReadAhead::default(),
            }
        }
    );
    let mut usage: plan::users::Usage = usage?;
    let now = Utc::now();
    let decide_with = |users: &BTreeMap<String, Vec<crate::plan::ImageUser>>| {
        let mut rechecked = review
            .map(|review| review.recheck(&facts.images))
            .unwrap_or_default();
        rechecked.extend(plan::rules::copy_decisions(
            copies.images,
            all_rules,
            &facts.images,
            &facts.account_id,
            users,
            now,
        ));
        plan::rules::decide(
            rules,
            rechecked,
            &facts.images,
            &facts.account_id,
            users,
            now,
        )
    };
    let deregistered = |actions: &BTreeMap<String, RetireAction>| -> Vec<String> {
        actions
            .iter()
            .filter(|(_, action)| **action == RetireAction::Deregister)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let (mut decisions, mut actions) = decide_with(&usage.users);
    // Images about to go (or become unlaunchable) may be in use in the accounts they are shared
    // with: look there (one launch-permission read per image), and decide again with what is found.
    let leaving: Vec<String> = actions
        .iter()
        .filter(|(_, action)| **action != RetireAction::Deprecate)
        .map(|(id, _)| id.clone())
        .collect();
    // Retirements an interrupted run left unfinished: the image is gone, its snapshots are still
    // marked for deletion. The planner checks them as for any target (not used by any image).
    let (unfinished, stale_marks) = if review.is_some() || copies.only {
        Default::default()
    } else {
        unfinished_retirements(aws, region, &facts.images).await?
    };
    let stale_marks: BTreeMap<String, Vec<String>> = stale_marks
        .into_iter()
        .map(|(image, snapshots)| (image, snapshots.into_keys().collect()))
        .collect();
    // Orphans are read before anything changes, as for a plan that is shown first.
    let orphan_reports = plan_orphans(aws, region, rules, review, &facts, now).await?;
    let reviewed = || review.map(RegionReview::limits);
    let request = |targets: Vec<String>| Request {
        targets,
        cleanup: true,
        force: false,
        terminate_instances: false,
        now,
        reviewed: reviewed(),
    };
    let first_targets = deregistered(&actions);
    let mut problems = Vec::new();
    let mut region_facts = || crate::commands::retire::RegionFacts {
        account_id: facts.account_id.clone(),
        images: facts.images.clone(),
        gone: facts.gone.clone(),
        ahead: std::mem::take(&mut ahead),
    };
    let (retire, stale_marks) = if stream && !(first_targets.is_empty() && unfinished.is_empty()) {
        // The consumer checks start now and go on while the rest is read and retired.
        let reader = Reader::start(aws, region, &facts.account_id, leaving.clone());
        let pending: Vec<String> = unfinished.keys().cloned().collect();
        let every_target: Vec<String> = first_targets.iter().chain(&pending).cloned().collect();
        let (mut inventory, inventory_notes) = complete_inventory(
            aws,
            region,
            region_facts(),
            &every_target,
            Some(usage.clone()),
            unfinished,
        )
        .await?;
        // Reading is over for everything but the consumer checks: changes may start.
        problems.extend(unmark(aws, region, stale_marks).await);
        let streamed = stream_retirement(
            aws,
            region,
            Streaming {
                inventory: inventory.clone(),
                at_home: usage.clone(),
                targets: first_targets,
                pending: pending.clone(),
                reader,
                request: request(Vec::new()),
                retired_under: |users: &BTreeMap<String, Vec<crate::plan::ImageUser>>| {
                    deregistered(&decide_with(users).1).into_iter().collect()
                },
            },
        )
        .await;
        // The whole plan from every fact, as a planned run makes it, with the batches' results.
        let at_home_notes = usage.notes.len();
        if !aws.consumers.ignore && !leaving.is_empty() {
            usage.merge(plan::users::in_consumers(
                &facts.account_id,
                &leaving,
                &streamed.facts,
            ));
        }
        (decisions, actions) = decide_with(&usage.users);
        let mut targets = deregistered(&actions);
        targets.extend(pending);
        inventory.users = usage.users.clone();
        let mut notes = usage.notes.clone();
        notes.extend(inventory_notes.into_iter().skip(at_home_notes));
        let mut report = RetireReport::new(
            region,
            false,
            true,
            plan::plan(&inventory, &request(targets)),
            notes,
        );
        let beyond = absorb(&mut report, streamed.executed);
        if beyond > 0 {
            problems.push(format!(
                "{beyond} item(s) handled by a batch are not in the final plan (reported as they \
                 went): the rules changed their mind as facts came in; please report this"
            ));
        }
        // Every check ends unless Ctrl-C came: an image never read is a check that did not run.
        let unread = leaving
            .iter()
            .filter(|id| {
                !streamed.facts.permissions.contains_key(*id)
                    && !streamed.facts.unreadable.contains_key(*id)
            })
            .count();
        if !aws.consumers.ignore && unread > 0 && !crate::interrupt::requested() {
            problems.push(format!(
                "the launch permissions of {unread} image(s) were not read: they stay"
            ));
        }
        // As a planned run reports it: no retirement at all when nothing was to go.
        let retired_nothing =
            report.images.is_empty() && report.snapshots.is_empty() && report.bundles.is_empty();
        ((!retired_nothing).then_some(report), BTreeMap::new())
    } else {
        let consumers = consumer_usage_of(aws, region, &facts.account_id, &leaving).await?;
        if !consumers.users.is_empty() || !consumers.notes.is_empty() {
            usage.merge(consumers);
            (decisions, actions) = decide_with(&usage.users);
        }
        let mut targets = deregistered(&actions);
        targets.extend(unfinished.keys().cloned());
        let retire = if targets.is_empty() {
            None
        } else {
            let (inventory, notes) = complete_inventory(
                aws,
                region,
                region_facts(),
                &targets,
                Some(usage.clone()),
                unfinished,
            )
            .await?;
            let plan = plan::plan(&inventory, &request(targets));
            Some(RetireReport::new(region, dry_run, true, plan, notes))
        };
        (retire, stale_marks)
    };
    problems.extend(usage.problems.iter().cloned());
    let staged = staged_reports(&facts.images, &actions);
    Ok(RegionCleanup {
        region: region.to_string(),
        account_id: Some(facts.account_id.clone()),
        decisions,
        retire,
        staged,
        orphans: orphan_reports,
        orphan_bundles: Vec::new(),
        error: None,
        problems,
        images: Some(facts.images),
        stale_marks,
    })
}

/// Snapshots no image uses, when a rule (or the reviewed plan) sweeps them.
async fn plan_orphans(
    aws: &Aws,
    region: &str,
    rules: &[Rule],
    review: Option<&RegionReview>,
    facts: &crate::commands::retire::RegionFacts,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<OrphanReport>> {
    let sweep =
        rules.iter().any(|rule| rule.orphans) || review.is_some_and(|r| !r.orphans.is_empty());
    if !sweep {
        return Ok(Vec::new());
    }
    // With the images still listed as deregistered: one in the Recycle Bin needs its snapshots.
    let images: Vec<Image> = facts.images.iter().chain(&facts.gone).cloned().collect();
    let ec2 = aws.ec2(region);
    // The images in the bin too: a deregistered image a Recycle Bin rule holds is not listed
    // by DescribeImages, yet restoring it needs its snapshots.
    let (snapshots, locks, recycle, binned) = tokio::join!(
        ec2.all_owned_snapshots(),
        ec2.snapshot_locks(),
        aws.recycle_rules(region),
        ec2.binned_images()
    );
    let mut found = orphans(&snapshots?, &images, &locks, &recycle, &binned, now);
    if let Some(review) = review {
        found.retain(|orphan| review.orphans.contains(&orphan.snapshot_id));
    }
    Ok(found
        .into_iter()
        .map(|plan| OrphanReport {
            status: plan.action.into(),
            plan,
            error: None,
        })
        .collect())
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
    // `images` are those that exist (`load_region`): a mark of one AWS still lists as
    // deregistered is an unfinished retirement, finished like any other.
    let (stale, gone) = aws
        .ec2(region)
        .all_pending_cleanup()
        .await?
        .into_iter()
        .partition(|(image_id, _)| images.iter().any(|image| &image.image_id == image_id));
    Ok((gone, stale))
}

type PendingByImage = BTreeMap<String, BTreeMap<String, crate::plan::SnapshotInfo>>;

/// Manifests under `prefix` that none of `images` uses, and their parts; `region` is the bucket's.
pub(super) async fn sweep_bundles(
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
        async move {
            plan::BundleFacts::read(
                s3.bundle_objects(bucket, &key, &prefix, plan::manifest::MAX_MANIFEST_BYTES)
                    .await,
            )
        }
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
    plan::rules::staged(images, actions, Utc::now())
        .into_iter()
        .map(|staged| {
            let (status, error) = match (staged.already, staged.refused) {
                (true, _) => (Status::Done, Some("already in that state".to_string())),
                // Not asked: AWS would refuse it. The image stays as it is, with the reason.
                (false, Some(why)) => (Status::Skipped, Some(why)),
                (false, None) => (Status::Planned, None),
            };
            StagedReport {
                image_id: staged.image_id,
                action: staged.action,
                status,
                error,
            }
        })
        .collect()
}
