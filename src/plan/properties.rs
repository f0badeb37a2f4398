//! Properties of the planner over random estates (proptest): images sharing snapshots,
//! multi-volume images, in-use images, keep tags, protected images, images in every state
//! (disabled, pending, failed, and deregistered ones AWS still lists), snapshots that are not
//! ours. For every estate and every request:
//!
//! - no snapshot an image that stays still uses is planned for deletion;
//! - no in-use, keep-tagged, protected or pending image is retired or deregistered, and the
//!   newest `--keep N` launchable images of a family stay, whatever is newer;
//! - executing the plan the way `ami` does (sharing groups one image at a time, AWS deleting
//!   associated snapshots it finds free, then DeleteSnapshot for the rest) never meets
//!   `InvalidSnapshot.InUse`, and AWS never deletes a snapshot the plan keeps.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

use super::fixture;
use super::retention::{GroupBy, Retention, RetireAction, Verdict, select};
use super::*;
use crate::model::{DeregistrationProtection, Image, ImageState, UserKind};
use chrono::TimeZone;

const ACCOUNT: &str = "111122223333";

#[derive(Debug, Clone)]
struct ImageSpec {
    snapshots: Vec<usize>,
    family: usize,
    age_days: i64,
    /// The image's state, as AWS names it.
    state: &'static str,
    in_use: bool,
    keep_tag: bool,
    protected: bool,
    targeted: bool,
}

#[derive(Debug, Clone)]
struct Estate {
    images: Vec<ImageSpec>,
    /// Snapshot pool indices that belong to another account (not in the inventory).
    foreign_snapshots: BTreeSet<usize>,
    keep: usize,
}

fn image_spec(pool: usize) -> impl Strategy<Value = ImageSpec> {
    (
        proptest::collection::btree_set(0..pool, 1..=3),
        0..3usize,
        0..1000i64,
        prop_oneof![
            6 => Just("available"),
            1 => Just("disabled"),
            1 => Just("pending"),
            1 => Just("failed"),
            1 => Just("deregistered"),
        ],
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.6),
    )
        .prop_map(
            |(snapshots, family, age_days, state, in_use, keep_tag, protected, targeted)| {
                ImageSpec {
                    snapshots: snapshots.into_iter().collect(),
                    family,
                    age_days,
                    state,
                    in_use,
                    keep_tag,
                    protected,
                    targeted,
                }
            },
        )
}

fn estate() -> impl Strategy<Value = Estate> {
    (2..20usize).prop_flat_map(|pool| {
        (
            proptest::collection::vec(image_spec(pool), 1..20),
            proptest::collection::btree_set(0..pool, 0..2),
            0..3usize,
        )
            .prop_map(|(images, foreign_snapshots, keep)| Estate {
                images,
                foreign_snapshots,
                keep,
            })
    })
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn snapshot_id(index: usize) -> String {
    format!("snap-{index:04}")
}

fn build(estate: &Estate) -> Inventory {
    let mut inventory = Inventory {
        account_id: ACCOUNT.into(),
        // Nothing in the Recycle Bin: an image listed as deregistered needs nothing.
        binned: crate::model::BinnedImages::Known(BTreeMap::new()),
        ..Default::default()
    };
    for (n, spec) in estate.images.iter().enumerate() {
        let id = format!("ami-{n:04}");
        let snapshots: Vec<String> = spec.snapshots.iter().map(|s| snapshot_id(*s)).collect();
        let snapshots: Vec<&str> = snapshots.iter().map(String::as_str).collect();
        let mut image = fixture::image(&id)
            .name(&format!("fam{}-{n:04}", spec.family))
            .owner(Some(ACCOUNT))
            .created(now() - chrono::Duration::days(spec.age_days))
            .snapshots(&snapshots);
        if spec.keep_tag {
            image = image.tag("keep", "true");
        }
        image = image.state(spec.state);
        if spec.protected {
            image = image.protection("enabled-without-cooldown");
        }
        inventory.images.push(image.build());
        if spec.in_use {
            inventory.users.insert(
                id.clone(),
                vec![ImageUser::new(
                    UserKind::Instance,
                    format!("i-{n:04}"),
                    Some("running".into()),
                )],
            );
        }
        for s in &spec.snapshots {
            if !estate.foreign_snapshots.contains(s) {
                inventory.snapshots.insert(
                    snapshot_id(*s),
                    SnapshotInfo {
                        size_gib: 8,
                        ..Default::default()
                    },
                );
            }
        }
    }
    inventory
}

fn request(targets: Vec<String>) -> Request {
    Request {
        targets,
        cleanup: true,
        force: false,
        terminate_instances: false,
        now: now(),
        approval: None,
    }
}

/// Checks one plan against the estate, and executes it against a model of AWS.
fn check(inventory: &Inventory, plan: &Plan) -> Result<(), TestCaseError> {
    let deregistered: BTreeSet<&str> = plan
        .images
        .iter()
        .filter(|i| i.action == ImageAction::Deregister)
        .map(|i| i.image_id.as_str())
        .collect();
    // What AWS lists as deregistered is gone already: it neither stays nor holds a snapshot.
    let staying: Vec<&Image> = inventory
        .images
        .iter()
        .filter(|i| i.state != ImageState::Deregistered)
        .filter(|i| !deregistered.contains(i.image_id.as_str()))
        .collect();
    let deleted: BTreeSet<&str> = plan
        .snapshots
        .iter()
        .filter(|s| s.action == ItemAction::Delete)
        .map(|s| s.snapshot_id.as_str())
        .collect();

    for image in &staying {
        for device in &image.block_devices {
            let id = device.snapshot_id.as_deref().unwrap_or_default();
            prop_assert!(
                !deleted.contains(id),
                "{id} deleted while {} stays",
                image.image_id
            );
        }
    }
    for image in inventory
        .images
        .iter()
        .filter(|i| deregistered.contains(i.image_id.as_str()))
    {
        prop_assert!(
            inventory
                .users
                .get(&image.image_id)
                .is_none_or(|u| u.is_empty()),
            "{} is in use",
            image.image_id
        );
        prop_assert!(
            image.deregistration_protection == Some(DeregistrationProtection::Disabled),
            "{} is protected",
            image.image_id
        );
        prop_assert!(
            !matches!(image.state, ImageState::Pending | ImageState::Deregistered),
            "{} is {}",
            image.image_id,
            image.state
        );
    }
    for id in &deleted {
        prop_assert!(
            inventory.snapshots.contains_key(*id),
            "{id} is not ours, yet planned for deletion"
        );
    }

    execute_against_a_model_of_aws(inventory, plan, &deleted)
}

/// Executes the plan against a model of AWS: DeleteAssociatedSnapshots deletes only what the
/// plan deletes, and no DeleteSnapshot meets a snapshot still in use.
fn execute_against_a_model_of_aws(
    inventory: &Inventory,
    plan: &Plan,
    deleted: &BTreeSet<&str>,
) -> Result<(), TestCaseError> {
    let mut registered: BTreeMap<&str, Vec<&str>> = inventory
        .images
        .iter()
        .filter(|i| i.state != ImageState::Deregistered)
        .map(|i| {
            (
                i.image_id.as_str(),
                i.block_devices
                    .iter()
                    .filter_map(|d| d.snapshot_id.as_deref())
                    .collect(),
            )
        })
        .collect();
    let mut existing: BTreeSet<&str> = inventory.snapshots.keys().map(String::as_str).collect();
    let in_use = |registered: &BTreeMap<&str, Vec<&str>>, id: &str| {
        registered.values().any(|snaps| snaps.contains(&id))
    };
    let planned: Vec<(String, Vec<String>)> = plan
        .images
        .iter()
        .filter(|i| i.action == ImageAction::Deregister)
        .map(|i| (i.image_id.clone(), i.snapshot_ids.clone()))
        .collect();
    let by_id: BTreeMap<&str, &ImagePlan> = plan
        .images
        .iter()
        .map(|i| (i.image_id.as_str(), i))
        .collect();
    let mut deleted_with_image: BTreeSet<String> = BTreeSet::new();
    for group in sharing_groups(&planned) {
        for image_id in group {
            let snaps = registered
                .remove(image_id.as_str())
                .expect("planned image exists");
            if by_id[image_id.as_str()].delete_associated_snapshots {
                for id in snaps {
                    if existing.contains(id) && !in_use(&registered, id) {
                        prop_assert!(
                            deleted.contains(id),
                            "AWS would delete {id} with {image_id}, but the plan keeps it"
                        );
                        existing.remove(id);
                        deleted_with_image.insert(id.to_string());
                    }
                }
            }
        }
    }
    for snapshot in plan
        .snapshots
        .iter()
        .filter(|s| s.action == ItemAction::Delete)
    {
        let id = snapshot.snapshot_id.as_str();
        if deleted_with_image.contains(id) {
            continue;
        }
        prop_assert!(
            snapshot.deleted_by == DeletedBy::DeleteSnapshot,
            "{id} was to go with its image, but AWS kept it"
        );
        prop_assert!(
            !in_use(&registered, id),
            "DeleteSnapshot {id} would meet InvalidSnapshot.InUse"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// `ami deregister --cleanup` of any set of images.
    #[test]
    fn deregistering_any_images_never_deletes_what_stays(estate in estate()) {
        let inventory = build(&estate);
        let targets: Vec<String> = estate
            .images
            .iter()
            .enumerate()
            .filter(|(_, spec)| spec.targeted)
            .map(|(n, _)| format!("ami-{n:04}"))
            .collect();
        let plan = plan(&inventory, &request(targets));
        check(&inventory, &plan)?;
    }

    /// `ami cleanup --keep N`: retention picks, the planner plans.
    #[test]
    fn retention_never_retires_what_must_stay(estate in estate()) {
        let inventory = build(&estate);
        let retention = Retention {
            group_by: GroupBy::Name(None),
            keep: Some(estate.keep),
            older_than: None,
            unused_for: None,
            keep_tag: ("keep".into(), "true".into()),
            include_public: false,
        };
        let decisions = select(&inventory.images, &inventory.users, ACCOUNT, &retention, now());
        // Every image but the deregistered ones AWS still lists gets a decision.
        let existing = estate.images.iter().filter(|i| i.state != "deregistered").count();
        prop_assert_eq!(decisions.len(), existing);
        let mut retired = Vec::new();
        for decision in decisions.iter().filter(|d| d.verdict == Verdict::Retire) {
            let index = decision.image_id[4..].parse::<usize>().unwrap();
            let spec = &estate.images[index];
            prop_assert!(!spec.in_use && !spec.keep_tag && !spec.protected, "{:?}", decision);
            prop_assert!(spec.state != "pending", "{:?}", decision);
            // A launchable image is not one of the newest `keep` launchable, retirable images of
            // its family (same age: the higher id ranks first); pinned images (in use, keep tag,
            // protected) and images that cannot be launched take no keep slot.
            let newer = estate
                .images
                .iter()
                .enumerate()
                .filter(|(n, other)| {
                    other.family == spec.family
                        && other.state == "available"
                        && !(other.in_use || other.keep_tag || other.protected)
                        && (other.age_days < spec.age_days
                            || (other.age_days == spec.age_days && *n > index))
                })
                .count();
            if spec.state == "available" {
                prop_assert!(newer >= estate.keep, "{:?}", decision);
            }
            retired.push(decision.image_id.clone());
        }
        let plan = plan(&inventory, &request(retired.clone()));
        for image in &plan.images {
            prop_assert_eq!(image.action, ImageAction::Deregister, "{:?}", image);
        }
        check(&inventory, &plan)?;
    }

    /// What a streamed cleanup relies on: a user found (here, the `targeted` images turning out
    /// to be used in a consumer account) can only keep more. Whatever the rules deregister with
    /// more users, they deregister with fewer, under several rules at once (keep-wins, the
    /// gentler action).
    #[test]
    fn finding_a_user_never_retires_anything_more(estate in estate()) {
        let inventory = build(&estate);
        let retention = |keep: Option<usize>, older_than: Option<i64>| Retention {
            group_by: GroupBy::Name(None),
            keep,
            older_than: older_than.map(chrono::Duration::days),
            unused_for: None,
            keep_tag: ("keep".into(), "true".into()),
            include_public: false,
        };
        let rule = |name: &str, retention: Retention, action: RetireAction| rules::Rule {
            label: Some(name.into()),
            name_filter: Some(regex::Regex::new(name).unwrap()),
            tags: Vec::new(),
            retention,
            action,
            orphans: false,
            orphan_bundles: Vec::new(),
            with_copies: false,
        };
        let rules = vec![
            rule("^fam", retention(Some(estate.keep), None), RetireAction::Deregister),
            rule("^fam1", retention(Some(estate.keep + 1), Some(300)), RetireAction::Deregister),
            rule("^fam2", retention(None, Some(500)), RetireAction::Deprecate),
        ];
        let deregistered = |users: &BTreeMap<String, Vec<ImageUser>>| -> BTreeSet<String> {
            rules::decide(&rules, Vec::new(), &inventory.images, ACCOUNT, users, now())
                .1
                .into_iter()
                .filter(|(_, action)| *action == RetireAction::Deregister)
                .map(|(id, _)| id)
                .collect()
        };
        let mut more = inventory.users.clone();
        for (n, spec) in estate.images.iter().enumerate() {
            if spec.targeted {
                more.entry(format!("ami-{n:04}")).or_default().push(ImageUser::new(
                    UserKind::UncheckedConsumer,
                    "222222222222",
                    None,
                ));
            }
        }
        let with_more = deregistered(&more);
        let with_fewer = deregistered(&inventory.users);
        prop_assert!(with_more.is_subset(&with_fewer), "{:?} not in {:?}", with_more, with_fewer);
    }
}
