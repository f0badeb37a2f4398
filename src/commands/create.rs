//! `ami create --instance-id I --name N`: an image from an instance.

use anyhow::Result;

use crate::aws::Aws;
use crate::cli::CreateArgs;
use crate::config::Settings;
use crate::error::{Outcome, usage};
use crate::output::Printer;

use super::dry_run::DryRunReport;
use super::new_image::{MadeFrom, finish, made_image, refuse_taken_name};

pub async fn run(settings: &Settings, args: &CreateArgs) -> Result<Outcome> {
    crate::ids::instance_id(&args.instance_id)?;
    crate::ids::image_name(&args.name)?;
    if let Some(after) = args.new_image.deprecate_after {
        super::new_image::deprecation_at(after, chrono::Utc::now())?;
    }
    let [region] = settings.regions.as_slice() else {
        return Err(usage("create works in one region: pass a single --region"));
    };
    let aws = Aws::connect(settings).await?;
    let ec2 = aws.ec2(region);
    refuse_taken_name(&ec2, &args.name).await?;
    if settings.dry_run {
        let check = ec2
            .check_create_image(
                &args.instance_id,
                &args.name,
                args.description.as_deref(),
                args.no_reboot,
                &args.new_image.tags,
            )
            .await?;
        let mut report = DryRunReport::new();
        report.call(
            region,
            "ec2:CreateImage",
            format!("'{}' from {}", args.name, args.instance_id),
            check,
        );
        report.new_image_follow_ups(region, &args.new_image);
        Printer::new(settings).emit(&report)?;
        return Ok(report.outcome());
    }
    let made = ec2
        .create_image(
            &args.instance_id,
            &args.name,
            args.description.as_deref(),
            args.no_reboot,
            &args.new_image.tags,
        )
        .await?;
    let from = MadeFrom::Instance(&args.instance_id);
    let image_id = made_image(&ec2, &args.name, from, made).await?;
    let output = finish(settings, &ec2, &image_id, &args.new_image).await?;
    Printer::new(settings).emit(&output)?;
    Ok(Outcome::Success)
}
