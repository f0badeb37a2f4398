//! Retiring images, shared by `ami deregister` and `ami cleanup` (one deletion path): gather the
//! region's facts, report the plan, and act in the order that never strands anything:
//! terminate instances (if asked) → mark snapshots → deregister → delete bundles → delete
//! snapshots.
//!
//! Nothing an image needs goes before the image: a refused or failed deregistration leaves a
//! whole image. Snapshots are tagged first, so a run killed after the deregistration is finished
//! by the next one; the tag is removed again from an image that stays.

use anyhow::{Result, anyhow};
use comfy_table::Color;
use futures::{StreamExt, stream};
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::{BufRead, Write};

use crate::aws::snapshots::{Deleted, PENDING_CLEANUP_TAG};
use crate::aws::{Aws, Ec2, S3};
use crate::config::Settings;
use crate::error::{Outcome, usage};
use crate::interrupt;
use crate::model::Image;
use crate::output::{Printer, Render, TableStyle};
use crate::plan::manifest::split_location;
use crate::plan::{
    self, BundlePlan, DeletedBy, ImageAction, ImagePlan, Inventory, ItemAction, Plan, SnapshotPlan,
};

/// Mutating EC2 calls share an account-wide rate bucket; 8 in flight keeps well inside it while
/// hiding round-trip latency. The SDK's adaptive retries slow down further if AWS throttles.
const MUTATION_CONCURRENCY: usize = 8;
/// Manifests are small; a few concurrent reads are plenty.
const BUNDLE_CONCURRENCY: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In the plan, not (yet) done: what --dry-run shows.
    Planned,
    Done,
    Skipped,
    Failed,
    NotFound,
    /// Ctrl-C came first: never attempted, a re-run does it.
    NotStarted,
}

/// Before execution: what the plan deletes is planned, what it keeps is skipped.
impl From<ItemAction> for Status {
    fn from(action: ItemAction) -> Status {
        match action {
            ItemAction::Delete => Status::Planned,
            ItemAction::Keep => Status::Skipped,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ImageReport {
    #[serde(flatten)]
    pub plan: ImagePlan,
    pub status: Status,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SnapshotReport {
    #[serde(flatten)]
    pub plan: SnapshotPlan,
    pub status: Status,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BundleReport {
    #[serde(flatten)]
    pub plan: BundlePlan,
    pub status: Status,
    pub error: Option<String>,
    /// Keys that could not be deleted, with the S3 error code.
    pub failed_keys: Vec<FailedKey>,
    /// With --delete-empty-bucket: whether the bucket was deleted.
    pub bucket_deleted: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct FailedKey {
    pub key: String,
    pub error: String,
}

#[derive(Debug, Default, Serialize)]
pub struct LeftBehind {
    pub snapshots: usize,
    pub snapshot_gib: i64,
    pub bundle_objects: usize,
    pub bundle_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct RetireReport {
    pub region: String,
    pub dry_run: bool,
    pub cleanup: bool,
    pub images: Vec<ImageReport>,
    pub snapshots: Vec<SnapshotReport>,
    pub bundles: Vec<BundleReport>,
    pub instances_terminated: Vec<String>,
    /// What stays in the account and keeps costing: kept snapshots and bundle objects.
    pub left_behind: LeftBehind,
    /// What could not be checked, and how the plan made up for it.
    pub notes: Vec<String>,
}

/// What every retirement starts from: the caller and every image it owns in the region.
pub struct RegionFacts {
    pub account_id: String,
    pub images: Vec<Image>,
}

pub async fn load_region(aws: &Aws, region: &str) -> Result<RegionFacts> {
    let account_id = aws.account_id(region).await?;
    let images = aws
        .ec2(region)
        .describe_images(&crate::aws::images::ImageQuery {
            owners: vec!["self".into()],
            ..Default::default()
        })
        .await?;
    Ok(RegionFacts { account_id, images })
}

/// Who uses these images, with notes on what could not be checked.
pub async fn usage_of(
    aws: &Aws,
    region: &str,
    image_ids: &[String],
) -> Result<crate::aws::usage::Usage> {
    aws.ec2(region)
        .image_usage(&aws.autoscaling(region), image_ids)
        .await
}

/// Everything else the planner needs for `targets`: the requested images that are not owned (or
/// gone), who uses them (unless already known), their snapshots and bundles (and every other
/// bundle in the same buckets, to see sharing).
pub async fn complete_inventory(
    aws: &Aws,
    region: &str,
    facts: RegionFacts,
    targets: &[String],
    known_usage: Option<crate::aws::usage::Usage>,
    mut known_pending: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, plan::SnapshotInfo>,
    >,
) -> Result<(Inventory, Vec<String>)> {
    let ec2 = aws.ec2(region);
    let account_id = facts.account_id;
    let mut images = facts.images;
    let mut inventory = Inventory {
        account_id: account_id.clone(),
        ..Default::default()
    };
    let owned_ids: BTreeSet<String> = images.iter().map(|i| i.image_id.clone()).collect();
    for target in targets.iter().filter(|t| !owned_ids.contains(*t)) {
        if let Some(pending) = known_pending.remove(target) {
            inventory
                .pending
                .insert(target.clone(), pending.keys().cloned().collect());
            inventory.snapshots.extend(pending);
            continue;
        }
        match ec2.describe_image(target).await? {
            Some(image) if image.owner_id.as_deref() == Some(account_id.as_str()) => {
                images.push(image)
            }
            Some(image) => inventory.foreign.push(image),
            None => {
                let pending = ec2.pending_cleanup(target).await?;
                if !pending.is_empty() {
                    inventory
                        .pending
                        .insert(target.clone(), pending.keys().cloned().collect());
                    inventory.snapshots.extend(pending);
                }
            }
        }
    }
    inventory.images = images;

    let requested: Vec<&Image> = inventory
        .images
        .iter()
        .filter(|image| targets.contains(&image.image_id))
        .collect();
    let requested_ids: Vec<String> = requested.iter().map(|i| i.image_id.clone()).collect();
    let usage = match known_usage {
        Some(known) => known,
        None => {
            let mut usage = usage_of(aws, region, &requested_ids).await?;
            usage.merge(
                aws.consumer_usage(region, &account_id, &requested_ids)
                    .await?,
            );
            usage
        }
    };
    let (users, notes) = (usage.users, usage.notes);

    let snapshot_ids: Vec<String> = requested
        .iter()
        .flat_map(|image| image.block_devices.iter())
        .filter_map(|device| device.snapshot_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let owned_snapshots = ec2.owned_snapshots(&snapshot_ids).await?;

    // Bundles of the requested instance-store images, and of every other image in those buckets.
    let buckets: BTreeSet<String> = requested
        .iter()
        .filter(|image| image.is_instance_store())
        .filter_map(|image| image.image_location.as_deref().and_then(split_location))
        .map(|(bucket, _, _)| bucket)
        .collect();
    let bundle_locations: Vec<(String, (String, String, String))> = inventory
        .images
        .iter()
        .filter(|image| image.is_instance_store())
        .filter_map(|image| {
            let location = split_location(image.image_location.as_deref()?)?;
            buckets
                .contains(&location.0)
                .then(|| (image.image_id.clone(), location))
        })
        .collect();
    let s3 = aws.s3(region);
    let bundles: Vec<(String, plan::BundleFacts)> = stream::iter(bundle_locations)
        .map(|(image_id, (bucket, key, prefix))| {
            let s3 = s3.clone();
            async move { (image_id, s3.bundle_facts(&bucket, &key, &prefix).await) }
        })
        .buffer_unordered(BUNDLE_CONCURRENCY)
        .collect()
        .await;

    inventory.users = users;
    inventory.snapshots.extend(owned_snapshots);
    inventory.bundles = bundles.into_iter().collect();
    Ok((inventory, notes))
}

pub fn confirm(settings: &Settings, printer: &Printer, report: &RetireReport) -> Result<()> {
    let interactive = settings.can_prompt();
    if !interactive {
        return Err(usage(
            "refusing to change anything without confirmation: pass --yes (or --dry-run to see the plan)",
        ));
    }
    printer.emit(report)?;
    ask(&format!("{} Proceed?", report.summary()))
}

/// Asks once on the terminal; anything but yes cancels with nothing changed.
pub fn ask(question: &str) -> Result<()> {
    let mut stderr = std::io::stderr();
    write!(stderr, "\n{question} [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(anyhow!("cancelled at the prompt; nothing was changed"))
    }
}

/// What execution may do beyond deregistering and deleting.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecuteOptions {
    pub terminate_instances: bool,
    pub delete_empty_bucket: bool,
}

pub async fn execute(aws: &Aws, region: &str, options: ExecuteOptions, report: &mut RetireReport) {
    interrupt::watch();
    let ec2 = aws.ec2(region);
    let s3 = aws.s3(region);
    execute_steps(&ec2, &s3, options, report).await;
    if interrupt::requested() {
        report.not_started();
    }
}

async fn execute_steps(ec2: &Ec2, s3: &S3, options: ExecuteOptions, report: &mut RetireReport) {
    // 1. Instances launched from the images, when asked to.
    if options.terminate_instances {
        let instances: Vec<String> = report
            .images
            .iter()
            .filter(|image| image.status == Status::Planned)
            .flat_map(|image| image.plan.users.iter())
            .filter(|user| user.terminable())
            .map(|user| user.id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !instances.is_empty() && !interrupt::requested() {
            match ec2.terminate_instances(&instances).await {
                Ok(()) => report.instances_terminated = instances,
                Err(err) => {
                    for image in report.images.iter_mut().filter(|image| {
                        image.status == Status::Planned
                            && image.plan.users.iter().any(|user| user.terminable())
                    }) {
                        image.fail(format!("instances not terminated, image kept: {err}"));
                    }
                }
            }
        }
    }

    // 2. Mark the snapshots that will need their own DeleteSnapshot after their image is gone,
    //    so a run killed in between can find them. A mark whose image then stays is removed
    //    again, so no later run finishes a retirement that did not happen.
    let mut marked: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for image in report
        .images
        .iter()
        .filter(|image| image.status == Status::Planned)
    {
        let to_mark: Vec<String> = report
            .snapshots
            .iter()
            .filter(|s| {
                s.plan.image_id == image.plan.image_id
                    && s.status == Status::Planned
                    && s.plan.deleted_by == DeletedBy::DeleteSnapshot
            })
            .map(|s| s.plan.snapshot_id.clone())
            .collect();
        if to_mark.is_empty() {
            continue;
        }
        if interrupt::requested() {
            break;
        }
        match ec2
            .mark_pending_cleanup(&image.plan.image_id, &to_mark)
            .await
        {
            Ok(()) => {
                marked.insert(image.plan.image_id.clone(), to_mark);
            }
            Err(err) => report.notes.push(format!(
                "could not tag the snapshots of {} for recovery ({err}); if this run is interrupted \
                 now, a re-run cannot finish them: delete them by hand",
                image.plan.image_id
            )),
        }
    }

    // An image whose bundle or snapshot marks were not seen to before Ctrl-C stays as it is.
    if interrupt::requested() {
        unmark_staying(ec2, report, &marked).await;
        return;
    }

    // 3. Deregister: groups of images that share snapshots one image at a time (so the last
    //    one's DeleteAssociatedSnapshots finds them free), the groups concurrently.
    let planned: Vec<(String, Vec<String>)> = report
        .images
        .iter()
        .filter(|image| image.status == Status::Planned)
        .map(|image| (image.plan.image_id.clone(), image.plan.snapshot_ids.clone()))
        .collect();
    let flags: std::collections::BTreeMap<String, (usize, bool)> = report
        .images
        .iter()
        .enumerate()
        .map(|(index, image)| {
            (
                image.plan.image_id.clone(),
                (index, image.plan.delete_associated_snapshots),
            )
        })
        .collect();
    let results: Vec<(usize, _)> = stream::iter(plan::sharing_groups(&planned))
        .map(|group| {
            let ec2 = ec2.clone();
            let flags = &flags;
            async move {
                let mut results = Vec::new();
                for image_id in group {
                    if interrupt::requested() {
                        break;
                    }
                    let (index, with_snapshots) = flags[&image_id];
                    results.push((index, ec2.deregister(&image_id, with_snapshots).await));
                }
                results
            }
        })
        .buffer_unordered(MUTATION_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    // What DeleteAssociatedSnapshots did with each snapshot; a success anywhere wins (images
    // sharing a snapshot report it skipped until the last of them goes).
    let mut with_image: std::collections::BTreeMap<String, String> = Default::default();
    // Images whose DeregisterImage answer was lost (a retry found them gone): what AWS did with
    // their snapshots is unknown, and is looked up below rather than guessed.
    let mut answer_lost: BTreeSet<String> = BTreeSet::new();
    // A DeregisterImage that failed may still have done its work (the answer was lost on the
    // way back): look, rather than report an image failed that is gone, with its snapshots.
    let mut results_seen = Vec::new();
    for (index, result) in results {
        let result = match result {
            Err(err) => match ec2
                .describe_image(&report.images[index].plan.image_id)
                .await
            {
                Ok(None) => Ok(None),
                _ => Err(err),
            },
            ok => ok,
        };
        results_seen.push((index, result));
    }
    for (index, result) in results_seen {
        let image = &mut report.images[index];
        match result {
            Ok(Some(snapshot_results)) => {
                image.status = Status::Done;
                for (id, code) in snapshot_results {
                    let entry = with_image.entry(id).or_default();
                    if entry.as_str() != "success" {
                        *entry = code;
                    }
                }
            }
            Ok(None) => {
                image.status = Status::Done;
                image.error = Some("already deregistered (the answer to our call was lost)".into());
                answer_lost.insert(image.plan.image_id.clone());
            }
            Err(err) => image.fail(err.to_string()),
        }
    }
    unmark_staying(ec2, report, &marked).await;
    let unknown_fate = snapshots_of_lost_answers(report, &answer_lost, &with_image);
    let still_there = if unknown_fate.is_empty() {
        Ok(BTreeSet::new())
    } else {
        ec2.owned_snapshots(&unknown_fate)
            .await
            .map(|found| found.into_keys().collect::<BTreeSet<_>>())
    };

    // 4. Bundles of the images that are gone now (AWS's own order for instance-store images:
    //    deregister, then delete the bundle). A bundle whose image stays is never touched, so a
    //    refused deregistration cannot leave an image without its bundle; a bundle left by a
    //    failure or Ctrl-C is one no image uses, which `ami cleanup --orphan-bundles` sweeps.
    let mut emptied_buckets: BTreeSet<String> = BTreeSet::new();
    for bundle in report.bundles.iter_mut() {
        let image_gone = report.images.iter().any(|image| {
            image.plan.image_id == bundle.plan.image_id && image.status == Status::Done
        });
        if bundle.status != Status::Planned {
            continue;
        }
        if !image_gone {
            bundle.status = Status::Skipped;
            bundle.error = Some("its image was not deregistered".into());
            continue;
        }
        if interrupt::requested() {
            break;
        }
        let outcome = s3
            .delete_bundle(&bundle.plan.bucket, &bundle.plan.objects)
            .await;
        if outcome.failed.is_empty() {
            bundle.status = Status::Done;
            emptied_buckets.insert(bundle.plan.bucket.clone());
        } else {
            bundle.status = Status::Failed;
            bundle.error = Some(format!(
                "{} of {} objects not deleted; `ami cleanup --orphan-bundles s3://{}/{}` finishes it",
                outcome.failed.len(),
                bundle.plan.objects.len(),
                bundle.plan.bucket,
                bundle_prefix(&bundle.plan.manifest_key)
            ));
            bundle.failed_keys = outcome
                .failed
                .into_iter()
                .map(|(key, error)| FailedKey { key, error })
                .collect();
        }
    }

    // 5. Snapshots of images that are gone now.
    let gone: BTreeSet<String> = report
        .images
        .iter()
        .filter(|image| image.status == Status::Done)
        .map(|image| image.plan.image_id.clone())
        .collect();
    // Every requested image that uses a snapshot must be gone before it can be.
    let mut still_registered: std::collections::BTreeMap<String, String> = Default::default();
    for image in report.images.iter().filter(|image| {
        image.plan.action == ImageAction::Deregister && image.status != Status::Done
    }) {
        for id in &image.plan.snapshot_ids {
            still_registered.insert(id.clone(), image.plan.image_id.clone());
        }
    }
    let mut to_delete = Vec::new();
    for (index, snapshot) in report.snapshots.iter_mut().enumerate() {
        if snapshot.status != Status::Planned {
            continue;
        }
        let id = &snapshot.plan.snapshot_id;
        if !gone.contains(&snapshot.plan.image_id) || still_registered.contains_key(id) {
            let holder = still_registered
                .get(id)
                .cloned()
                .unwrap_or_else(|| snapshot.plan.image_id.clone());
            snapshot.status = Status::Skipped;
            snapshot.error = Some(format!("{holder} was not deregistered"));
            continue;
        }
        if unknown_fate.contains(id) {
            match &still_there {
                // Still there: delete it as planned; if an image the plan did not know of uses
                // it, AWS refuses and the snapshot is reported failed, never "deleted".
                Ok(existing) if existing.contains(id) => to_delete.push((index, id.clone())),
                Ok(_) => {
                    snapshot.status = Status::Done;
                    snapshot.error = Some("deleted with its image".into());
                }
                Err(err) => {
                    snapshot.status = Status::Failed;
                    snapshot.error = Some(format!(
                        "could not check whether AWS deleted it with its image ({err}); a re-run will"
                    ));
                }
            }
            continue;
        }
        // Anything but success (skipped, client-error, internal-error, no entry) leaves the
        // snapshot to its own DeleteSnapshot: it ends deleted, or failed with AWS's reason.
        match with_image.get(id).map(String::as_str) {
            Some("success") => snapshot.status = Status::Done,
            _ => to_delete.push((index, id.clone())),
        }
    }
    let results: Vec<(usize, _)> = stream::iter(to_delete)
        .filter(|_| futures::future::ready(!interrupt::requested()))
        .map(|(index, snapshot_id)| {
            let ec2: Ec2 = ec2.clone();
            async move { (index, ec2.delete_snapshot(&snapshot_id).await) }
        })
        .buffer_unordered(MUTATION_CONCURRENCY)
        .collect()
        .await;
    for (index, result) in results {
        let snapshot = &mut report.snapshots[index];
        (snapshot.status, snapshot.error) = deletion_status(result);
    }

    // 6. Buckets the cleanup emptied.
    if options.delete_empty_bucket && !interrupt::requested() {
        for bucket in emptied_buckets {
            let result = s3.delete_bucket_if_empty(&bucket).await;
            for bundle in report
                .bundles
                .iter_mut()
                .filter(|b| b.plan.bucket == bucket)
            {
                match &result {
                    Ok(deleted) => bundle.bucket_deleted = Some(*deleted),
                    Err(err) => {
                        bundle.bucket_deleted = Some(false);
                        report
                            .notes
                            .push(format!("bucket {bucket} not deleted: {err}"));
                    }
                }
            }
        }
    }
}

/// The key prefix a manifest's parts live under (up to its last `/`).
fn bundle_prefix(manifest_key: &str) -> &str {
    match manifest_key.rfind('/') {
        Some(index) => &manifest_key[..=index],
        None => "",
    }
}

/// Removes the pending-cleanup marks of images that were not deregistered (refused, failed,
/// interrupted before their turn): their snapshots must not be finished by a later run.
async fn unmark_staying(
    ec2: &Ec2,
    report: &mut RetireReport,
    marked: &std::collections::BTreeMap<String, Vec<String>>,
) {
    let staying: Vec<(&String, &Vec<String>)> = marked
        .iter()
        .filter(|(image_id, _)| {
            report
                .images
                .iter()
                .any(|image| &image.plan.image_id == *image_id && image.status != Status::Done)
        })
        .collect();
    for (image_id, snapshots) in staying {
        if let Err(err) = ec2.unmark_pending_cleanup(image_id, snapshots).await {
            report.notes.push(format!(
                "{image_id} stays, but the {PENDING_CLEANUP_TAG} tag on {} could not be removed \
                 ({err}): remove it by hand, or a later cleanup deletes them once the image goes",
                snapshots.join(", ")
            ));
        }
    }
}

/// Snapshots left to DeregisterImage that AWS may or may not have deleted: one of their images
/// was deregistered by an attempt whose answer never arrived, and no answer reported them deleted.
fn snapshots_of_lost_answers(
    report: &RetireReport,
    answer_lost: &BTreeSet<String>,
    with_image: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    if answer_lost.is_empty() {
        return Vec::new();
    }
    report
        .snapshots
        .iter()
        .filter(|s| s.status == Status::Planned && s.plan.deleted_by == DeletedBy::DeregisterImage)
        .filter(|s| with_image.get(&s.plan.snapshot_id).map(String::as_str) != Some("success"))
        .filter(|s| {
            report.images.iter().any(|image| {
                answer_lost.contains(&image.plan.image_id)
                    && image.plan.snapshot_ids.contains(&s.plan.snapshot_id)
            })
        })
        .map(|s| s.plan.snapshot_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A snapshot deletion's status; one already gone counts as done.
pub fn deletion_status(
    result: Result<Deleted, crate::aws::error::AwsError>,
) -> (Status, Option<String>) {
    match result {
        Ok(Deleted::Deleted) => (Status::Done, None),
        Ok(Deleted::AlreadyGone) => (Status::Done, Some("already deleted".into())),
        Err(err) => (Status::Failed, Some(err.to_string())),
    }
}

impl RetireReport {
    /// After Ctrl-C: whatever is still planned was never attempted.
    fn not_started(&mut self) {
        let reason = || Some("not started: interrupted".to_string());
        for image in self
            .images
            .iter_mut()
            .filter(|i| i.status == Status::Planned)
        {
            image.status = Status::NotStarted;
            image.error = reason();
        }
        for snapshot in self
            .snapshots
            .iter_mut()
            .filter(|s| s.status == Status::Planned)
        {
            snapshot.status = Status::NotStarted;
            snapshot.error = reason();
        }
        for bundle in self
            .bundles
            .iter_mut()
            .filter(|b| b.status == Status::Planned)
        {
            bundle.status = Status::NotStarted;
            bundle.error = reason();
        }
    }
}

impl ImageReport {
    fn fail(&mut self, error: String) {
        self.status = Status::Failed;
        self.error = Some(error);
    }
}

impl RetireReport {
    pub fn new(region: &str, dry_run: bool, cleanup: bool, plan: Plan, notes: Vec<String>) -> Self {
        let images = plan
            .images
            .into_iter()
            .map(|image| {
                let status = match image.action {
                    ImageAction::Deregister => Status::Planned,
                    ImageAction::AlreadyGone => Status::Done,
                    ImageAction::NotFound => Status::NotFound,
                    ImageAction::Blocked => Status::Skipped,
                };
                ImageReport {
                    plan: image,
                    status,
                    error: None,
                }
            })
            .collect();
        let snapshots = plan
            .snapshots
            .into_iter()
            .map(|snapshot| SnapshotReport {
                status: snapshot.action.into(),
                plan: snapshot,
                error: None,
            })
            .collect();
        let bundles = plan
            .bundles
            .into_iter()
            .map(|bundle| BundleReport {
                status: bundle.action.into(),
                plan: bundle,
                error: None,
                failed_keys: Vec::new(),
                bucket_deleted: None,
            })
            .collect();
        let mut report = RetireReport {
            region: region.to_string(),
            dry_run,
            cleanup,
            images,
            snapshots,
            bundles,
            instances_terminated: Vec::new(),
            left_behind: LeftBehind::default(),
            notes,
        };
        report.tally_left_behind();
        report
    }

    pub fn has_work(&self) -> bool {
        self.images.iter().any(|i| i.status == Status::Planned)
            || self.snapshots.iter().any(|s| s.status == Status::Planned)
    }

    /// Kept and undeleted snapshots and bundle objects: what keeps costing money.
    pub fn tally_left_behind(&mut self) {
        let kept_snapshots: Vec<&SnapshotReport> = self
            .snapshots
            .iter()
            .filter(|s| !matches!(s.status, Status::Done | Status::Planned))
            .filter(|s| !s.plan.reason.starts_with("also used by"))
            .collect();
        let kept_bundles: Vec<&BundleReport> = self
            .bundles
            .iter()
            .filter(|b| !matches!(b.status, Status::Done | Status::Planned))
            .collect();
        self.left_behind = LeftBehind {
            snapshots: kept_snapshots.len(),
            snapshot_gib: kept_snapshots
                .iter()
                .map(|s| i64::from(s.plan.size_gib.unwrap_or(0)))
                .sum(),
            bundle_objects: kept_bundles.iter().map(|b| b.plan.existing_objects).sum(),
            bundle_bytes: kept_bundles.iter().map(|b| b.plan.bytes).sum(),
        };
    }

    pub fn summary(&self) -> String {
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let images = self
            .images
            .iter()
            .filter(|i| i.status == Status::Planned)
            .count();
        let snapshots = self
            .snapshots
            .iter()
            .filter(|s| s.status == Status::Planned)
            .count();
        let objects: usize = self
            .bundles
            .iter()
            .filter(|b| b.status == Status::Planned)
            .map(|b| b.plan.objects.len())
            .sum();
        let mut parts = vec![format!("deregister {}", count(images, "image"))];
        if snapshots > 0 {
            parts.push(format!("delete {}", count(snapshots, "snapshot")));
        }
        if objects > 0 {
            parts.push(format!("delete {}", count(objects, "S3 object")));
        }
        let mut text = parts.join(", ");
        if let Some(first) = text.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        format!("{text} in {}.", self.region)
    }

    pub fn outcome(&self) -> Outcome {
        let failed = self
            .images
            .iter()
            .filter(|i| {
                matches!(
                    i.status,
                    Status::Failed | Status::NotFound | Status::NotStarted
                )
            })
            .count()
            + self
                .images
                .iter()
                .filter(|i| i.plan.action == ImageAction::Blocked)
                .count()
            + self
                .snapshots
                .iter()
                .filter(|s| matches!(s.status, Status::Failed | Status::NotStarted))
                .count()
            + self
                .bundles
                .iter()
                .filter(|b| matches!(b.status, Status::Failed | Status::NotStarted))
                .count();
        let done = self.images.iter().any(|i| i.status == Status::Done)
            || self.snapshots.iter().any(|s| s.status == Status::Done)
            || self.bundles.iter().any(|b| b.status == Status::Done);
        match (failed, done || self.dry_run) {
            (0, _) => Outcome::Success,
            // --dry-run shows the plan and succeeds; the plan says what is blocked.
            (_, _) if self.dry_run => Outcome::Success,
            (_, true) => Outcome::Partial,
            (_, false) => Outcome::Failed,
        }
    }
}

pub(super) fn status_cell(style: &TableStyle, status: Status, dry_run: bool) -> comfy_table::Cell {
    let (text, color) = match status {
        Status::Planned if dry_run => ("would do", None),
        Status::Planned => ("planned", None),
        Status::Done => ("done", Some(Color::Green)),
        Status::Skipped => ("kept", Some(Color::Yellow)),
        Status::Failed => ("FAILED", Some(Color::Red)),
        Status::NotFound => ("not found", Some(Color::Red)),
        Status::NotStarted => ("not started", Some(Color::Yellow)),
    };
    style.cell(text, color)
}

fn with_error(reason: &str, error: &Option<String>) -> String {
    match error {
        Some(error) => format!("{reason}: {error}"),
        None => reason.to_string(),
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl Render for RetireReport {
    fn render(&self, style: &TableStyle) -> String {
        let mut out = Vec::new();
        let mut images = style.table(&["IMAGE", "NAME", "ACTION", "STATUS", "WHY"]);
        for image in &self.images {
            let action = match image.plan.action {
                ImageAction::Deregister => "deregister",
                ImageAction::AlreadyGone => "finish cleanup",
                ImageAction::NotFound => "-",
                ImageAction::Blocked => "keep",
            };
            images.add_row(vec![
                style.cell(&image.plan.image_id, None),
                style.cell(image.plan.name.as_deref().unwrap_or("-"), None),
                style.cell(action, None),
                status_cell(style, image.status, self.dry_run),
                style.cell(with_error(&image.plan.reason, &image.error), None),
            ]);
        }
        out.push(images.to_string());
        if !self.snapshots.is_empty() {
            let mut table =
                style.table(&["SNAPSHOT", "OF IMAGE", "SIZE", "ACTION", "STATUS", "WHY"]);
            for snapshot in &self.snapshots {
                table.add_row(vec![
                    style.cell(&snapshot.plan.snapshot_id, None),
                    style.cell(&snapshot.plan.image_id, None),
                    style.cell(
                        snapshot
                            .plan
                            .size_gib
                            .map(|size| format!("{size} GiB"))
                            .unwrap_or_else(|| "-".into()),
                        None,
                    ),
                    style.cell(action_word(snapshot.plan.action), None),
                    status_cell(style, snapshot.status, self.dry_run),
                    style.cell(with_error(&snapshot.plan.reason, &snapshot.error), None),
                ]);
            }
            out.push(table.to_string());
        }
        if !self.bundles.is_empty() {
            let mut table = style.table(&[
                "BUNDLE", "OF IMAGE", "OBJECTS", "SIZE", "ACTION", "STATUS", "WHY",
            ]);
            for bundle in &self.bundles {
                let mut why = with_error(&bundle.plan.reason, &bundle.error);
                if !bundle.plan.missing_parts.is_empty() {
                    why.push_str(&format!(
                        " ({} listed parts already missing)",
                        bundle.plan.missing_parts.len()
                    ));
                }
                if bundle.bucket_deleted == Some(true) {
                    why.push_str("; bucket deleted");
                }
                table.add_row(vec![
                    style.cell(
                        format!("s3://{}/{}", bundle.plan.bucket, bundle.plan.manifest_key),
                        None,
                    ),
                    style.cell(&bundle.plan.image_id, None),
                    style.cell(bundle.plan.objects.len(), None),
                    style.cell(human_bytes(bundle.plan.bytes), None),
                    style.cell(action_word(bundle.plan.action), None),
                    status_cell(style, bundle.status, self.dry_run),
                    style.cell(why, None),
                ]);
            }
            out.push(table.to_string());
        }
        if !self.instances_terminated.is_empty() {
            out.push(format!(
                "Terminated: {}",
                self.instances_terminated.join(", ")
            ));
        }
        let left = &self.left_behind;
        if left.snapshots > 0 || left.bundle_bytes > 0 {
            out.push(format!(
                "Left behind, and still billed: {} snapshot{} ({} GiB), {} bundle object{} ({}).{}",
                left.snapshots,
                if left.snapshots == 1 { "" } else { "s" },
                left.snapshot_gib,
                left.bundle_objects,
                if left.bundle_objects == 1 { "" } else { "s" },
                human_bytes(left.bundle_bytes),
                if self.cleanup {
                    ""
                } else {
                    " --cleanup deletes what only these images use."
                }
            ));
        }
        for note in &self.notes {
            out.push(format!("note: {note}"));
        }
        if self.dry_run {
            out.push("Dry run: nothing was changed.".to_string());
        }
        out.join("\n\n")
    }
}

fn action_word(action: ItemAction) -> &'static str {
    match action {
        ItemAction::Delete => "delete",
        ItemAction::Keep => "keep",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MiB");
    }
}
