//! What `create` and `register` share: refusing a taken name, protection and deprecation, waiting
//! until available, and the one result document they print.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::aws::Ec2;
use crate::aws::lifecycle::Made;
use crate::aws::settle::Fresh;
use crate::cli::{NewImageArgs, WaitArgs};
use crate::config::Settings;
use crate::error::usage;
use crate::model::{DeregistrationProtection, Image, ImageState, RootDeviceType};
use crate::output::{Render, TableStyle};
use crate::plan::state::Standing;

#[derive(Debug, Serialize)]
pub struct NewImageOutput {
    pub region: String,
    pub image_id: String,
    pub name: Option<String>,
    pub state: ImageState,
    pub root_device_type: RootDeviceType,
    pub snapshots: Vec<NewSnapshot>,
    /// `s3://bucket/key` for instance-store images.
    pub manifest_location: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub deprecation_time: Option<DateTime<Utc>>,
    pub deregistration_protection: Option<DeregistrationProtection>,
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
        crate::config::terminal().stderr
    }
}

/// The account's images of this name here that exist (a deregistered one AWS still lists has
/// given its name up).
pub async fn images_named(ec2: &Ec2, name: &str) -> Result<Vec<Image>> {
    Ok(ec2
        .owned_images_named(name)
        .await?
        .into_iter()
        .filter(|image| Standing::of(&image.state).exists())
        .collect())
}

/// The one image of this name here that exists, if any; two (made outside `ami`, or a race) is
/// an error rather than a guess.
pub async fn existing_named(ec2: &Ec2, name: &str) -> Result<Option<Image>> {
    let mut found = images_named(ec2, name).await?;
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => Err(anyhow::anyhow!(
            "{n} images named '{name}' in {}: {}; refusing to guess",
            ec2.region(),
            found
                .iter()
                .map(|i| i.image_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// What a new image is made from: how to tell it from another image of the same name.
#[derive(Debug, Clone, Copy)]
pub enum MadeFrom<'a> {
    /// CreateImage: the instance (DescribeImages' SourceInstanceId).
    Instance(&'a str),
    /// RegisterImage from snapshots: (device, snapshot id), every one of them.
    Snapshots(&'a [(String, String)]),
    /// RegisterImage from a bundle: its manifest's `bucket/key`.
    Manifest(&'a str),
}

impl MadeFrom<'_> {
    /// Whether `image` is one made from this source.
    pub fn made(&self, image: &Image) -> bool {
        match self {
            MadeFrom::Instance(instance) => image.source_instance_id.as_deref() == Some(instance),
            MadeFrom::Snapshots(devices) => {
                let mut wanted: Vec<(&str, &str)> = devices
                    .iter()
                    .map(|(device, snapshot)| (device.as_str(), snapshot.as_str()))
                    .collect();
                let mut found: Vec<(&str, &str)> = image
                    .block_devices
                    .iter()
                    .filter_map(|d| Some((d.device_name.as_str(), d.snapshot_id.as_deref()?)))
                    .collect();
                wanted.sort();
                found.sort();
                wanted == found
            }
            MadeFrom::Manifest(location) => image.image_location.as_deref() == Some(location),
        }
    }

    fn describe(&self) -> String {
        match self {
            MadeFrom::Instance(instance) => format!("from {instance}"),
            MadeFrom::Snapshots(devices) => format!(
                "from {}",
                devices
                    .iter()
                    .map(|(_, snapshot)| snapshot.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            MadeFrom::Manifest(location) => format!("from s3://{location}"),
        }
    }
}

/// The id of the image a CreateImage or RegisterImage made. When AWS's answer was lost and the
/// SDK's retry met the name taken, the image of that name made from the same source is this
/// call's (it may be missing from listings for a while: looked for within the bound); one made
/// from something else is not, and is named.
pub async fn made_image(ec2: &Ec2, name: &str, from: MadeFrom<'_>, made: Made) -> Result<String> {
    if let Made::Image(image_id) = made {
        return Ok(image_id);
    }
    let found = ec2
        .read_back(|| existing_named(ec2, name), Option::is_some)
        .await?;
    match found {
        Some(image) if from.made(&image) => Ok(image.image_id),
        Some(image) => Err(anyhow::anyhow!(
            "the name '{name}' in {} is taken by {}, which is not the image this call made {} \
             (the first answer was lost and the retry found the name taken)",
            ec2.region(),
            image.image_id,
            from.describe()
        )),
        None => Err(anyhow::anyhow!(
            "AWS's answer was lost and the retry found the name '{name}' taken, but no image of \
             that name shows in {} yet: look with `ami list --name '{name}'`",
            ec2.region()
        )),
    }
}

/// AMI names are unique per account and region: say so before AWS does, naming the holder.
pub async fn refuse_taken_name(ec2: &Ec2, name: &str) -> Result<()> {
    crate::ids::image_name(name)?;
    if let Some(existing) = existing_named(ec2, name).await? {
        return Err(usage(format!(
            "the name '{name}' is already used by {} in {}",
            existing.image_id,
            ec2.region()
        )));
    }
    Ok(())
}

/// `--deprecate-after D` as the time AWS will record, checked as AWS checks it (rounded to the
/// minute, in the future, at most 10 years ahead): bad input is refused before any call.
pub fn deprecation_at(after: std::time::Duration, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let shown = crate::duration::format(after);
    // Under a minute, rounding to the minute can land in the past by the time the image exists.
    if after < std::time::Duration::from_secs(60) {
        return Err(usage(format!(
            "--deprecate-after {shown}: at least 1m (AWS rounds deprecation times to the minute); \
             nothing was changed"
        )));
    }
    let at = chrono::Duration::from_std(after)
        .ok()
        .and_then(|after| now.checked_add_signed(after))
        .ok_or_else(|| usage(format!("--deprecate-after {shown} is too far ahead")))?;
    crate::plan::deprecation::accepted(at, now, None).map_err(|why| {
        usage(format!(
            "--deprecate-after {shown}: {why}; nothing was changed"
        ))
    })
}

/// Waits while the image is being made (pending); then it must be launchable: a failed image is
/// an error naming its state and AWS's reason.
pub async fn wait_until_available(
    ec2: &Ec2,
    image_id: &str,
    timeout: std::time::Duration,
    progress: Option<&(dyn Fn(u64) + Sync)>,
) -> Result<Image> {
    let image = ec2
        .wait_image(
            image_id,
            timeout,
            |state| Standing::of(state) == Standing::InProgress,
            progress,
        )
        .await?;
    if Standing::of(&image.state).launchable() {
        return Ok(image);
    }
    Err(anyhow::anyhow!(
        "{image_id} in {} ended {}{}: it cannot be launched",
        ec2.region(),
        image.state,
        image
            .state_reason
            .as_deref()
            .map(|reason| format!(" ({reason})"))
            .unwrap_or_default()
    ))
}

/// Protection, deprecation and waiting, then the image as AWS reports it. The image is new:
/// AWS may not know its id for a while, and is asked again (`settle`).
pub async fn finish(
    settings: &Settings,
    ec2: &Ec2,
    image_id: &str,
    args: &NewImageArgs,
) -> Result<NewImageOutput> {
    if args.protect {
        ec2.once_caught_up(Fresh::Image, || ec2.enable_protection(image_id))
            .await?;
    }
    if let Some(after) = args.deprecate_after {
        let at = deprecation_at(after, Utc::now())?;
        ec2.once_caught_up(Fresh::Image, || ec2.enable_deprecation(image_id, at))
            .await?;
    }
    let image = if should_wait(&args.wait) {
        let bar = crate::output::percent_bar(settings, format!("{image_id} snapshots"));
        let report = bar
            .clone()
            .map(|bar| move |percent: u64| bar.set_position(percent));
        let image = wait_until_available(
            ec2,
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
        ec2.new_image(image_id).await?
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
        match &self.deregistration_protection {
            Some(protection) if protection.is_on() => {
                out.push_str("\nDeregistration protection is on");
            }
            Some(DeregistrationProtection::DisabledUntil { until, .. }) => out.push_str(&format!(
                "\nDeregistration protection is off; its cooldown keeps the image protected until {}",
                until.to_rfc3339()
            )),
            Some(DeregistrationProtection::Other(value)) => out.push_str(&format!(
                "\nDeregistration protection: {value} (a value this ami does not know)"
            )),
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BlockDevice;

    fn image(source: Option<&str>, devices: &[(&str, &str)], location: Option<&str>) -> Image {
        let mut image = crate::plan::fixture::image("ami-1").name("web-1").build();
        image.source_instance_id = source.map(str::to_string);
        image.block_devices = devices
            .iter()
            .map(|(device, snapshot)| BlockDevice {
                device_name: device.to_string(),
                snapshot_id: Some(snapshot.to_string()),
                volume_size_gib: Some(8),
                volume_type: None,
                virtual_name: None,
            })
            .collect();
        image.image_location = location.map(str::to_string);
        image
    }

    /// `--deprecate-after` as AWS takes it, whenever the image comes to exist: at least a
    /// minute (rounding cannot put it in the past), at most 10 years.
    #[test]
    fn deprecate_after_is_refused_before_any_call_unless_aws_takes_it() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 5).unwrap();
        let days = |n: u64| std::time::Duration::from_secs(n * 86_400);
        // Table: --deprecate-after → accepted.
        let cases = [
            (std::time::Duration::from_secs(30), false),
            (std::time::Duration::from_secs(60), true),
            (days(90), true),
            (days(3650), true),
            (days(4000), false),
        ];
        for (after, ok) in cases {
            assert_eq!(deprecation_at(after, now).is_ok(), ok, "{after:?}");
        }
        assert_eq!(
            deprecation_at(days(1), now).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap()
        );
    }

    /// After a lost answer, only an image made from the very same source is this call's.
    #[test]
    fn an_image_of_the_name_is_the_call_s_only_if_made_from_its_source() {
        let devices = vec![
            ("/dev/xvda".to_string(), "snap-1".to_string()),
            ("/dev/xvdb".to_string(), "snap-2".to_string()),
        ];
        let made = [
            image(Some("i-1"), &[("/dev/xvda", "snap-9")], None),
            image(
                None,
                &[("/dev/xvdb", "snap-2"), ("/dev/xvda", "snap-1")],
                None,
            ),
            image(None, &[], Some("bkt/web/image.manifest.xml")),
        ];
        // Table: the source asked for → which of the images above it made.
        let cases: [(MadeFrom<'_>, [bool; 3]); 6] = [
            (MadeFrom::Instance("i-1"), [true, false, false]),
            (MadeFrom::Instance("i-2"), [false, false, false]),
            (MadeFrom::Snapshots(&devices), [false, true, false]),
            (MadeFrom::Snapshots(&devices[..1]), [false, false, false]),
            (
                MadeFrom::Manifest("bkt/web/image.manifest.xml"),
                [false, false, true],
            ),
            (
                MadeFrom::Manifest("bkt/other.manifest.xml"),
                [false, false, false],
            ),
        ];
        for (from, expected) in cases {
            let found: Vec<bool> = made.iter().map(|image| from.made(image)).collect();
            assert_eq!(found, expected, "{from:?}");
        }
    }
}
