//! Carrying out a retirement plan, in the order that never strands anything, and recording what
//! AWS did with every item.

use anyhow::Result;
use futures::{StreamExt, stream};
use std::collections::BTreeSet;

use super::report::{FailedKey, ImageReport, RetireReport, Status};
use crate::aws::settle::Fresh;
use crate::aws::snapshots::{Deleted, PENDING_CLEANUP_TAG};
use crate::aws::{Aws, Ec2, S3};
use crate::interrupt;
use crate::model::SnapshotReturnCode;
use crate::plan::state::Standing;
use crate::plan::{self, DeletedBy, ImageAction};

/// Mutating EC2 calls share an account-wide rate bucket; 8 in flight keeps well inside it while
/// hiding round-trip latency. The SDK's adaptive retries slow down further if AWS throttles.
const MUTATION_CONCURRENCY: usize = 8;

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

    // 2. Mark the snapshots this run may have to delete by its own DeleteSnapshot once their
    //    image is gone (`plan::marked_first`), so a run killed in between can find them. A mark
    //    whose image then stays is removed again, so no later run finishes a retirement that
    //    did not happen. Images are marked a few at a time: one CreateTags each.
    let planned_images: Vec<&plan::ImagePlan> = report
        .images
        .iter()
        .filter(|image| image.status == Status::Planned)
        .map(|image| &image.plan)
        .collect();
    let marking = plan::marked_first(
        &planned_images,
        report
            .snapshots
            .iter()
            .filter(|s| s.status == Status::Planned)
            .map(|s| &s.plan),
    );
    let planned_ids: BTreeSet<&str> = planned_images
        .iter()
        .map(|image| image.image_id.as_str())
        .collect();
    let mut to_mark: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for snapshot in report
        .snapshots
        .iter()
        .filter(|s| marking.contains(s.plan.snapshot_id.as_str()))
    {
        // Under the image it is planned with, if that image goes in this run.
        if planned_ids.contains(snapshot.plan.image_id.as_str()) {
            to_mark
                .entry(snapshot.plan.image_id.clone())
                .or_default()
                .push(snapshot.plan.snapshot_id.clone());
        }
    }
    let mark_results: Vec<(String, Vec<String>, Result<()>)> = stream::iter(to_mark)
        .filter(|_| futures::future::ready(!interrupt::requested()))
        .map(|(image_id, snapshots)| {
            let ec2 = ec2.clone();
            async move {
                let result = ec2.mark_pending_cleanup(&image_id, &snapshots).await;
                (image_id, snapshots, result)
            }
        })
        .buffer_unordered(MUTATION_CONCURRENCY)
        .collect()
        .await;
    let mut marked: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (image_id, snapshots, result) in mark_results {
        match result {
            Ok(()) => {
                marked.insert(image_id, snapshots);
            }
            Err(err) => report.notes.push(format!(
                "could not tag the snapshots of {image_id} for recovery ({err}); if this run is \
                 interrupted now, a re-run cannot finish them: delete them by hand"
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
    let mut with_image: std::collections::BTreeMap<String, SnapshotReturnCode> = Default::default();
    // Images whose DeregisterImage answer was lost (a retry found them gone): what AWS did with
    // their snapshots is unknown, and is looked up below rather than guessed.
    let mut answer_lost: BTreeSet<String> = BTreeSet::new();
    // A DeregisterImage that failed may still have done its work (the answer was lost on the
    // way back): look, rather than report an image failed that is gone, with its snapshots.
    let mut results_seen = Vec::new();
    for (index, result) in results {
        let result = match result {
            // Gone, or listed as deregistered (AWS lists it for a while): it went.
            Err(err) => match ec2
                .describe_image(&report.images[index].plan.image_id)
                .await
            {
                Ok(None) => Ok(None),
                Ok(Some(image)) if !Standing::of(&image.state).exists() => Ok(None),
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
                    // Images sharing a snapshot: one success is enough.
                    let entry = with_image
                        .entry(id)
                        .or_insert(SnapshotReturnCode::Other(String::new()));
                    if *entry != SnapshotReturnCode::Success {
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
        match with_image.get(id) {
            Some(SnapshotReturnCode::Success) => snapshot.status = Status::Done,
            _ => to_delete.push((index, id.clone())),
        }
    }
    let results: Vec<(usize, _)> = stream::iter(to_delete)
        .filter(|_| futures::future::ready(!interrupt::requested()))
        .map(|(index, snapshot_id)| {
            let ec2: Ec2 = ec2.clone();
            // Its image is gone: deregistered by this run, or by an interrupted one this run
            // finishes, maybe seconds ago. AWS may say it is in use for a while (`settle`).
            async move {
                let deleted = ec2
                    .once_caught_up(Fresh::FreedSnapshot, || ec2.delete_snapshot(&snapshot_id))
                    .await;
                (index, deleted)
            }
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

/// Removes the pending-cleanup marks that no retirement stands behind any more: those of images
/// that were not deregistered (refused, failed, interrupted before their turn), and those of
/// snapshots another image of the run still uses because it stays (a snapshot two images share
/// is marked under one of them; its deletion needed both to go). Their snapshots must not be
/// finished by a later run.
async fn unmark_staying(
    ec2: &Ec2,
    report: &mut RetireReport,
    marked: &std::collections::BTreeMap<String, Vec<String>>,
) {
    let staying: BTreeSet<&str> = report
        .images
        .iter()
        .filter(|image| image.status != Status::Done)
        .map(|image| image.plan.image_id.as_str())
        .collect();
    let held: BTreeSet<&str> = report
        .images
        .iter()
        .filter(|image| staying.contains(image.plan.image_id.as_str()))
        .flat_map(|image| image.plan.snapshot_ids.iter().map(String::as_str))
        .collect();
    let unmark: Vec<(String, Vec<String>)> = marked
        .iter()
        .map(|(image_id, snapshots)| {
            let snapshots: Vec<String> = snapshots
                .iter()
                .filter(|id| staying.contains(image_id.as_str()) || held.contains(id.as_str()))
                .cloned()
                .collect();
            (image_id.clone(), snapshots)
        })
        .filter(|(_, snapshots)| !snapshots.is_empty())
        .collect();
    for (image_id, snapshots) in unmark {
        if let Err(err) = ec2.unmark_pending_cleanup(&image_id, &snapshots).await {
            report.notes.push(format!(
                "the {PENDING_CLEANUP_TAG} tag on {} (for {image_id}) could not be removed, though \
                 an image that uses them stays ({err}): remove it by hand, or a later cleanup \
                 deletes them once no image uses them",
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
    with_image: &std::collections::BTreeMap<String, SnapshotReturnCode>,
) -> Vec<String> {
    if answer_lost.is_empty() {
        return Vec::new();
    }
    report
        .snapshots
        .iter()
        .filter(|s| s.status == Status::Planned && s.plan.deleted_by == DeletedBy::DeregisterImage)
        .filter(|s| with_image.get(&s.plan.snapshot_id) != Some(&SnapshotReturnCode::Success))
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
        self.not_started_because("not started: interrupted");
    }

    /// Whatever is still planned was not done, and counts as failed.
    pub(super) fn fail_planned(&mut self, reason: &str) {
        self.not_started_because(reason);
        for image in self
            .images
            .iter_mut()
            .filter(|i| i.status == Status::NotStarted)
        {
            image.status = Status::Failed;
        }
        for snapshot in self
            .snapshots
            .iter_mut()
            .filter(|s| s.status == Status::NotStarted)
        {
            snapshot.status = Status::Failed;
        }
        for bundle in self
            .bundles
            .iter_mut()
            .filter(|b| b.status == Status::NotStarted)
        {
            bundle.status = Status::Failed;
        }
    }

    /// Whatever is still planned was never attempted, for this reason.
    pub(super) fn not_started_because(&mut self, reason: &str) {
        let reason = || Some(reason.to_string());
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
