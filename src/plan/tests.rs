//! Table tests: one per planner rule.

use super::fixture;
use super::manifest::{Manifest, ManifestError};
use super::*;
use crate::model::{
    BinEntry, BinResource, BinnedImages, BundleObjects, Image, ImageState, LockState,
    ManifestFetch, RecycleRules, RetentionRule, SnapshotLock, SnapshotLocks, UserAccount, UserKind,
};
use chrono::TimeZone;
use recovery::Recovery;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn ebs(id: &str, snapshots: &[&str]) -> Image {
    fixture::image(id)
        .name(&format!("{id}-name"))
        .snapshots(snapshots)
        .build()
}

fn store(id: &str, location: &str) -> Image {
    fixture::image(id)
        .name(&format!("{id}-name"))
        .bundle(location)
        .build()
}

fn inventory(images: Vec<Image>) -> Inventory {
    let mut snapshots = BTreeMap::new();
    for image in &images {
        for id in image
            .block_devices
            .iter()
            .filter_map(|d| d.snapshot_id.clone())
        {
            snapshots.insert(
                id,
                SnapshotInfo {
                    size_gib: 8,
                    ..Default::default()
                },
            );
        }
    }
    Inventory {
        account_id: "111122223333".into(),
        images,
        snapshots,
        ..Default::default()
    }
}

fn bundle(prefix: &str, manifest: ManifestRead, existing: &[(&str, u64)]) -> BundleFacts {
    BundleFacts {
        bucket: "bkt".into(),
        manifest_key: format!("{prefix}img.manifest.xml"),
        prefix: prefix.into(),
        manifest,
        existing: existing
            .iter()
            .map(|(key, size)| (key.to_string(), *size))
            .collect(),
    }
}

fn parts(names: &[&str]) -> ManifestRead {
    ManifestRead::Parsed(Manifest {
        parts: names.iter().map(|n| n.to_string()).collect(),
    })
}

fn request(targets: &[&str], cleanup: bool, force: bool) -> Request {
    Request {
        targets: targets.iter().map(|t| t.to_string()).collect(),
        cleanup,
        force,
        terminate_instances: false,
        now: now(),
        approval: None,
    }
}

fn run(inventory: &Inventory, request: &Request) -> Plan {
    plan(inventory, request)
}

fn snapshot_actions(plan: &Plan) -> Vec<(&str, ItemAction)> {
    plan.snapshots
        .iter()
        .map(|s| (s.snapshot_id.as_str(), s.action))
        .collect()
}

#[test]
fn snapshot_shared_with_a_staying_image_is_kept_and_goes_with_the_last_user() {
    let inv = inventory(vec![ebs("ami-a", &["snap-1"]), ebs("ami-b", &["snap-1"])]);
    let plan = run(&inv, &request(&["ami-a"], true, false));
    assert_eq!(plan.images[0].action, ImageAction::Deregister);
    assert_eq!(snapshot_actions(&plan), [("snap-1", ItemAction::Keep)]);
    assert_eq!(plan.snapshots[0].reason, "also used by ami-b (ami-b-name)");
    assert!(!plan.images[0].delete_associated_snapshots);

    // Once A is gone, B takes the snapshot with it.
    let inv = inventory(vec![ebs("ami-b", &["snap-1"])]);
    let plan = run(&inv, &request(&["ami-b"], true, false));
    assert_eq!(snapshot_actions(&plan), [("snap-1", ItemAction::Delete)]);
    assert!(plan.images[0].delete_associated_snapshots);
}

#[test]
fn a_locked_snapshot_is_kept_and_its_image_still_goes() {
    let lock = |state: LockState, days: i64| SnapshotLock {
        state,
        expires: Some(now() + chrono::Duration::days(days)),
    };
    let cases = [
        (
            "governance",
            SnapshotLocks::Known(BTreeMap::from([(
                "snap-2".to_string(),
                lock(LockState::Governance, 14),
            )])),
            Some("locked (governance mode) until 2026-12-07 12:00 UTC"),
        ),
        (
            "compliance cooling off",
            SnapshotLocks::Known(BTreeMap::from([(
                "snap-2".to_string(),
                lock(LockState::ComplianceCooloff, 1),
            )])),
            Some("locked (compliance-cooloff mode)"),
        ),
        (
            "a state this build does not know",
            SnapshotLocks::Known(BTreeMap::from([(
                "snap-2".to_string(),
                lock(LockState::Other("legal-hold".into()), 1),
            )])),
            Some("locked (legal-hold mode)"),
        ),
        (
            "unreadable",
            SnapshotLocks::Unreadable("UnauthorizedOperation".into()),
            Some("its lock state could not be read: UnauthorizedOperation"),
        ),
        (
            "expired",
            SnapshotLocks::Known(BTreeMap::from([(
                "snap-2".to_string(),
                lock(LockState::Expired, -1),
            )])),
            None,
        ),
        (
            "lock time over, state not yet updated",
            SnapshotLocks::Known(BTreeMap::from([(
                "snap-2".to_string(),
                lock(LockState::Governance, -1),
            )])),
            None,
        ),
        (
            "not offered",
            SnapshotLocks::NotOffered("InvalidAction".into()),
            None,
        ),
    ];
    for (case, locks, kept) in cases {
        let mut inv = inventory(vec![ebs("ami-a", &["snap-1", "snap-2"])]);
        inv.locks = locks;
        let plan = run(&inv, &request(&["ami-a"], true, false));
        assert_eq!(plan.images[0].action, ImageAction::Deregister, "{case}");
        let snap2 = &plan.snapshots[1];
        match kept {
            Some(reason) => {
                assert_eq!(snap2.action, ItemAction::Keep, "{case}");
                assert!(snap2.reason.starts_with(reason), "{case}: {}", snap2.reason);
                // Never handed to DeleteAssociatedSnapshots, which would try it.
                assert!(!plan.images[0].delete_associated_snapshots, "{case}");
                // An unknown lock state keeps every snapshot; a known lock, only its own.
                let snap1 = if case == "unreadable" {
                    ItemAction::Keep
                } else {
                    ItemAction::Delete
                };
                assert_eq!(plan.snapshots[0].action, snap1, "{case}");
                assert_eq!(plan.snapshots[0].deleted_by, DeletedBy::DeleteSnapshot);
            }
            None => {
                assert_eq!(snap2.action, ItemAction::Delete, "{case}");
                assert!(plan.images[0].delete_associated_snapshots, "{case}");
            }
        }
    }
}

#[test]
fn every_volume_of_a_multi_volume_image_goes() {
    let inv = inventory(vec![ebs("ami-a", &["snap-1", "snap-2"])]);
    let plan = run(&inv, &request(&["ami-a"], true, false));
    assert_eq!(
        snapshot_actions(&plan),
        [
            ("snap-1", ItemAction::Delete),
            ("snap-2", ItemAction::Delete)
        ]
    );
    assert!(plan.images[0].delete_associated_snapshots);
}

#[test]
fn a_disabled_image_still_holds_its_snapshots() {
    let mut disabled = ebs("ami-d", &["snap-2"]);
    disabled.state = ImageState::Disabled;
    let inv = inventory(vec![ebs("ami-a", &["snap-1", "snap-2"]), disabled]);
    let plan = run(&inv, &request(&["ami-a"], true, false));
    assert_eq!(
        snapshot_actions(&plan),
        [("snap-1", ItemAction::Delete), ("snap-2", ItemAction::Keep)]
    );
    assert!(plan.snapshots[1].reason.contains("ami-d"));
    // Not all of its snapshots go: explicit deletes, never DeleteAssociatedSnapshots.
    assert!(!plan.images[0].delete_associated_snapshots);
    assert_eq!(plan.snapshots[0].deleted_by, DeletedBy::DeleteSnapshot);
}

#[test]
fn a_snapshot_shared_by_two_leaving_images_is_planned_once() {
    let inv = inventory(vec![
        ebs("ami-a", &["snap-1"]),
        ebs("ami-b", &["snap-1", "snap-2"]),
    ]);
    let plan = run(&inv, &request(&["ami-a", "ami-b"], true, false));
    assert_eq!(
        snapshot_actions(&plan),
        [
            ("snap-1", ItemAction::Delete),
            ("snap-2", ItemAction::Delete)
        ]
    );
    assert_eq!(plan.snapshots[0].image_id, "ami-a");
    // Each image's snapshots are all planned to go, so each goes with DeleteAssociatedSnapshots;
    // AWS may skip snap-1 while the other image is still registered, so it is also marked for an
    // explicit delete afterwards. snap-2 goes with ami-b alone.
    assert!(plan.images.iter().all(|i| i.delete_associated_snapshots));
    assert_eq!(plan.snapshots[0].deleted_by, DeletedBy::DeregisterImage);
    assert_eq!(plan.snapshots[1].deleted_by, DeletedBy::DeregisterImage);
}

#[test]
fn without_cleanup_everything_is_left_behind() {
    let inv = inventory(vec![ebs("ami-a", &["snap-1"])]);
    let plan = run(&inv, &request(&["ami-a"], false, false));
    assert_eq!(plan.images[0].action, ImageAction::Deregister);
    assert_eq!(snapshot_actions(&plan), [("snap-1", ItemAction::Keep)]);
    assert_eq!(plan.snapshots[0].reason, "left behind (no --cleanup)");
    assert_eq!(plan.snapshots[0].size_gib, Some(8));
}

#[test]
fn snapshots_the_account_does_not_own_are_kept() {
    let mut inv = inventory(vec![ebs("ami-a", &["snap-1", "snap-theirs"])]);
    inv.snapshots.remove("snap-theirs");
    let plan = run(&inv, &request(&["ami-a"], true, false));
    assert_eq!(
        snapshot_actions(&plan),
        [
            ("snap-1", ItemAction::Delete),
            ("snap-theirs", ItemAction::Keep)
        ]
    );
}

#[test]
fn missing_and_foreign_images_are_blocked_by_name() {
    let mut inv = inventory(vec![ebs("ami-a", &["snap-1"])]);
    let mut theirs = ebs("ami-x", &["snap-9"]);
    theirs.owner_id = Some("999988887777".into());
    inv.foreign.push(theirs);
    let plan = run(&inv, &request(&["ami-gone", "ami-x"], true, false));
    assert_eq!(plan.images[0].action, ImageAction::NotFound);
    assert!(plan.images[0].reason.starts_with("not found"));
    assert_eq!(plan.images[1].action, ImageAction::Blocked);
    assert!(plan.images[1].reason.contains("999988887777"));
    assert!(plan.snapshots.is_empty());
}

#[test]
fn duplicate_targets_are_planned_once() {
    let inv = inventory(vec![ebs("ami-a", &["snap-1"])]);
    let plan = run(&inv, &request(&["ami-a", "ami-a"], true, false));
    assert_eq!(plan.images.len(), 1);
    assert_eq!(plan.snapshots.len(), 1);
}

#[test]
fn deregistration_protection_blocks() {
    let table = [
        (Some("disabled"), None),
        (None, None),
        (Some("enabled-without-cooldown"), Some("protection is on")),
        (Some("enabled-with-cooldown"), Some("24-hour cooldown")),
        (
            Some("disabled-until-2026-11-24T00:00:00.000Z"),
            Some("cooldown runs until"),
        ),
        (Some("disabled-until-2026-11-22T00:00:00.000Z"), None),
        (Some("something-new"), Some("not understood")),
    ];
    for (value, expected) in table {
        let mut target = ebs("ami-a", &["snap-1"]);
        target.deregistration_protection = value.map(crate::model::DeregistrationProtection::from);
        let plan = run(&inventory(vec![target]), &request(&["ami-a"], true, false));
        match expected {
            None => assert_eq!(plan.images[0].action, ImageAction::Deregister, "{value:?}"),
            Some(text) => {
                assert_eq!(plan.images[0].action, ImageAction::Blocked, "{value:?}");
                assert!(
                    plan.images[0].reason.contains(text),
                    "{value:?}: {}",
                    plan.images[0].reason
                );
                assert!(
                    plan.snapshots.is_empty(),
                    "a blocked image keeps everything"
                );
            }
        }
    }
}

#[test]
fn images_in_use_are_blocked_unless_forced() {
    let mut inv = inventory(vec![ebs("ami-a", &["snap-1"]), ebs("ami-b", &["snap-1"])]);
    inv.users.insert(
        "ami-a".into(),
        vec![
            ImageUser::new(UserKind::Instance, "i-1", Some("running".into())),
            ImageUser::new(UserKind::LaunchTemplate, "lt-1", Some("version 1".into())),
        ],
    );
    let blocked = run(&inv, &request(&["ami-a"], true, false));
    assert_eq!(blocked.images[0].action, ImageAction::Blocked);
    assert_eq!(
        blocked.images[0].reason,
        "in use by instance i-1 (running), launch template lt-1 (version 1) (--force to deregister anyway)"
    );
    assert_eq!(blocked.images[0].users.len(), 2);
    assert!(blocked.snapshots.is_empty());

    let forced = run(&inv, &request(&["ami-a"], true, true));
    assert_eq!(forced.images[0].action, ImageAction::Deregister);
    assert!(forced.images[0].reason.contains("--force"));
    // --force never deletes what another image uses.
    assert_eq!(snapshot_actions(&forced), [("snap-1", ItemAction::Keep)]);
}

#[test]
fn a_blocked_image_keeps_holding_its_snapshots_for_others() {
    let mut inv = inventory(vec![ebs("ami-a", &["snap-1"]), ebs("ami-b", &["snap-1"])]);
    let mut protected = inv.images[1].clone();
    protected.deregistration_protection = Some("enabled-without-cooldown".into());
    inv.images[1] = protected;
    let plan = run(&inv, &request(&["ami-a", "ami-b"], true, false));
    assert_eq!(plan.images[1].action, ImageAction::Blocked);
    assert_eq!(snapshot_actions(&plan), [("snap-1", ItemAction::Keep)]);
}

#[test]
fn a_bundle_goes_as_the_manifest_and_exactly_its_parts() {
    let mut inv = inventory(vec![store("ami-s", "bkt/img/img.manifest.xml")]);
    inv.bundles.insert(
        "ami-s".into(),
        bundle(
            "img/",
            parts(&["img.part.00", "img.part.01", "img.part.02"]),
            &[
                ("img/img.manifest.xml", 100),
                ("img/img.part.00", 10),
                ("img/img.part.01", 10),
            ],
        ),
    );
    let plan = run(&inv, &request(&["ami-s"], true, false));
    let bundle = &plan.bundles[0];
    assert_eq!(bundle.action, ItemAction::Delete);
    assert_eq!(
        bundle.objects,
        ["img/img.part.00", "img/img.part.01", "img/img.manifest.xml"],
        "parts first, manifest last"
    );
    assert_eq!(bundle.missing_parts, ["img/img.part.02"]);
    assert_eq!(bundle.bytes, 120);
    assert!(plan.snapshots.is_empty());
}

#[test]
fn a_bundle_is_kept_when_its_manifest_cannot_be_trusted() {
    let table = [
        (ManifestRead::Missing, "manifest not found"),
        (
            ManifestRead::Unreadable("AccessDenied".into()),
            "AccessDenied",
        ),
        (
            ManifestRead::Invalid(ManifestError::UnsafePartName("../victim".into())),
            "\"../victim\" would leave",
        ),
        (ManifestRead::Invalid(ManifestError::HasDtd), "DTD"),
    ];
    for (read, reason) in table {
        let mut inv = inventory(vec![store("ami-s", "bkt/img/img.manifest.xml")]);
        inv.bundles.insert(
            "ami-s".into(),
            bundle("img/", read, &[("img/img.manifest.xml", 1)]),
        );
        let plan = run(&inv, &request(&["ami-s"], true, false));
        assert_eq!(plan.images[0].action, ImageAction::Deregister);
        assert_eq!(plan.bundles[0].action, ItemAction::Keep, "{reason}");
        assert!(plan.bundles[0].objects.is_empty());
        assert!(
            plan.bundles[0].reason.contains(reason),
            "{}",
            plan.bundles[0].reason
        );
    }
}

#[test]
fn a_bundle_shared_with_a_staying_image_is_kept() {
    // Same manifest.
    let mut inv = inventory(vec![
        store("ami-s", "bkt/img/img.manifest.xml"),
        store("ami-t", "bkt/img/img.manifest.xml"),
    ]);
    let facts = bundle(
        "img/",
        parts(&["img.part.00"]),
        &[("img/img.manifest.xml", 1), ("img/img.part.00", 1)],
    );
    inv.bundles.insert("ami-s".into(), facts.clone());
    inv.bundles.insert("ami-t".into(), facts);
    let plan_same = run(&inv, &request(&["ami-s"], true, false));
    assert_eq!(plan_same.bundles[0].action, ItemAction::Keep);
    assert!(
        plan_same.bundles[0]
            .reason
            .contains("manifest also used by ami-t")
    );

    // Another manifest listing one of the same parts.
    let mut inv = inventory(vec![
        store("ami-s", "bkt/img/img.manifest.xml"),
        store("ami-t", "bkt/img/other.manifest.xml"),
    ]);
    inv.bundles.insert(
        "ami-s".into(),
        bundle(
            "img/",
            parts(&["img.part.00", "img.part.01"]),
            &[("img/img.part.00", 1)],
        ),
    );
    let mut other = bundle("img/", parts(&["img.part.01"]), &[]);
    other.manifest_key = "img/other.manifest.xml".into();
    inv.bundles.insert("ami-t".into(), other);
    let plan_part = run(&inv, &request(&["ami-s"], true, false));
    assert_eq!(plan_part.bundles[0].action, ItemAction::Keep);
    assert!(
        plan_part.bundles[0]
            .reason
            .contains("img/img.part.01 also used by ami-t")
    );
}

#[test]
fn neighbouring_bundles_do_not_block_each_other() {
    let mut inv = inventory(vec![
        store("ami-s", "bkt/a/img.manifest.xml"),
        store("ami-t", "bkt/b/img.manifest.xml"),
    ]);
    inv.bundles.insert(
        "ami-s".into(),
        bundle(
            "a/",
            parts(&["img.part.00"]),
            &[("a/img.manifest.xml", 1), ("a/img.part.00", 1)],
        ),
    );
    inv.bundles.insert(
        "ami-t".into(),
        bundle(
            "b/",
            parts(&["img.part.00"]),
            &[("b/img.manifest.xml", 1), ("b/img.part.00", 1)],
        ),
    );
    let plan = run(&inv, &request(&["ami-s"], true, false));
    assert_eq!(plan.bundles[0].action, ItemAction::Delete);
    assert_eq!(
        plan.bundles[0].objects,
        ["a/img.part.00", "a/img.manifest.xml"]
    );
}

#[test]
fn an_unreadable_neighbour_manifest_in_the_same_prefix_keeps_the_bundle() {
    let mut inv = inventory(vec![
        store("ami-s", "bkt/img/img.manifest.xml"),
        store("ami-t", "bkt/img/other.manifest.xml"),
    ]);
    inv.bundles.insert(
        "ami-s".into(),
        bundle("img/", parts(&["img.part.00"]), &[("img/img.part.00", 1)]),
    );
    let mut other = bundle("img/", ManifestRead::Unreadable("AccessDenied".into()), &[]);
    other.manifest_key = "img/other.manifest.xml".into();
    inv.bundles.insert("ami-t".into(), other);
    let plan = run(&inv, &request(&["ami-s"], true, false));
    assert_eq!(plan.bundles[0].action, ItemAction::Keep);
    assert!(plan.bundles[0].reason.contains("cannot tell whether ami-t"));
}

#[test]
fn a_bundle_without_cleanup_is_left_behind_with_its_size() {
    let mut inv = inventory(vec![store("ami-s", "bkt/img/img.manifest.xml")]);
    inv.bundles.insert(
        "ami-s".into(),
        bundle(
            "img/",
            parts(&["img.part.00"]),
            &[("img/img.manifest.xml", 5), ("img/img.part.00", 1000)],
        ),
    );
    let plan = run(&inv, &request(&["ami-s"], false, false));
    assert_eq!(plan.bundles[0].action, ItemAction::Keep);
    assert_eq!(plan.bundles[0].reason, "left behind (no --cleanup)");
    assert_eq!(plan.bundles[0].bytes, 1005);
}

#[test]
fn an_interrupted_run_is_finished_from_the_pending_marks() {
    // ami-a was deregistered, its snapshots marked but not yet deleted; ami-b still uses snap-2.
    let mut inv = inventory(vec![ebs("ami-b", &["snap-2"])]);
    inv.snapshots.insert(
        "snap-1".into(),
        SnapshotInfo {
            size_gib: 8,
            ..Default::default()
        },
    );
    inv.pending
        .insert("ami-a".into(), vec!["snap-1".into(), "snap-2".into()]);
    let plan = run(&inv, &request(&["ami-a"], true, false));
    assert_eq!(plan.images[0].action, ImageAction::AlreadyGone);
    assert_eq!(
        snapshot_actions(&plan),
        [("snap-1", ItemAction::Delete), ("snap-2", ItemAction::Keep)]
    );
    assert!(plan.snapshots[1].reason.contains("ami-b"));
}

/// A marked snapshot goes through the same keep chain as any other: AWS Backup's stays, and so
/// does one the reviewed plan did not hold.
#[test]
fn a_marked_snapshot_is_kept_for_every_reason_a_planned_one_is() {
    let mut inv = inventory(Vec::new());
    for (id, tags) in [
        (
            "snap-backup",
            vec![("aws:backup:source-resource", "arn:aws:ec2:vol")],
        ),
        ("snap-plain", Vec::new()),
    ] {
        inv.snapshots.insert(
            id.into(),
            SnapshotInfo {
                size_gib: 8,
                tags: tags
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
        );
    }
    inv.pending.insert(
        "ami-a".into(),
        vec!["snap-backup".into(), "snap-plain".into()],
    );
    let plan = run(&inv, &request(&["ami-a"], true, false));
    assert_eq!(
        snapshot_actions(&plan),
        [
            ("snap-backup", ItemAction::Keep),
            ("snap-plain", ItemAction::Delete)
        ]
    );
    assert!(
        plan.snapshots[0].reason.contains("AWS Backup"),
        "{:?}",
        plan.snapshots[0]
    );

    let mut reviewed = request(&["ami-a"], true, false);
    reviewed.approval = Some(Approval {
        images: None,
        snapshots: BTreeMap::new(),
        objects: BTreeSet::new(),
    });
    let plan = run(&inv, &reviewed);
    assert_eq!(
        snapshot_actions(&plan),
        [
            ("snap-backup", ItemAction::Keep),
            ("snap-plain", ItemAction::Keep)
        ]
    );
}

#[test]
fn instances_to_be_terminated_do_not_block_but_templates_do() {
    let mut inv = inventory(vec![ebs("ami-a", &["snap-1"])]);
    let instance = ImageUser::new(UserKind::Instance, "i-1", Some("running".into()));
    inv.users.insert("ami-a".into(), vec![instance.clone()]);
    let mut req = request(&["ami-a"], true, false);
    req.terminate_instances = true;
    let plan = run(&inv, &req);
    assert_eq!(plan.images[0].action, ImageAction::Deregister);
    assert!(
        plan.images[0]
            .reason
            .contains("terminated first: instance i-1")
    );
    assert_eq!(plan.images[0].users, std::slice::from_ref(&instance));

    inv.users.get_mut("ami-a").unwrap().push(ImageUser::new(
        UserKind::LaunchConfiguration,
        "web-lc",
        None,
    ));
    let plan = run(&inv, &req);
    assert_eq!(plan.images[0].action, ImageAction::Blocked);
    assert!(
        plan.images[0]
            .reason
            .contains("launch configuration web-lc")
    );
    assert!(!plan.images[0].reason.contains("i-1"));
}

#[test]
fn instances_in_another_account_are_never_terminated() {
    let mut inv = inventory(vec![ebs("ami-a", &["snap-1"])]);
    inv.users.insert(
        "ami-a".into(),
        vec![ImageUser {
            kind: UserKind::Instance,
            id: "i-c".into(),
            detail: Some("in account 222233334444, running".into()),
            account: UserAccount::Consumer("222233334444".into()),
        }],
    );
    let mut req = request(&["ami-a"], true, false);
    req.terminate_instances = true;
    let plan = run(&inv, &req);
    assert_eq!(plan.images[0].action, ImageAction::Blocked);
    assert!(plan.images[0].reason.contains("i-c"));
    assert!(plan.images[0].reason.contains("222233334444"));
    assert!(plan.snapshots.is_empty(), "{:?}", plan.snapshots);
}

#[test]
fn a_plan_made_again_after_the_prompt_does_no_more_than_the_confirmed_one() {
    let mut inv = inventory(vec![ebs("ami-a", &["snap-1"]), ebs("ami-b", &["snap-2"])]);
    let template = ImageUser::new(UserKind::LaunchTemplate, "lt-1", None);
    // Shown: ami-a blocked by a template, ami-b goes.
    inv.users.insert("ami-a".into(), vec![template.clone()]);
    let req = request(&["ami-a", "ami-b"], true, false);
    let shown = run(&inv, &req);
    assert_eq!(shown.images[0].action, ImageAction::Blocked);
    // Meanwhile the template moved from ami-a to ami-b.
    inv.users.remove("ami-a");
    inv.users.insert("ami-b".into(), vec![template]);
    let mut again = req.clone();
    again.approval = Some(Approval::of(&shown));
    let fresh = run(&inv, &again);
    for image in &fresh.images {
        assert_eq!(image.action, ImageAction::Blocked, "{image:?}");
    }
    assert!(fresh.images[0].reason.contains("plan you confirmed"));
    assert!(fresh.images[1].reason.contains("lt-1"));
    // Both stay: nothing of theirs is planned at all.
    assert!(fresh.snapshots.is_empty(), "{:?}", fresh.snapshots);
}

#[test]
fn an_instance_launched_while_the_prompt_waited_is_not_terminated() {
    // ami-c goes with ami-a, and the two share snap-s.
    let mut inv = inventory(vec![
        ebs("ami-a", &["snap-1", "snap-s"]),
        ebs("ami-c", &["snap-c", "snap-s"]),
    ]);
    let instance = |id: &str| ImageUser::new(UserKind::Instance, id, Some("running".into()));
    inv.users.insert("ami-a".into(), vec![instance("i-shown")]);
    let mut req = request(&["ami-a", "ami-c"], true, false);
    req.terminate_instances = true;
    let shown = run(&inv, &req);
    assert_eq!(shown.images[0].action, ImageAction::Deregister);
    // Unchanged: still goes, its shown instance with it.
    let mut again = req.clone();
    again.approval = Some(Approval::of(&shown));
    let same = run(&inv, &again);
    assert_eq!(same.images[0].action, ImageAction::Deregister);
    // A new instance appeared: the image stays, naming it.
    inv.users.get_mut("ami-a").unwrap().push(instance("i-new"));
    let fresh = run(&inv, &again);
    assert_eq!(fresh.images[0].action, ImageAction::Blocked);
    assert!(
        fresh.images[0].reason.contains("i-new"),
        "{}",
        fresh.images[0].reason
    );
    // ami-c still goes; what the staying ami-a uses stays with it.
    assert_eq!(fresh.images[1].action, ImageAction::Deregister);
    assert_eq!(
        snapshot_actions(&fresh),
        [("snap-c", ItemAction::Delete), ("snap-s", ItemAction::Keep)]
    );
}

#[test]
fn images_sharing_snapshots_form_one_sequential_group() {
    let images = vec![
        ("ami-a".to_string(), vec!["snap-1".to_string()]),
        ("ami-b".to_string(), vec!["snap-2".to_string()]),
        (
            "ami-c".to_string(),
            vec!["snap-2".to_string(), "snap-3".to_string()],
        ),
        (
            "ami-d".to_string(),
            vec!["snap-3".to_string(), "snap-1".to_string()],
        ),
        ("ami-e".to_string(), vec![]),
    ];
    let groups = sharing_groups(&images);
    assert_eq!(
        groups,
        [vec!["ami-a", "ami-b", "ami-c", "ami-d"], vec!["ami-e"]]
    );
}

#[test]
fn applying_a_reviewed_plan_deletes_nothing_it_did_not_list() {
    let mut inv = inventory(vec![
        ebs("ami-a", &["snap-1", "snap-2"]),
        store("ami-s", "bkt/img/img.manifest.xml"),
    ]);
    inv.bundles.insert(
        "ami-s".into(),
        bundle(
            "img/",
            parts(&["img.part.00"]),
            &[("img/img.manifest.xml", 1), ("img/img.part.00", 1)],
        ),
    );
    let mut req = request(&["ami-a", "ami-s"], true, false);
    req.approval = Some(Approval {
        images: None,
        snapshots: BTreeMap::from([("snap-1".to_string(), None)]),
        objects: BTreeSet::from([("bkt".to_string(), "img/img.part.00".to_string())]),
    });
    let plan = run(&inv, &req);
    assert_eq!(
        snapshot_actions(&plan),
        [("snap-1", ItemAction::Delete), ("snap-2", ItemAction::Keep)]
    );
    assert_eq!(plan.snapshots[1].reason, NOT_REVIEWED);
    assert!(
        !plan.images[0].delete_associated_snapshots,
        "snap-2 stays, so no DeleteAssociatedSnapshots"
    );
    assert_eq!(plan.bundles[0].action, ItemAction::Keep);
    assert!(
        plan.bundles[0]
            .reason
            .contains("img/img.manifest.xml was not in the reviewed plan")
    );
}

fn objects(manifest: ManifestFetch, listing: Result<&[(&str, u64)], &str>) -> BundleObjects {
    BundleObjects {
        bucket: "bkt".into(),
        manifest_key: "img/img.manifest.xml".into(),
        prefix: "img/".into(),
        manifest,
        listing: listing
            .map(|keys| {
                keys.iter()
                    .map(|(k, size)| (k.to_string(), *size))
                    .collect()
            })
            .map_err(str::to_string),
    }
}

#[test]
fn bundle_facts_keep_only_the_manifest_and_its_parts_and_fail_closed() {
    let xml = b"<manifest><image><parts count=\"1\"><part index=\"0\"><filename>img.part.00\
                </filename></part></parts></image></manifest>"
        .to_vec();
    let listing: &[(&str, u64)] = &[
        ("img/img.manifest.xml", 10),
        ("img/img.part.00", 100),
        ("img/unrelated.txt", 5),
        ("img/other.manifest.xml", 7),
    ];
    // A parsed manifest: the existing objects are exactly the manifest and its part.
    let facts = BundleFacts::read(objects(ManifestFetch::Fetched(xml.clone()), Ok(listing)));
    assert!(matches!(facts.manifest, ManifestRead::Parsed(_)));
    assert_eq!(
        facts
            .existing
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        vec!["img/img.manifest.xml", "img/img.part.00"]
    );
    // The bucket is gone: an empty listing, nothing exists.
    let facts = BundleFacts::read(objects(ManifestFetch::Missing, Ok(&[])));
    assert!(matches!(facts.manifest, ManifestRead::Missing));
    assert!(facts.existing.is_empty());
    // The listing failed: the bundle is unreadable, whatever the manifest said.
    let facts = BundleFacts::read(objects(ManifestFetch::Fetched(xml), Err("AccessDenied")));
    match &facts.manifest {
        ManifestRead::Unreadable(why) => {
            assert!(why.contains("cannot list s3://bkt/img/") && why.contains("AccessDenied"))
        }
        other => panic!("{other:?}"),
    }
    assert!(facts.existing.is_empty());
    // Too large, or not a manifest: invalid, and only the manifest key counts as existing.
    let facts = BundleFacts::read(objects(ManifestFetch::TooLarge(1 << 30), Ok(listing)));
    assert!(matches!(
        facts.manifest,
        ManifestRead::Invalid(ManifestError::TooLarge(_))
    ));
    let facts = BundleFacts::read(objects(
        ManifestFetch::Fetched(b"<nope".to_vec()),
        Ok(listing),
    ));
    assert!(matches!(facts.manifest, ManifestRead::Invalid(_)));
    assert_eq!(facts.existing.len(), 1);
    let facts = BundleFacts::read(objects(
        ManifestFetch::Unreadable("throttled".into()),
        Ok(listing),
    ));
    assert!(matches!(facts.manifest, ManifestRead::Unreadable(_)));
}

fn bin_rule(resource: BinResource, days: u32) -> RetentionRule {
    RetentionRule {
        id: format!("{resource:?}"),
        resource,
        days,
        tags: Vec::new(),
        exclude_tags: Vec::new(),
        available: true,
    }
}

fn status(recovery: &Option<Recovery>) -> &'static str {
    match recovery {
        Some(Recovery::Recoverable { .. }) => "recoverable",
        Some(Recovery::NotRecoverable) => "not",
        Some(Recovery::Unknown { .. }) => "unknown",
        None => "-",
    }
}

#[test]
fn an_image_is_only_as_recoverable_as_the_snapshots_it_loses() {
    let images_only = RecycleRules::Known(vec![bin_rule(BinResource::Image, 14)]);
    let both = RecycleRules::Known(vec![
        bin_rule(BinResource::Image, 14),
        bin_rule(BinResource::Snapshot, 7),
    ]);
    let cases = [
        ("no rules", RecycleRules::default(), "not", "not"),
        (
            "images only: its snapshot goes for good",
            images_only,
            "not",
            "not",
        ),
        ("both", both, "recoverable", "recoverable"),
        (
            "unreadable",
            RecycleRules::Unreadable("denied".into()),
            "unknown",
            "unknown",
        ),
    ];
    for (case, rules, image, snapshot) in cases {
        let mut inv = inventory(vec![ebs("ami-a", &["snap-1"])]);
        inv.recycle = rules;
        let plan = run(&inv, &request(&["ami-a"], true, false));
        assert_eq!(status(&plan.images[0].recycle_bin), image, "{case}");
        assert_eq!(status(&plan.snapshots[0].recycle_bin), snapshot, "{case}");
    }
    // Both recoverable: the image until the earlier of the two.
    let mut inv = inventory(vec![ebs("ami-a", &["snap-1"])]);
    inv.recycle = RecycleRules::Known(vec![
        bin_rule(BinResource::Image, 14),
        bin_rule(BinResource::Snapshot, 7),
    ]);
    let plan = run(&inv, &request(&["ami-a"], true, false));
    let Some(Recovery::Recoverable { until, .. }) = &plan.images[0].recycle_bin else {
        panic!("{:?}", plan.images[0].recycle_bin);
    };
    assert_eq!(*until, now() + chrono::Duration::days(7));
    // Without --cleanup the snapshots stay: the image alone decides.
    let mut inv = inventory(vec![ebs("ami-a", &["snap-1"])]);
    inv.recycle = RecycleRules::Known(vec![bin_rule(BinResource::Image, 14)]);
    let plan = run(&inv, &request(&["ami-a"], false, false));
    assert_eq!(status(&plan.images[0].recycle_bin), "recoverable");
    assert_eq!(status(&plan.snapshots[0].recycle_bin), "-");
    // The Recycle Bin keeps EBS-backed images only.
    let mut inv = inventory(vec![store("ami-s", "bkt/img.manifest.xml")]);
    inv.recycle = RecycleRules::Known(vec![bin_rule(BinResource::Image, 14)]);
    let plan = run(&inv, &request(&["ami-s"], false, false));
    assert_eq!(status(&plan.images[0].recycle_bin), "not");
}

#[test]
fn what_was_confirmed_recoverable_is_not_deleted_for_good_without_asking_again() {
    let mut inv = inventory(vec![ebs("ami-a", &["snap-1"])]);
    inv.recycle = RecycleRules::Known(vec![
        bin_rule(BinResource::Image, 14),
        bin_rule(BinResource::Snapshot, 7),
    ]);
    let req = request(&["ami-a"], true, false);
    let shown = run(&inv, &req);
    assert_eq!(status(&shown.images[0].recycle_bin), "recoverable");
    let mut again = req.clone();
    again.approval = Some(Approval::of(&shown));
    // Unchanged: goes as confirmed.
    let same = run(&inv, &again);
    assert_eq!(same.images[0].action, ImageAction::Deregister);
    assert!(same.images[0].delete_associated_snapshots);
    // The snapshot rule went meanwhile: the image (no longer recoverable as confirmed) stays,
    // and a blocked image keeps everything it uses.
    inv.recycle = RecycleRules::Known(vec![bin_rule(BinResource::Image, 14)]);
    let fresh = run(&inv, &again);
    assert_eq!(fresh.images[0].action, ImageAction::Blocked);
    assert!(
        fresh.images[0].reason.contains("plan you confirmed"),
        "{}",
        fresh.images[0].reason
    );
    assert!(fresh.snapshots.is_empty(), "{:?}", fresh.snapshots);
    assert!(!fresh.images[0].delete_associated_snapshots);
    assert_eq!(fresh.images[0].recycle_bin, None);
    // A snapshot approved as recoverable and not any more is kept though its image goes,
    // when the image's own recoverability did not change.
    {
        let mut inv = inventory(vec![ebs("ami-a", &["snap-1"])]);
        inv.recycle = RecycleRules::Known(vec![bin_rule(BinResource::Snapshot, 7)]);
        let shown = run(&inv, &req);
        let mut again = req.clone();
        again.approval = Some(Approval::of(&shown));
        if let Some(approved) = again.approval.as_mut().and_then(|a| a.images.as_mut()) {
            // As if the image had been shown not recoverable (a rule for images alone decides it).
            approved.get_mut("ami-a").unwrap().recycle_bin = Some(Recovery::NotRecoverable);
        }
        inv.recycle = RecycleRules::Known(Vec::new());
        let fresh = run(&inv, &again);
        assert_eq!(fresh.images[0].action, ImageAction::Deregister);
        assert_eq!(fresh.snapshots[0].action, ItemAction::Keep);
        assert!(fresh.snapshots[0].reason.contains("plan you confirmed"));
        assert!(!fresh.images[0].delete_associated_snapshots);
        assert_eq!(fresh.snapshots[0].recycle_bin, None);
    }
    // The rules cannot be read now: the same, saying why.
    inv.recycle = RecycleRules::Unreadable("AccessDenied".into());
    let fresh = run(&inv, &again);
    assert_eq!(fresh.images[0].action, ImageAction::Blocked);
    assert!(
        fresh.images[0]
            .reason
            .contains("unknown now (AccessDenied)"),
        "{}",
        fresh.images[0].reason
    );
}

/// Images AWS still lists after deregistration are gone: not targets, and they use nothing. A
/// pending image is never deregistered; a failed one may be.
#[test]
fn an_image_s_state_decides_whether_it_is_a_target_and_what_it_keeps() {
    let in_state = |id: &str, snapshots: &[&str], state: &str| {
        fixture::image(id)
            .name(&format!("{id}-name"))
            .snapshots(snapshots)
            .state(state)
            .build()
    };
    let mut inv = inventory(vec![
        in_state("ami-gone", &["snap-shared"], "deregistered"),
        in_state("ami-pending", &["snap-p"], "pending"),
        in_state("ami-failed", &["snap-f"], "failed"),
        ebs("ami-a", &["snap-shared"]),
    ]);
    // The Recycle Bin holds nothing (else the gone image may need its snapshot).
    inv.binned = BinnedImages::Known(BTreeMap::new());
    let plan = run(
        &inv,
        &request(
            &["ami-gone", "ami-pending", "ami-failed", "ami-a"],
            true,
            false,
        ),
    );
    let actions: Vec<(&str, ImageAction)> = plan
        .images
        .iter()
        .map(|i| (i.image_id.as_str(), i.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("ami-gone", ImageAction::AlreadyGone),
            ("ami-pending", ImageAction::Blocked),
            ("ami-failed", ImageAction::Deregister),
            ("ami-a", ImageAction::Deregister),
        ]
    );
    assert_eq!(
        plan.images[0].reason,
        "already deregistered (AWS still lists it for a while)"
    );
    assert!(plan.images[1].reason.contains("still being made"));
    // The gone image's mapping keeps nothing: its shared snapshot goes with ami-a.
    assert_eq!(
        snapshot_actions(&plan),
        [
            ("snap-f", ItemAction::Delete),
            ("snap-shared", ItemAction::Delete)
        ]
    );
    assert!(plan.images[3].delete_associated_snapshots);

    // Marked by an interrupted run, the gone image's snapshots are finished.
    inv.pending
        .insert("ami-gone".into(), vec!["snap-marked".into()]);
    inv.snapshots
        .insert("snap-marked".into(), SnapshotInfo::default());
    let plan = run(&inv, &request(&["ami-gone"], true, false));
    assert_eq!(plan.images[0].action, ImageAction::AlreadyGone);
    assert_eq!(
        snapshot_actions(&plan),
        [("snap-marked", ItemAction::Delete)]
    );
}

/// Marked before its image goes: what the run may delete by its own DeleteSnapshot (planned so,
/// or shared by several images it deregisters); nothing it keeps.
#[test]
fn snapshots_the_run_may_delete_itself_are_marked_first() {
    let inv = inventory(vec![
        ebs("ami-a", &["snap-shared", "snap-a"]),
        ebs("ami-b", &["snap-shared"]),
        ebs("ami-c", &["snap-c", "snap-kept"]),
        ebs("ami-d", &["snap-kept"]),
    ]);
    let plan = run(&inv, &request(&["ami-a", "ami-b", "ami-c"], true, false));
    let deregistering: Vec<&ImagePlan> = plan.images.iter().collect();
    let marked = marked_first(&deregistering, &plan.snapshots);
    // snap-a goes with ami-a (DeleteAssociatedSnapshots), snap-shared with the last of a and b
    // (but AWS may skip it while the first deregistration settles), snap-c by its own
    // DeleteSnapshot (ami-c keeps snap-kept, which ami-d uses).
    assert_eq!(
        marked.into_iter().collect::<Vec<_>>(),
        ["snap-c", "snap-shared"]
    );
}

/// A snapshot an image in the Recycle Bin needs stays: the bin's image named by the snapshot's
/// description, or one AWS still lists as deregistered that uses it. A bin that could not be
/// read may hold either.
#[test]
fn a_snapshot_an_image_in_the_recycle_bin_needs_is_kept() {
    let gone = fixture::image("ami-gone")
        .snapshots(&["snap-listed"])
        .state("deregistered")
        .build();
    let mut inv = inventory(vec![
        ebs("ami-a", &["snap-listed", "snap-named", "snap-own"]),
        gone,
    ]);
    let describe = |snapshot: &str, image: &str| {
        format!("Created by CreateImage(i-1) for {image} from vol-1 ({snapshot})")
    };
    for (snapshot, image) in [
        ("snap-named", "ami-binned"),
        ("snap-own", "ami-a"),
        // Made for another image, long gone: only the listed mapping says ami-gone needs it.
        ("snap-listed", "ami-elsewhere"),
    ] {
        inv.snapshots.get_mut(snapshot).unwrap().description = Some(describe(snapshot, image));
    }
    let entry = |id: &str| BinEntry {
        id: id.into(),
        name: None,
        entered: None,
        leaves: Some(now() + chrono::Duration::days(3)),
    };
    // Table: what the bin holds → each snapshot's action (listed, named, own).
    use ItemAction::{Delete, Keep};
    let cases: [(BinnedImages, [ItemAction; 3]); 5] = [
        (
            BinnedImages::Known(BTreeMap::new()),
            [Delete, Delete, Delete],
        ),
        (
            BinnedImages::Known([("ami-binned".to_string(), entry("ami-binned"))].into()),
            [Delete, Keep, Delete],
        ),
        (
            BinnedImages::Known([("ami-gone".to_string(), entry("ami-gone"))].into()),
            [Keep, Delete, Delete],
        ),
        (
            BinnedImages::NotOffered("InvalidAction".into()),
            [Delete, Delete, Delete],
        ),
        // Unread: every snapshot a gone image may need stays; the image's own goes with it.
        (
            BinnedImages::Unreadable("AccessDenied".into()),
            [Keep, Keep, Delete],
        ),
    ];
    for (binned, expected) in cases {
        inv.binned = binned.clone();
        let plan = run(&inv, &request(&["ami-a"], true, false));
        let action = |id: &str| {
            plan.snapshots
                .iter()
                .find(|s| s.snapshot_id == id)
                .map(|s| s.action)
                .unwrap()
        };
        assert_eq!(
            [
                action("snap-listed"),
                action("snap-named"),
                action("snap-own")
            ],
            expected,
            "{binned:?}"
        );
    }
}

#[test]
fn an_image_a_service_made_is_kept_even_forced_and_a_service_snapshot_stays() {
    let backup = fixture::image("ami-backup")
        .tag("aws:backup:source-resource", "i-1:x")
        .snapshots(&["snap-b"])
        .build();
    let mut inv = inventory(vec![backup, ebs("ami-mine", &["snap-dlm", "snap-own"])]);
    // ami-mine was registered from a snapshot Data Lifecycle Manager made.
    inv.snapshots
        .get_mut("snap-dlm")
        .unwrap()
        .tags
        .insert("aws:dlm:lifecycle-policy-id".into(), "policy-1".into());
    let plan = run(&inv, &request(&["ami-backup", "ami-mine"], true, true));
    assert_eq!(plan.images[0].action, ImageAction::Blocked);
    assert!(
        plan.images[0].reason.contains("AWS Backup"),
        "{}",
        plan.images[0].reason
    );
    assert_eq!(plan.images[1].action, ImageAction::Deregister);
    assert_eq!(
        snapshot_actions(&plan),
        [
            ("snap-dlm", ItemAction::Keep),
            ("snap-own", ItemAction::Delete)
        ]
    );
    assert!(plan.snapshots[0].reason.contains("Data Lifecycle Manager"));
    // Not every snapshot of the image goes: DeleteAssociatedSnapshots would take the DLM one.
    assert!(!plan.images[1].delete_associated_snapshots);
}
