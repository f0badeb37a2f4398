//! Carrying out a region's cleanup: stale marks, the retirement, staged actions, orphans.

use chrono::Utc;
use futures::{StreamExt, stream};

use super::RegionCleanup;
use crate::aws::Aws;
use crate::commands::retire::{ExecuteOptions, Status, deletion_status, execute};
use crate::error::one_line;
use crate::interrupt;
use crate::plan::retention::RetireAction;

/// Marks whose image still exists are removed before anything else is done: an image this run
/// retires is marked again by its own retirement, for exactly the snapshots it deletes.
pub(super) async fn remove_stale_marks(aws: &Aws, region: &mut RegionCleanup) {
    let marks = std::mem::take(&mut region.stale_marks);
    let problems = unmark(aws, &region.region, marks).await;
    region.problems.extend(problems);
}

/// Removes these marks (by image), and says which could not be removed.
pub(super) async fn unmark(
    aws: &Aws,
    region: &str,
    marks: std::collections::BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (image_id, snapshots) in marks {
        if interrupt::requested() {
            break;
        }
        if let Err(err) = aws
            .ec2(region)
            .unmark_pending_cleanup(&image_id, &snapshots)
            .await
        {
            problems.push(format!(
                "the ami:cleanup-pending-for tag on {} (left for {image_id}, which still exists) \
                 could not be removed: {err}",
                snapshots.join(", ")
            ));
        }
    }
    problems
}

pub(super) async fn execute_region(aws: &Aws, region: &mut RegionCleanup) {
    interrupt::watch(crate::output::interrupted);
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
            // AWS refuses a time in the past, and rounds to the minute: the soonest it takes.
            RetireAction::Deprecate => {
                let at = crate::plan::deprecation::as_soon_as_possible(Utc::now());
                ec2.enable_deprecation(&staged.image_id, at).await
            }
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
        .buffer_unordered(crate::concurrency::MUTATIONS)
        .collect()
        .await;
    for (index, result) in results {
        let orphan = &mut region.orphans[index];
        (orphan.status, orphan.error, orphan.code) = deletion_status(result);
    }
    for orphan in region
        .orphans
        .iter_mut()
        .filter(|o| o.status == Status::Planned && interrupt::requested())
    {
        orphan.status = Status::NotStarted;
    }
}
