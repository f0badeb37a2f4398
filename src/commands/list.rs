//! `ami list`: the inventory of images in one or more regions.

use anyhow::Result;
use chrono::{DateTime, Utc};
use comfy_table::Color;
use futures::{StreamExt, stream};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::aws::images::ImageQuery;
use crate::aws::{Aws, Ec2};
use crate::cli::ListArgs;
use crate::config::Settings;
use crate::error::{Outcome, one_line, usage};
use crate::model::{Image, ImageState, LaunchPermissions};
use crate::output::{Render, TableStyle, spinner};

/// Regions are independent endpoints with their own rate limits.
const REGION_CONCURRENCY: usize = 8;
/// DescribeImageAttribute is one call per image; 8 in flight stays well inside EC2's
/// describe-call rate limits while hiding the latency.
const ATTRIBUTE_CONCURRENCY: usize = 8;

#[derive(Debug, Serialize)]
pub struct ListOutput {
    pub regions: Vec<String>,
    pub images: Vec<ImageEntry>,
    /// What could not be read; non-empty means exit code 3 (or 1 when nothing could be read).
    pub errors: Vec<ListError>,
}

#[derive(Debug, Serialize)]
pub struct ImageEntry {
    pub region: String,
    pub image_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub owner_id: Option<String>,
    pub state: ImageState,
    pub root_device_type: String,
    pub root_device_name: Option<String>,
    pub architecture: Option<String>,
    pub creation_date: Option<DateTime<Utc>>,
    pub age_days: Option<i64>,
    pub snapshots: Vec<SnapshotEntry>,
    /// `s3://bucket/prefix/name.manifest.xml`, for instance-store images.
    pub manifest_location: Option<String>,
    pub public: bool,
    /// Launch permissions; null when they were not read (without --shares).
    pub shared_with: Option<SharedWith>,
    pub tags: BTreeMap<String, String>,
    pub deprecation_time: Option<DateTime<Utc>>,
    pub deregistration_protection: Option<String>,
    pub last_launched_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct SnapshotEntry {
    pub device_name: String,
    pub snapshot_id: String,
    pub size_gib: Option<i32>,
    pub volume_type: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SharedWith {
    pub accounts: Vec<String>,
    pub organizations: Vec<String>,
    pub organizational_units: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ListError {
    pub region: String,
    pub image_id: Option<String>,
    pub error: String,
}

pub async fn run(settings: &Settings, args: &ListArgs) -> Result<Outcome> {
    if args.recycle_bin {
        if args.owner != "self" {
            return Err(usage(
                "--recycle-bin lists the caller's own bin: drop --owner",
            ));
        }
        return super::fleet::run(settings, &args.accounts, |aws| bin_in(aws, settings)).await;
    }
    validate_owner(&args.owner)?;
    if args.name.as_deref().is_some_and(str::is_empty) {
        return Err(usage("--name needs a non-empty glob"));
    }
    let query = ImageQuery {
        owners: vec![args.owner.clone()],
        name_glob: args.name.clone(),
        tags: args.tags.clone(),
    };
    // Launch permissions: one call per image, and only on one's own images. Asked for only.
    if args.shares && args.owner != "self" {
        return Err(usage(
            "--shares reads launch permissions, which only an image's owner can: drop --owner or --shares",
        ));
    }
    let read_permissions = args.shares;
    super::fleet::run(settings, &args.accounts, |aws| {
        list_in(aws, settings, query.clone(), read_permissions)
    })
    .await
}

async fn list_in(
    aws: Aws,
    settings: &Settings,
    query: ImageQuery,
    read_permissions: bool,
) -> Result<(ListOutput, Outcome)> {
    let (listings, mut errors) = each_region(settings, "listing images", |region| {
        let ec2 = aws.ec2(&region);
        let query = query.clone();
        async move { list_region(&ec2, &query, read_permissions).await }
    })
    .await?;
    let mut images = Vec::new();
    for listing in listings {
        images.extend(listing.images);
        errors.extend(listing.errors);
    }
    images.sort_by(|a, b| {
        (a.creation_date, &a.region, &a.image_id).cmp(&(b.creation_date, &b.region, &b.image_id))
    });
    let outcome = if errors.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    };
    Ok((
        ListOutput {
            regions: settings.regions.clone(),
            images,
            errors,
        },
        outcome,
    ))
}

/// Runs `read` in every region of the run, a few at once. Returns what the regions that answered
/// gave (in region order) and an error line for each that did not; fails when none answered,
/// rather than print an empty listing.
async fn each_region<T, F, Fut>(
    settings: &Settings,
    message: &str,
    read: F,
) -> Result<(Vec<T>, Vec<ListError>)>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let progress = spinner(settings, message);
    let mut results: Vec<(String, Result<T>)> = stream::iter(settings.regions.clone())
        .map(|region| {
            let read = read(region.clone());
            async move { (region, read.await) }
        })
        .buffer_unordered(REGION_CONCURRENCY)
        .collect()
        .await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let region_count = results.len();
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let mut failures = Vec::new();
    for (region, result) in results {
        match result {
            Ok(value) => found.push(value),
            Err(err) => {
                errors.push(ListError {
                    region,
                    image_id: None,
                    error: one_line(&err),
                });
                failures.push(err);
            }
        }
    }
    if failures.len() == region_count && region_count > 0 {
        let first = failures.remove(0);
        return Err(if region_count == 1 {
            first
        } else {
            first.context(format!("failed in all {region_count} regions"))
        });
    }
    Ok((found, errors))
}

struct RegionListing {
    images: Vec<ImageEntry>,
    errors: Vec<ListError>,
}

async fn list_region(
    ec2: &Ec2,
    query: &ImageQuery,
    read_permissions: bool,
) -> Result<RegionListing> {
    let mut images = ec2.describe_images(query).await?;
    // What DescribeImages still lists as deregistered is gone: not part of the inventory.
    images.retain(|image| crate::plan::state::Standing::of(&image.state).exists());
    let now = Utc::now();
    let entries: Vec<(ImageEntry, Option<ListError>)> = stream::iter(images)
        .map(|image| async move {
            let (shared_with, error) = if read_permissions {
                match ec2.launch_permissions(&image.image_id).await {
                    Ok(permissions) => (Some(shared_with(&permissions)), None),
                    Err(err) => (
                        None,
                        Some(ListError {
                            region: ec2.region().to_string(),
                            image_id: Some(image.image_id.clone()),
                            error: one_line(&err),
                        }),
                    ),
                }
            } else {
                (None, None)
            };
            (entry(image, shared_with, now), error)
        })
        .buffer_unordered(ATTRIBUTE_CONCURRENCY)
        .collect()
        .await;
    let mut listing = RegionListing {
        images: Vec::with_capacity(entries.len()),
        errors: Vec::new(),
    };
    for (entry, error) in entries {
        listing.images.push(entry);
        listing.errors.extend(error);
    }
    Ok(listing)
}

fn validate_owner(owner: &str) -> Result<()> {
    let is_account = owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit());
    let is_alias = !owner.is_empty() && owner.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    if owner == "self" || is_account || is_alias {
        Ok(())
    } else {
        Err(usage(format!(
            "invalid --owner '{owner}': expected self, a 12-digit account id, or an alias such as amazon"
        )))
    }
}

fn shared_with(permissions: &LaunchPermissions) -> SharedWith {
    SharedWith {
        accounts: permissions.accounts.clone(),
        organizations: permissions.organizations.clone(),
        organizational_units: permissions.organizational_units.clone(),
    }
}

fn entry(image: Image, shared_with: Option<SharedWith>, now: DateTime<Utc>) -> ImageEntry {
    let manifest_location = image
        .is_instance_store()
        .then(|| {
            image
                .image_location
                .as_ref()
                .map(|location| format!("s3://{location}"))
        })
        .flatten();
    let snapshots = image
        .block_devices
        .iter()
        .filter_map(|device| {
            device
                .snapshot_id
                .as_ref()
                .map(|snapshot_id| SnapshotEntry {
                    device_name: device.device_name.clone(),
                    snapshot_id: snapshot_id.clone(),
                    size_gib: device.volume_size_gib,
                    volume_type: device.volume_type.clone(),
                })
        })
        .collect();
    ImageEntry {
        age_days: image
            .creation_date
            .map(|created| (now - created).num_days()),
        region: image.region,
        image_id: image.image_id,
        name: image.name,
        description: image.description,
        owner_id: image.owner_id,
        state: image.state,
        root_device_type: image.root_device_type,
        root_device_name: image.root_device_name,
        architecture: image.architecture,
        creation_date: image.creation_date,
        snapshots,
        manifest_location,
        public: image.public,
        shared_with,
        tags: image.tags,
        deprecation_time: image.deprecation_time,
        deregistration_protection: image.deregistration_protection,
        last_launched_time: image.last_launched_time,
    }
}

/// `3d`, `5h`, `12m`: short enough for a table column.
fn short_age(created: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(created) = created else {
        return "-".to_string();
    };
    let age = now - created;
    if age.num_days() >= 1 {
        format!("{}d", age.num_days())
    } else if age.num_hours() >= 1 {
        format!("{}h", age.num_hours())
    } else {
        format!("{}m", age.num_minutes().max(0))
    }
}

impl Render for ListOutput {
    fn render(&self, style: &TableStyle) -> String {
        let now = Utc::now();
        let multi_region = self.regions.len() > 1;
        let mut out = String::new();
        if self.images.is_empty() {
            out.push_str(&format!("No images found in {}.", self.regions.join(", ")));
        } else {
            let mut header = vec![];
            if multi_region {
                header.push("REGION");
            }
            header.extend([
                "IMAGE ID",
                "NAME",
                "STATE",
                "ROOT",
                "CREATED",
                "AGE",
                "STORAGE",
                "SHARING",
                "PROTECTION",
                "DEPRECATION",
                "TAGS",
            ]);
            let mut table = style.table(&header);
            for image in &self.images {
                let mut row = vec![];
                if multi_region {
                    row.push(style.cell(&image.region, None));
                }
                let state_color = match image.state.as_str() {
                    "available" => None,
                    "pending" => Some(Color::Yellow),
                    _ => Some(Color::Red),
                };
                row.extend([
                    style.cell(&image.image_id, None),
                    style.cell(image.name.as_deref().unwrap_or("-"), None),
                    style.cell(&image.state, state_color),
                    style.cell(&image.root_device_type, None),
                    style.cell(
                        image
                            .creation_date
                            .map(|time| time.format("%Y-%m-%d %H:%M").to_string())
                            .unwrap_or_else(|| "-".into()),
                        None,
                    ),
                    style.cell(short_age(image.creation_date, now), None),
                    style.cell(storage(image), None),
                    style.cell(sharing(image), image.public.then_some(Color::Yellow)),
                    style.cell(protection(image.deregistration_protection.as_deref()), None),
                    style.cell(
                        image
                            .deprecation_time
                            .map(|time| time.format("%Y-%m-%d").to_string())
                            .unwrap_or_else(|| "-".into()),
                        None,
                    ),
                    style.cell(tags(&image.tags), None),
                ]);
                table.add_row(row);
            }
            out.push_str(&table.to_string());
            let count = self.images.len();
            out.push_str(&format!(
                "\n{count} image{} in {}",
                if count == 1 { "" } else { "s" },
                self.regions.join(", ")
            ));
            if self.images.iter().any(|image| image.shared_with.is_none()) {
                out.push_str(
                    "; SHARING shows only `public` (--shares reads who else may launch each)",
                );
            }
        }
        for error in &self.errors {
            out.push_str(&format!("\nfailed: {}: {}", error.region, error.error));
        }
        out
    }
}

fn storage(image: &ImageEntry) -> String {
    if let Some(location) = &image.manifest_location {
        return location.clone();
    }
    if image.snapshots.is_empty() {
        return "-".to_string();
    }
    image
        .snapshots
        .iter()
        .map(|snapshot| match snapshot.size_gib {
            Some(size) => format!("{} ({size} GiB)", snapshot.snapshot_id),
            None => snapshot.snapshot_id.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sharing(image: &ImageEntry) -> String {
    let mut parts = Vec::new();
    if image.public {
        parts.push("public".to_string());
    }
    if let Some(shared) = &image.shared_with {
        let mut count = |n: usize, what: &str| {
            if n > 0 {
                parts.push(format!("{n} {what}{}", if n == 1 { "" } else { "s" }));
            }
        };
        count(shared.accounts.len(), "account");
        count(shared.organizations.len(), "org");
        count(shared.organizational_units.len(), "OU");
    }
    match (parts.is_empty(), image.shared_with.is_some()) {
        (false, _) => parts.join(", "),
        (true, true) => "private".to_string(),
        // Not read (no --shares): only `public` is known.
        (true, false) => "-".to_string(),
    }
}

fn protection(value: Option<&str>) -> String {
    match value {
        None | Some("disabled") => "-".to_string(),
        Some(other) => other.to_string(),
    }
}

fn tags(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn owners() {
        for good in ["self", "123456789012", "amazon", "aws-marketplace"] {
            assert!(validate_owner(good).is_ok(), "{good}");
        }
        for bad in ["", "12345", "Self", "1234567890123", "me@x"] {
            assert!(validate_owner(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ages() {
        let now = Utc::now();
        assert_eq!(short_age(Some(now - Duration::days(3)), now), "3d");
        assert_eq!(short_age(Some(now - Duration::hours(5)), now), "5h");
        assert_eq!(short_age(Some(now - Duration::minutes(7)), now), "7m");
        assert_eq!(short_age(None, now), "-");
    }

    #[test]
    fn unknown_protection_values_are_shown_verbatim() {
        assert_eq!(protection(Some("disabled")), "-");
        assert_eq!(
            protection(Some("enabled-with-cooldown")),
            "enabled-with-cooldown"
        );
    }
}

/// `ami list --recycle-bin`: what the Recycle Bin holds, per region.
#[derive(Debug, Serialize)]
pub struct BinListing {
    pub regions: Vec<String>,
    pub recycle_bin: Vec<BinItem>,
    pub errors: Vec<ListError>,
}

#[derive(Debug, Serialize)]
pub struct BinItem {
    pub region: String,
    pub kind: BinKind,
    #[serde(flatten)]
    pub entry: crate::model::BinEntry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BinKind {
    Image,
    Snapshot,
}

async fn bin_in(aws: Aws, settings: &Settings) -> Result<(BinListing, Outcome)> {
    let (found, errors) = each_region(settings, "reading the Recycle Bin", |region| {
        let ec2 = aws.ec2(&region);
        async move {
            let mut items: Vec<BinItem> = Vec::new();
            for entry in ec2.images_in_bin(&[]).await? {
                items.push(BinItem {
                    region: region.clone(),
                    kind: BinKind::Image,
                    entry,
                });
            }
            for entry in ec2.snapshots_in_bin(&[]).await? {
                items.push(BinItem {
                    region: region.clone(),
                    kind: BinKind::Snapshot,
                    entry,
                });
            }
            Ok(items)
        }
    })
    .await?;
    let mut items: Vec<BinItem> = found.into_iter().flatten().collect();
    // A missing exit time sorts last: it says nothing about being soon.
    items.sort_by(|a, b| {
        (
            a.entry.leaves.is_none(),
            a.entry.leaves,
            &a.region,
            a.kind,
            &a.entry.id,
        )
            .cmp(&(
                b.entry.leaves.is_none(),
                b.entry.leaves,
                &b.region,
                b.kind,
                &b.entry.id,
            ))
    });
    let outcome = if errors.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    };
    Ok((
        BinListing {
            regions: settings.regions.clone(),
            recycle_bin: items,
            errors,
        },
        outcome,
    ))
}

impl Render for BinListing {
    fn render(&self, style: &TableStyle) -> String {
        if self.recycle_bin.is_empty() && self.errors.is_empty() {
            return format!("The Recycle Bin is empty in {}.", self.regions.join(", "));
        }
        let mut table = style.table(&["ID", "KIND", "REGION", "NAME", "DELETED", "LEAVES THE BIN"]);
        let day = |at: Option<DateTime<Utc>>| {
            at.map_or_else(
                || "-".to_string(),
                |at| at.format("%Y-%m-%d %H:%M").to_string(),
            )
        };
        for item in &self.recycle_bin {
            table.add_row(vec![
                style.cell(&item.entry.id, None),
                style.cell(
                    match item.kind {
                        BinKind::Image => "image",
                        BinKind::Snapshot => "snapshot",
                    },
                    None,
                ),
                style.cell(&item.region, None),
                style.cell(item.entry.name.as_deref().unwrap_or("-"), None),
                style.cell(day(item.entry.entered), None),
                style.cell(day(item.entry.leaves), None),
            ]);
        }
        let mut out = table.to_string();
        for error in &self.errors {
            out.push_str(&format!("\n{}: {}", error.region, error.error));
        }
        out.push_str(
            "\n`ami restore ID...` brings an image (with its snapshots) or a snapshot back.",
        );
        out
    }
}
