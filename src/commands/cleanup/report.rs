//! The cleanup document: counts, the summary and cron lines, the exit code, the tables.

use super::CleanupOutput;
use crate::commands::retire::{Status, with_error};
use crate::error::Outcome;
use crate::output::{Render, TableStyle};
use crate::plan::retention::{Decision, Verdict};

/// What a cleanup retires, deletes, keeps and failed at, over all its regions.
#[derive(Debug, Default)]
struct Counts {
    /// Images retired (deregistered, deprecated or disabled), or planned to be.
    images: usize,
    snapshots: usize,
    orphans: usize,
    bundles: usize,
    kept: usize,
    failed: usize,
    not_started: usize,
}

impl CleanupOutput {
    fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for region in &self.regions {
            counts.kept += region
                .decisions
                .iter()
                .filter(|d| d.verdict == Verdict::Keep)
                .count();
            let retire = region.retire.iter();
            let images = retire
                .clone()
                .flat_map(|r| r.images.iter().map(|i| i.status))
                .chain(region.staged.iter().map(|s| s.status));
            let snapshots = retire
                .clone()
                .flat_map(|r| r.snapshots.iter().map(|s| s.status));
            let bundles = retire.flat_map(|r| r.bundles.iter().map(|b| b.status));
            let orphans = region.orphans.iter().map(|o| o.status);
            let orphan_bundles = region.orphan_bundles.iter().map(|b| b.status);
            let going = |status: &Status| matches!(status, Status::Done | Status::Planned);
            counts.images += images.clone().filter(going).count();
            counts.snapshots += snapshots.clone().filter(going).count();
            counts.orphans += orphans.clone().filter(going).count();
            counts.bundles += orphan_bundles.clone().filter(going).count();
            let all = images
                .chain(snapshots)
                .chain(bundles)
                .chain(orphans)
                .chain(orphan_bundles);
            for status in all {
                match status {
                    Status::Failed => counts.failed += 1,
                    Status::NotStarted => counts.not_started += 1,
                    _ => {}
                }
            }
            counts.failed += usize::from(region.error.is_some()) + region.problems.len();
        }
        counts
    }

    pub(super) fn summary(&self) -> String {
        let c = self.counts();
        format!(
            "Retire {} image(s) with {} snapshot(s), delete {} orphaned snapshot(s) and {} orphaned bundle(s), keep {} image(s) in {} region(s).",
            c.images,
            c.snapshots,
            c.orphans,
            c.bundles,
            c.kept,
            self.regions.len()
        )
    }

    /// One line for cron logs.
    pub(super) fn result_line(&self) -> String {
        let c = self.counts();
        let mut line = format!(
            "retired {} image(s), deleted {} snapshot(s), {} orphan(s) and {} orphaned bundle(s), kept {} image(s), {} failure(s) in {} region(s)",
            c.images,
            c.snapshots,
            c.orphans,
            c.bundles,
            c.kept,
            c.failed,
            self.regions.len()
        );
        if c.not_started > 0 {
            line.push_str(&format!(
                "; interrupted: {} item(s) not started, a re-run does them",
                c.not_started
            ));
        }
        line
    }

    pub(super) fn outcome(&self) -> Outcome {
        let failed = self.counts().failed;
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
                        style.cell(staged.action.as_str(), None),
                        crate::commands::retire::status_cell(style, staged.status, self.dry_run),
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
                        crate::commands::retire::status_cell(style, bundle.status, self.dry_run),
                        style.cell(with_error(&bundle.plan.reason, &bundle.error), None),
                    ]);
                }
                out.push(table.to_string());
            }
            if !region.orphans.is_empty() {
                let mut table = style.table(&[
                    "ORPHAN SNAPSHOT",
                    "MADE FOR",
                    "SIZE",
                    "STATUS",
                    "UNDO",
                    "WHY",
                ]);
                for orphan in &region.orphans {
                    table.add_row(vec![
                        style.cell(&orphan.plan.snapshot_id, None),
                        style.cell(&orphan.plan.image_id, None),
                        style.cell(format!("{} GiB", orphan.plan.size_gib), None),
                        crate::commands::retire::status_cell(style, orphan.status, self.dry_run),
                        style.cell(
                            orphan
                                .plan
                                .recycle_bin
                                .as_ref()
                                .map_or_else(|| "-".to_string(), |r| r.cell()),
                            None,
                        ),
                        style.cell(with_error(&orphan.plan.reason, &orphan.error), None),
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
