//! `ami deregister AMI_ID... [--cleanup]`: plan the retirement of exactly these images, show the
//! plan, ask once (or take --yes), then act through the shared retirement path.

use anyhow::Result;
use chrono::Utc;

use crate::aws::Aws;
use crate::cli::DeregisterArgs;
use crate::config::Settings;
use crate::error::{Outcome, usage};
use crate::output::{Printer, spinner};
use crate::plan::{self, Inventory, Request, Reviewed};

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
    let (inventory, notes) = gather(settings, &aws, &region, &image_ids).await?;
    let request = Request {
        targets: image_ids,
        cleanup: args.cleanup,
        force: args.force,
        terminate_instances: args.terminate_instances,
        now: Utc::now(),
        reviewed: None,
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
        confirm(settings, &printer, &report)?;
        // The answer may have taken minutes: look at the account again just before the first
        // change, and do no more than the plan that was confirmed.
        let (inventory, notes) = gather(settings, &aws, &region, &request.targets).await?;
        let again = Request {
            reviewed: Some(Reviewed::of(&plan)),
            now: Utc::now(),
            ..request.clone()
        };
        let fresh = plan::within(plan::plan(&inventory, &again), &plan);
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
