//! `ami cleanup`: retention for cron. Per region (concurrently): read the estate once, decide each
//! image by the retention rules, plan the retired images' snapshots and bundles with the same
//! planner as `ami deregister --cleanup`, sweep orphaned snapshots, then act through the same
//! retirement path.

use anyhow::{Result, anyhow};
use chrono::Utc;
use futures::{StreamExt, stream};
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;

use crate::aws::Aws;
use crate::cli::{CleanupArgs, OutputFormat, RetireAction};
use crate::config::Settings;
use crate::error::{Outcome, one_line, usage};
use crate::model::Image;
use crate::output::{Printer, Render, TableStyle, spinner};
use crate::plan::orphans::{OrphanPlan, orphans};
use crate::plan::retention::{Decision, GroupBy, Retention, Verdict, select};
use crate::plan::{self, ItemAction, Request};

use super::retire::{
    ExecuteOptions, RetireReport, Status, complete_inventory, deletion_status, execute,
    load_region, usage_of,
};

/// Regions are independent endpoints with their own rate limits.
const REGION_CONCURRENCY: usize = 4;
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
    /// Every candidate image: retire or keep, and why.
    pub decisions: Vec<Decision>,
    /// The retired images with their snapshots and bundles (as `ami deregister` reports them),
    /// with --action deregister.
    pub retire: Option<RetireReport>,
    /// With --action deprecate or disable: each selected image and what was done to it.
    pub staged: Vec<StagedReport>,
    pub orphans: Vec<OrphanReport>,
    /// Set when the region could not be read or planned at all.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StagedReport {
    pub image_id: String,
    pub action: RetireAction,
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
    let retention = retention_from(args)?;
    if retention.keep.is_none()
        && retention.older_than.is_none()
        && retention.unused_for.is_none()
        && !args.orphans
    {
        return Err(usage(
            "nothing selects anything: give --keep, --older-than, --unused-for or --orphans",
        ));
    }
    let name_filter = args.name.as_deref().map(glob_regex).transpose()?;
    let interactive = settings.output == OutputFormat::Table
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal();
    if !settings.dry_run && !settings.yes && !interactive {
        return Err(usage(
            "refusing to change anything without confirmation: pass --yes (or --dry-run to see the plan)",
        ));
    }
    let aws = Aws::connect(settings).await?;
    let regions = if args.all_regions {
        aws.ec2(&settings.regions[0]).enabled_regions().await?
    } else {
        settings.regions.clone()
    };
    let progress = spinner(settings, format!("planning in {} region(s)", regions.len()));
    let mut planned: Vec<RegionCleanup> = stream::iter(regions.clone())
        .map(|region| {
            let (aws, retention, name_filter) = (&aws, &retention, &name_filter);
            async move {
                match plan_region(
                    aws,
                    &region,
                    args,
                    retention,
                    name_filter.as_ref(),
                    settings.dry_run,
                )
                .await
                {
                    Ok(planned) => planned,
                    Err(err) => RegionCleanup {
                        region,
                        decisions: Vec::new(),
                        retire: None,
                        staged: Vec::new(),
                        orphans: Vec::new(),
                        error: Some(one_line(&err)),
                    },
                }
            }
        })
        .buffer_unordered(REGION_CONCURRENCY)
        .collect()
        .await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    planned.sort_by(|a, b| a.region.cmp(&b.region));
    let mut output = CleanupOutput {
        dry_run: settings.dry_run,
        regions: planned,
    };
    let printer = Printer::new(settings);
    let has_work = output.regions.iter().any(|r| {
        r.retire.as_ref().is_some_and(RetireReport::has_work)
            || r.staged.iter().any(|s| s.status == Status::Planned)
            || r.orphans.iter().any(|o| o.status == Status::Planned)
    });
    if !settings.dry_run && has_work {
        if !settings.yes {
            printer.emit(&output)?;
            super::retire::ask(&format!("{} Proceed?", output.summary()))?;
        }
        let progress = spinner(settings, "cleaning up");
        stream::iter(output.regions.iter_mut())
            .for_each_concurrent(REGION_CONCURRENCY, |region| {
                let aws = &aws;
                async move { execute_region(aws, region).await }
            })
            .await;
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
    }
    printer.emit(&output)?;
    if !settings.dry_run {
        eprintln!("ami cleanup: {}", output.result_line());
    }
    Ok(output.outcome())
}

fn retention_from(args: &CleanupArgs) -> Result<Retention> {
    let group_by = if args.group_by == "name" {
        let pattern = match &args.name_pattern {
            Some(raw) => {
                let regex = Regex::new(raw).map_err(|err| {
                    usage(format!(
                        "--name-pattern '{raw}' is not a valid regex: {err}"
                    ))
                })?;
                if regex.captures_len() < 2 {
                    return Err(usage(format!(
                        "--name-pattern '{raw}' needs a capture group for the family"
                    )));
                }
                Some(regex)
            }
            None => None,
        };
        GroupBy::Name(pattern)
    } else {
        if args.name_pattern.is_some() {
            return Err(usage("--name-pattern goes with --group-by name"));
        }
        let mut keys = Vec::new();
        for part in args.group_by.split(',') {
            match part.trim().strip_prefix("tag:") {
                Some(key) if !key.is_empty() => keys.push(key.to_string()),
                _ => {
                    return Err(usage(format!(
                        "--group-by '{}': expected name or tag:KEY[,tag:KEY...]",
                        args.group_by
                    )));
                }
            }
        }
        GroupBy::Tags(keys)
    };
    let duration = |d: Option<std::time::Duration>| -> Result<Option<chrono::Duration>> {
        d.map(chrono::Duration::from_std)
            .transpose()
            .map_err(|err| usage(format!("duration out of range: {err}")))
    };
    Ok(Retention {
        group_by,
        keep: args.keep,
        older_than: duration(args.older_than)?,
        unused_for: duration(args.unused_for)?,
        keep_tag: args.keep_tag.clone(),
        include_public: args.include_public,
    })
}

/// `*` and `?` as in EC2's name filter, anchored.
fn glob_regex(glob: &str) -> Result<Regex> {
    if glob.is_empty() {
        return Err(usage("--name needs a non-empty glob"));
    }
    let mut pattern = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => pattern.push_str(".*"),
            '?' => pattern.push('.'),
            other => pattern.push_str(&regex::escape(&other.to_string())),
        }
    }
    pattern.push('$');
    Regex::new(&pattern).map_err(|err| anyhow!("--name '{glob}': {err}"))
}

fn candidate(image: &Image, name: Option<&Regex>, tags: &[(String, String)]) -> bool {
    name.is_none_or(|regex| image.name.as_deref().is_some_and(|n| regex.is_match(n)))
        && tags
            .iter()
            .all(|(key, value)| image.tags.get(key) == Some(value))
}

async fn plan_region(
    aws: &Aws,
    region: &str,
    args: &CleanupArgs,
    retention: &Retention,
    name_filter: Option<&Regex>,
    dry_run: bool,
) -> Result<RegionCleanup> {
    let facts = load_region(aws, region).await?;
    let candidates: Vec<Image> = facts
        .images
        .iter()
        .filter(|image| candidate(image, name_filter, &args.tags))
        .cloned()
        .collect();
    let selecting = retention.keep.is_some()
        || retention.older_than.is_some()
        || retention.unused_for.is_some();
    let (decisions, retire) = if selecting && !candidates.is_empty() {
        let ids: Vec<String> = candidates.iter().map(|i| i.image_id.clone()).collect();
        let usage = usage_of(aws, region, &ids).await?;
        let decisions = select(
            &candidates,
            &usage.users,
            &facts.account_id,
            retention,
            Utc::now(),
        );
        let targets: Vec<String> = decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Retire)
            .map(|d| d.image_id.clone())
            .collect();
        let retire = if targets.is_empty() || args.action != RetireAction::Deregister {
            None
        } else {
            let images = facts.images.clone();
            let (inventory, notes) = complete_inventory(
                aws,
                region,
                super::retire::RegionFacts {
                    account_id: facts.account_id.clone(),
                    images,
                },
                &targets,
                Some(usage),
            )
            .await?;
            let plan = plan::plan(
                &inventory,
                &Request {
                    targets,
                    cleanup: true,
                    force: false,
                    terminate_instances: false,
                    now: Utc::now(),
                },
            );
            Some(RetireReport::new(region, dry_run, true, plan, notes))
        };
        (decisions, retire)
    } else {
        (Vec::new(), None)
    };
    let staged = if args.action == RetireAction::Deregister {
        Vec::new()
    } else {
        staged_reports(&facts.images, &decisions, args.action)
    };
    let orphan_reports = if args.orphans {
        let snapshots = aws.ec2(region).all_owned_snapshots().await?;
        orphans(&snapshots, &facts.images)
            .into_iter()
            .map(|plan| OrphanReport {
                status: match plan.action {
                    ItemAction::Delete => Status::Planned,
                    ItemAction::Keep => Status::Skipped,
                },
                plan,
                error: None,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(RegionCleanup {
        region: region.to_string(),
        decisions,
        retire,
        staged,
        orphans: orphan_reports,
        error: None,
    })
}

/// Deprecating or disabling instead of deregistering; an image already in that state is done.
fn staged_reports(
    images: &[Image],
    decisions: &[Decision],
    action: RetireAction,
) -> Vec<StagedReport> {
    let now = Utc::now();
    decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Retire)
        .map(|decision| {
            let image = images.iter().find(|i| i.image_id == decision.image_id);
            let already = image.is_some_and(|image| match action {
                RetireAction::Disable => image.state == "disabled",
                RetireAction::Deprecate => image.deprecation_time.is_some_and(|t| t <= now),
                RetireAction::Deregister => false,
            });
            StagedReport {
                image_id: decision.image_id.clone(),
                action,
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

async fn execute_region(aws: &Aws, region: &mut RegionCleanup) {
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
    let planned: Vec<(usize, String)> = region
        .orphans
        .iter()
        .enumerate()
        .filter(|(_, o)| o.status == Status::Planned)
        .map(|(index, o)| (index, o.plan.snapshot_id.clone()))
        .collect();
    let results: Vec<(usize, _)> = stream::iter(planned)
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
            *counts.entry("failed").or_default() += region
                .orphans
                .iter()
                .filter(|o| o.status == Status::Failed)
                .count()
                + usize::from(region.error.is_some());
        }
        counts
    }

    fn summary(&self) -> String {
        let c = self.counts();
        let get = |key: &str| c.get(key).copied().unwrap_or(0);
        format!(
            "Retire {} image(s) with {} snapshot(s), delete {} orphaned snapshot(s), keep {} image(s) in {} region(s).",
            get("images"),
            get("snapshots"),
            get("orphans"),
            get("kept"),
            self.regions.len()
        )
    }

    /// One line for cron logs.
    fn result_line(&self) -> String {
        let c = self.counts();
        let get = |key: &str| c.get(key).copied().unwrap_or(0);
        format!(
            "retired {} image(s), deleted {} snapshot(s) and {} orphan(s), kept {} image(s), {} failure(s) in {} region(s)",
            get("images"),
            get("snapshots"),
            get("orphans"),
            get("kept"),
            get("failed"),
            self.regions.len()
        )
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
                        style.cell(format!("{:?}", staged.status).to_lowercase(), None),
                        style.cell(staged.error.as_deref().unwrap_or(""), None),
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
                        style.cell(format!("{:?}", orphan.status).to_lowercase(), None),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_globs() {
        let regex = glob_regex("web-*-2026.??").unwrap();
        assert!(regex.is_match("web-prod-2026.11"));
        assert!(!regex.is_match("web-prod-2026.1"));
        assert!(!regex.is_match("xweb-prod-2026.11"));
        assert!(glob_regex("a.b").unwrap().is_match("a.b"));
        assert!(!glob_regex("a.b").unwrap().is_match("axb"));
    }
}
