//! Carrying out a retirement plan, in the order that never strands anything, and recording what
//! AWS did with every item.

use anyhow::Result;
use futures::{StreamExt, stream};
use std::collections::{BTreeMap, BTreeSet};

use super::report::{FailedKey, ImageReport, RetireReport, Status};
use crate::aws::error::AwsError;
use crate::aws::settle::Fresh;
use crate::aws::snapshots::{Deleted, PENDING_CLEANUP_TAG};
use crate::aws::{Aws, Ec2, S3};
use crate::interrupt;
use crate::plan;
use crate::plan::after::{Deregistration, ImageFate, SnapshotNext, after_deregistration};
use crate::plan::state::Standing;

/// What execution may do beyond deregistering and deleting.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecuteOptions {
    pub terminate_instances: bool,
    pub delete_empty_bucket: bool,
}

pub async fn execute(aws: &Aws, region: &str, options: ExecuteOptions, report: &mut RetireReport) {
    interrupt::watch(crate::output::interrupted);
    let ec2 = aws.ec2(region);
    let s3 = aws.s3(region);
    execute_steps(&ec2, &s3, options, report).await;
    if interrupt::requested() {
        report.not_started();
    }
}

/// The steps, in the order that never strands anything: each carries out its calls and records
/// what AWS did; what that means for the snapshots is the planner's (`plan::after`).
async fn execute_steps(ec2: &Ec2, s3: &S3, options: ExecuteOptions, report: &mut RetireReport) {
    if options.terminate_instances {
        terminate_users(ec2, report).await;
    }
    let marked = mark_for_recovery(ec2, report).await;
    // An image whose bundle or snapshot marks were not seen to before Ctrl-C stays as it is.
    if interrupt::requested() {
        unmark_staying(ec2, report, &marked).await;
        return;
    }
    let facts = deregister_planned(ec2, report).await;
    unmark_staying(ec2, report, &marked).await;
    let emptied_buckets = delete_bundles(s3, report).await;
    delete_freed_snapshots(ec2, report, &facts).await;
    if options.delete_empty_bucket && !interrupt::requested() {
        delete_emptied_buckets(s3, report, emptied_buckets).await;
    }
}

/// 1. Instances launched from the images, when asked to: if they cannot be terminated, their
///    images stay.
async fn terminate_users(ec2: &Ec2, report: &mut RetireReport) {
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
    if instances.is_empty() || interrupt::requested() {
        return;
    }
    match ec2.terminate_instances(&instances).await {
        Ok(()) => report.instances_terminated = instances,
        Err(err) => {
            for image in report.images.iter_mut().filter(|image| {
                image.status == Status::Planned
                    && image.plan.users.iter().any(|user| user.terminable())
            }) {
                image.fail(format!("instances not terminated, image kept: {err}"));
                image.code = err.code.clone();
            }
        }
    }
}

/// 2. Marks the snapshots this run may have to delete by its own DeleteSnapshot once their
///    image is gone (`plan::marked_first`), so a run killed in between can find them. A mark
///    whose image then stays is removed again (`unmark_staying`), so no later run finishes a
///    retirement that did not happen. One CreateTags per image, a few at a time. Returns the
///    marks made, by image.
async fn mark_for_recovery(ec2: &Ec2, report: &mut RetireReport) -> BTreeMap<String, Vec<String>> {
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
    let mut to_mark: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for snapshot in report
        .snapshots
        .iter()
        .filter(|s| marking.contains(s.plan.snapshot_id.as_str()))
        // Under the image it is planned with, if that image goes in this run.
        .filter(|s| planned_ids.contains(s.plan.image_id.as_str()))
    {
        to_mark
            .entry(snapshot.plan.image_id.clone())
            .or_default()
            .push(snapshot.plan.snapshot_id.clone());
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
        .buffer_unordered(crate::concurrency::MUTATIONS)
        .collect()
        .await;
    let mut marked = BTreeMap::new();
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
    marked
}

/// 3. Deregisters: groups of images that share snapshots one image at a time (so the last one's
///    DeleteAssociatedSnapshots finds them free), the groups concurrently. Returns what AWS did.
async fn deregister_planned(ec2: &Ec2, report: &mut RetireReport) -> Deregistration {
    let planned: Vec<(String, Vec<String>)> = report
        .images
        .iter()
        .filter(|image| image.status == Status::Planned)
        .map(|image| (image.plan.image_id.clone(), image.plan.snapshot_ids.clone()))
        .collect();
    let flags: BTreeMap<String, (usize, bool)> = report
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
        .buffer_unordered(crate::concurrency::MUTATIONS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut facts = Deregistration::default();
    for (index, result) in results {
        // A DeregisterImage that failed may still have done its work (the answer was lost on
        // the way back): look, once every group is through (AWS has had the longest to show
        // it), rather than report an image failed that is gone, with its snapshots.
        let result = match result {
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
        let image = &mut report.images[index];
        let fate = match result {
            Ok(Some(snapshot_results)) => {
                image.status = Status::Done;
                facts.record_snapshot_results(snapshot_results);
                ImageFate::Deregistered
            }
            Ok(None) => {
                image.status = Status::Done;
                image.error = Some("already deregistered (the answer to our call was lost)".into());
                ImageFate::GoneAnswerLost
            }
            Err(err) => {
                image.refused(&err);
                ImageFate::Stays
            }
        };
        facts.images.insert(image.plan.image_id.clone(), fate);
    }
    for image in report
        .images
        .iter()
        .filter(|image| image.status == Status::Done)
    {
        facts
            .images
            .entry(image.plan.image_id.clone())
            .or_insert(ImageFate::AlreadyGone);
    }
    facts
}

/// 4. Bundles of the images that are gone now (AWS's own order for instance-store images:
///    deregister, then delete the bundle). A bundle whose image stays is never touched, so a
///    refused deregistration cannot leave an image without its bundle; a bundle left by a
///    failure or Ctrl-C is one no image uses, which `ami cleanup --orphan-bundles` sweeps.
///    Returns the buckets emptied.
async fn delete_bundles(s3: &S3, report: &mut RetireReport) -> BTreeSet<String> {
    let mut emptied_buckets = BTreeSet::new();
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
    emptied_buckets
}

/// 5. Snapshots of images that are gone now: what `plan::after` decides for each, carried out.
async fn delete_freed_snapshots(ec2: &Ec2, report: &mut RetireReport, facts: &Deregistration) {
    let images: Vec<&plan::ImagePlan> = report.images.iter().map(|image| &image.plan).collect();
    let planned: Vec<&plan::SnapshotPlan> = report
        .snapshots
        .iter()
        .filter(|s| s.status == Status::Planned)
        .map(|s| &s.plan)
        .collect();
    let unknown = plan::after::fate_unknown(&images, &planned, facts);
    let still_there = if unknown.is_empty() {
        Ok(BTreeSet::new())
    } else {
        let ids: Vec<String> = unknown.iter().cloned().collect();
        ec2.owned_snapshots(&ids)
            .await
            .map(|found| found.into_keys().collect::<BTreeSet<_>>())
            .map_err(|err| err.to_string())
    };
    let next: Vec<(usize, SnapshotNext)> = report
        .snapshots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.status == Status::Planned)
        .map(|(index, s)| {
            let next = after_deregistration(&s.plan, &images, facts, &unknown, &still_there);
            (index, next)
        })
        .collect();
    let mut to_delete = Vec::new();
    for (index, next) in next {
        let snapshot = &mut report.snapshots[index];
        match next {
            SnapshotNext::Delete => to_delete.push((index, snapshot.plan.snapshot_id.clone())),
            SnapshotNext::Done { note } => (snapshot.status, snapshot.error) = (Status::Done, note),
            SnapshotNext::Skipped(why) => {
                (snapshot.status, snapshot.error) = (Status::Skipped, Some(why));
            }
            SnapshotNext::Failed(why) => {
                (snapshot.status, snapshot.error) = (Status::Failed, Some(why));
            }
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
        .buffer_unordered(crate::concurrency::MUTATIONS)
        .collect()
        .await;
    for (index, result) in results {
        let snapshot = &mut report.snapshots[index];
        (snapshot.status, snapshot.error, snapshot.code) = deletion_status(result);
    }
}

/// 6. Buckets the cleanup emptied, with --delete-empty-bucket.
async fn delete_emptied_buckets(s3: &S3, report: &mut RetireReport, buckets: BTreeSet<String>) {
    for bucket in buckets {
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
    marked: &BTreeMap<String, Vec<String>>,
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
        // A mark left behind would let a later cleanup delete the snapshot once its image goes
        // by other means: the snapshot is kept, and the run fails naming it.
        if let Err(err) = ec2.unmark_pending_cleanup(&image_id, &snapshots).await {
            for snapshot in report
                .snapshots
                .iter_mut()
                .filter(|s| snapshots.contains(&s.plan.snapshot_id))
            {
                snapshot.status = Status::Failed;
                snapshot.code = err.code.clone();
                snapshot.error = Some(format!(
                    "kept, but its {PENDING_CLEANUP_TAG} tag (for {image_id}) could not be \
                     removed ({err}): remove it by hand, or a later cleanup deletes the \
                     snapshot once no image uses it"
                ));
            }
        }
    }
}

/// A snapshot deletion's status, what went wrong and AWS's error code; one already gone counts
/// as done.
pub fn deletion_status(
    result: Result<Deleted, AwsError>,
) -> (Status, Option<String>, Option<String>) {
    match result {
        Ok(Deleted::Deleted) => (Status::Done, None, None),
        Ok(Deleted::AlreadyGone) => (Status::Done, Some("already deleted".into()), None),
        Err(err) => (Status::Failed, Some(err.to_string()), err.code),
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

    /// Failed as AWS answered: its message in `error`, its code in `code`.
    fn refused(&mut self, err: &AwsError) {
        self.fail(err.to_string());
        self.code = err.code.clone();
    }
}
