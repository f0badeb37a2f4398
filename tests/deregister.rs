//! `ami deregister [--cleanup]` through the real binary against the emulator.

use crate::common::{Account, REGION, bucket_name, bundle_manifest, json};
use serde::Deserialize;
use std::collections::BTreeSet;

/// The JSON contract of `ami deregister` (plan and result share it); unknown fields are rejected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Report {
    region: String,
    dry_run: bool,
    cleanup: bool,
    images: Vec<ImageItem>,
    snapshots: Vec<SnapshotItem>,
    bundles: Vec<BundleItem>,
    instances_terminated: Vec<String>,
    left_behind: LeftBehind,
    notes: Vec<String>,
    recycle_bin: Option<RecycleSummary>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RecycleSummary {
    images: Option<RecoveryTally>,
    snapshots: Option<RecoveryTally>,
    restorable_until: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RecoveryTally {
    total: usize,
    recoverable: usize,
    unknown: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ImageItem {
    image_id: String,
    name: Option<String>,
    state: Option<String>,
    action: String,
    reason: String,
    users: Vec<User>,
    snapshot_ids: Vec<String>,
    delete_associated_snapshots: bool,
    recycle_bin: Option<serde_json::Value>,
    status: String,
    error: Option<String>,
    code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct User {
    kind: String,
    id: String,
    detail: Option<String>,
    /// Only for users in another account.
    #[serde(default)]
    account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SnapshotItem {
    snapshot_id: String,
    image_id: String,
    size_gib: Option<i32>,
    action: String,
    reason: String,
    deleted_by: String,
    recycle_bin: Option<serde_json::Value>,
    status: String,
    error: Option<String>,
    code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct BundleItem {
    image_id: String,
    bucket: String,
    manifest_key: String,
    action: String,
    reason: String,
    objects: Vec<String>,
    missing_parts: Vec<String>,
    existing_objects: usize,
    bytes: u64,
    status: String,
    error: Option<String>,
    failed_keys: Vec<FailedKey>,
    bucket_deleted: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FailedKey {
    key: String,
    error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeftBehind {
    snapshots: usize,
    snapshot_gib: i64,
    bundle_objects: usize,
    bundle_bytes: u64,
}

/// Runs `ami deregister ARGS --output json` and returns the exit code and the parsed report.
fn deregister(account: &Account, args: &[&str]) -> (i32, Report) {
    let output = account
        .ami()
        .arg("deregister")
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let code = output.status.code().unwrap();
    let document = json(&["deregister"], &output);
    let report = serde_json::from_value(document).unwrap_or_else(|err| {
        panic!("deregister output does not match the documented schema: {err}")
    });
    (code, report)
}

async fn object_keys(account: &Account, bucket: &str) -> BTreeSet<String> {
    account
        .s3()
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|object| object.key().map(String::from))
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[tokio::test]
async fn a_shared_snapshot_stays_until_its_last_image_goes() {
    let account = Account::new();
    let (a, snapshot) = account.image(REGION, "a").await;
    let b = account
        .register_ebs(REGION, "b", &[("/dev/xvda", &snapshot)])
        .await;

    let (code, report) = deregister(&account, &[&a, "--cleanup", "--yes"]);
    assert_eq!(code, 0);
    assert_eq!(report.images[0].status, "done");
    assert_eq!(report.snapshots[0].action, "keep");
    assert_eq!(report.snapshots[0].reason, format!("also used by {b} (b)"));
    assert_eq!(account.image_ids().await, set(&[&b]));
    assert_eq!(account.snapshot_ids().await, set(&[&snapshot]));

    let (code, report) = deregister(&account, &[&b, "--cleanup", "--yes"]);
    assert_eq!(code, 0);
    assert_eq!(report.snapshots[0].status, "done");
    assert!(account.image_ids().await.is_empty());
    assert!(account.snapshot_ids().await.is_empty());
}

#[tokio::test]
async fn both_volumes_of_a_two_volume_image_go_but_a_disabled_image_keeps_its_share() {
    let account = Account::new();
    let root = account.snapshot(REGION, 8).await;
    let data = account.snapshot(REGION, 20).await;
    let two = account
        .register_ebs(REGION, "two", &[("/dev/xvda", &root), ("/dev/xvdb", &data)])
        .await;
    let (code, report) = deregister(&account, &[&two, "--cleanup", "--yes"]);
    assert_eq!(code, 0);
    assert!(report.images[0].delete_associated_snapshots);
    assert!(report.snapshots.iter().all(|s| s.status == "done"));
    assert!(account.snapshot_ids().await.is_empty());

    let root = account.snapshot(REGION, 8).await;
    let shared = account.snapshot(REGION, 20).await;
    let target = account
        .register_ebs(
            REGION,
            "target",
            &[("/dev/xvda", &root), ("/dev/xvdb", &shared)],
        )
        .await;
    let disabled = account
        .register_ebs(REGION, "disabled", &[("/dev/xvda", &shared)])
        .await;
    account
        .ec2()
        .disable_image()
        .image_id(&disabled)
        .send()
        .await
        .unwrap();
    let (code, report) = deregister(&account, &[&target, "--cleanup", "--yes"]);
    assert_eq!(code, 0);
    let kept = report
        .snapshots
        .iter()
        .find(|s| s.snapshot_id == shared)
        .unwrap();
    assert_eq!(kept.action, "keep");
    assert!(kept.reason.contains(&disabled), "{}", kept.reason);
    assert_eq!(account.snapshot_ids().await, set(&[&shared]));
    assert_eq!(account.image_ids().await, set(&[&disabled]));
}

#[tokio::test]
async fn a_locked_snapshot_is_kept_not_failed_and_its_image_still_goes() {
    let account = Account::new();
    let root = account.snapshot(REGION, 8).await;
    let data = account.snapshot(REGION, 20).await;
    let image = account
        .register_ebs(
            REGION,
            "locked-data",
            &[("/dev/xvda", &root), ("/dev/xvdb", &data)],
        )
        .await;
    account.lock_snapshot(REGION, &data, 14).await;
    account.reset_requests();

    let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
    assert_eq!(code, 0, "{report:?}");
    assert_eq!(report.images[0].status, "done");
    // DeleteAssociatedSnapshots would try the locked one: each goes on its own.
    assert!(!report.images[0].delete_associated_snapshots);
    let locked = report
        .snapshots
        .iter()
        .find(|s| s.snapshot_id == data)
        .unwrap();
    assert_eq!(locked.action, "keep");
    assert!(
        locked.reason.starts_with("locked (governance mode) until "),
        "{}",
        locked.reason
    );
    assert_ne!(locked.status, "failed");
    assert_eq!(locked.error, None);
    assert_eq!(account.image_ids().await, BTreeSet::new());
    assert_eq!(account.snapshot_ids().await, set(&[&data]));
    // Never attempted: one DeleteSnapshot, for the unlocked root; one lock read for the region.
    let requests = account.requests();
    assert_eq!(requests.get("ec2:DeleteSnapshot"), Some(&1), "{requests:?}");
    assert_eq!(requests.get("ec2:DescribeLockedSnapshots"), Some(&1));
}

#[tokio::test]
async fn unreadable_snapshot_locks_keep_the_snapshots() {
    let account = Account::new();
    let (image, snapshot) = account.image(REGION, "locks-denied").await;
    account.configure(serde_json::json!({
        "faults": {"denied": 1.0, "actions": ["ec2:DescribeLockedSnapshots"]}
    }));
    let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
    account.configure(serde_json::json!({"faults": null}));
    assert_eq!(code, 0, "{report:?}");
    assert_eq!(report.images[0].status, "done");
    assert_eq!(report.snapshots[0].action, "keep");
    assert!(
        report.snapshots[0]
            .reason
            .contains("lock state could not be read")
            && report.snapshots[0].reason.contains("UnauthorizedOperation"),
        "{}",
        report.snapshots[0].reason
    );
    assert_eq!(account.snapshot_ids().await, set(&[&snapshot]));
}

#[tokio::test]
async fn an_instance_store_bundle_goes_and_nothing_else_in_its_bucket() {
    let account = Account::new();
    let bucket = bucket_name(&account, "bundles");
    account
        .put_object(
            &bucket,
            "web/img.manifest.xml",
            &bundle_manifest(&["img.part.00", "img.part.01"]),
        )
        .await;
    account
        .put_object(&bucket, "web/img.part.00", &[0; 1000])
        .await;
    account
        .put_object(&bucket, "web/img.part.01", &[0; 500])
        .await;
    account
        .put_object(&bucket, "web/notes.txt", b"unrelated")
        .await;
    account.put_object(&bucket, "victim", b"must survive").await;
    // Another bundle in the same bucket, with a part of the same name in its own prefix.
    account
        .put_object(
            &bucket,
            "db/img.manifest.xml",
            &bundle_manifest(&["img.part.00"]),
        )
        .await;
    account
        .put_object(&bucket, "db/img.part.00", &[0; 10])
        .await;
    let web = account
        .register_manifest(
            REGION,
            "web-store",
            &format!("{bucket}/web/img.manifest.xml"),
        )
        .await;
    let db = account
        .register_manifest(REGION, "db-store", &format!("{bucket}/db/img.manifest.xml"))
        .await;

    let (code, report) = deregister(&account, &[&web, "--cleanup", "--yes"]);
    assert_eq!(code, 0, "{report:?}");
    let bundle = &report.bundles[0];
    assert_eq!(bundle.status, "done");
    assert_eq!(
        bundle.objects,
        ["web/img.part.00", "web/img.part.01", "web/img.manifest.xml"]
    );
    assert_eq!(
        object_keys(&account, &bucket).await,
        set(&[
            "web/notes.txt",
            "victim",
            "db/img.manifest.xml",
            "db/img.part.00"
        ])
    );
    assert_eq!(account.image_ids().await, set(&[&db]));
}

#[tokio::test]
async fn a_hostile_manifest_deletes_nothing_and_says_why() {
    let account = Account::new();
    let bucket = bucket_name(&account, "hostile");
    account
        .put_object(
            &bucket,
            "img/img.manifest.xml",
            &bundle_manifest(&["img.part.00", "../victim"]),
        )
        .await;
    account
        .put_object(&bucket, "img/img.part.00", b"part")
        .await;
    account.put_object(&bucket, "victim", b"must survive").await;
    let image = account
        .register_manifest(REGION, "hostile", &format!("{bucket}/img/img.manifest.xml"))
        .await;

    let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
    assert_eq!(code, 0);
    assert_eq!(report.images[0].status, "done");
    let bundle = &report.bundles[0];
    assert_eq!(bundle.action, "keep");
    assert!(
        bundle.reason.contains("\"../victim\" would leave"),
        "{}",
        bundle.reason
    );
    assert!(bundle.objects.is_empty());
    assert_eq!(
        object_keys(&account, &bucket).await,
        set(&["img/img.manifest.xml", "img/img.part.00", "victim"])
    );
    assert!(report.left_behind.bundle_bytes > 0);
    // Only the manifest is known: the parts of an untrusted manifest are not looked for.
    assert_eq!(report.left_behind.bundle_objects, 1);
}

/// The hostile corpus (tests/corpus/manifests) plus the two too big to keep in the repository:
/// each as the manifest of an instance-store image, next to a part and a bystander object.
#[tokio::test]
async fn no_hostile_manifest_gets_anything_deleted() {
    let account = Account::new();
    let bucket = bucket_name(&account, "corpus");
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/manifests");
    let mut manifests: Vec<(String, Vec<u8>)> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_none_or(|e| e != "md"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    let many: Vec<String> = (0..100_000).map(|i| format!("img.part.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    manifests.push(("hundred-thousand-parts".into(), bundle_manifest(&many)));
    let mut huge = bundle_manifest(&["img.part.00"]);
    huge.resize(50 * 1024 * 1024, b' ');
    manifests.push(("fifty-megabytes".into(), huge));

    let mut images = Vec::new();
    for (name, body) in &manifests {
        let key = format!("{name}/img.manifest.xml");
        account.put_object(&bucket, &key, body).await;
        account
            .put_object(&bucket, &format!("{name}/img.part.00"), b"part")
            .await;
        images.push(
            account
                .register_manifest(REGION, name, &format!("{bucket}/{key}"))
                .await,
        );
    }
    account.put_object(&bucket, "victim", b"must survive").await;
    account
        .put_object(&bucket, "other-prefix/victim", b"must survive")
        .await;
    let before = object_keys_all(&account, &bucket).await;
    account.reset_requests();

    let mut args: Vec<&str> = images.iter().map(String::as_str).collect();
    args.extend(["--cleanup", "--yes"]);
    let (code, report) = deregister(&account, &args);
    assert_eq!(code, 0);
    assert_eq!(report.bundles.len(), manifests.len());
    for bundle in &report.bundles {
        assert_eq!(bundle.action, "keep", "{bundle:?}");
        assert!(bundle.objects.is_empty(), "{bundle:?}");
        assert!(!bundle.reason.is_empty(), "{bundle:?}");
    }
    let reason_of = |stem: &str| -> String {
        let image = &images[manifests.iter().position(|(n, _)| n == stem).unwrap()];
        report
            .bundles
            .iter()
            .find(|b| &b.image_id == image)
            .unwrap()
            .reason
            .clone()
    };
    assert!(reason_of("traversal").contains("\"../victim\" would leave"));
    assert!(reason_of("billion-laughs").contains("DTD"));
    assert!(reason_of("invalid-utf8").contains("UTF-8"));
    assert!(reason_of("deep-nesting").contains("deeper"));
    assert!(reason_of("hundred-thousand-parts").contains("limit"));
    assert!(reason_of("fifty-megabytes").contains("limit"));
    let requests = account.requests();
    assert!(!requests.contains_key("s3:DeleteObjects"), "{requests:?}");
    assert!(!requests.contains_key("s3:DeleteObject"), "{requests:?}");
    assert_eq!(object_keys_all(&account, &bucket).await, before);
}

async fn object_keys_all(account: &Account, bucket: &str) -> BTreeSet<String> {
    let mut pages = account
        .s3()
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send();
    let mut keys = BTreeSet::new();
    while let Some(page) = pages.next().await {
        keys.extend(
            page.unwrap()
                .contents()
                .iter()
                .filter_map(|object| object.key().map(String::from)),
        );
    }
    keys
}

#[tokio::test]
async fn images_in_use_are_blocked_with_their_users_and_force_still_keeps_shared_snapshots() {
    let account = Account::new();
    let (running, snapshot) = account.image(REGION, "running").await;
    let templated = account
        .register_ebs(REGION, "templated", &[("/dev/xvda", &snapshot)])
        .await;
    let newer = account
        .register_ebs(REGION, "newer", &[("/dev/xvda", &snapshot)])
        .await;
    let instance = account.launch_instance(REGION, &running).await;
    // Version 1 launches `templated`; the latest version launches another image.
    let template = account.launch_template("web", &templated).await;
    account.launch_template_version(&template, &newer).await;

    let (code, report) = deregister(&account, &[&running, &templated, "--cleanup", "--yes"]);
    assert_eq!(code, 1, "nothing was done: exit 1");
    assert!(report.images.iter().all(|i| i.status == "skipped"));
    assert!(
        report.images[0]
            .reason
            .contains(&format!("instance {instance}")),
        "{}",
        report.images[0].reason
    );
    assert_eq!(report.images[0].users[0].kind, "instance");
    assert!(
        report.images[1]
            .reason
            .contains(&format!("launch template {template} (version 1)")),
        "{}",
        report.images[1].reason
    );
    assert_eq!(account.image_ids().await.len(), 3);

    let (code, report) = deregister(&account, &[&templated, "--cleanup", "--force", "--yes"]);
    assert_eq!(code, 0);
    assert_eq!(report.images[0].status, "done");
    assert_eq!(report.snapshots[0].action, "keep");
    assert_eq!(account.snapshot_ids().await, set(&[&snapshot]));
}

#[tokio::test]
async fn terminate_instances_clears_the_way() {
    let account = Account::new();
    let (image, _) = account.image(REGION, "img").await;
    let instance = account.launch_instance(REGION, &image).await;
    let (code, report) = deregister(
        &account,
        &[&image, "--cleanup", "--terminate-instances", "--yes"],
    );
    assert_eq!(code, 0, "{report:?}");
    assert_eq!(report.instances_terminated, std::slice::from_ref(&instance));
    assert!(account.image_ids().await.is_empty());
    let state = account
        .ec2()
        .describe_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .state()
        .unwrap()
        .name()
        .unwrap()
        .as_str()
        .to_string();
    assert!(
        matches!(state.as_str(), "shutting-down" | "terminated"),
        "{state}"
    );
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let account = Account::new();
    let (image, snapshot) = account.image(REGION, "img").await;
    account.reset_requests();
    let (code, report) = deregister(&account, &[&image, "--cleanup", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(report.dry_run);
    assert_eq!(report.images[0].status, "planned");
    assert_eq!(report.snapshots[0].status, "planned");
    assert_eq!(account.mutating_calls(), Vec::<String>::new());
    assert_eq!(account.image_ids().await, set(&[&image]));
    assert_eq!(account.snapshot_ids().await, set(&[&snapshot]));
}

#[tokio::test]
async fn a_malformed_id_stops_everything_before_any_change() {
    let account = Account::new();
    let (image, snapshot) = account.image(REGION, "img").await;
    account.reset_requests();
    let output = account.run(["deregister", &image, &snapshot, "--cleanup", "--yes"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("'{snapshot}' is a snapshot id, not an AMI id")),
        "{stderr}"
    );
    assert!(
        account.requests().is_empty(),
        "no call at all: {:?}",
        account.requests()
    );
    assert_eq!(account.image_ids().await, set(&[&image]));
}

#[tokio::test]
async fn without_a_terminal_or_yes_nothing_changes() {
    let account = Account::new();
    let (image, _) = account.image(REGION, "img").await;
    account.reset_requests();
    let output = account.run(["deregister", &image, "--cleanup"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("pass --yes"));
    assert_eq!(account.mutating_calls(), Vec::<String>::new());
    assert_eq!(account.image_ids().await, set(&[&image]));
}

#[tokio::test]
async fn without_cleanup_says_what_is_left_behind() {
    let account = Account::new();
    let root = account.snapshot(REGION, 8).await;
    let data = account.snapshot(REGION, 30).await;
    let image = account
        .register_ebs(REGION, "img", &[("/dev/xvda", &root), ("/dev/xvdb", &data)])
        .await;
    let (code, report) = deregister(&account, &[&image, "--yes"]);
    assert_eq!(code, 0);
    assert_eq!(report.left_behind.snapshots, 2);
    assert_eq!(report.left_behind.snapshot_gib, 38);
    assert_eq!(account.snapshot_ids().await, set(&[&root, &data]));

    let table = account.run(["deregister", "ami-12345678", "--yes"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("not found"), "{text}");
    assert_eq!(table.status.code(), Some(1));
}

#[tokio::test]
async fn protected_and_foreign_images_are_blocked_and_others_still_go() {
    let owner = Account::new();
    let other = Account::new();
    let (protected, snapshot) = owner.image(REGION, "protected").await;
    let free = owner
        .register_ebs(REGION, "free", &[("/dev/xvda", &snapshot)])
        .await;
    owner
        .ec2()
        .enable_image_deregistration_protection()
        .image_id(&protected)
        .send()
        .await
        .unwrap();
    let (code, report) = deregister(&owner, &[&protected, &free, "--cleanup", "--yes"]);
    assert_eq!(code, 3, "partial: one blocked, one done");
    assert!(
        report.images[0]
            .reason
            .contains("deregistration protection is on")
    );
    assert_eq!(report.images[1].status, "done");
    assert_eq!(
        report.snapshots[0].action, "keep",
        "the protected image still uses it"
    );

    // An image shared with another account is not that account's to deregister.
    owner.share_with(&protected, &other.id).await;
    let (code, report) = deregister(&other, &[&protected, "--yes"]);
    assert_eq!(code, 1);
    assert!(
        report.images[0]
            .reason
            .contains(&format!("owned by account {}", owner.id))
    );
    assert_eq!(owner.image_ids().await, set(&[&protected]));
}

#[tokio::test]
async fn a_run_killed_after_deregistering_is_finished_by_the_next() {
    let account = Account::new();
    let root = account.snapshot(REGION, 8).await;
    let shared = account.snapshot(REGION, 8).await;
    let image = account
        .register_ebs(
            REGION,
            "img",
            &[("/dev/xvda", &root), ("/dev/xvdb", &shared)],
        )
        .await;
    let keeper = account
        .register_ebs(REGION, "keeper", &[("/dev/xvda", &shared)])
        .await;
    // What an interrupted run leaves: snapshots marked, image deregistered, snapshots not deleted.
    let ec2 = account.ec2();
    ec2.create_tags()
        .resources(&root)
        .resources(&shared)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("ami:cleanup-pending-for")
                .value(&image)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.deregister_image()
        .image_id(&image)
        .send()
        .await
        .unwrap();

    let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
    assert_eq!(code, 0, "{report:?}");
    assert_eq!(report.images[0].action, "already_gone");
    let by_id = |id: &str| {
        report
            .snapshots
            .iter()
            .find(|s| s.snapshot_id == id)
            .unwrap()
    };
    assert_eq!(by_id(&root).status, "done");
    assert_eq!(by_id(&shared).action, "keep", "still used by {keeper}");
    assert_eq!(account.snapshot_ids().await, set(&[&shared]));
}

#[tokio::test]
async fn a_launch_configuration_blocks_its_image() {
    let account = Account::new();
    let (image, _) = account.image(REGION, "lc").await;
    let name = format!("web-lc-{}", account.id);
    account
        .autoscaling()
        .create_launch_configuration()
        .launch_configuration_name(&name)
        .image_id(&image)
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
    assert_eq!(code, 1);
    assert_eq!(report.images[0].action, "blocked");
    assert!(
        report.images[0]
            .reason
            .contains(&format!("launch configuration {name}")),
        "{}",
        report.images[0].reason
    );
    assert_eq!(account.image_ids().await, set(&[&image]));
}

#[tokio::test]
async fn an_emptied_bucket_is_deleted_when_asked() {
    let account = Account::new();
    let bucket = bucket_name(&account, "only-bundle");
    account
        .put_object(
            &bucket,
            "img.manifest.xml",
            &bundle_manifest(&["img.part.00"]),
        )
        .await;
    account.put_object(&bucket, "img.part.00", b"part").await;
    let image = account
        .register_manifest(REGION, "root-bundle", &format!("{bucket}/img.manifest.xml"))
        .await;
    let (code, report) = deregister(
        &account,
        &[&image, "--cleanup", "--delete-empty-bucket", "--yes"],
    );
    assert_eq!(code, 0, "{report:?}");
    assert_eq!(report.bundles[0].bucket_deleted, Some(true));
    let buckets = account.s3().list_buckets().send().await.unwrap();
    assert!(
        buckets
            .buckets()
            .iter()
            .all(|b| b.name() != Some(bucket.as_str())),
        "bucket {bucket} still exists"
    );
}

#[tokio::test]
async fn killed_at_any_point_a_rerun_converges() {
    // A whole run takes a few hundred milliseconds here: kill it at points spread across it,
    // before planning ends, amid the deletes, and near the end. Every one must converge.
    for delay_ms in [40, 120, 180, 210, 240, 270, 300, 340, 400] {
        killed_then_rerun(delay_ms).await;
    }
}

async fn killed_then_rerun(delay_ms: u64) {
    let account = Account::new();
    let shared = account.snapshot(REGION, 8).await;
    let keeper = account
        .register_ebs(REGION, "keeper", &[("/dev/xvda", &shared)])
        .await;
    let mut targets = Vec::new();
    for n in 0..12 {
        let root = account.snapshot(REGION, 8).await;
        // Half share a snapshot with the keeper: those take the explicit-delete path.
        let devices: Vec<(&str, &str)> = if n % 2 == 0 {
            vec![("/dev/xvda", root.as_str())]
        } else {
            vec![("/dev/xvda", root.as_str()), ("/dev/xvdb", shared.as_str())]
        };
        targets.push(
            account
                .register_ebs(REGION, &format!("t-{n}"), &devices)
                .await,
        );
    }
    let mut args: Vec<&str> = targets.iter().map(String::as_str).collect();
    args.extend(["--cleanup", "--yes", "--output", "json"]);

    let mut child = account
        .ami_process()
        .arg("deregister")
        .args(&args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    // The same command again finishes the job; ids already gone are reported, not fatal to it.
    let output = account
        .ami()
        .arg("deregister")
        .args(&args)
        .output()
        .unwrap();
    assert!(
        matches!(output.status.code(), Some(0 | 1 | 3)),
        "killed at {delay_ms} ms: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        account.image_ids().await,
        set(&[&keeper]),
        "killed at {delay_ms} ms"
    );
    assert_eq!(
        account.snapshot_ids().await,
        set(&[&shared]),
        "killed at {delay_ms} ms"
    );
}

/// DescribeImageReferences takes at most 10 ids a call: a deregistration of 12 images must still
/// see the SSM parameter that names the 12th (the emulator refuses 11 ids, as AWS does).
#[tokio::test]
async fn image_references_are_checked_in_chunks_of_ten() {
    let account = Account::new();
    let mut images = Vec::new();
    for n in 0..12 {
        images.push(account.image(REGION, &format!("many-{n:02}")).await.0);
    }
    let pinned = images[11].clone();
    account.put_parameter(REGION, "/golden/web", &pinned);
    let mut args: Vec<&str> = images.iter().map(String::as_str).collect();
    args.extend(["--cleanup", "--yes"]);
    let (code, report) = deregister(&account, &args);
    assert_eq!(code, 3, "11 done, the referenced one blocked: {report:?}");
    let item = report.images.iter().find(|i| i.image_id == pinned).unwrap();
    assert_eq!(item.action, "blocked", "{item:?}");
    assert!(item.reason.contains("/golden/web"), "{}", item.reason);
    assert_eq!(item.users[0].kind, "ssm_parameter");
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert_eq!(account.image_ids().await, BTreeSet::from([pinned]));
    let requests = account.requests();
    assert_eq!(requests.get("ec2:DescribeImageReferences"), Some(&2));
}

/// A reference check that fails for any reason but "not offered" keeps every image it covers.
#[tokio::test]
async fn a_failed_image_reference_check_keeps_the_images() {
    let account = Account::new();
    let (image, snapshot) = account.image(REGION, "refs-denied").await;
    for kind in ["denied", "error", "throttle"] {
        account.configure(serde_json::json!({
            "faults": {kind: 1.0, "actions": ["ec2:DescribeImageReferences"]}
        }));
        let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
        assert_eq!(code, 1, "{kind}: {report:?}");
        let item = &report.images[0];
        assert_eq!(item.action, "blocked", "{kind}");
        assert!(
            item.reason.contains("could not check")
                && item.reason.contains("DescribeImageReferences"),
            "{kind}: {}",
            item.reason
        );
        assert_eq!(item.users[0].kind, "unchecked_references");
    }
    account.configure(serde_json::json!({"faults": null}));
    assert!(account.image_ids().await.contains(&image));
    assert!(account.snapshot_ids().await.contains(&snapshot));
}

/// Only an endpoint without the action turns the check into a note; the direct checks still ran.
#[tokio::test]
async fn an_endpoint_without_image_references_is_noted() {
    let account = Account::new();
    let (image, _) = account.image(REGION, "refs-not-offered").await;
    account.configure(serde_json::json!({
        "faults": {"not_offered": 1.0, "actions": ["ec2:DescribeImageReferences"]}
    }));
    let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
    account.configure(serde_json::json!({"faults": null}));
    assert_eq!(code, 0, "{report:?}");
    assert_eq!(report.images[0].status, "done");
    assert!(
        report.notes.iter().any(|n| n.contains("InvalidAction")
            && n.contains(
                "checked instances, launch templates and launch configurations directly"
            )),
        "{:?}",
        report.notes
    );
}

/// A launch template whose image is `resolve:ssm:NAME` uses the image the parameter names; one
/// whose alias cannot be resolved may use any image, so it keeps every candidate. (The SSM
/// parameter itself is left to the direct checks here: the endpoint does not offer
/// DescribeImageReferences.)
#[tokio::test]
async fn launch_templates_naming_an_ssm_parameter_keep_its_image() {
    let account = Account::new();
    let (golden, golden_snapshot) = account.image(REGION, "golden-via-ssm").await;
    let (other, _) = account.image(REGION, "not-named-by-it").await;
    account.put_parameter(REGION, "/golden/current", &golden);
    account
        .launch_template("ssm", "resolve:ssm:/golden/current")
        .await;
    account.configure(serde_json::json!({
        "faults": {"not_offered": 1.0, "actions": ["ec2:DescribeImageReferences"]}
    }));
    let (code, report) = deregister(&account, &[&golden, &other, "--cleanup", "--yes"]);
    assert_eq!(code, 3, "{report:?}");
    let item = |id: &str| report.images.iter().find(|i| i.image_id == id).unwrap();
    assert_eq!(item(&golden).action, "blocked", "{report:?}");
    assert_eq!(item(&golden).users[0].kind, "launch_template");
    assert_eq!(item(&other).status, "done");
    assert!(account.snapshot_ids().await.contains(&golden_snapshot));

    // An alias that does not resolve: every candidate stays, saying why.
    account
        .launch_template("dangling", "resolve:ssm:/nowhere")
        .await;
    let (code, report) = deregister(&account, &[&golden, "--cleanup", "--yes"]);
    account.configure(serde_json::json!({"faults": null}));
    assert_eq!(code, 1, "{report:?}");
    assert!(
        report.images[0]
            .reason
            .contains("resolve:ssm:/nowhere could not be resolved"),
        "{}",
        report.images[0].reason
    );
    assert!(account.image_ids().await.contains(&golden));
}

/// A DeregisterImage whose answer is lost after AWS did the work: the image is gone and so are
/// its snapshots; the report says done for both (looked up, not guessed), never failed.
#[tokio::test]
async fn a_lost_deregister_answer_is_resolved_by_looking() {
    let account = Account::new();
    let (image, snapshot) = account.image(REGION, "answer-lost").await;
    account.configure(serde_json::json!({
        "faults": {"drop_after": 1.0, "actions": ["ec2:DeregisterImage"]}
    }));
    let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
    account.configure(serde_json::json!({"faults": null}));
    assert_eq!(code, 0, "{report:?}");
    assert_eq!(report.images[0].status, "done", "{report:?}");
    assert_eq!(report.snapshots[0].status, "done", "{report:?}");
    assert!(!account.image_ids().await.contains(&image));
    assert!(!account.snapshot_ids().await.contains(&snapshot));
}

/// DeleteSnapshotResults saying anything but success for a snapshot the plan deletes: the
/// snapshot still goes (its own DeleteSnapshot), or is reported failed; never left as "kept".
#[tokio::test]
async fn a_non_success_snapshot_result_ends_deleted_or_failed() {
    let account = Account::new();
    for code in ["skipped", "client-error"] {
        let (image, snapshot) = account.image(REGION, &format!("result-{code}")).await;
        account.configure(serde_json::json!({"snapshot_results": {&snapshot: code}}));
        let (exit, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
        account.configure(serde_json::json!({"snapshot_results": null}));
        assert_eq!(exit, 0, "{code}: {report:?}");
        let item = &report.snapshots[0];
        let exists = account.snapshot_ids().await.contains(&snapshot);
        assert_eq!(item.status, "done", "{code}: {report:?}");
        assert!(!exists, "{code}: reported done but still there");
    }
}

/// An image of two snapshots, the second also used by another image: retiring it marks its root
/// for a DeleteSnapshot of its own. Returns the image and its root.
async fn marked_root_beside_a_kept_snapshot(account: &Account, name: &str) -> (String, String) {
    let root = account.snapshot(REGION, 8).await;
    let shared = account.snapshot(REGION, 8).await;
    let image = account
        .register_ebs(
            REGION,
            name,
            &[("/dev/xvda", &root), ("/dev/xvdb", &shared)],
        )
        .await;
    account
        .register_ebs(REGION, &format!("{name}-keeper"), &[("/dev/xvda", &shared)])
        .await;
    (image, root)
}

/// A deregistration that does not happen leaves no pending-cleanup mark behind: a later cleanup,
/// once the image has gone some other way, must not delete the snapshots it kept.
#[tokio::test]
async fn a_failed_deregistration_leaves_no_cleanup_mark() {
    let account = Account::new();
    let (image, root) = marked_root_beside_a_kept_snapshot(&account, "marked-then-failed").await;
    account.configure(serde_json::json!({
        "faults": {"error": 1.0, "actions": ["ec2:DeregisterImage"]}
    }));
    let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
    account.configure(serde_json::json!({"faults": null}));
    assert_eq!(code, 1, "{report:?}");
    assert_eq!(report.images[0].status, "failed");
    // AWS's code and message apart, the message naming the call and the image.
    assert_eq!(report.images[0].code.as_deref(), Some("InternalError"));
    let error = report.images[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains(&format!("DeregisterImage of {image}")),
        "{error}"
    );
    let requests = account.requests();
    assert!(
        requests.contains_key("ec2:CreateTags"),
        "the root was marked: {requests:?}"
    );
    let tags = account.tags_of(REGION, &root).await;
    assert!(!tags.contains_key("ami:cleanup-pending-for"), "{tags:?}");
    // The image goes by hand, its snapshots kept on purpose; cron's cleanup must leave them.
    account
        .ec2()
        .deregister_image()
        .image_id(&image)
        .send()
        .await
        .unwrap();
    let output = account.run(["cleanup", "--keep", "5", "--yes", "--output", "json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(account.snapshot_ids().await.contains(&root));
}

/// When the mark of a kept snapshot cannot be removed either, the snapshot is reported failed,
/// naming the tag: a mark left behind is not a note.
#[tokio::test]
async fn a_mark_that_cannot_be_removed_fails_its_snapshot() {
    let account = Account::new();
    let (image, root) = marked_root_beside_a_kept_snapshot(&account, "marked-unremovable").await;
    account.configure(serde_json::json!({
        "faults": {"error": 1.0, "actions": ["ec2:DeregisterImage", "ec2:DeleteTags"]}
    }));
    let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
    account.configure(serde_json::json!({"faults": null}));
    assert_eq!(code, 1, "{report:?}");
    let snapshot = report
        .snapshots
        .iter()
        .find(|s| s.snapshot_id == root)
        .expect("the root in the report");
    assert_eq!(snapshot.status, "failed", "{report:?}");
    assert_eq!(snapshot.code.as_deref(), Some("InternalError"));
    let error = snapshot.error.as_deref().unwrap_or_default();
    assert!(error.contains("ami:cleanup-pending-for"), "{error}");
    assert!(account.snapshot_ids().await.contains(&root));
}

/// An instance-store image is deregistered before its bundle goes: when the deregistration is
/// refused, the image keeps its whole bundle.
#[tokio::test]
async fn a_refused_deregistration_keeps_the_bundle() {
    let account = Account::new();
    let bucket = bucket_name(&account, "order");
    account
        .put_object(
            &bucket,
            "img/img.manifest.xml",
            &bundle_manifest(&["img.part.00"]),
        )
        .await;
    account
        .put_object(&bucket, "img/img.part.00", &[0; 10])
        .await;
    let image = account
        .register_manifest(
            REGION,
            "bundle-order",
            &format!("{bucket}/img/img.manifest.xml"),
        )
        .await;
    account.configure(serde_json::json!({
        "faults": {"error": 1.0, "actions": ["ec2:DeregisterImage"]}
    }));
    let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
    account.configure(serde_json::json!({"faults": null}));
    assert_eq!(code, 1, "{report:?}");
    assert_eq!(report.images[0].status, "failed");
    assert_eq!(report.bundles[0].status, "skipped", "{report:?}");
    assert!(account.image_ids().await.contains(&image));
    assert_eq!(
        object_keys(&account, &bucket).await,
        set(&["img/img.manifest.xml", "img/img.part.00"])
    );
    // Once it can go, it goes with its bundle.
    let (code, report) = deregister(&account, &[&image, "--cleanup", "--yes"]);
    assert_eq!(code, 0, "{report:?}");
    assert_eq!(report.bundles[0].status, "done");
    assert!(object_keys(&account, &bucket).await.is_empty());
}

/// The prompt can wait for minutes: what changed meanwhile (an instance launched from the image)
/// is seen before the first change, and the image stays.
#[tokio::test]
async fn a_change_while_the_prompt_waits_is_seen_before_acting() {
    use std::io::{Read, Write};
    let account = Account::new();
    let (image, snapshot) = account.image(REGION, "prompted").await;
    // `script` gives ami a terminal to ask on; we answer through its stdin.
    let ami = account.ami_process();
    // script's terminal has no size: give it one, as a real terminal has.
    let line = format!(
        "stty cols 250 rows 50; exec {} deregister {image} --cleanup --no-progress --color never",
        ami.get_program().to_string_lossy()
    );
    let mut command = std::process::Command::new("script");
    command.env_clear();
    for (key, value) in ami.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    let mut child = command
        .args(["-qfec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run ami under script(1)");
    let mut stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0
                || sender
                    .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !seen.contains("Proceed?") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match receiver.recv_timeout(left) {
            Ok(chunk) => seen.push_str(&chunk),
            Err(_) => panic!("no prompt within 60 s: {seen}"),
        }
    }
    assert!(seen.contains("requested"), "{seen}");
    account.launch_instance(REGION, &image).await;
    child.stdin.as_mut().unwrap().write_all(b"y\n").unwrap();
    let status = child.wait().unwrap();
    while let Ok(chunk) = receiver.recv_timeout(std::time::Duration::from_secs(5)) {
        seen.push_str(&chunk);
    }
    assert_eq!(status.code(), Some(1), "{seen}");
    assert!(seen.contains("in use by instance"), "{seen}");
    assert!(account.image_ids().await.contains(&image));
    assert!(account.snapshot_ids().await.contains(&snapshot));
}
