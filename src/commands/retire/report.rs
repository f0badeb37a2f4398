//! The retirement report: the plan's items with their status, one document for the plan
//! (`--dry-run`) and the result, drawn as tables or printed as JSON.

use comfy_table::Color;
use serde::Serialize;

use crate::error::Outcome;
use crate::output::{Render, TableStyle};
use crate::plan::{BundlePlan, ImageAction, ImagePlan, ItemAction, Plan, SnapshotPlan};

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
    /// AWS's error code, when AWS refused the call (`error` has its message).
    pub code: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SnapshotReport {
    #[serde(flatten)]
    pub plan: SnapshotPlan,
    pub status: Status,
    pub error: Option<String>,
    /// AWS's error code, when AWS refused the call (`error` has its message).
    pub code: Option<String>,
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
    /// How much of what the plan deletes the Recycle Bin keeps (None: it deletes nothing).
    pub recycle_bin: Option<crate::plan::recovery::RecycleSummary>,
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
                    code: None,
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
                code: None,
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
            recycle_bin: None,
        };
        report.tally_left_behind();
        report.recycle_bin = report.recycle_summary();
        report
    }

    /// The Recycle Bin line for what this plan deletes.
    pub fn recycle_summary(&self) -> Option<crate::plan::recovery::RecycleSummary> {
        crate::plan::recovery::summary(
            self.images
                .iter()
                .filter_map(|i| i.plan.recycle_bin.as_ref()),
            self.snapshots
                .iter()
                .filter_map(|s| s.plan.recycle_bin.as_ref()),
        )
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
            .filter(|s| !s.plan.used_by_staying)
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

pub(crate) fn status_cell(style: &TableStyle, status: Status, dry_run: bool) -> comfy_table::Cell {
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

/// A reason, followed by what went wrong if anything did.
pub(crate) fn with_error(reason: &str, error: &Option<String>) -> String {
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
        let undo = |recovery: &Option<crate::plan::recovery::Recovery>| {
            recovery
                .as_ref()
                .map_or_else(|| "-".to_string(), |r| r.cell())
        };
        let mut images = style.table(&["IMAGE", "NAME", "ACTION", "STATUS", "UNDO", "WHY"]);
        for image in &self.images {
            let action = match image.plan.action {
                ImageAction::Deregister => "deregister",
                ImageAction::AlreadyGone => "already gone",
                ImageAction::NotFound => "-",
                ImageAction::Blocked => "keep",
            };
            images.add_row(vec![
                style.cell(&image.plan.image_id, None),
                style.cell(image.plan.name.as_deref().unwrap_or("-"), None),
                style.cell(action, None),
                status_cell(style, image.status, self.dry_run),
                style.cell(undo(&image.plan.recycle_bin), None),
                style.cell(with_error(&image.plan.reason, &image.error), None),
            ]);
        }
        out.push(images.to_string());
        if !self.snapshots.is_empty() {
            let mut table = style.table(&[
                "SNAPSHOT", "OF IMAGE", "SIZE", "ACTION", "STATUS", "UNDO", "WHY",
            ]);
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
                    style.cell(undo(&snapshot.plan.recycle_bin), None),
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
        if let Some(recycle_bin) = &self.recycle_bin {
            out.push(format!("{recycle_bin}."));
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
