//! What a retirement needs to know before it plans: the caller, the region's images, who uses
//! them (here and in the accounts they are shared with), their snapshots and bundles.

use anyhow::Result;
use futures::{StreamExt, stream};
use std::collections::BTreeSet;

use crate::aws::Aws;
use crate::model::{Image, SnapshotLocks};
use crate::plan::manifest::{MAX_MANIFEST_BYTES, split_location};
use crate::plan::state::Standing;
use crate::plan::users::Usage;
use crate::plan::{self, Inventory};

/// What every retirement starts from: the caller and every image it owns in the region.
pub struct RegionFacts {
    pub account_id: String,
    /// Every image that exists (not those AWS still lists as deregistered), in every state.
    pub images: Vec<Image>,
    /// Those AWS still lists as deregistered: gone, but one a Recycle Bin rule holds still needs
    /// its snapshots (the planner asks the bin).
    pub gone: Vec<Image>,
    /// Region-wide facts already read, if any (a large unattended cleanup reads them ahead).
    pub ahead: ReadAhead,
}

/// The region-wide facts a large retirement reads anyway (every snapshot of the account, the
/// Recycle Bin rules, the snapshot locks), read while the images' users are being read, so
/// that the first retirement does not wait for them.
#[derive(Default)]
pub struct ReadAhead {
    snapshots: Option<Result<Vec<crate::model::SnapshotFact>>>,
    recycle: Option<crate::model::RecycleRules>,
    locks: Option<SnapshotLocks>,
    binned: Option<crate::model::BinnedImages>,
}

impl ReadAhead {
    pub async fn read(aws: &Aws, region: &str) -> ReadAhead {
        let ec2 = aws.ec2(region);
        let (snapshots, recycle, locks, binned) = tokio::join!(
            ec2.all_owned_snapshots(),
            aws.recycle_rules(region),
            ec2.snapshot_locks(),
            ec2.binned_images()
        );
        ReadAhead {
            snapshots: Some(snapshots),
            recycle: Some(recycle),
            locks: Some(locks),
            binned: Some(binned),
        }
    }
}

pub async fn load_region(aws: &Aws, region: &str) -> Result<RegionFacts> {
    let account_id = aws.account_id(region).await?;
    let listed = aws
        .ec2(region)
        .describe_images(&crate::aws::images::ImageQuery {
            owners: vec![crate::model::Owner::Caller],
            ..Default::default()
        })
        .await?;
    // Recently deregistered images are still listed for a while: they are gone, and count for
    // no rule (their marked snapshots are finished).
    let (images, gone) = listed
        .into_iter()
        .partition(|image| Standing::of(&image.state).exists());
    Ok(RegionFacts {
        account_id,
        images,
        gone,
        ahead: ReadAhead::default(),
    })
}

/// Who uses these images here, with notes on what could not be checked.
pub async fn usage_of(aws: &Aws, region: &str, image_ids: &[String]) -> Result<Usage> {
    let facts = aws
        .ec2(region)
        .image_usage(&aws.autoscaling(region), image_ids)
        .await?;
    Ok(plan::users::in_account(&facts, image_ids))
}

/// Who uses these images in the accounts they are shared with (nobody with --ignore-consumers:
/// then nothing is read).
pub async fn consumer_usage_of(
    aws: &Aws,
    region: &str,
    own_account: &str,
    image_ids: &[String],
) -> Result<Usage> {
    if aws.consumers.ignore || image_ids.is_empty() {
        return Ok(Usage::default());
    }
    let facts = aws.consumer_facts(region, own_account, image_ids).await;
    Ok(plan::users::in_consumers(own_account, image_ids, &facts))
}

/// Snapshot facts of retirements an interrupted run left unfinished, by image.
pub type PendingSnapshots =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, plan::SnapshotInfo>>;

/// Everything else the planner needs for `targets`: the requested images that are not owned (or
/// gone), who uses them (unless already known), their snapshots and bundles (and every other
/// bundle in the same buckets, to see sharing).
pub async fn complete_inventory(
    aws: &Aws,
    region: &str,
    facts: RegionFacts,
    targets: &[String],
    known_usage: Option<Usage>,
    known_pending: PendingSnapshots,
) -> Result<(Inventory, Vec<String>)> {
    let RegionFacts {
        account_id,
        images,
        gone,
        ahead,
    } = facts;
    let mut inventory = Inventory {
        account_id: account_id.clone(),
        ..Default::default()
    };
    let listed = Listed {
        account_id: &account_id,
        images,
        gone,
    };
    inventory.images =
        targets_not_owned(aws, region, listed, targets, known_pending, &mut inventory).await?;
    let requested: Vec<&Image> = inventory
        .images
        .iter()
        .filter(|image| targets.contains(&image.image_id) && Standing::of(&image.state).exists())
        .collect();
    let requested_ids: Vec<String> = requested.iter().map(|i| i.image_id.clone()).collect();
    let usage = match known_usage {
        Some(known) => known,
        None => {
            let mut usage = usage_of(aws, region, &requested_ids).await?;
            usage.merge(consumer_usage_of(aws, region, &account_id, &requested_ids).await?);
            // A requested image whose sharing could not be read stops the command (--force
            // must not retire an image that may be shared with anyone).
            if !usage.problems.is_empty() {
                anyhow::bail!("{}", usage.problems.join("; "));
            }
            usage
        }
    };
    let (users, mut notes) = (usage.users, usage.notes);
    let snapshot_facts = snapshot_facts(aws, region, &requested, &inventory.pending, ahead).await?;
    let bundles = bundle_facts(aws, region, &requested, &inventory.images).await;
    let SnapshotFacts {
        owned,
        recycle,
        locks,
    } = snapshot_facts;
    if let Some(recycle) = recycle {
        inventory.recycle = recycle;
    }
    if let Some((locks, binned)) = locks {
        if let SnapshotLocks::NotOffered(why) = &locks {
            notes.push(format!(
                "snapshot locks not checked, the endpoint does not offer them: {why}"
            ));
        }
        inventory.locks = locks;
        inventory.binned = binned;
    }
    inventory.users = users;
    inventory.snapshots.extend(owned);
    inventory.bundles = bundles;
    Ok((inventory, notes))
}

/// Every image the planner sees: the region's, the requested ones it does not list as its own
/// (foreign ones go to `inventory.foreign`), and those AWS lists as deregistered (the planner
/// keeps them apart: the plan says a target was one; one in the Recycle Bin keeps its
/// snapshots). A target that is gone brings the snapshots still marked for it.
async fn targets_not_owned(
    aws: &Aws,
    region: &str,
    listed: Listed<'_>,
    targets: &[String],
    mut known_pending: PendingSnapshots,
    inventory: &mut Inventory,
) -> Result<Vec<Image>> {
    let ec2 = aws.ec2(region);
    let Listed {
        account_id,
        mut images,
        gone,
    } = listed;
    let owned_ids: BTreeSet<String> = images.iter().map(|i| i.image_id.clone()).collect();
    let gone_ids: BTreeSet<String> = gone.iter().map(|i| i.image_id.clone()).collect();
    let mut gone_listed: Vec<Image> = gone;
    for target in targets.iter().filter(|t| !owned_ids.contains(*t)) {
        if let Some(pending) = known_pending.remove(target) {
            inventory
                .pending
                .insert(target.clone(), pending.keys().cloned().collect());
            inventory.snapshots.extend(pending);
            continue;
        }
        let found = if gone_ids.contains(target) {
            None
        } else {
            match ec2.describe_image(target).await? {
                // Listed as deregistered: as good as absent (the plan says which it was).
                Some(image) if !Standing::of(&image.state).exists() => {
                    gone_listed.push(image);
                    None
                }
                found => found,
            }
        };
        match found {
            Some(image) if image.owner_id.as_deref() == Some(account_id) => images.push(image),
            Some(image) => inventory.foreign.push(image),
            None => {
                let pending = ec2.pending_cleanup(target).await?;
                if !pending.is_empty() {
                    inventory
                        .pending
                        .insert(target.clone(), pending.keys().cloned().collect());
                    inventory.snapshots.extend(pending);
                }
            }
        }
    }
    images.extend(gone_listed);
    Ok(images)
}

/// The region's images as listed: the account's own that exist, and those listed as
/// deregistered.
struct Listed<'a> {
    account_id: &'a str,
    images: Vec<Image>,
    gone: Vec<Image>,
}

/// What the snapshots of the requested images are, whether the Recycle Bin keeps what goes,
/// and (where something of ours could be deleted) their locks and the images in the bin.
struct SnapshotFacts {
    owned: std::collections::BTreeMap<String, plan::SnapshotInfo>,
    recycle: Option<crate::model::RecycleRules>,
    locks: Option<(SnapshotLocks, crate::model::BinnedImages)>,
}

async fn snapshot_facts(
    aws: &Aws,
    region: &str,
    requested: &[&Image],
    pending: &std::collections::BTreeMap<String, Vec<String>>,
    ahead: ReadAhead,
) -> Result<SnapshotFacts> {
    let ec2 = aws.ec2(region);
    let snapshot_ids: Vec<String> = requested
        .iter()
        .flat_map(|image| image.block_devices.iter())
        .filter_map(|device| device.snapshot_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Whether what goes can come back: read once for the region, whatever the number of images
    // (at the same time as the snapshots).
    let recycle_needed = !requested.is_empty() || !pending.is_empty();
    let (owned, recycle) = tokio::join!(
        async {
            match ahead.snapshots {
                Some(all) => all.map(|all| crate::aws::snapshots::among(all, &snapshot_ids)),
                None => ec2.owned_snapshots(&snapshot_ids).await,
            }
        },
        async {
            match (recycle_needed, ahead.recycle) {
                (false, _) => None,
                (true, Some(read)) => Some(read),
                (true, None) => Some(aws.recycle_rules(region).await),
            }
        }
    );
    let owned = owned?;
    // Locks matter only where something of ours could be deleted.
    let locks = if !owned.is_empty() || !pending.is_empty() {
        // And the images in the Recycle Bin: one there still needs its snapshots.
        Some(tokio::join!(
            async {
                match ahead.locks {
                    Some(read) => read,
                    None => ec2.snapshot_locks().await,
                }
            },
            async {
                match ahead.binned {
                    Some(read) => read,
                    None => ec2.binned_images().await,
                }
            }
        ))
    } else {
        None
    };
    Ok(SnapshotFacts {
        owned,
        recycle,
        locks,
    })
}

/// Bundles of the requested instance-store images, and of every other image in those buckets.
async fn bundle_facts(
    aws: &Aws,
    region: &str,
    requested: &[&Image],
    images: &[Image],
) -> std::collections::BTreeMap<String, plan::BundleFacts> {
    let buckets: BTreeSet<String> = requested
        .iter()
        .filter(|image| image.is_instance_store())
        .filter_map(|image| image.image_location.as_deref().and_then(split_location))
        .map(|(bucket, _, _)| bucket)
        .collect();
    let bundle_locations: Vec<(String, (String, String, String))> = images
        .iter()
        .filter(|image| image.is_instance_store())
        .filter_map(|image| {
            let location = split_location(image.image_location.as_deref()?)?;
            buckets
                .contains(&location.0)
                .then(|| (image.image_id.clone(), location))
        })
        .collect();
    let s3 = aws.s3(region);
    stream::iter(bundle_locations)
        .map(|(image_id, (bucket, key, prefix))| {
            let s3 = s3.clone();
            async move {
                let objects = s3
                    .bundle_objects(&bucket, &key, &prefix, MAX_MANIFEST_BYTES)
                    .await;
                (image_id, plan::BundleFacts::read(objects))
            }
        })
        .buffer_unordered(crate::concurrency::MANIFESTS)
        .collect()
        .await
}
