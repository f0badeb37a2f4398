//! `ami restore ID...`: brings images and snapshots back from the Recycle Bin. An image comes
//! back with the snapshots it needs, so that it can launch again.

use anyhow::Result;
use futures::{StreamExt, stream};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::aws::{Aws, Ec2};
use crate::cli::RestoreArgs;
use crate::config::Settings;
use crate::error::{Outcome, one_line, usage};
use crate::model::BinEntry;
use crate::output::{Printer, Render, TableStyle, spinner};
use crate::plan::orphans::image_named_by;
use crate::plan::state::Standing;

#[derive(Debug, Serialize)]
pub struct RestoreOutput {
    pub region: String,
    pub dry_run: bool,
    pub images: Vec<RestoredImage>,
    /// Snapshots asked for by id (an image's own are listed under it).
    pub snapshots: Vec<RestoredSnapshot>,
}

#[derive(Debug, Serialize)]
pub struct RestoredImage {
    pub image_id: String,
    pub name: Option<String>,
    pub status: RestoreStatus,
    pub error: Option<String>,
    /// The snapshots the image needs, and what became of each.
    pub snapshots: Vec<RestoredSnapshot>,
}

#[derive(Debug, Serialize)]
pub struct RestoredSnapshot {
    pub snapshot_id: String,
    pub status: RestoreStatus,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreStatus {
    Restored,
    /// Out of the bin already (never in it, or restored by an earlier run): it exists.
    Present,
    /// An image's snapshot that is gone for good: neither in the account nor in the bin.
    Missing,
    Failed,
    /// --dry-run: would be restored.
    WouldRestore,
}

impl RestoreStatus {
    fn as_str(self) -> &'static str {
        match self {
            RestoreStatus::Restored => "restored",
            RestoreStatus::Present => "present",
            RestoreStatus::Missing => "missing",
            RestoreStatus::Failed => "FAILED",
            RestoreStatus::WouldRestore => "would restore",
        }
    }

    fn failed(self) -> bool {
        matches!(self, RestoreStatus::Failed | RestoreStatus::Missing)
    }
}

/// The ids on the command line, split by kind; anything else is refused before any call.
fn split_ids(ids: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let mut images = Vec::new();
    let mut snapshots = Vec::new();
    let mut problems = Vec::new();
    for id in ids {
        let checked = if id.starts_with("snap-") {
            crate::ids::snapshot_id(id).map(|()| &mut snapshots)
        } else {
            crate::ids::image_id(id).map(|()| &mut images)
        };
        match checked {
            Ok(list) if !list.contains(id) => list.push(id.clone()),
            Ok(_) => {}
            Err(err) => problems.push(err.to_string()),
        }
    }
    if problems.is_empty() {
        Ok((images, snapshots))
    } else {
        Err(usage(format!(
            "{}; nothing was restored",
            problems.join("; ")
        )))
    }
}

pub async fn run(settings: &Settings, args: &RestoreArgs) -> Result<Outcome> {
    let (image_ids, snapshot_ids) = split_ids(&args.ids)?;
    let region = match settings.regions.as_slice() {
        [region] => region.clone(),
        _ => {
            return Err(usage(
                "restore works in one region at a time: pass a single --region",
            ));
        }
    };
    let aws = Aws::connect(settings).await?;
    let ec2 = aws.ec2(&region);
    let progress = spinner(settings, format!("reading the Recycle Bin of {region}"));
    let images_in_bin = ec2.images_in_bin(&image_ids).await?;
    // Every snapshot in the bin: an image's own are found by the image their description names.
    let snapshots_in_bin = ec2.snapshots_in_bin(&[]).await?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let image_names: BTreeMap<&str, &BinEntry> =
        images_in_bin.iter().map(|e| (e.id.as_str(), e)).collect();
    let (back, present_snapshots) = out_of_the_bin(
        &aws,
        &region,
        &image_ids,
        &snapshot_ids,
        &image_names,
        &snapshots_in_bin,
    )
    .await?;

    let mut output = RestoreOutput {
        region: region.clone(),
        dry_run: settings.dry_run,
        images: Vec::new(),
        snapshots: Vec::new(),
    };
    let progress = spinner(settings, format!("restoring in {region}"));
    // Requested snapshots first: an image may need them.
    let to_restore: Vec<String> = snapshot_ids
        .iter()
        .filter(|id| !present_snapshots.contains_key(*id))
        .cloned()
        .collect();
    output.snapshots = restore_snapshots(&ec2, &to_restore, settings.dry_run).await;
    output
        .snapshots
        .extend(present_snapshots.keys().map(|id| RestoredSnapshot {
            snapshot_id: id.clone(),
            status: RestoreStatus::Present,
            error: None,
        }));
    output
        .snapshots
        .sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
    let in_bin: Vec<String> = image_ids
        .iter()
        .filter(|id| !back.contains(id))
        .cloned()
        .collect();
    let mut restored: Vec<RestoredImage> = stream::iter(in_bin)
        .map(|image_id| {
            let ec2 = ec2.clone();
            let name = image_names
                .get(image_id.as_str())
                .and_then(|entry| entry.name.clone());
            let own: Vec<String> = snapshots_in_bin
                .iter()
                .filter(|s| {
                    s.name.as_deref().and_then(image_named_by).as_deref() == Some(image_id.as_str())
                })
                .map(|s| s.id.clone())
                .filter(|id| !snapshot_ids.contains(id))
                .collect();
            async move { restore_image(&ec2, image_id, name, own, settings.dry_run).await }
        })
        .buffer_unordered(crate::concurrency::MUTATIONS)
        .collect()
        .await;
    restored.extend(back.into_iter().map(|image_id| RestoredImage {
        image_id,
        name: None,
        status: RestoreStatus::Present,
        error: None,
        snapshots: Vec::new(),
    }));
    restored.sort_by(|a, b| a.image_id.cmp(&b.image_id));
    // Then, one image after another (two may need the same snapshot), whatever else the images
    // that came back name in their mappings.
    let mut handled: BTreeMap<String, RestoreStatus> = output
        .snapshots
        .iter()
        .chain(restored.iter().flat_map(|image| image.snapshots.iter()))
        .map(|s| (s.snapshot_id.clone(), s.status))
        .collect();
    for image in restored.iter_mut().filter(|image| {
        image.status == RestoreStatus::Restored
            || (image.status == RestoreStatus::Present && !settings.dry_run)
    }) {
        if let Err(err) = complete_mapping(&ec2, image, &mut handled).await {
            image.error = Some(one_line(&err));
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    output.images = restored;

    let outcome = outcome_of(&output);
    Printer::new(settings).emit(&output)?;
    Ok(outcome)
}

/// What of the requested is out of the bin already (a re-run after Ctrl-C or a kill): the
/// images that exist, and the snapshots that exist. Anything neither in the bin nor in the
/// account is refused by name before anything is restored.
async fn out_of_the_bin(
    aws: &Aws,
    region: &str,
    image_ids: &[String],
    snapshot_ids: &[String],
    image_names: &BTreeMap<&str, &BinEntry>,
    snapshots_in_bin: &[BinEntry],
) -> Result<(Vec<String>, BTreeMap<String, crate::model::SnapshotInfo>)> {
    let ec2 = aws.ec2(region);
    let binned_snapshots: BTreeSet<&str> = snapshots_in_bin.iter().map(|e| e.id.as_str()).collect();
    // Out of the bin already (a re-run after Ctrl-C or a kill): an image that exists is finished
    // (its mapping completed below), a snapshot that exists is reported present.
    let mut back: Vec<String> = Vec::new();
    let mut absent: Vec<String> = Vec::new();
    let own_account = if image_ids
        .iter()
        .any(|id| !image_names.contains_key(id.as_str()))
    {
        Some(aws.account_id(region).await?)
    } else {
        None
    };
    for id in image_ids
        .iter()
        .filter(|id| !image_names.contains_key(id.as_str()))
    {
        match ec2.describe_image(id).await? {
            // Listed as deregistered is not back: it is gone (and not in the bin).
            Some(image)
                if image.owner_id.as_deref() == own_account.as_deref()
                    && Standing::of(&image.state).exists() =>
            {
                back.push(id.clone())
            }
            _ => absent.push(id.clone()),
        }
    }
    let unbinned: Vec<String> = snapshot_ids
        .iter()
        .filter(|id| !binned_snapshots.contains(id.as_str()))
        .cloned()
        .collect();
    let present_snapshots = ec2.owned_snapshots(&unbinned).await?;
    absent.extend(
        unbinned
            .iter()
            .filter(|id| !present_snapshots.contains_key(*id))
            .cloned(),
    );
    if !absent.is_empty() {
        return Err(usage(format!(
            "neither in the Recycle Bin of {region} nor in the account: {} (gone for good, \
             never deleted, or another region?); nothing was restored",
            absent.join(", ")
        )));
    }

    Ok((back, present_snapshots))
}

/// Partial when some items failed, including an image whose mapping could not be completed
/// (it may still lack a snapshot).
fn outcome_of(output: &RestoreOutput) -> Outcome {
    let items: Vec<RestoreStatus> = output
        .images
        .iter()
        .flat_map(|image| {
            std::iter::once(image.status).chain(image.snapshots.iter().map(|s| s.status))
        })
        .chain(output.snapshots.iter().map(|s| s.status))
        .collect();
    // An image whose mapping could not be completed may still lack a snapshot: not a success.
    let unfinished = output.images.iter().filter(|i| i.error.is_some()).count();
    let failed = items.iter().filter(|status| status.failed()).count() + unfinished;
    match failed {
        0 => Outcome::Success,
        n if n == items.len() => Outcome::Failed,
        _ => Outcome::Partial,
    }
}

async fn restore_snapshots(ec2: &Ec2, ids: &[String], dry_run: bool) -> Vec<RestoredSnapshot> {
    let mut restored: Vec<RestoredSnapshot> = stream::iter(ids.to_vec())
        .map(|id| async move {
            if dry_run {
                return RestoredSnapshot {
                    snapshot_id: id,
                    status: RestoreStatus::WouldRestore,
                    error: None,
                };
            }
            let result = ec2.restore_snapshot(&id).await;
            RestoredSnapshot {
                snapshot_id: id,
                status: if result.is_ok() {
                    RestoreStatus::Restored
                } else {
                    RestoreStatus::Failed
                },
                error: result.err().map(|err| one_line(&err)),
            }
        })
        .buffer_unordered(crate::concurrency::MUTATIONS)
        .collect()
        .await;
    restored.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
    restored
}

/// The image's snapshots that the bin shows as made for it first, then the image. What else its
/// block-device mapping names (snapshots registered by hand do not name their image) is
/// restored once it is back and can be read (`complete_mapping`).
async fn restore_image(
    ec2: &Ec2,
    image_id: String,
    name: Option<String>,
    own: Vec<String>,
    dry_run: bool,
) -> RestoredImage {
    let mut snapshots = restore_snapshots(ec2, &own, dry_run).await;
    if dry_run {
        return RestoredImage {
            image_id,
            name,
            status: RestoreStatus::WouldRestore,
            error: None,
            snapshots,
        };
    }
    let (status, error) = match ec2.restore_image(&image_id).await {
        Ok(()) => (RestoreStatus::Restored, None),
        Err(err) => (RestoreStatus::Failed, Some(one_line(&err))),
    };
    snapshots.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
    RestoredImage {
        image_id,
        name,
        status,
        error,
        snapshots,
    }
}

/// After the image is back: every snapshot its mapping names is present, restored now (or by
/// another image of this run), or reported missing.
async fn complete_mapping(
    ec2: &Ec2,
    image: &mut RestoredImage,
    handled: &mut BTreeMap<String, RestoreStatus>,
) -> Result<()> {
    let image_id = image.image_id.clone();
    let snapshots = &mut image.snapshots;
    // Just restored, the image may be unknown to DescribeImages for a while (`settle`).
    let described = ec2.new_image(&image_id).await?;
    let mut needed: Vec<String> = Vec::new();
    for id in described
        .block_devices
        .iter()
        .filter_map(|device| device.snapshot_id.clone())
    {
        if snapshots.iter().any(|s| s.snapshot_id == id) {
            continue;
        }
        match handled.get(&id) {
            Some(status) => snapshots.push(RestoredSnapshot {
                snapshot_id: id,
                status: *status,
                error: None,
            }),
            None => needed.push(id),
        }
    }
    if needed.is_empty() {
        snapshots.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
        return Ok(());
    }
    let in_bin: BTreeSet<String> = ec2
        .snapshots_in_bin(&needed)
        .await?
        .into_iter()
        .map(|entry| entry.id)
        .collect();
    let (from_bin, others): (Vec<String>, Vec<String>) =
        needed.into_iter().partition(|id| in_bin.contains(id));
    for restored in restore_snapshots(ec2, &from_bin, false).await {
        handled.insert(restored.snapshot_id.clone(), restored.status);
        snapshots.push(restored);
    }
    let present = ec2.owned_snapshots(&others).await?;
    for id in others {
        let (status, error) = if present.contains_key(&id) {
            (RestoreStatus::Present, None)
        } else {
            (
                RestoreStatus::Missing,
                Some("not in the account nor in the Recycle Bin: the image cannot launch".into()),
            )
        };
        handled.insert(id.clone(), status);
        snapshots.push(RestoredSnapshot {
            snapshot_id: id,
            status,
            error,
        });
    }
    snapshots.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
    Ok(())
}

impl Render for RestoreOutput {
    fn render(&self, style: &TableStyle) -> String {
        let mut table = style.table(&["ID", "OF IMAGE", "NAME", "STATUS", "ERROR"]);
        let color = |status: RestoreStatus| {
            if status.failed() {
                Some(comfy_table::Color::Red)
            } else if status == RestoreStatus::Restored {
                Some(comfy_table::Color::Green)
            } else {
                None
            }
        };
        let mut row =
            |id: &str, of: &str, name: &str, status: RestoreStatus, error: &Option<String>| {
                table.add_row(vec![
                    style.cell(id, None),
                    style.cell(of, None),
                    style.cell(name, None),
                    style.cell(status.as_str(), color(status)),
                    style.cell(error.as_deref().unwrap_or(""), None),
                ]);
            };
        for image in &self.images {
            row(
                &image.image_id,
                "-",
                image.name.as_deref().unwrap_or("-"),
                image.status,
                &image.error,
            );
            for snapshot in &image.snapshots {
                row(
                    &snapshot.snapshot_id,
                    &image.image_id,
                    "",
                    snapshot.status,
                    &snapshot.error,
                );
            }
        }
        for snapshot in &self.snapshots {
            row(
                &snapshot.snapshot_id,
                "-",
                "",
                snapshot.status,
                &snapshot.error,
            );
        }
        let mut out = format!("Recycle Bin of {}:\n{table}", self.region);
        if self.dry_run {
            out.push_str("\nDry run: nothing was restored.");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_split_by_kind_and_checked_before_anything() {
        let (images, snapshots) = split_ids(&[
            "ami-0123456789abcdef0".into(),
            "snap-0123456789abcdef0".into(),
            "ami-0123456789abcdef0".into(),
        ])
        .unwrap();
        assert_eq!(images, ["ami-0123456789abcdef0"]);
        assert_eq!(snapshots, ["snap-0123456789abcdef0"]);
        let err = split_ids(&["ami-0123456789abcdef0".into(), "vol-12345678".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'vol-12345678'") && err.contains("nothing was restored"),
            "{err}"
        );
    }
}
