//! `ami deregister AMI_ID... [--cleanup]`: plan the retirement of exactly these images, show the
//! plan, ask once (or take --yes), then act through the shared retirement path.

use anyhow::Result;
use chrono::Utc;
use futures::{StreamExt, stream};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::aws::Aws;
use crate::cli::DeregisterArgs;
use crate::config::Settings;
use crate::error::{Outcome, usage};
use crate::output::{Printer, Render, TableStyle, spinner};
use crate::plan::{self, Approval, Inventory, Request};

use super::retire::{
    ExecuteOptions, RetireReport, complete_inventory, confirm, execute, load_region,
};

pub async fn run(settings: &Settings, args: &DeregisterArgs) -> Result<Outcome> {
    let image_ids = crate::ids::image_ids(&args.image_ids)?;
    let region = match settings.regions.as_slice() {
        [region] => region.clone(),
        _ => {
            return Err(usage(
                "deregister works in one region at a time: pass a single --region",
            ));
        }
    };
    if let Some(name) = &args.role_name {
        crate::ids::role_name(name)?;
    }
    let aws = Aws::connect(settings)
        .await?
        .with_consumers(args.role_name.clone(), args.ignore_consumers)
        .with_reports(args.timeout, crate::output::report_progress(settings));
    if args.all_copies {
        return all_copies(settings, args, &aws, &region, image_ids).await;
    }
    let (inventory, notes) = gather(settings, &aws, &region, &image_ids).await?;
    let request = Request {
        targets: image_ids,
        cleanup: args.cleanup,
        force: args.force,
        terminate_instances: args.terminate_instances,
        now: Utc::now(),
        approval: None,
    };
    let plan = plan::plan(&inventory, &request);
    let mut report =
        RetireReport::new(&region, settings.dry_run, args.cleanup, plan.clone(), notes);
    let printer = Printer::new(settings);

    if settings.dry_run || !report.has_work() {
        printer.emit(&report)?;
        return Ok(report.outcome());
    }
    if !settings.yes {
        confirm(settings, &printer, &report, &report.summary())?;
        // The answer may have taken minutes: look at the account again just before the first
        // change, and do no more than the plan that was confirmed.
        let (inventory, notes) = gather(settings, &aws, &region, &request.targets).await?;
        let again = Request {
            approval: Some(Approval::of(&plan)),
            now: Utc::now(),
            ..request.clone()
        };
        let fresh = plan::plan(&inventory, &again);
        report = RetireReport::new(&region, false, args.cleanup, fresh, notes);
        if !report.has_work() {
            printer.emit(&report)?;
            return Ok(report.outcome());
        }
    }
    let progress = spinner(settings, format!("deregistering in {region}"));
    let options = ExecuteOptions {
        terminate_instances: args.terminate_instances,
        delete_empty_bucket: args.delete_empty_bucket,
    };
    execute(&aws, &region, options, &mut report).await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    report.tally_left_behind();
    printer.emit(&report)?;
    Ok(report.outcome())
}

/// The region's facts and everything the planner needs for these images.
async fn gather(
    settings: &Settings,
    aws: &Aws,
    region: &str,
    image_ids: &[String],
) -> Result<(Inventory, Vec<String>)> {
    let progress = spinner(settings, format!("planning in {region}"));
    let gathered = match load_region(aws, region).await {
        Ok(facts) => {
            complete_inventory(aws, region, facts, image_ids, None, Default::default()).await
        }
        Err(err) => Err(err),
    };
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    gathered
}

/// `deregister --all-copies`: the images and every copy of them, each region planned on its
/// own by the same planner, shown as one plan with one prompt.
#[derive(Debug, Serialize)]
pub struct AllCopiesReport {
    pub dry_run: bool,
    /// The images asked for (in the run's region).
    pub image_ids: Vec<String>,
    /// One retirement per region holding the images or their copies.
    pub regions: Vec<RetireReport>,
    /// Regions that could not be searched for copies: nothing is done there.
    pub notes: Vec<String>,
}

impl AllCopiesReport {
    fn has_work(&self) -> bool {
        self.regions.iter().any(RetireReport::has_work)
    }

    fn outcome(&self) -> Outcome {
        let outcomes: Vec<Outcome> = self.regions.iter().map(RetireReport::outcome).collect();
        // A region not searched for copies leaves the run incomplete, as a failed item does.
        if !outcomes.is_empty() && outcomes.iter().all(|o| *o == Outcome::Failed) {
            Outcome::Failed
        } else if self.notes.is_empty() && outcomes.iter().all(|o| *o == Outcome::Success) {
            Outcome::Success
        } else {
            Outcome::Partial
        }
    }
}

impl Render for AllCopiesReport {
    fn render(&self, style: &TableStyle) -> String {
        let mut out: Vec<String> = self
            .regions
            .iter()
            .map(|r| format!("{}:\n{}", r.region, r.render(style)))
            .collect();
        for note in &self.notes {
            out.push(format!("note: {note}"));
        }
        out.join("\n\n")
    }
}

async fn all_copies(
    settings: &Settings,
    args: &DeregisterArgs,
    aws: &Aws,
    home: &str,
    image_ids: Vec<String>,
) -> Result<Outcome> {
    let (by_region, notes) = copies_by_region(settings, aws, home, &image_ids).await?;
    let make_report = |planned: Vec<(String, plan::Plan, Vec<String>)>, dry_run: bool| {
        let mut regions: Vec<RetireReport> = planned
            .into_iter()
            .map(|(region, plan, notes)| {
                RetireReport::new(&region, dry_run, args.cleanup, plan, notes)
            })
            .collect();
        regions.sort_by(|a, b| a.region.cmp(&b.region));
        AllCopiesReport {
            dry_run,
            image_ids: image_ids.clone(),
            regions,
            notes: notes.clone(),
        }
    };
    let planned = plan_regions(settings, args, aws, &by_region, None).await?;
    let plans: BTreeMap<String, plan::Plan> = planned
        .iter()
        .map(|(region, plan, _)| (region.clone(), plan.clone()))
        .collect();
    let mut report = make_report(planned, settings.dry_run);
    let printer = Printer::new(settings);
    if settings.dry_run || !report.has_work() {
        printer.emit(&report)?;
        return Ok(report.outcome());
    }
    if !settings.yes {
        let summary: Vec<String> = report
            .regions
            .iter()
            .filter(|r| r.has_work())
            .map(RetireReport::summary)
            .collect();
        confirm(settings, &printer, &report, &summary.join(" "))?;
        // The answer may have taken minutes: look again, and do no more than was confirmed.
        report = make_report(
            plan_regions(settings, args, aws, &by_region, Some(&plans)).await?,
            false,
        );
        if !report.has_work() {
            printer.emit(&report)?;
            return Ok(report.outcome());
        }
    }
    let progress = spinner(settings, "deregistering in every region of the copies");
    let options = ExecuteOptions {
        terminate_instances: args.terminate_instances,
        delete_empty_bucket: args.delete_empty_bucket,
    };
    let regions = std::mem::take(&mut report.regions);
    let mut done: Vec<RetireReport> = stream::iter(regions)
        .map(|mut region_report| async move {
            if region_report.has_work() {
                let region = region_report.region.clone();
                execute(aws, &region, options, &mut region_report).await;
            }
            region_report.tally_left_behind();
            region_report
        })
        .buffer_unordered(crate::concurrency::REGIONS)
        .collect()
        .await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    done.sort_by(|a, b| a.region.cmp(&b.region));
    report.regions = done;
    printer.emit(&report)?;
    Ok(report.outcome())
}

/// Where each image and its copies are, found by lineage (never by name), with a note for
/// each region that could not be searched.
async fn copies_by_region(
    settings: &Settings,
    aws: &Aws,
    home: &str,
    image_ids: &[String],
) -> Result<(BTreeMap<String, Vec<String>>, Vec<String>)> {
    let mut by_region: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut notes = Vec::new();
    let progress = spinner(settings, "finding the copies in every enabled region");
    for image_id in image_ids {
        let image = aws
            .ec2(home)
            .describe_image(image_id)
            .await?
            .ok_or_else(|| {
                usage(format!(
                    "{image_id} not found in {home}: --all-copies starts from the image itself; \
                 nothing was changed"
                ))
            })?;
        // Copies of another account's image (a public base) are not a release of this account.
        let caller = aws.account_id(home).await?;
        if image.owner_id.as_deref() != Some(caller.as_str()) {
            return Err(usage(format!(
                "{image_id} is owned by account {}, not by this account ({caller}): --all-copies \
                 retires an image of this account with its copies; nothing was changed",
                image.owner_id.as_deref().unwrap_or("unknown")
            )));
        }
        let copies = super::copies::copies_everywhere(aws, home, &image).await?;
        by_region
            .entry(home.to_string())
            .or_default()
            .push(image_id.clone());
        for copy in copies.images {
            let ids = by_region.entry(copy.region.clone()).or_default();
            if !ids.contains(&copy.image_id) {
                ids.push(copy.image_id);
            }
        }
        for (region, why) in copies.unread {
            notes.push(format!(
                "{region}: could not be searched for copies of {image_id}, so none there is \
                 planned: {why}"
            ));
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok((by_region, notes))
}

/// Each region's plan, read and made afresh; with `reviewed`, no more than the plan confirmed.
async fn plan_regions(
    settings: &Settings,
    args: &DeregisterArgs,
    aws: &Aws,
    by_region: &BTreeMap<String, Vec<String>>,
    reviewed: Option<&BTreeMap<String, plan::Plan>>,
) -> Result<Vec<(String, plan::Plan, Vec<String>)>> {
    let planned: Vec<Result<(String, plan::Plan, Vec<String>)>> = stream::iter(by_region.clone())
        .map(|(region, targets)| async move {
            let (inventory, notes) = gather(settings, aws, &region, &targets).await?;
            // Confirmed: each region does no more than its confirmed plan, and a region the
            // confirmation did not show does nothing.
            let approval = reviewed.map(|plans| {
                plans
                    .get(&region)
                    .map_or_else(Approval::nothing, Approval::of)
            });
            let request = Request {
                targets,
                cleanup: args.cleanup,
                force: args.force,
                terminate_instances: args.terminate_instances,
                now: Utc::now(),
                approval,
            };
            let fresh = plan::plan(&inventory, &request);
            Ok((region, fresh, notes))
        })
        .buffer_unordered(crate::concurrency::REGIONS)
        .collect()
        .await;
    planned.into_iter().collect()
}
