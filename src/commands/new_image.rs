//! What `create` and `register` share: refusing a taken name, protection and deprecation, waiting
//! until available, and the one result document they print.

use anyhow::Result;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;

use crate::aws::Ec2;
use crate::cli::{NewImageArgs, WaitArgs};
use crate::config::Settings;
use crate::error::usage;
use crate::model::ImageState;
use crate::output::{Render, TableStyle};

#[derive(Debug, Serialize)]
pub struct NewImageOutput {
    pub region: String,
    pub image_id: String,
    pub name: Option<String>,
    pub state: ImageState,
    pub root_device_type: String,
    pub snapshots: Vec<NewSnapshot>,
    /// `s3://bucket/key` for instance-store images.
    pub manifest_location: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub deprecation_time: Option<DateTime<Utc>>,
    pub deregistration_protection: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NewSnapshot {
    pub device_name: String,
    pub snapshot_id: String,
    pub size_gib: Option<i32>,
}

/// Wait when asked, or by default on a terminal.
pub fn should_wait(wait: &WaitArgs) -> bool {
    if wait.wait {
        true
    } else if wait.no_wait {
        false
    } else {
        std::io::stderr().is_terminal()
    }
}

/// AMI names are unique per account and region: say so before AWS does, naming the holder.
pub async fn refuse_taken_name(ec2: &Ec2, name: &str) -> Result<()> {
    crate::ids::image_name(name)?;
    if let Some(existing) = ec2.owned_images_named(name).await?.first() {
        return Err(usage(format!(
            "the name '{name}' is already used by {} in {}",
            existing.image_id,
            ec2.region()
        )));
    }
    Ok(())
}

/// Protection, deprecation and waiting, then the image as AWS reports it.
pub async fn finish(
    settings: &Settings,
    ec2: &Ec2,
    image_id: &str,
    args: &NewImageArgs,
) -> Result<NewImageOutput> {
    if args.protect {
        ec2.enable_protection(image_id).await?;
    }
    if let Some(after) = args.deprecate_after {
        let at = Utc::now() + chrono::Duration::from_std(after)?;
        ec2.enable_deprecation(image_id, at).await?;
    }
    let image = if should_wait(&args.wait) {
        let bar = settings.progress.then(|| {
            let bar = ProgressBar::new(100);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}% {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(format!("{image_id} snapshots"));
            bar
        });
        let report = bar
            .clone()
            .map(|bar| move |percent: u64| bar.set_position(percent));
        let image = ec2
            .wait_available(
                image_id,
                args.wait.timeout,
                report
                    .as_ref()
                    .map(|report| report as &(dyn Fn(u64) + Sync)),
            )
            .await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        image?
    } else {
        ec2.describe_image(image_id).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "{image_id} was created but DescribeImages in {} does not show it yet",
                ec2.region()
            )
        })?
    };
    Ok(NewImageOutput {
        region: image.region.clone(),
        image_id: image.image_id.clone(),
        name: image.name.clone(),
        state: image.state.clone(),
        root_device_type: image.root_device_type.clone(),
        snapshots: image
            .block_devices
            .iter()
            .filter_map(|device| {
                Some(NewSnapshot {
                    device_name: device.device_name.clone(),
                    snapshot_id: device.snapshot_id.clone()?,
                    size_gib: device.volume_size_gib,
                })
            })
            .collect(),
        manifest_location: image
            .is_instance_store()
            .then(|| image.image_location.as_ref().map(|l| format!("s3://{l}")))
            .flatten(),
        tags: image.tags,
        deprecation_time: image.deprecation_time,
        deregistration_protection: image.deregistration_protection,
    })
}

impl Render for NewImageOutput {
    fn render(&self, style: &TableStyle) -> String {
        let mut table = style.table(&["IMAGE ID", "NAME", "STATE", "ROOT", "STORAGE", "TAGS"]);
        let storage = match &self.manifest_location {
            Some(location) => location.clone(),
            None => self
                .snapshots
                .iter()
                .map(|s| match s.size_gib {
                    Some(size) => format!("{} {} ({size} GiB)", s.device_name, s.snapshot_id),
                    None => format!("{} {}", s.device_name, s.snapshot_id),
                })
                .collect::<Vec<_>>()
                .join("\n"),
        };
        table.add_row(vec![
            style.cell(&self.image_id, None),
            style.cell(self.name.as_deref().unwrap_or("-"), None),
            style.cell(&self.state, None),
            style.cell(&self.root_device_type, None),
            style.cell(storage, None),
            style.cell(
                self.tags
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                None,
            ),
        ]);
        let mut out = table.to_string();
        if let Some(time) = self.deprecation_time {
            out.push_str(&format!("\nDeprecated from {}", time.to_rfc3339()));
        }
        if self
            .deregistration_protection
            .as_deref()
            .is_some_and(|p| p != "disabled")
        {
            out.push_str("\nDeregistration protection is on");
        }
        out
    }
}
