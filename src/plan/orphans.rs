//! Orphaned snapshots: made for an image by CreateImage or CopyImage (whose descriptions name it)
//! whose image is gone, and used by no image that exists. A snapshot made by hand names no image
//! and is never an orphan.

use regex::Regex;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::OnceLock;

use super::recovery::{Recovery, recovery};
use super::{BinNeeds, BundleFacts, ItemAction, ManifestRead, lock_keeps};
pub use crate::model::SnapshotFact;
use crate::model::{BinResource, BinnedImages, Image, RecycleRules, SnapshotLocks, SnapshotState};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrphanPlan {
    pub snapshot_id: String,
    /// The image it was made for.
    pub image_id: String,
    pub description: Option<String>,
    pub size_gib: i32,
    pub action: ItemAction,
    pub reason: String,
    /// For an orphan the sweep deletes: whether the Recycle Bin will keep it.
    pub recycle_bin: Option<Recovery>,
}

/// The image an AWS-made snapshot names in its description.
pub fn image_named_by(description: &str) -> Option<String> {
    static PATTERNS: OnceLock<[Regex; 2]> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        [
            Regex::new(r"^Created by CreateImage\([^)]*\) for (ami-\w+)").expect("regex"),
            Regex::new(r"^Copied for DestinationAmi (ami-\w+)").expect("regex"),
        ]
    });
    patterns
        .iter()
        .find_map(|pattern| pattern.captures(description))
        .and_then(|captures| captures.get(1))
        .map(|image| image.as_str().to_string())
}

/// `images`: every image the account has in the region, in every state (one listed as
/// deregistered is gone); `binned`: the images in the region's Recycle Bin, whose snapshots
/// they need to be restored.
pub fn orphans(
    snapshots: &[SnapshotFact],
    images: &[Image],
    locks: &SnapshotLocks,
    recycle: &RecycleRules,
    binned: &BinnedImages,
    now: DateTime<Utc>,
) -> Vec<OrphanPlan> {
    // What AWS still lists as deregistered is gone, but one in the bin needs its snapshots.
    let bin = BinNeeds::new(images, binned);
    let images: Vec<&Image> = images
        .iter()
        .filter(|image| super::state::Standing::of(&image.state).exists())
        .collect();
    let existing: BTreeSet<&str> = images.iter().map(|i| i.image_id.as_str()).collect();
    let referenced: BTreeSet<&str> = images
        .iter()
        .flat_map(|image| image.block_devices.iter())
        .filter_map(|device| device.snapshot_id.as_deref())
        .collect();
    let mut plans = Vec::new();
    for snapshot in snapshots {
        // Only AWS's own descriptions count. A pending-cleanup tag alone does not: its run may
        // have been abandoned and the image deregistered later without --cleanup, meaning to
        // keep the snapshot; re-running that `deregister --cleanup` finishes marked snapshots.
        let named = snapshot.description.as_deref().and_then(image_named_by);
        let Some(image_id) = named else {
            continue;
        };
        if existing.contains(image_id.as_str()) {
            continue;
        }
        let (action, reason) = if referenced.contains(snapshot.snapshot_id.as_str()) {
            (ItemAction::Keep, "used by an existing image".to_string())
        } else if snapshot.state != SnapshotState::Completed {
            (
                ItemAction::Keep,
                format!("state is {}, not completed", snapshot.state),
            )
        } else if let Some(managed) = super::managed::snapshot_block(&snapshot.tags) {
            (ItemAction::Keep, managed)
        } else if let Some(binned) =
            bin.keeps(&snapshot.snapshot_id, snapshot.description.as_deref())
        {
            (ItemAction::Keep, binned)
        } else if let Some(locked) = lock_keeps(locks, &snapshot.snapshot_id, now) {
            (ItemAction::Keep, locked)
        } else {
            (
                ItemAction::Delete,
                format!("made for {image_id}, which no longer exists"),
            )
        };
        let recycle_bin = (action == ItemAction::Delete)
            .then(|| recovery(recycle, BinResource::Snapshot, &snapshot.tags, now));
        plans.push(OrphanPlan {
            snapshot_id: snapshot.snapshot_id.clone(),
            image_id,
            description: snapshot.description.clone(),
            size_gib: snapshot.size_gib,
            action,
            reason,
            recycle_bin,
        });
    }
    plans
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrphanBundlePlan {
    /// The bucket's region, where its objects are deleted.
    pub region: String,
    pub bucket: String,
    pub manifest_key: String,
    /// Keys to delete: the parts, then the manifest.
    pub objects: Vec<String>,
    pub bytes: u64,
    pub action: ItemAction,
    pub reason: String,
}

/// Bundles whose manifest no registered image uses. `unused`: those manifests; `used`: the
/// manifests images do use in the same buckets, so that a part two bundles share stays.
/// `unreadable`: regions whose images could not be read; an image there may use any bundle, so
/// every bundle is kept.
pub fn orphan_bundles(
    region: &str,
    unused: &[BundleFacts],
    used: &[BundleFacts],
    unreadable: &[String],
) -> Vec<OrphanBundlePlan> {
    let mut plans = Vec::new();
    for facts in unused {
        let mut plan = OrphanBundlePlan {
            region: region.to_string(),
            bucket: facts.bucket.clone(),
            manifest_key: facts.manifest_key.clone(),
            objects: Vec::new(),
            bytes: facts.existing.values().sum(),
            action: ItemAction::Keep,
            reason: String::new(),
        };
        if !unreadable.is_empty() {
            plan.reason = format!(
                "the images of {} could not be read: cannot tell whether one uses it",
                unreadable.join(", ")
            );
            plans.push(plan);
            continue;
        }
        let manifest = match &facts.manifest {
            ManifestRead::Parsed(manifest) => manifest,
            ManifestRead::Missing => {
                plan.reason = "manifest vanished while listing".into();
                plans.push(plan);
                continue;
            }
            ManifestRead::Unreadable(why) => {
                plan.reason = format!("manifest could not be read: {why}");
                plans.push(plan);
                continue;
            }
            ManifestRead::Invalid(why) => {
                plan.reason = format!("{why}; nothing deleted");
                plans.push(plan);
                continue;
            }
        };
        let keys: Vec<String> = manifest
            .parts
            .iter()
            .map(|part| format!("{}{part}", facts.prefix))
            .collect();
        let shared = used.iter().filter(|u| u.bucket == facts.bucket).find_map(|u| match &u.manifest {
            ManifestRead::Parsed(other) => other
                .parts
                .iter()
                .map(|part| format!("{}{part}", u.prefix))
                .find(|key| keys.contains(key))
                .map(|key| format!("part {key} is also listed by s3://{}/{}, which an image uses", u.bucket, u.manifest_key)),
            ManifestRead::Missing => None,
            _ if u.prefix == facts.prefix => Some(format!(
                "cannot tell whether it shares parts with s3://{}/{} (an image uses it; unreadable)",
                u.bucket, u.manifest_key
            )),
            _ => None,
        });
        if let Some(reason) = shared {
            plan.reason = reason;
            plans.push(plan);
            continue;
        }
        plan.objects = keys
            .into_iter()
            .filter(|key| facts.existing.contains_key(key))
            .collect();
        if facts.existing.contains_key(&facts.manifest_key) {
            plan.objects.push(facts.manifest_key.clone());
        }
        plan.action = ItemAction::Delete;
        plan.reason = "no registered image uses this manifest".into();
        plans.push(plan);
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(id: &str, description: &str) -> SnapshotFact {
        SnapshotFact {
            snapshot_id: id.into(),
            description: Some(description.into()),
            state: "completed".into(),
            size_gib: 8,
            tags: Default::default(),
        }
    }

    fn image(id: &str, snapshot: &str) -> Image {
        crate::plan::fixture::image(id)
            .owner(None)
            .state("disabled")
            .snapshots(&[snapshot])
            .build()
    }

    #[test]
    fn descriptions_name_their_image() {
        let table = [
            (
                "Created by CreateImage(i-0123) for ami-0abc",
                Some("ami-0abc"),
            ),
            (
                "Created by CreateImage(i-0123) for ami-0abc from vol-0def",
                Some("ami-0abc"),
            ),
            (
                "Copied for DestinationAmi ami-0abc from SourceAmi ami-0def for SourceSnapshot snap-1. Task created on 1,700,000,000.",
                Some("ami-0abc"),
            ),
            ("nightly backup of ami-0abc", None),
            ("", None),
        ];
        for (description, image) in table {
            assert_eq!(
                image_named_by(description).as_deref(),
                image,
                "{description}"
            );
        }
    }

    #[test]
    fn only_snapshots_of_gone_images_used_by_nothing_go() {
        let snapshots = vec![
            snapshot("snap-orphan", "Created by CreateImage(i-1) for ami-gone1"),
            snapshot(
                "snap-copy",
                "Copied for DestinationAmi ami-gone2 from SourceAmi ami-x for SourceSnapshot snap-9. Task",
            ),
            snapshot("snap-live", "Created by CreateImage(i-1) for ami-live"),
            snapshot("snap-manual", "before the upgrade"),
            snapshot("snap-reused", "Created by CreateImage(i-1) for ami-gone3"),
            SnapshotFact {
                state: "pending".into(),
                ..snapshot("snap-pending", "Created by CreateImage(i-1) for ami-gone4")
            },
            // Marked by an interrupted run, but no AWS description: not the sweep's to delete.
            SnapshotFact {
                description: None,
                ..snapshot("snap-marked", "")
            },
            // AWS Backup's: its to delete, however orphaned it looks.
            SnapshotFact {
                tags: [(
                    "aws:backup:source-resource".to_string(),
                    "i-1:x".to_string(),
                )]
                .into(),
                ..snapshot("snap-backup", "Created by CreateImage(i-1) for ami-gone5")
            },
        ];
        // ami-live exists (disabled still counts); ami-other uses snap-reused.
        let images = vec![
            image("ami-live", "snap-live"),
            image("ami-other", "snap-reused"),
        ];
        let plans = orphans(
            &snapshots,
            &images,
            &SnapshotLocks::default(),
            &RecycleRules::default(),
            &BinnedImages::Known(Default::default()),
            Utc::now(),
        );
        let actions: Vec<(&str, ItemAction)> = plans
            .iter()
            .map(|p| (p.snapshot_id.as_str(), p.action))
            .collect();
        assert_eq!(
            actions,
            [
                ("snap-orphan", ItemAction::Delete),
                ("snap-copy", ItemAction::Delete),
                ("snap-reused", ItemAction::Keep),
                ("snap-pending", ItemAction::Keep),
                ("snap-backup", ItemAction::Keep),
            ]
        );
        assert!(
            plans[4].reason.contains("AWS Backup"),
            "{}",
            plans[4].reason
        );
        assert_eq!(
            plans[0].reason,
            "made for ami-gone1, which no longer exists"
        );

        // A locked orphan is kept, saying until when; an unreadable lock state keeps them all.
        let locks = SnapshotLocks::Known(
            [(
                "snap-copy".to_string(),
                crate::model::SnapshotLock {
                    state: crate::model::LockState::Compliance,
                    expires: Some(Utc::now() + chrono::Duration::days(30)),
                },
            )]
            .into(),
        );
        let plans = orphans(
            &snapshots,
            &images,
            &locks,
            &RecycleRules::default(),
            &BinnedImages::Known(Default::default()),
            Utc::now(),
        );
        assert_eq!(plans[0].action, ItemAction::Delete);
        assert_eq!(plans[1].action, ItemAction::Keep);
        assert!(
            plans[1]
                .reason
                .starts_with("locked (compliance mode) until")
        );
        let unreadable = SnapshotLocks::Unreadable("AccessDenied".into());
        let plans = orphans(
            &snapshots,
            &images,
            &unreadable,
            &RecycleRules::default(),
            &BinnedImages::Known(Default::default()),
            Utc::now(),
        );
        assert!(plans.iter().all(|p| p.action == ItemAction::Keep));
    }

    #[test]
    fn a_deregistered_image_leaves_orphans_unless_the_recycle_bin_holds_it() {
        let snapshots = vec![
            snapshot("snap-listed", "Created by CreateImage(i-1) for ami-listed"),
            snapshot("snap-binned", "Created by CreateImage(i-1) for ami-binned"),
            // Made for ami-x (long gone), then registered as ami-reg, now deregistered.
            snapshot("snap-reg", "Created by CreateImage(i-1) for ami-x"),
        ];
        // AWS still lists these, as deregistered, with their mappings.
        let images = vec![
            crate::plan::fixture::image("ami-listed")
                .state("deregistered")
                .snapshots(&["snap-listed"])
                .build(),
            crate::plan::fixture::image("ami-reg")
                .state("deregistered")
                .snapshots(&["snap-reg"])
                .build(),
        ];
        let leaves = Utc::now() + chrono::Duration::days(7);
        let entry = |id: &str| crate::model::BinEntry {
            id: id.into(),
            name: None,
            entered: None,
            leaves: Some(leaves),
        };
        let binned = BinnedImages::Known(
            [
                ("ami-binned".to_string(), entry("ami-binned")),
                ("ami-reg".to_string(), entry("ami-reg")),
            ]
            .into(),
        );
        let sweep = |binned: &BinnedImages| -> Vec<(String, ItemAction, String)> {
            orphans(
                &snapshots,
                &images,
                &SnapshotLocks::default(),
                &RecycleRules::default(),
                binned,
                Utc::now(),
            )
            .into_iter()
            .map(|p| (p.snapshot_id, p.action, p.reason))
            .collect()
        };
        // Table: what the bin is known to hold → each snapshot's action (listed, binned, reg).
        use ItemAction::{Delete, Keep};
        let cases: [(&BinnedImages, [ItemAction; 3]); 3] = [
            (&binned, [Delete, Keep, Keep]),
            (
                &BinnedImages::NotOffered("InvalidAction".into()),
                [Delete, Delete, Delete],
            ),
            (
                &BinnedImages::Unreadable("AccessDenied".into()),
                [Keep, Keep, Keep],
            ),
        ];
        for (bin, expected) in cases {
            let plans = sweep(bin);
            let actions: Vec<ItemAction> = plans.iter().map(|(_, action, _)| *action).collect();
            assert_eq!(actions, expected, "{bin:?}");
        }
        let kept = sweep(&binned);
        assert!(
            kept[1].2.contains("ami-binned is in the Recycle Bin")
                && kept[1].2.contains(&leaves.format("%Y-%m-%d").to_string()),
            "{}",
            kept[1].2
        );
        assert!(
            kept[2].2.contains("ami-reg is in the Recycle Bin"),
            "{}",
            kept[2].2
        );
    }

    fn facts(prefix: &str, manifest: &str, parts: &[&str], existing: &[&str]) -> BundleFacts {
        BundleFacts {
            bucket: "bkt".into(),
            manifest_key: format!("{prefix}{manifest}"),
            prefix: prefix.into(),
            manifest: ManifestRead::Parsed(crate::plan::manifest::Manifest {
                parts: parts.iter().map(|p| p.to_string()).collect(),
            }),
            existing: existing.iter().map(|k| (k.to_string(), 10)).collect(),
        }
    }

    #[test]
    fn unused_bundles_go_unless_they_share_a_part() {
        let lonely = facts(
            "old/",
            "a.manifest.xml",
            &["a.part.0"],
            &["old/a.manifest.xml", "old/a.part.0"],
        );
        let sharing = facts(
            "web/",
            "b.manifest.xml",
            &["p.0", "p.1"],
            &["web/b.manifest.xml", "web/p.0"],
        );
        let hostile = BundleFacts {
            manifest: ManifestRead::Invalid(crate::plan::manifest::ManifestError::UnsafePartName(
                "../x".into(),
            )),
            ..facts("bad/", "c.manifest.xml", &[], &["bad/c.manifest.xml"])
        };
        let used = facts("web/", "live.manifest.xml", &["p.1"], &[]);
        let plans = orphan_bundles("us-east-1", &[lonely, sharing, hostile], &[used], &[]);
        assert_eq!(plans[0].action, ItemAction::Delete);
        assert_eq!(plans[0].objects, ["old/a.part.0", "old/a.manifest.xml"]);
        assert_eq!(plans[1].action, ItemAction::Keep);
        assert!(plans[1].reason.contains("part web/p.1 is also listed"));
        assert_eq!(plans[2].action, ItemAction::Keep);
        assert!(plans[2].reason.contains("../x"));
    }

    #[test]
    fn an_unreadable_region_keeps_every_bundle() {
        let lonely = facts(
            "old/",
            "a.manifest.xml",
            &["a.part.0"],
            &["old/a.manifest.xml", "old/a.part.0"],
        );
        let plans = orphan_bundles("us-east-1", &[lonely], &[], &["eu-west-1".to_string()]);
        assert_eq!(plans[0].action, ItemAction::Keep);
        assert!(plans[0].reason.contains("eu-west-1"), "{}", plans[0].reason);
        assert!(plans[0].objects.is_empty());
    }
}
