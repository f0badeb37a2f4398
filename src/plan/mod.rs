//! The planner: given what a region holds and which images to retire, decides for every image,
//! snapshot and bundle object whether it goes or stays, and why. Pure: no I/O, so every rule is
//! covered by table tests.
//!
//! The rule it exists for: nothing is deleted that something staying still uses. When a fact is
//! missing (an unreadable manifest, a snapshot we cannot see), the thing is kept and the reason said.

pub mod after;
pub mod allowed;
pub mod deprecation;
// The freed-bytes rule of issue 24; the plans use it once `--exact-size` reads the lineages.
#[cfg_attr(not(test), allow(dead_code))]
pub mod freed;
pub mod lineage;
pub mod managed;
pub mod manifest;
pub mod orphans;
pub mod recovery;
pub mod retention;
pub mod rules;
pub mod sharing;
pub mod state;
pub mod stream;
pub mod users;

#[cfg(test)]
pub(crate) mod fixture;

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    BinResource, BinnedImages, BundleObjects, DeregistrationProtection, Image, ImageState,
    LockState, ManifestFetch, RecycleRules, SnapshotLocks,
};
pub use crate::model::{ImageUser, SnapshotInfo};
use manifest::{Manifest, ManifestError};
use recovery::{Recovery, recovery};

/// Everything the planner may know about one region.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// The calling account.
    pub account_id: String,
    /// Every image the account owns in the region, in every state (disabled and deprecated too).
    /// One listed as deregistered is gone (`state::Standing`): not a target, and it keeps nothing.
    pub images: Vec<Image>,
    /// Requested images that exist but belong to another account.
    pub foreign: Vec<Image>,
    /// The account's snapshots that the requested images reference, by id (absent: not ours, or gone).
    pub snapshots: BTreeMap<String, SnapshotInfo>,
    /// Bundle facts for instance-store images: the requested ones and every other image whose
    /// manifest lives in the same bucket.
    pub bundles: BTreeMap<String, BundleFacts>,
    /// Who uses each requested image.
    pub users: BTreeMap<String, Vec<ImageUser>>,
    /// For requested images that no longer exist: snapshots an interrupted run marked for deletion
    /// on their behalf (and that are still this account's).
    pub pending: BTreeMap<String, Vec<String>>,
    /// The region's snapshot locks: a locked snapshot is never attempted.
    pub locks: SnapshotLocks,
    /// The region's Recycle Bin rules: whether what is deleted can be restored.
    pub recycle: RecycleRules,
    /// The images in the region's Recycle Bin: one there needs its snapshots to be restored
    /// (not read: anything may be there).
    pub binned: BinnedImages,
}

#[derive(Debug, Clone)]
pub struct BundleFacts {
    pub bucket: String,
    pub manifest_key: String,
    /// Key prefix the parts live under (`dir/` or empty).
    pub prefix: String,
    pub manifest: ManifestRead,
    /// Sizes of the bundle's objects that exist now (manifest and listed parts).
    pub existing: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
pub enum ManifestRead {
    Parsed(Manifest),
    Missing,
    /// Could not be fetched (access denied, throttled ...), with the reason.
    Unreadable(String),
    Invalid(ManifestError),
}

impl BundleFacts {
    /// Parses the manifest S3 gave and keeps, of the objects under the prefix, the manifest and
    /// the parts it lists. A listing that failed makes the bundle unreadable: without it nobody
    /// can tell what exists.
    pub fn read(objects: BundleObjects) -> BundleFacts {
        let manifest = match objects.manifest {
            ManifestFetch::Fetched(bytes) => match manifest::parse_manifest(&bytes) {
                Ok(parsed) => ManifestRead::Parsed(parsed),
                Err(err) => ManifestRead::Invalid(err),
            },
            ManifestFetch::Missing => ManifestRead::Missing,
            ManifestFetch::TooLarge(size) => ManifestRead::Invalid(ManifestError::TooLarge(size)),
            ManifestFetch::Unreadable(why) => ManifestRead::Unreadable(why),
        };
        let prefix = objects.prefix;
        let (manifest, existing) = match objects.listing {
            Ok(listing) => {
                let mut wanted: BTreeSet<String> = BTreeSet::new();
                wanted.insert(objects.manifest_key.clone());
                if let ManifestRead::Parsed(parsed) = &manifest {
                    wanted.extend(parsed.parts.iter().map(|part| format!("{prefix}{part}")));
                }
                let existing = listing
                    .into_iter()
                    .filter(|(key, _)| wanted.contains(key))
                    .collect();
                (manifest, existing)
            }
            Err(why) => (
                ManifestRead::Unreadable(format!(
                    "cannot list s3://{}/{prefix}: {why}",
                    objects.bucket
                )),
                BTreeMap::new(),
            ),
        };
        BundleFacts {
            bucket: objects.bucket,
            manifest_key: objects.manifest_key,
            prefix,
            manifest,
            existing,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub targets: Vec<String>,
    pub cleanup: bool,
    pub force: bool,
    /// Instances launched from the image will be terminated, so they do not block it.
    pub terminate_instances: bool,
    pub now: DateTime<Utc>,
    /// Carrying out a plan someone approved (confirmed at the prompt, or reviewed in a plan
    /// file): the fresh plan does no more than the approved one did.
    pub approval: Option<Approval>,
}

/// What an approved plan allowed: a fresh plan made under it deregisters no image it did not,
/// ends no instance it did not list, deletes no snapshot or S3 object it did not, and deletes
/// nothing it called recoverable that is not recoverable now (where it recorded that: a
/// confirmed `deregister` does, a plan file does not, so `apply` shows the Recycle Bin as it is
/// now).
#[derive(Debug, Clone, Default)]
pub struct Approval {
    /// The images approved for deregistration, with the instances the approved plan listed as
    /// their users and whether it called them recoverable. None: the caller decided which
    /// images go (a reviewed cleanup re-checks them by its rules).
    pub images: Option<BTreeMap<String, ApprovedImage>>,
    /// The snapshots approved for deletion, with their Recycle Bin outcome then, if known.
    pub snapshots: BTreeMap<String, Option<Recovery>>,
    /// (bucket, key)
    pub objects: BTreeSet<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct ApprovedImage {
    pub users: Vec<ImageUser>,
    pub recycle_bin: Option<Recovery>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageAction {
    Deregister,
    /// Already deregistered by an earlier, interrupted run; its cleanup is finished now.
    AlreadyGone,
    /// Not found in the region.
    NotFound,
    Blocked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemAction {
    Delete,
    Keep,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub images: Vec<ImagePlan>,
    pub snapshots: Vec<SnapshotPlan>,
    pub bundles: Vec<BundlePlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImagePlan {
    pub image_id: String,
    pub name: Option<String>,
    pub state: Option<ImageState>,
    pub action: ImageAction,
    pub reason: String,
    pub users: Vec<ImageUser>,
    /// The image's EBS snapshots (each planned once, under the first requested image using it).
    pub snapshot_ids: Vec<String>,
    /// Deregister with DeleteAssociatedSnapshots: the plan deletes exactly this image's snapshots
    /// and no other requested image uses them.
    pub delete_associated_snapshots: bool,
    /// For an image the plan deregisters: whether the Recycle Bin will keep it.
    pub recycle_bin: Option<Recovery>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotPlan {
    pub snapshot_id: String,
    /// The requested image this snapshot belongs to.
    pub image_id: String,
    pub size_gib: Option<i32>,
    pub action: ItemAction,
    pub reason: String,
    /// How a deleted snapshot goes: with its image (DeleteAssociatedSnapshots), or by its own
    /// DeleteSnapshot after the image is gone (then it is tagged first, for recovery).
    pub deleted_by: DeletedBy,
    /// Kept because an image that stays uses it: it costs nothing this retirement left behind.
    #[serde(skip)]
    pub used_by_staying: bool,
    /// For a snapshot the plan deletes: whether the Recycle Bin will keep it.
    pub recycle_bin: Option<Recovery>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletedBy {
    DeregisterImage,
    DeleteSnapshot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundlePlan {
    pub image_id: String,
    pub bucket: String,
    pub manifest_key: String,
    pub action: ItemAction,
    pub reason: String,
    /// Keys to delete, parts first and the manifest last.
    pub objects: Vec<String>,
    /// Parts the manifest lists that are already gone.
    pub missing_parts: Vec<String>,
    /// The bundle's objects that exist now (the manifest, and the parts it lists if it parsed).
    pub existing_objects: usize,
    pub bytes: u64,
}

impl Approval {
    /// The approval a plan that was shown and confirmed gives.
    /// Approves nothing: a region the approved plan did not cover.
    pub fn nothing() -> Approval {
        Approval {
            images: Some(BTreeMap::new()),
            ..Approval::default()
        }
    }

    pub fn of(plan: &Plan) -> Approval {
        Approval {
            images: Some(
                plan.images
                    .iter()
                    .filter(|image| image.action == ImageAction::Deregister)
                    .map(|image| {
                        let approved = ApprovedImage {
                            users: image.users.clone(),
                            recycle_bin: image.recycle_bin.clone(),
                        };
                        (image.image_id.clone(), approved)
                    })
                    .collect(),
            ),
            snapshots: plan
                .snapshots
                .iter()
                .filter(|s| s.action == ItemAction::Delete)
                .map(|s| (s.snapshot_id.clone(), s.recycle_bin.clone()))
                .collect(),
            objects: plan
                .bundles
                .iter()
                .filter(|b| b.action == ItemAction::Delete)
                .flat_map(|b| b.objects.iter().map(|key| (b.bucket.clone(), key.clone())))
                .collect(),
        }
    }

    /// Why the approval does not cover deregistering this image now, if it does not.
    fn refuses_image(&self, image: &ImagePlan) -> Option<String> {
        let approved = match &self.images {
            None => return None,
            Some(images) => images.get(&image.image_id),
        };
        let Some(approved) = approved else {
            return Some("not deregistered in the plan you confirmed; run again to see it".into());
        };
        // Instances --terminate-instances would end that the confirmed plan did not list.
        let new_instances: Vec<&ImageUser> = image
            .users
            .iter()
            .filter(|user| user.terminable() && !approved.users.contains(user))
            .collect();
        (!new_instances.is_empty()).then(|| {
            format!(
                "in use by {}, launched since the plan you confirmed; run again to see it",
                describe_users(new_instances)
            )
        })
    }

    /// What the approval called recoverable that is not recoverable now: the images to keep
    /// and the snapshots to keep, with the reason.
    fn lost_recovery(&self, plan: &Plan) -> Held {
        let mut held = Held::default();
        for image in plan
            .images
            .iter()
            .filter(|image| image.action == ImageAction::Deregister)
        {
            let confirmed = self
                .images
                .as_ref()
                .and_then(|images| images.get(&image.image_id))
                .and_then(|approved| approved.recycle_bin.as_ref());
            if let Some(reason) = lost_recovery(confirmed, image.recycle_bin.as_ref()) {
                held.images.insert(image.image_id.clone(), reason);
            }
        }
        for snapshot in plan
            .snapshots
            .iter()
            .filter(|s| s.action == ItemAction::Delete)
        {
            let confirmed = self
                .snapshots
                .get(&snapshot.snapshot_id)
                .and_then(Option::as_ref);
            if let Some(reason) = lost_recovery(confirmed, snapshot.recycle_bin.as_ref()) {
                held.snapshots.insert(snapshot.snapshot_id.clone(), reason);
            }
        }
        held
    }
}

/// What a plan must keep beyond its own checks, with the reason: found by a first pass under an
/// approval (`Approval::lost_recovery`).
#[derive(Debug, Default)]
struct Held {
    images: BTreeMap<String, String>,
    snapshots: BTreeMap<String, String>,
}

/// Whether `fresh` is less recoverable than what the user confirmed (recoverable then, not now).
fn lost_recovery(shown: Option<&Recovery>, fresh: Option<&Recovery>) -> Option<String> {
    match (shown, fresh) {
        (Some(Recovery::Recoverable { .. }), Some(now))
            if !matches!(now, Recovery::Recoverable { .. }) =>
        {
            let now = match now {
                Recovery::Unknown { reason } => format!("unknown now ({reason})"),
                _ => "not recoverable now".to_string(),
            };
            Some(format!(
                "recoverable in the plan you confirmed, {now}; run again to see it"
            ))
        }
        _ => None,
    }
}

/// The less recoverable of two outcomes: not recoverable, then unknown, then the earlier date.
fn worse(a: Recovery, b: &Recovery) -> Recovery {
    match (&a, b) {
        (Recovery::NotRecoverable, _) => a,
        (_, Recovery::NotRecoverable) => Recovery::NotRecoverable,
        (Recovery::Unknown { .. }, _) => a,
        (_, Recovery::Unknown { .. }) => b.clone(),
        (
            Recovery::Recoverable { until: mine, .. },
            Recovery::Recoverable { until: theirs, .. },
        ) => {
            if theirs < mine {
                b.clone()
            } else {
                a
            }
        }
    }
}

/// The retirement plan for the requested images. Under an approval, a second pass keeps what
/// the first found less recoverable than approved; keeping more can only make the rest more
/// recoverable, so two passes suffice.
pub fn plan(inventory: &Inventory, request: &Request) -> Plan {
    let first = plan_holding(inventory, request, &Held::default());
    let Some(approval) = &request.approval else {
        return first;
    };
    let held = approval.lost_recovery(&first);
    if held.images.is_empty() && held.snapshots.is_empty() {
        return first;
    }
    let second = plan_holding(inventory, request, &held);
    debug_assert!(
        {
            let more = approval.lost_recovery(&second);
            more.images.is_empty() && more.snapshots.is_empty()
        },
        "keeping more made something less recoverable"
    );
    second
}

fn plan_holding(inventory: &Inventory, request: &Request, held: &Held) -> Plan {
    // What AWS still lists as deregistered is gone: nothing to retire, and it uses nothing.
    let existing: Vec<&Image> = inventory
        .images
        .iter()
        .filter(|image| state::Standing::of(&image.state).exists())
        .collect();
    let owned: BTreeMap<&str, &Image> = existing
        .iter()
        .map(|image| (image.image_id.as_str(), *image))
        .collect();
    let mut targets: Vec<&str> = Vec::new();
    for target in &request.targets {
        if !targets.contains(&target.as_str()) {
            targets.push(target);
        }
    }

    let images: Vec<ImagePlan> = targets
        .iter()
        .map(|target| image_plan(inventory, &owned, target, request))
        .map(|mut image| {
            if image.action == ImageAction::Deregister {
                let refused = request
                    .approval
                    .as_ref()
                    .and_then(|approval| approval.refuses_image(&image))
                    .or_else(|| held.images.get(&image.image_id).cloned());
                if let Some(reason) = refused {
                    image.action = ImageAction::Blocked;
                    image.reason = reason;
                }
            }
            image
        })
        .collect();
    let leaving: BTreeSet<String> = images
        .iter()
        .filter(|image| image.action == ImageAction::Deregister)
        .map(|image| image.image_id.clone())
        .collect();
    let staying: Vec<&Image> = existing
        .iter()
        .copied()
        .filter(|image| !leaving.contains(image.image_id.as_str()))
        .collect();

    // In the order requested, so the plan reads as the command line does.
    let leaving_images: Vec<&Image> = targets
        .iter()
        .filter(|target| leaving.contains(**target))
        .filter_map(|target| owned.get(target).copied())
        .collect();
    // Which staying images use each snapshot, computed once: estates have thousands of images.
    let mut used_by_staying: BTreeMap<&str, Vec<&Image>> = BTreeMap::new();
    for image in &staying {
        for id in snapshot_ids(image) {
            used_by_staying.entry(id).or_default().push(image);
        }
    }
    let bin = BinNeeds::new(&inventory.images, &inventory.binned);
    let mut snapshots = snapshot_plans(inventory, &leaving_images, &used_by_staying, &bin, request);
    snapshots.extend(pending_snapshot_plans(
        inventory,
        &images,
        &used_by_staying,
        &bin,
        request,
        &snapshots,
    ));
    for snapshot in snapshots
        .iter_mut()
        .filter(|snapshot| snapshot.action == ItemAction::Delete)
    {
        if let Some(reason) = held.snapshots.get(&snapshot.snapshot_id) {
            snapshot.action = ItemAction::Keep;
            snapshot.reason = reason.clone();
        }
    }
    let bundles = bundle_plans(inventory, &leaving_images, &staying, request);

    let mut images = images;
    assign_deletion(&mut images, &mut snapshots, request.cleanup);
    assign_recovery(inventory, &owned, &mut images, &mut snapshots, request.now);
    Plan {
        images,
        snapshots,
        bundles,
    }
}

/// How each deleted snapshot goes. DeleteAssociatedSnapshots deletes a subset of the image's
/// own snapshots (those no other registered image uses): it is used only when the plan deletes
/// every one of them, so AWS can never delete more than planned.
fn assign_deletion(images: &mut [ImagePlan], snapshots: &mut [SnapshotPlan], cleanup: bool) {
    // A snapshot another leaving image shares is skipped while that image is still registered,
    // and goes with the last of them.
    let deleting: BTreeSet<&str> = snapshots
        .iter()
        .filter(|plan| plan.action == ItemAction::Delete)
        .map(|plan| plan.snapshot_id.as_str())
        .collect();
    for image in images.iter_mut() {
        if image.action != ImageAction::Deregister || !cleanup {
            continue;
        }
        image.delete_associated_snapshots = !image.snapshot_ids.is_empty()
            && image
                .snapshot_ids
                .iter()
                .all(|id| deleting.contains(id.as_str()));
    }
    // Images sharing a snapshot are deregistered one after another (see `sharing_groups`), so
    // the last of them takes it when every one of them uses DeleteAssociatedSnapshots.
    let mut leaving_users: BTreeMap<&str, Vec<bool>> = BTreeMap::new();
    for image in images
        .iter()
        .filter(|image| image.action == ImageAction::Deregister)
    {
        for id in &image.snapshot_ids {
            leaving_users
                .entry(id.as_str())
                .or_default()
                .push(image.delete_associated_snapshots);
        }
    }
    for snapshot in snapshots.iter_mut() {
        let flags = leaving_users.get(snapshot.snapshot_id.as_str());
        snapshot.deleted_by = if flags.is_some_and(|flags| flags.iter().all(|flag| *flag)) {
            DeletedBy::DeregisterImage
        } else {
            DeletedBy::DeleteSnapshot
        };
    }
}

/// What the Recycle Bin keeps of what the plan deletes.
fn assign_recovery(
    inventory: &Inventory,
    owned: &BTreeMap<&str, &Image>,
    images: &mut [ImagePlan],
    snapshots: &mut [SnapshotPlan],
    now: DateTime<Utc>,
) {
    for snapshot in snapshots
        .iter_mut()
        .filter(|snapshot| snapshot.action == ItemAction::Delete)
    {
        let tags = inventory
            .snapshots
            .get(&snapshot.snapshot_id)
            .map(|info| info.tags.clone())
            .unwrap_or_default();
        snapshot.recycle_bin = Some(recovery(
            &inventory.recycle,
            BinResource::Snapshot,
            &tags,
            now,
        ));
    }
    let snapshot_recovery: BTreeMap<&str, &Recovery> = snapshots
        .iter()
        .filter_map(|s| Some((s.snapshot_id.as_str(), s.recycle_bin.as_ref()?)))
        .collect();
    for image in images
        .iter_mut()
        .filter(|image| image.action == ImageAction::Deregister)
    {
        let Some(facts) = owned.get(image.image_id.as_str()) else {
            continue;
        };
        let own = if facts.is_instance_store() {
            // The Recycle Bin keeps EBS-backed images only.
            Recovery::NotRecoverable
        } else {
            recovery(&inventory.recycle, BinResource::Image, &facts.tags, now)
        };
        // An image comes back usable only with its snapshots: one this plan deletes for good
        // (or cannot tell) decides for the image.
        let of_snapshots = image
            .snapshot_ids
            .iter()
            .filter_map(|id| snapshot_recovery.get(id.as_str()).copied());
        image.recycle_bin = Some(of_snapshots.fold(own, worse));
    }
}

fn snapshot_ids(image: &Image) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::new();
    for device in &image.block_devices {
        if let Some(id) = device.snapshot_id.as_deref()
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

fn describe(image: &Image) -> String {
    match &image.name {
        Some(name) => format!("{} ({name})", image.image_id),
        None => image.image_id.clone(),
    }
}

fn image_plan(
    inventory: &Inventory,
    owned: &BTreeMap<&str, &Image>,
    target: &str,
    request: &Request,
) -> ImagePlan {
    let blocked = |reason: String, image: Option<&Image>, users: Vec<ImageUser>| ImagePlan {
        image_id: target.to_string(),
        name: image.and_then(|image| image.name.clone()),
        state: image.map(|image| image.state.clone()),
        action: ImageAction::Blocked,
        reason,
        users,
        snapshot_ids: image
            .map(|image| snapshot_ids(image).into_iter().map(String::from).collect())
            .unwrap_or_default(),
        delete_associated_snapshots: false,
        recycle_bin: None,
    };
    let Some(image) = owned.get(target).copied() else {
        if let Some(foreign) = inventory.foreign.iter().find(|i| i.image_id == target) {
            return blocked(
                format!(
                    "owned by account {}, not by this account ({})",
                    foreign.owner_id.as_deref().unwrap_or("unknown"),
                    inventory.account_id
                ),
                Some(foreign),
                Vec::new(),
            );
        }
        let listed_gone = inventory
            .images
            .iter()
            .any(|image| image.image_id == target && !state::Standing::of(&image.state).exists());
        let (action, reason) = if inventory.pending.contains_key(target) {
            (
                ImageAction::AlreadyGone,
                "already deregistered by an interrupted run; finishing its cleanup".to_string(),
            )
        } else if listed_gone {
            // Known to be gone, not unknown: a re-run of the same deregistration is done.
            (
                ImageAction::AlreadyGone,
                "already deregistered (AWS still lists it for a while)".to_string(),
            )
        } else {
            (
                ImageAction::NotFound,
                "not found in this region (already deregistered, or another region?)".to_string(),
            )
        };
        return ImagePlan {
            action,
            reason,
            ..blocked(String::new(), None, Vec::new())
        };
    };
    // A pending image may yet be the one someone waits for: never deregistered while it is made.
    if let Some(reason) = state::Standing::of(&image.state).never_retired(&image.state) {
        return blocked(reason, Some(image), Vec::new());
    }
    if let Some(reason) = managed::managed_block(image) {
        return blocked(reason, Some(image), Vec::new());
    }
    if let Some(reason) = protection_block(image.deregistration_protection.as_ref(), request.now) {
        return blocked(reason, Some(image), Vec::new());
    }
    let users = inventory.users.get(target).cloned().unwrap_or_default();
    let blocking: Vec<&ImageUser> = users
        .iter()
        .filter(|user| !(request.terminate_instances && user.terminable()))
        .collect();
    if !blocking.is_empty() && !request.force {
        return blocked(
            format!(
                "in use by {} (--force to deregister anyway)",
                describe_users(blocking.iter().copied())
            ),
            Some(image),
            users,
        );
    }
    let reason = if blocking.is_empty() && users.is_empty() {
        "requested".to_string()
    } else if blocking.is_empty() {
        format!(
            "requested; its instances will be terminated first: {}",
            describe_users(&users)
        )
    } else {
        format!(
            "requested with --force although in use by {}",
            describe_users(&users)
        )
    };
    ImagePlan {
        image_id: target.to_string(),
        name: image.name.clone(),
        state: Some(image.state.clone()),
        action: ImageAction::Deregister,
        reason,
        users,
        snapshot_ids: snapshot_ids(image).into_iter().map(String::from).collect(),
        delete_associated_snapshots: false,
        recycle_bin: None,
    }
}

/// `instance i-1 (running), launch template lt-1 (version 3)`.
pub fn describe_users<'a>(users: impl IntoIterator<Item = &'a ImageUser>) -> String {
    users
        .into_iter()
        .map(describe_user)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_user(user: &ImageUser) -> String {
    let kind = user.kind.as_str().replace('_', " ");
    match &user.detail {
        Some(detail) => format!("{kind} {} ({detail})", user.id),
        None => format!("{kind} {}", user.id),
    }
}

/// The images to deregister, grouped so that images sharing a snapshot are in one group (in
/// request order). Groups can run concurrently; a group's images must go one after another, so
/// the last one's DeleteAssociatedSnapshots finds its shared snapshots free.
pub fn sharing_groups(images: &[(String, Vec<String>)]) -> Vec<Vec<String>> {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..images.len()).collect();
    let mut first_user: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, (_, snapshots)) in images.iter().enumerate() {
        for snapshot in snapshots {
            match first_user.get(snapshot.as_str()) {
                Some(&other) => {
                    let (a, b) = (root(&mut parent, index), root(&mut parent, other));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    first_user.insert(snapshot, index);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (index, (image_id, _)) in images.iter().enumerate() {
        let group = root(&mut parent, index);
        groups.entry(group).or_default().push(image_id.clone());
    }
    groups.into_values().collect()
}

/// Whether a retirement marks the snapshot before its image goes (the `ami:cleanup-pending-for`
/// tag), so that a re-run finishes it if this run stops half way: every snapshot it may have to
/// delete by its own DeleteSnapshot. That is one planned so, and one several of the images it
/// deregisters share: the last one's DeleteAssociatedSnapshots may still find it in use while
/// the others' deregistrations settle at AWS, and skip it.
pub fn marked_first<'a>(
    deregistering: &[&'a ImagePlan],
    snapshots: impl IntoIterator<Item = &'a SnapshotPlan>,
) -> BTreeSet<&'a str> {
    let mut users: BTreeMap<&str, usize> = BTreeMap::new();
    for image in deregistering {
        for id in &image.snapshot_ids {
            *users.entry(id.as_str()).or_default() += 1;
        }
    }
    snapshots
        .into_iter()
        .filter(|s| s.action == ItemAction::Delete)
        .filter(|s| {
            s.deleted_by == DeletedBy::DeleteSnapshot
                || users.get(s.snapshot_id.as_str()).is_some_and(|n| *n > 1)
        })
        .map(|s| s.snapshot_id.as_str())
        .collect()
}

/// Why deregistration protection blocks the image now, if it does. Unknown values block: when in
/// doubt, keep.
pub fn protection_block(
    value: Option<&DeregistrationProtection>,
    now: DateTime<Utc>,
) -> Option<String> {
    match value? {
        DeregistrationProtection::Disabled => None,
        DeregistrationProtection::Enabled { cooldown: false } => {
            Some("deregistration protection is on".to_string())
        }
        DeregistrationProtection::Enabled { cooldown: true } => Some(
            "deregistration protection is on, with a 24-hour cooldown after it is disabled"
                .to_string(),
        ),
        DeregistrationProtection::DisabledUntil { until, .. } if *until <= now => None,
        DeregistrationProtection::DisabledUntil { until, .. } => Some(format!(
            "deregistration protection was disabled, but its cooldown runs until {}",
            until.to_rfc3339()
        )),
        DeregistrationProtection::Other(other) => Some(format!(
            "deregistration protection state '{other}' is not understood"
        )),
    }
}

/// Why a lock keeps the snapshot now, if one does. A lock state that could not be read keeps it:
/// when in doubt, keep.
pub fn lock_keeps(locks: &SnapshotLocks, snapshot_id: &str, now: DateTime<Utc>) -> Option<String> {
    match locks {
        SnapshotLocks::Known(locks) => {
            let lock = locks.get(snapshot_id)?;
            if lock.state == LockState::Expired || lock.expires.is_some_and(|until| until <= now) {
                return None;
            }
            Some(match lock.expires {
                Some(until) => format!(
                    "locked ({} mode) until {}",
                    lock.state.as_str(),
                    until.format("%Y-%m-%d %H:%M UTC")
                ),
                None => format!("locked ({} mode)", lock.state.as_str()),
            })
        }
        SnapshotLocks::NotOffered(_) => None,
        SnapshotLocks::Unreadable(why) => Some(format!("its lock state could not be read: {why}")),
    }
}

/// What the Recycle Bin may need of a region's snapshots, worked out once for a plan or an
/// orphan sweep (estates have thousands of images and snapshots). AWS does not say which
/// snapshots an image in the bin uses; there are two ways to know: an image AWS still lists as
/// deregistered that uses the snapshot, and the image a CreateImage or CopyImage snapshot's
/// description names when no image of the region is that one.
pub struct BinNeeds<'a> {
    existing: BTreeSet<&'a str>,
    /// Images listed as deregistered, by the snapshots they use.
    gone_users: BTreeMap<&'a str, Vec<&'a str>>,
    binned: &'a BinnedImages,
}

impl<'a> BinNeeds<'a> {
    /// `images`: every image of the region, in every state.
    pub fn new(images: &'a [Image], binned: &'a BinnedImages) -> BinNeeds<'a> {
        let mut existing = BTreeSet::new();
        let mut gone_users: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for image in images {
            if state::Standing::of(&image.state).exists() {
                existing.insert(image.image_id.as_str());
            } else {
                for id in snapshot_ids(image) {
                    gone_users
                        .entry(id)
                        .or_default()
                        .push(image.image_id.as_str());
                }
            }
        }
        BinNeeds {
            existing,
            gone_users,
            binned,
        }
    }

    /// Why the snapshot stays for an image that is gone but may be in the Recycle Bin, if it
    /// does: without it the image could not be restored. A bin that could not be read may hold
    /// the image.
    pub fn keeps(&self, snapshot_id: &str, description: Option<&str>) -> Option<String> {
        let named = description
            .and_then(orphans::image_named_by)
            .filter(|named| !self.existing.contains(named.as_str()));
        self.gone_users
            .get(snapshot_id)
            .into_iter()
            .flatten()
            .map(|image_id| image_id.to_string())
            .chain(named)
            .find_map(|image_id| self.holds(&image_id))
    }

    fn holds(&self, image_id: &str) -> Option<String> {
        match self.binned {
            BinnedImages::Known(entries) => entries.get(image_id).map(|entry| {
                let until = entry.leaves.map_or(String::new(), |leaves| {
                    format!(" until {}", leaves.format("%Y-%m-%d %H:%M UTC"))
                });
                format!(
                    "its image {image_id} is in the Recycle Bin (restorable{until}): without \
                     this snapshot it could not be restored"
                )
            }),
            BinnedImages::NotOffered(_) => None,
            BinnedImages::Unreadable(why) => Some(format!(
                "the Recycle Bin could not be read ({why}): {image_id} may be there, needing it"
            )),
        }
    }
}

fn snapshot_plans(
    inventory: &Inventory,
    leaving: &[&Image],
    used_by_staying: &BTreeMap<&str, Vec<&Image>>,
    bin: &BinNeeds,
    request: &Request,
) -> Vec<SnapshotPlan> {
    let mut plans: Vec<SnapshotPlan> = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for image in leaving {
        let target = image.image_id.as_str();
        for snapshot_id in snapshot_ids(image) {
            if !seen.insert(snapshot_id) {
                continue;
            }
            let info = inventory.snapshots.get(snapshot_id);
            let (action, reason) =
                match keep_reason(snapshot_id, inventory, used_by_staying, bin, request) {
                    Some(kept) => (ItemAction::Keep, kept),
                    None => (ItemAction::Delete, format!("used only by {target}")),
                };
            plans.push(SnapshotPlan {
                snapshot_id: snapshot_id.to_string(),
                image_id: target.to_string(),
                size_gib: info.map(|info| info.size_gib),
                action,
                reason,
                deleted_by: DeletedBy::DeleteSnapshot,
                used_by_staying: request.cleanup
                    && used_by_staying
                        .get(snapshot_id)
                        .is_some_and(|users| !users.is_empty()),
                recycle_bin: None,
            });
        }
    }
    plans
}

/// Why a snapshot of an image that goes (or is gone) must stay, the first reason of: no
/// --cleanup or used by an image that stays, not in the reviewed plan, locked, AWS Backup's or
/// DLM's, needed by the Recycle Bin, not this account's. `None`: it may go. One chain for the
/// snapshots of leaving images and those an interrupted run marked.
fn keep_reason(
    snapshot_id: &str,
    inventory: &Inventory,
    used_by_staying: &BTreeMap<&str, Vec<&Image>>,
    bin: &BinNeeds,
    request: &Request,
) -> Option<String> {
    let info = inventory.snapshots.get(snapshot_id);
    let description = info.and_then(|info| info.description.as_deref());
    if let Some(kept) = kept_for_others(snapshot_id, used_by_staying, request) {
        return Some(kept);
    }
    if request
        .approval
        .as_ref()
        .is_some_and(|approval| !approval.snapshots.contains_key(snapshot_id))
    {
        return Some(NOT_REVIEWED.to_string());
    }
    if let Some(locked) = lock_keeps(&inventory.locks, snapshot_id, request.now) {
        return Some(locked);
    }
    // An image registered from AWS Backup's or DLM's snapshot: the image may go, the snapshot
    // is the service's.
    if let Some(managed) = info.and_then(|info| managed::snapshot_block(&info.tags)) {
        return Some(managed);
    }
    if let Some(binned) = bin.keeps(snapshot_id, description) {
        return Some(binned);
    }
    if info.is_none() {
        return Some(
            "not among this account's snapshots (owned elsewhere, or already gone)".to_string(),
        );
    }
    None
}

/// Why a snapshot must stay whatever else is true of it: no --cleanup, or an image that stays
/// uses it.
fn kept_for_others(
    snapshot_id: &str,
    used_by_staying: &BTreeMap<&str, Vec<&Image>>,
    request: &Request,
) -> Option<String> {
    if !request.cleanup {
        return Some("left behind (no --cleanup)".to_string());
    }
    let users: Vec<String> = used_by_staying
        .get(snapshot_id)
        .into_iter()
        .flatten()
        .map(|other| describe(other))
        .collect();
    (!users.is_empty()).then(|| format!("also used by {}", users.join(", ")))
}

/// Snapshots an interrupted run marked for an image that is gone now: deleted like any other,
/// unless an existing image uses them.
fn pending_snapshot_plans(
    inventory: &Inventory,
    images: &[ImagePlan],
    used_by_staying: &BTreeMap<&str, Vec<&Image>>,
    bin: &BinNeeds,
    request: &Request,
    planned: &[SnapshotPlan],
) -> Vec<SnapshotPlan> {
    let mut plans: Vec<SnapshotPlan> = Vec::new();
    for image in images
        .iter()
        .filter(|image| image.action == ImageAction::AlreadyGone)
    {
        for snapshot_id in inventory.pending.get(&image.image_id).into_iter().flatten() {
            let already = planned
                .iter()
                .chain(plans.iter())
                .any(|plan| &plan.snapshot_id == snapshot_id);
            if already {
                continue;
            }
            let (action, reason) =
                match keep_reason(snapshot_id, inventory, used_by_staying, bin, request) {
                    Some(kept) => (ItemAction::Keep, kept),
                    None => (
                        ItemAction::Delete,
                        format!(
                            "marked for deletion with {} by an interrupted run",
                            image.image_id
                        ),
                    ),
                };
            plans.push(SnapshotPlan {
                snapshot_id: snapshot_id.clone(),
                image_id: image.image_id.clone(),
                size_gib: inventory
                    .snapshots
                    .get(snapshot_id)
                    .map(|info| info.size_gib),
                action,
                reason,
                deleted_by: DeletedBy::DeleteSnapshot,
                used_by_staying: request.cleanup
                    && used_by_staying
                        .get(snapshot_id.as_str())
                        .is_some_and(|users| !users.is_empty()),
                recycle_bin: None,
            });
        }
    }
    plans
}

fn bundle_plans(
    inventory: &Inventory,
    leaving: &[&Image],
    staying: &[&Image],
    request: &Request,
) -> Vec<BundlePlan> {
    let mut plans = Vec::new();
    for image in leaving.iter().filter(|image| image.is_instance_store()) {
        let target = image.image_id.as_str();
        let Some(facts) = inventory.bundles.get(target) else {
            plans.push(BundlePlan {
                image_id: target.to_string(),
                bucket: String::new(),
                manifest_key: image.image_location.clone().unwrap_or_default(),
                action: ItemAction::Keep,
                reason: format!(
                    "manifest location {:?} is not bucket/key",
                    image.image_location.as_deref().unwrap_or("")
                ),
                objects: Vec::new(),
                missing_parts: Vec::new(),
                existing_objects: 0,
                bytes: 0,
            });
            continue;
        };
        plans.push(bundle_plan(inventory, facts, target, staying, request));
    }
    plans
}

fn bundle_plan(
    inventory: &Inventory,
    facts: &BundleFacts,
    target: &str,
    staying: &[&Image],
    request: &Request,
) -> BundlePlan {
    let mut plan = BundlePlan {
        image_id: target.to_string(),
        bucket: facts.bucket.clone(),
        manifest_key: facts.manifest_key.clone(),
        action: ItemAction::Keep,
        reason: String::new(),
        objects: Vec::new(),
        missing_parts: Vec::new(),
        existing_objects: facts.existing.len(),
        bytes: facts.existing.values().sum(),
    };
    let manifest = match &facts.manifest {
        ManifestRead::Parsed(manifest) => manifest,
        ManifestRead::Missing => {
            plan.reason = "manifest not found in S3: nothing known to delete".to_string();
            return plan;
        }
        ManifestRead::Unreadable(why) => {
            plan.reason = format!("manifest could not be read: {why}");
            return plan;
        }
        ManifestRead::Invalid(why) => {
            plan.reason = format!("{why}; nothing deleted");
            return plan;
        }
    };
    let part_keys: Vec<String> = manifest
        .parts
        .iter()
        .map(|part| format!("{}{part}", facts.prefix))
        .collect();
    plan.missing_parts = part_keys
        .iter()
        .filter(|key| !facts.existing.contains_key(*key))
        .cloned()
        .collect();

    // Another image that stays and shares the manifest or any part keeps the whole bundle.
    for other in staying {
        let Some(other_facts) = inventory.bundles.get(&other.image_id) else {
            continue;
        };
        if other_facts.bucket != facts.bucket {
            continue;
        }
        if other_facts.manifest_key == facts.manifest_key {
            plan.reason = format!("manifest also used by {}", describe(other));
            return plan;
        }
        match &other_facts.manifest {
            ManifestRead::Parsed(other_manifest) => {
                let shared = other_manifest
                    .parts
                    .iter()
                    .map(|part| format!("{}{part}", other_facts.prefix))
                    .find(|key| part_keys.contains(key));
                if let Some(key) = shared {
                    plan.reason = format!("part {key} also used by {}", describe(other));
                    return plan;
                }
            }
            ManifestRead::Missing => {}
            ManifestRead::Unreadable(_) | ManifestRead::Invalid(_)
                if other_facts.prefix == facts.prefix =>
            {
                plan.reason = format!(
                    "cannot tell whether {} shares parts: its manifest in the same prefix is unreadable",
                    describe(other)
                );
                return plan;
            }
            ManifestRead::Unreadable(_) | ManifestRead::Invalid(_) => {}
        }
    }
    if !request.cleanup {
        plan.reason = "left behind (no --cleanup)".to_string();
        return plan;
    }
    let mut objects: Vec<String> = part_keys
        .into_iter()
        .filter(|key| facts.existing.contains_key(key))
        .collect();
    // The manifest last: while it exists, an interrupted run can still find the bundle.
    if facts.existing.contains_key(&facts.manifest_key) {
        objects.push(facts.manifest_key.clone());
    }
    if let Some(approval) = &request.approval {
        let unreviewed = objects.iter().find(|key| {
            !approval
                .objects
                .contains(&(facts.bucket.clone(), (*key).clone()))
        });
        if let Some(key) = unreviewed {
            plan.reason = format!("{key} {NOT_REVIEWED}");
            return plan;
        }
    }
    plan.action = ItemAction::Delete;
    plan.reason = format!("used only by {target}");
    plan.objects = objects;
    plan
}

/// Why something a fresh plan would delete is kept when applying a reviewed plan.
pub const NOT_REVIEWED: &str = "was not in the reviewed plan: kept";

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
