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
use crate::model::{
    AncestryEntry, DeregistrationProtection, Image, ImageState, LaunchPermissions, Owner,
    RootDeviceType,
};
use crate::output::{Render, TableStyle, spinner};
use crate::plan::lineage::{Lineage, Tree};

#[derive(Debug, Serialize)]
pub struct ListOutput {
    pub regions: Vec<String>,
    /// With --descendants: the image whose descendants these are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descendants_of: Option<String>,
    /// With --tree: images in forest order, each with its `depth` under its source.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tree: bool,
    pub images: Vec<ImageEntry>,
    /// What could not be read; non-empty means exit code 3 (or 1 when nothing could be read).
    pub errors: Vec<ListError>,
    /// What the endpoint does not offer (GetImageAncestry on an older partition).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// How a descendant came from the image asked about.
#[derive(Debug, Serialize)]
pub struct Descent {
    /// 1: made from it directly.
    pub generation: usize,
    /// `copy`: every step a copy (the same image elsewhere); `build`: built on it.
    pub by: DescentKind,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DescentKind {
    Copy,
    Build,
}

#[derive(Debug, Serialize)]
pub struct ImageEntry {
    pub region: String,
    pub image_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub owner_id: Option<String>,
    pub state: ImageState,
    pub root_device_type: RootDeviceType,
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
    pub deregistration_protection: Option<DeregistrationProtection>,
    pub last_launched_time: Option<DateTime<Utc>>,
    /// The image it was made from and its region, where AWS records it.
    pub source_image_id: Option<String>,
    pub source_image_region: Option<String>,
    /// With --ancestry: the chain from this image to its root (GetImageAncestry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ancestry: Option<Vec<AncestryEntry>>,
    /// With --tree: how deep under a listed source (0: a root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// With --descendants: how it descends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descent: Option<Descent>,
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
    let owner = parse_owner(&args.owner)?;
    if args.recycle_bin {
        if owner != Owner::Caller {
            return Err(usage(
                "--recycle-bin lists the caller's own bin: drop --owner",
            ));
        }
        return super::fleet::run(settings, &args.accounts, |aws| bin_in(aws, settings)).await;
    }
    if args.name.as_deref().is_some_and(str::is_empty) {
        return Err(usage("--name needs a non-empty glob"));
    }
    let query = ImageQuery {
        owners: vec![owner.clone()],
        name_glob: args.name.clone(),
        tags: args.tags.clone(),
        ..Default::default()
    };
    // Launch permissions: one call per image, and only on one's own images. Asked for only.
    if args.shares && owner != Owner::Caller {
        return Err(usage(
            "--shares reads launch permissions, which only an image's owner can: drop --owner or --shares",
        ));
    }
    if let Some(base) = &args.descendants {
        crate::ids::image_id(base)?;
    }
    let view = View {
        read_permissions: args.shares,
        ancestry: args.ancestry,
        tree: args.tree,
        descendants_of: args.descendants.clone(),
    };
    super::fleet::run(settings, &args.accounts, |aws| {
        list_in(aws, settings, query.clone(), view.clone())
    })
    .await
}

/// What `list` shows beyond the images themselves.
#[derive(Debug, Clone)]
struct View {
    read_permissions: bool,
    ancestry: bool,
    tree: bool,
    descendants_of: Option<String>,
}

/// The regions a listing reads: what descends from an image may be in any region, so every
/// enabled one is searched for --descendants.
async fn regions_to_list(aws: &Aws, settings: &Settings, view: &View) -> Result<Vec<String>> {
    Ok(match &view.descendants_of {
        Some(_) => {
            let home = settings
                .regions
                .first()
                .ok_or_else(|| usage("pass --region"))?;
            let mut regions = aws.ec2(home).enabled_regions().await?;
            regions.sort();
            regions
        }
        None => settings.regions.clone(),
    })
}

async fn list_in(
    aws: Aws,
    settings: &Settings,
    query: ImageQuery,
    view: View,
) -> Result<(ListOutput, Outcome)> {
    let regions = regions_to_list(&aws, settings, &view).await?;
    let (listings, mut errors) = each_region(settings, &regions, "listing images", |region| {
        let ec2 = aws.ec2(&region);
        let query = query.clone();
        let read_permissions = view.read_permissions;
        async move { list_region(&ec2, &query, read_permissions).await }
    })
    .await?;
    let mut listed: Vec<(Image, Option<SharedWith>)> = Vec::new();
    for listing in listings {
        listed.extend(listing.images);
        errors.extend(listing.errors);
    }
    listed.sort_by(|(a, _), (b, _)| {
        (a.creation_date, &a.region, &a.image_id).cmp(&(b.creation_date, &b.region, &b.image_id))
    });
    let mut notes = Vec::new();
    let images: Vec<Image> = listed.iter().map(|(image, _)| image.clone()).collect();
    // Chains: every image's with --ancestry; with --descendants, those whose line the listing
    // alone cannot follow (an ancestor gone, or another account's).
    let wanted: Vec<&Image> = if view.ancestry {
        images.iter().collect()
    } else if view.descendants_of.is_some() {
        Lineage::new(&images).unresolved()
    } else {
        Vec::new()
    };
    let (chains, chain_errors, not_offered) = read_chains(&aws, &wanted).await;
    errors.extend(chain_errors);
    if let Some(note) = not_offered {
        notes.push(note);
    }
    let chain_list: Vec<Vec<AncestryEntry>> = chains.values().cloned().collect();
    let lineage = Lineage::with_chains(&images, &chain_list);
    let now = Utc::now();
    let mut shares: BTreeMap<String, Option<SharedWith>> = listed
        .into_iter()
        .map(|(image, shared)| (image.image_id, shared))
        .collect();
    let mut make = |image: &Image| {
        let shared = shares.remove(&image.image_id).flatten();
        let mut entry = entry(image.clone(), shared, now);
        if view.ancestry {
            entry.ancestry = chains.get(&image.image_id).cloned();
        }
        entry
    };
    let entries: Vec<ImageEntry> = if let Some(base) = &view.descendants_of {
        lineage
            .descendants_of(base)
            .into_iter()
            .map(|descendant| {
                let mut entry = make(descendant.image);
                entry.descent = Some(Descent {
                    generation: descendant.generation,
                    by: if descendant.copy {
                        DescentKind::Copy
                    } else {
                        DescentKind::Build
                    },
                });
                entry
            })
            .collect()
    } else if view.tree {
        let mut ordered = Vec::new();
        fn walk<'a>(tree: &Tree<'a>, depth: usize, out: &mut Vec<(&'a Image, usize)>) {
            out.push((tree.image, depth));
            for child in &tree.children {
                walk(child, depth + 1, out);
            }
        }
        for tree in lineage.forest() {
            walk(&tree, 0, &mut ordered);
        }
        ordered
            .into_iter()
            .map(|(image, depth)| {
                let mut entry = make(image);
                entry.depth = Some(depth);
                entry
            })
            .collect()
    } else {
        images.iter().map(&mut make).collect()
    };
    let outcome = if errors.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    };
    Ok((
        ListOutput {
            regions,
            descendants_of: view.descendants_of.clone(),
            tree: view.tree,
            images: entries,
            errors,
            notes,
        },
        outcome,
    ))
}

/// GetImageAncestry for each image, a few at once. An endpoint without the action gives a note
/// (once), not an error per image.
async fn read_chains(
    aws: &Aws,
    images: &[&Image],
) -> (
    BTreeMap<String, Vec<AncestryEntry>>,
    Vec<ListError>,
    Option<String>,
) {
    let answers: Vec<(
        &Image,
        Result<Vec<AncestryEntry>, crate::aws::error::AwsError>,
    )> = stream::iter(images.iter().copied())
        .map(|image| async move {
            let ec2 = aws.ec2(&image.region);
            (image, ec2.image_ancestry(&image.image_id).await)
        })
        .buffer_unordered(crate::concurrency::IMAGE_ATTRIBUTES)
        .collect()
        .await;
    let mut chains = BTreeMap::new();
    let mut errors = Vec::new();
    let mut not_offered = None;
    for (image, answer) in answers {
        match answer {
            Ok(chain) => {
                chains.insert(image.image_id.clone(), chain);
            }
            Err(err) if err.not_offered() => {
                not_offered = Some(format!(
                    "{} does not offer GetImageAncestry: chains through images no longer listed \
                     are not followed",
                    image.region
                ));
            }
            Err(err) => errors.push(ListError {
                region: image.region.clone(),
                image_id: Some(image.image_id.clone()),
                error: one_line(&anyhow::Error::from(err)),
            }),
        }
    }
    (chains, errors, not_offered)
}

/// Runs `read` in every region of the run, a few at once. Returns what the regions that answered
/// gave (in region order) and an error line for each that did not; fails when none answered,
/// rather than print an empty listing.
async fn each_region<T, F, Fut>(
    settings: &Settings,
    regions: &[String],
    message: &str,
    read: F,
) -> Result<(Vec<T>, Vec<ListError>)>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let progress = spinner(settings, message);
    let mut results: Vec<(String, Result<T>)> = stream::iter(regions.to_vec())
        .map(|region| {
            let read = read(region.clone());
            async move { (region, read.await) }
        })
        .buffer_unordered(crate::concurrency::REGIONS)
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

/// An image and who it is shared with (None: not read).
type Listed = (Image, Option<SharedWith>);

struct RegionListing {
    images: Vec<Listed>,
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
    let entries: Vec<(Listed, Option<ListError>)> = stream::iter(images)
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
            ((image, shared_with), error)
        })
        .buffer_unordered(crate::concurrency::IMAGE_ATTRIBUTES)
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

fn parse_owner(owner: &str) -> Result<Owner> {
    Owner::parse(owner).ok_or_else(|| {
        usage(format!(
            "invalid --owner '{owner}': expected self, a 12-digit account id, or an alias such as amazon"
        ))
    })
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
        source_image_id: image.source_image_id,
        source_image_region: image.source_image_region,
        ancestry: None,
        depth: None,
        descent: None,
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
            match &self.descendants_of {
                Some(base) => out.push_str(&format!(
                    "No image of this account descends from {base} in {}.",
                    self.regions.join(", ")
                )),
                None => out.push_str(&format!("No images found in {}.", self.regions.join(", "))),
            }
        } else {
            let mut header = vec![];
            // A forest and a base's descendants span regions.
            let multi_region = multi_region || self.tree || self.descendants_of.is_some();
            if multi_region {
                header.push("REGION");
            }
            if self.descendants_of.is_some() {
                header.push("DESCENT");
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
                if let Some(descent) = &image.descent {
                    let by = match descent.by {
                        DescentKind::Copy => "copy",
                        DescentKind::Build => "built",
                    };
                    row.push(style.cell(format!("{by}, generation {}", descent.generation), None));
                }
                let id = match image.depth {
                    Some(depth) if depth > 0 => {
                        format!("{}└ {}", "  ".repeat(depth - 1), image.image_id)
                    }
                    _ => image.image_id.clone(),
                };
                let state_color = match image.state.as_str() {
                    "available" => None,
                    "pending" => Some(Color::Yellow),
                    _ => Some(Color::Red),
                };
                row.extend([
                    style.cell(id, None),
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
                    style.cell(protection(image.deregistration_protection.as_ref()), None),
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
            match &error.image_id {
                Some(image_id) => out.push_str(&format!(
                    "\nfailed: {} {image_id}: {}",
                    error.region, error.error
                )),
                None => out.push_str(&format!("\nfailed: {}: {}", error.region, error.error)),
            }
        }
        for note in &self.notes {
            out.push_str(&format!("\nnote: {note}"));
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

fn protection(value: Option<&DeregistrationProtection>) -> String {
    match value {
        None | Some(DeregistrationProtection::Disabled) => "-".to_string(),
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
            assert!(parse_owner(good).is_ok(), "{good}");
        }
        for bad in ["", "12345", "Self", "1234567890123", "me@x"] {
            assert!(parse_owner(bad).is_err(), "{bad}");
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
        let shown = |aws: &str| protection(Some(&DeregistrationProtection::from(aws)));
        assert_eq!(shown("disabled"), "-");
        assert_eq!(shown("enabled-with-cooldown"), "enabled-with-cooldown");
        assert_eq!(
            shown("disabled-until-2026-11-24T00:00:00.000Z"),
            "disabled-until-2026-11-24T00:00:00.000Z"
        );
        assert_eq!(shown("something-new"), "something-new");
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
    let (found, errors) = each_region(
        settings,
        &settings.regions,
        "reading the Recycle Bin",
        |region| {
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
        },
    )
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
