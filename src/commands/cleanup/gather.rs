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
    ReadAhead, Reader, RegionFacts, RetireReport, Status, Streaming, absorb, complete_inventory,
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

/// Candidates from which a streamed cleanup reads every snapshot ahead (a few pages of
/// DescribeSnapshots); below, the filtered lookups of the targets' snapshots cost less.
const READ_AHEAD_FROM: usize = 100;

/// What planning a region is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Plan only; execution (if any) comes after the whole plan was shown (and approved).
    Plan { dry_run: bool },
    /// Unattended runs: the retirement is executed while the consumer checks are still read
    /// (`retire::stream`), and the region comes back with its results. Staged actions and
    /// orphans are still done afterwards, by `finish`.
    Execute,
}

/// One region's cleanup: every rule decides on its own candidates; an image any rule keeps
/// stays (when in doubt, keep); the gentler action wins when rules disagree; then one plan.
pub(super) async fn plan_region(
    aws: &Aws,
    region: &str,
    source: &Source<'_>,
    mode: Mode,
    copies: &Copies<'_>,
) -> Result<RegionCleanup> {
    let (all_rules, review): (&[Rule], Option<&RegionReview>) = match source {
        Source::Rules(rules) => (rules, None),
        Source::Reviewed(file) => (&[], file.regions.iter().find(|r| r.region == region)),
    };
    let planner = RegionPlanner {
        aws,
        region,
        facts: load_region(aws, region).await?,
        all_rules,
        // A region outside the run, planned only for the copies retired with their source: no
        // rule selects anything there, no orphan is swept, no earlier retirement finished.
        rules: if copies.only { &[] } else { all_rules },
        review,
        copies,
        now: Utc::now(),
    };
    planner.plan(mode).await
}

/// What planning one region works from.
struct RegionPlanner<'a> {
    aws: &'a Aws,
    region: &'a str,
    facts: RegionFacts,
    /// Every rule of the run (copies are decided by their source's rules).
    all_rules: &'a [Rule],
    /// The rules that select images here.
    rules: &'a [Rule],
    review: Option<&'a RegionReview>,
    copies: &'a Copies<'a>,
    now: chrono::DateTime<Utc>,
}

/// The rules' decisions and, by image, the action they chose.
type Decided = (
    Vec<plan::retention::Decision>,
    BTreeMap<String, RetireAction>,
);

/// What the retirement part of a region's cleanup came to.
struct Retirement {
    decided: Decided,
    retire: Option<RetireReport>,
    /// Marks left by a killed run on images that stay: removed when the cleanup executes.
    stale_marks: BTreeMap<String, Vec<String>>,
    problems: Vec<String>,
}

impl RegionPlanner<'_> {
    async fn plan(self, mode: Mode) -> Result<RegionCleanup> {
        let candidates = self.candidates();
        // A large unattended cleanup reads the region-wide facts it will need at the same time.
        let read_ahead = mode == Mode::Execute && candidates.len() > READ_AHEAD_FROM;
        let (usage, ahead) = tokio::join!(
            async {
                match candidates.is_empty() {
                    true => Ok(Default::default()),
                    false => usage_of(self.aws, self.region, &candidates).await,
                }
            },
            async {
                match read_ahead {
                    true => ReadAhead::read(self.aws, self.region).await,
                    false => ReadAhead::default(),
                }
            }
        );
        let usage: plan::users::Usage = usage?;
        // Retirements an interrupted run left unfinished: the image is gone, its snapshots are
        // still marked for deletion. The planner checks them as for any target.
        let (unfinished, stale_marks) = if self.review.is_some() || self.copies.only {
            Default::default()
        } else {
            unfinished_retirements(self.aws, self.region, &self.facts.images).await?
        };
        let stale_marks: BTreeMap<String, Vec<String>> = stale_marks
            .into_iter()
            .map(|(image, snapshots)| (image, snapshots.into_keys().collect()))
            .collect();
        // Orphans are read before anything changes, as for a plan that is shown first.
        let orphans = plan_orphans(
            self.aws,
            self.region,
            self.rules,
            self.review,
            &self.facts,
            self.now,
        )
        .await?;
        let decided = self.decide(&usage.users);
        let retirement = match mode {
            Mode::Execute if !(deregistered(&decided.1).is_empty() && unfinished.is_empty()) => {
                self.execute(usage, decided, ahead, unfinished, stale_marks)
                    .await?
            }
            Mode::Execute => {
                self.planned(false, usage, decided, ahead, unfinished, stale_marks)
                    .await?
            }
            Mode::Plan { dry_run } => {
                self.planned(dry_run, usage, decided, ahead, unfinished, stale_marks)
                    .await?
            }
        };
        let Retirement {
            decided: (decisions, actions),
            retire,
            stale_marks,
            problems,
        } = retirement;
        let staged = staged_reports(&self.facts.images, &actions);
        Ok(RegionCleanup {
            region: self.region.to_string(),
            account_id: Some(self.facts.account_id.clone()),
            decisions,
            retire,
            staged,
            orphans,
            orphan_bundles: Vec::new(),
            error: None,
            problems,
            images: Some(self.facts.images),
            stale_marks,
        })
    }

    /// Every image a rule looks at, the reviewed plan names, or a copy retired with its source.
    fn candidates(&self) -> Vec<String> {
        let mut ids: BTreeSet<String> = BTreeSet::new();
        for rule in self.rules.iter().filter(|rule| rule.selects_images()) {
            ids.extend(
                self.facts
                    .images
                    .iter()
                    .filter(|image| rule.looks_at(image))
                    .map(|image| image.image_id.clone()),
            );
        }
        if let Some(review) = self.review {
            ids.extend(review.images.iter().map(|image| image.image_id.clone()));
        }
        ids.extend(self.copies.images.iter().map(|copy| copy.image_id.clone()));
        ids.into_iter().collect()
    }

    /// The rules' verdicts with the users known so far (a reviewed plan re-checked first).
    fn decide(&self, users: &BTreeMap<String, Vec<plan::ImageUser>>) -> Decided {
        let mut rechecked = self
            .review
            .map(|review| review.recheck(&self.facts.images))
            .unwrap_or_default();
        rechecked.extend(plan::rules::copy_decisions(
            self.copies.images,
            self.all_rules,
            &self.facts.images,
            &self.facts.account_id,
            users,
            self.now,
        ));
        plan::rules::decide(
            self.rules,
            rechecked,
            &self.facts.images,
            &self.facts.account_id,
            users,
            self.now,
        )
    }

    fn request(&self, targets: Vec<String>) -> Request {
        Request {
            targets,
            cleanup: true,
            force: false,
            terminate_instances: false,
            now: self.now,
            approval: self.review.map(RegionReview::approval),
        }
    }

    fn region_facts(&self, ahead: ReadAhead) -> RegionFacts {
        RegionFacts {
            account_id: self.facts.account_id.clone(),
            images: self.facts.images.clone(),
            gone: self.facts.gone.clone(),
            ahead,
        }
    }

    /// Plans the retirement, to be executed (if at all) once the whole cleanup was shown.
    async fn planned(
        &self,
        dry_run: bool,
        mut usage: plan::users::Usage,
        mut decided: Decided,
        ahead: ReadAhead,
        unfinished: PendingByImage,
        stale_marks: BTreeMap<String, Vec<String>>,
    ) -> Result<Retirement> {
        // Images about to go (or become unlaunchable) may be in use in the accounts they are
        // shared with: look there, and decide again with what is found.
        let consumers = consumer_usage_of(
            self.aws,
            self.region,
            &self.facts.account_id,
            &leaving(&decided.1),
        )
        .await?;
        if !consumers.users.is_empty() || !consumers.notes.is_empty() {
            usage.merge(consumers);
            decided = self.decide(&usage.users);
        }
        let mut targets = deregistered(&decided.1);
        targets.extend(unfinished.keys().cloned());
        let retire = if targets.is_empty() {
            None
        } else {
            let (inventory, notes) = complete_inventory(
                self.aws,
                self.region,
                self.region_facts(ahead),
                &targets,
                Some(usage.clone()),
                unfinished,
            )
            .await?;
            let plan = plan::plan(&inventory, &self.request(targets));
            Some(RetireReport::new(self.region, dry_run, true, plan, notes))
        };
        Ok(Retirement {
            decided,
            retire,
            stale_marks,
            problems: usage.problems,
        })
    }

    /// Retires while the consumer checks are read: the checks start now and go on while the
    /// rest is read and retired; then the whole plan from every fact, as a planned run makes
    /// it, with the batches' results.
    async fn execute(
        &self,
        mut usage: plan::users::Usage,
        first: Decided,
        ahead: ReadAhead,
        unfinished: PendingByImage,
        stale_marks: BTreeMap<String, Vec<String>>,
    ) -> Result<Retirement> {
        let (aws, region) = (self.aws, self.region);
        let leaving = leaving(&first.1);
        let first_targets = deregistered(&first.1);
        let reader = Reader::start(aws, region, &self.facts.account_id, leaving.clone());
        let pending: Vec<String> = unfinished.keys().cloned().collect();
        let every_target: Vec<String> = first_targets.iter().chain(&pending).cloned().collect();
        let (mut inventory, inventory_notes) = complete_inventory(
            aws,
            region,
            self.region_facts(ahead),
            &every_target,
            Some(usage.clone()),
            unfinished,
        )
        .await?;
        // Reading is over for everything but the consumer checks: changes may start.
        let mut problems = unmark(aws, region, stale_marks).await;
        let streamed = stream_retirement(
            aws,
            region,
            Streaming {
                inventory: inventory.clone(),
                at_home: usage.clone(),
                targets: first_targets,
                pending: pending.clone(),
                reader,
                request: self.request(Vec::new()),
                retired_under: |users: &BTreeMap<String, Vec<plan::ImageUser>>| {
                    deregistered(&self.decide(users).1).into_iter().collect()
                },
            },
        )
        .await;
        if !aws.consumers.ignore && !leaving.is_empty() {
            usage.merge(plan::users::in_consumers(
                &self.facts.account_id,
                &leaving,
                &streamed.facts,
            ));
        }
        let decided = self.decide(&usage.users);
        let mut targets = deregistered(&decided.1);
        targets.extend(pending);
        inventory.users = usage.users.clone();
        // The inventory's notes repeat the usage notes it was given: each is said once.
        let mut notes = usage.notes.clone();
        for note in inventory_notes {
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
        let plan = plan::plan(&inventory, &self.request(targets));
        let mut report = RetireReport::new(region, false, true, plan, notes);
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
        problems.extend(usage.problems);
        // As a planned run reports it: no retirement at all when nothing was to go.
        let retired_nothing =
            report.images.is_empty() && report.snapshots.is_empty() && report.bundles.is_empty();
        Ok(Retirement {
            decided,
            retire: (!retired_nothing).then_some(report),
            stale_marks: BTreeMap::new(),
            problems,
        })
    }
}

/// The images the actions deregister.
fn deregistered(actions: &BTreeMap<String, RetireAction>) -> Vec<String> {
    actions
        .iter()
        .filter(|(_, action)| **action == RetireAction::Deregister)
        .map(|(id, _)| id.clone())
        .collect()
}

/// The images about to go or become unlaunchable: their consumers are checked.
fn leaving(actions: &BTreeMap<String, RetireAction>) -> Vec<String> {
    actions
        .iter()
        .filter(|(_, action)| **action != RetireAction::Deprecate)
        .map(|(id, _)| id.clone())
        .collect()
}

/// Snapshots no image uses, when a rule (or the reviewed plan) sweeps them.
async fn plan_orphans(
    aws: &Aws,
    region: &str,
    rules: &[Rule],
    review: Option<&RegionReview>,
    facts: &RegionFacts,
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
            code: None,
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
        .buffered(crate::concurrency::MANIFESTS)
        .collect()
        .await;
    let used_facts: Vec<_> = stream::iter(used.into_iter().map(|(_, key)| key))
        .map(read)
        .buffered(crate::concurrency::MANIFESTS)
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
