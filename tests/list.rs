//! `ami list` through the real binary against the emulator.

use crate::common::{Account, REGION, bucket_name, json};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The JSON contract of `ami list`: unknown fields are rejected, so any change is deliberate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListOutput {
    regions: Vec<String>,
    images: Vec<ImageEntry>,
    errors: Vec<ListError>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ImageEntry {
    region: String,
    image_id: String,
    name: Option<String>,
    description: Option<String>,
    owner_id: Option<String>,
    state: String,
    root_device_type: String,
    root_device_name: Option<String>,
    architecture: Option<String>,
    creation_date: Option<String>,
    age_days: Option<i64>,
    snapshots: Vec<SnapshotEntry>,
    manifest_location: Option<String>,
    public: bool,
    shared_with: Option<SharedWith>,
    tags: BTreeMap<String, String>,
    deprecation_time: Option<String>,
    deregistration_protection: Option<String>,
    last_launched_time: Option<String>,
    source_image_id: Option<String>,
    source_image_region: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SnapshotEntry {
    device_name: String,
    snapshot_id: String,
    size_gib: Option<i32>,
    volume_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedWith {
    accounts: Vec<String>,
    organizations: Vec<String>,
    organizational_units: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ListError {
    region: String,
    image_id: Option<String>,
    error: String,
}

fn list(account: &Account, args: &[&str]) -> ListOutput {
    let output = account
        .ami()
        .arg("list")
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ami list failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_value(json(&["list"], &output))
        .expect("list output matches the documented schema")
}

fn ids(output: &ListOutput) -> Vec<&str> {
    output.images.iter().map(|i| i.image_id.as_str()).collect()
}

/// Two EBS images (one with a data volume) and one instance-store image from an S3 manifest.
struct Estate {
    web: String,
    db: String,
    legacy: String,
    root_snapshot: String,
    data_snapshot: String,
    db_snapshot: String,
    manifest: String,
}

async fn seed(account: &Account) -> Estate {
    let root_snapshot = account.snapshot(REGION, 8).await;
    let data_snapshot = account.snapshot(REGION, 20).await;
    let db_snapshot = account.snapshot(REGION, 10).await;
    let web = account
        .register_ebs(
            REGION,
            "web-2026-01-01",
            &[("/dev/xvda", &root_snapshot), ("/dev/xvdb", &data_snapshot)],
        )
        .await;
    account.tag(REGION, &web, "app", "web").await;
    account.tag(REGION, &web, "env", "prod").await;
    let db = account
        .register_ebs(REGION, "db-2026-01-01", &[("/dev/xvda", &db_snapshot)])
        .await;
    account.tag(REGION, &db, "app", "db").await;
    let bucket = bucket_name(account, "bundles");
    account
        .put_object(&bucket, "legacy/image.manifest.xml", b"<manifest/>")
        .await;
    let manifest = format!("{bucket}/legacy/image.manifest.xml");
    let legacy = account
        .register_manifest(REGION, "legacy-store", &manifest)
        .await;
    Estate {
        web,
        db,
        legacy,
        root_snapshot,
        data_snapshot,
        db_snapshot,
        manifest,
    }
}

#[tokio::test]
async fn lists_ebs_and_instance_store_images_with_their_storage() {
    let account = Account::new();
    let estate = seed(&account).await;

    let output = list(&account, &[]);
    assert_eq!(output.regions, [REGION]);
    assert!(output.errors.is_empty(), "{:?}", output.errors);
    let mut listed = ids(&output);
    listed.sort();
    let mut expected = vec![
        estate.web.as_str(),
        estate.db.as_str(),
        estate.legacy.as_str(),
    ];
    expected.sort();
    assert_eq!(listed, expected);

    let by_id: BTreeMap<&str, &ImageEntry> = output
        .images
        .iter()
        .map(|image| (image.image_id.as_str(), image))
        .collect();
    let web = by_id[estate.web.as_str()];
    assert_eq!(web.root_device_type, "ebs");
    assert_eq!(web.name.as_deref(), Some("web-2026-01-01"));
    assert_eq!(web.owner_id.as_deref(), Some(account.id.as_str()));
    let web_snapshots: Vec<(&str, &str, Option<i32>)> = web
        .snapshots
        .iter()
        .map(|s| (s.device_name.as_str(), s.snapshot_id.as_str(), s.size_gib))
        .collect();
    assert_eq!(
        web_snapshots,
        [
            ("/dev/xvda", estate.root_snapshot.as_str(), Some(8)),
            ("/dev/xvdb", estate.data_snapshot.as_str(), Some(20)),
        ]
    );
    assert_eq!(web.manifest_location, None);
    assert_eq!(web.tags.get("app").map(String::as_str), Some("web"));
    assert_eq!(web.tags.get("env").map(String::as_str), Some("prod"));
    assert!(web.creation_date.is_some());
    assert_eq!(web.age_days, Some(0));

    let db = by_id[estate.db.as_str()];
    assert_eq!(db.snapshots.len(), 1);
    assert_eq!(db.snapshots[0].snapshot_id, estate.db_snapshot);

    let legacy = by_id[estate.legacy.as_str()];
    assert_eq!(legacy.root_device_type, "instance-store");
    assert_eq!(
        legacy.manifest_location.as_deref(),
        Some(format!("s3://{}", estate.manifest).as_str())
    );
    assert!(legacy.snapshots.is_empty());
}

#[tokio::test]
async fn name_and_tag_filters_narrow_the_list() {
    let account = Account::new();
    let estate = seed(&account).await;

    assert_eq!(
        ids(&list(&account, &["--name", "web-*"])),
        [estate.web.as_str()]
    );
    assert_eq!(
        ids(&list(&account, &["--name", "db-2026-0?-01"])),
        [estate.db.as_str()]
    );
    assert_eq!(
        ids(&list(&account, &["--tag", "app=db"])),
        [estate.db.as_str()]
    );
    // Several tags must all match.
    assert_eq!(
        ids(&list(&account, &["--tag", "app=web", "--tag", "env=prod"])),
        [estate.web.as_str()]
    );
    assert!(ids(&list(&account, &["--tag", "app=web", "--tag", "env=dev"])).is_empty());
    assert!(ids(&list(&account, &["--name", "nothing-*"])).is_empty());
}

#[tokio::test]
async fn every_page_is_read() {
    let account = Account::new();
    let snapshot = account.snapshot(REGION, 8).await;
    let mut expected = Vec::new();
    for n in 0..7 {
        expected.push(
            account
                .register_ebs(REGION, &format!("paged-{n}"), &[("/dev/xvda", &snapshot)])
                .await,
        );
    }
    // The emulator now serves at most 2 images a page, as AWS may serve fewer than asked for.
    account.set_page_size(2);
    account.reset_requests();

    let output = list(&account, &[]);
    let mut listed: Vec<String> = ids(&output).into_iter().map(String::from).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    let pages = account.requests()["ec2:DescribeImages"];
    assert_eq!(pages, 4, "7 images at 2 a page take 4 DescribeImages calls");
}

#[tokio::test]
async fn disabled_and_deprecated_images_are_listed_with_their_state() {
    let account = Account::new();
    let (disabled, snapshot) = account.image(REGION, "old-disabled").await;
    let deprecated = account
        .register_ebs(REGION, "old-deprecated", &[("/dev/xvda", &snapshot)])
        .await;
    let protected = account
        .register_ebs(REGION, "protected", &[("/dev/xvda", &snapshot)])
        .await;
    let ec2 = account.ec2();
    ec2.disable_image()
        .image_id(&disabled)
        .send()
        .await
        .unwrap();
    ec2.enable_image_deprecation()
        .image_id(&deprecated)
        .deprecate_at(aws_sdk_ec2::primitives::DateTime::from_secs(
            chrono::Utc::now().timestamp() + 3600,
        ))
        .send()
        .await
        .unwrap();
    ec2.enable_image_deregistration_protection()
        .image_id(&protected)
        .with_cooldown(true)
        .send()
        .await
        .unwrap();
    account.backdate(REGION, &deprecated, "2020-01-01T00:00:00Z");

    let output = list(&account, &[]);
    let by_id: BTreeMap<&str, &ImageEntry> = output
        .images
        .iter()
        .map(|image| (image.image_id.as_str(), image))
        .collect();
    assert_eq!(by_id.len(), 3);
    assert_eq!(by_id[disabled.as_str()].state, "disabled");
    assert!(by_id[deprecated.as_str()].deprecation_time.is_some());
    assert_eq!(
        by_id[protected.as_str()]
            .deregistration_protection
            .as_deref(),
        Some("enabled-with-cooldown")
    );
}

#[tokio::test]
async fn sorted_oldest_first() {
    let account = Account::new();
    let (newest, snapshot) = account.image(REGION, "c-newest").await;
    let oldest = account
        .register_ebs(REGION, "a-oldest", &[("/dev/xvda", &snapshot)])
        .await;
    let middle = account
        .register_ebs(REGION, "b-middle", &[("/dev/xvda", &snapshot)])
        .await;
    account.backdate(REGION, &oldest, "2024-01-01T00:00:00Z");
    account.backdate(REGION, &middle, "2025-06-01T00:00:00Z");

    let output = list(&account, &[]);
    assert_eq!(
        ids(&output),
        [oldest.as_str(), middle.as_str(), newest.as_str()]
    );
    assert_eq!(
        output.images[0].creation_date.as_deref(),
        Some("2024-01-01T00:00:00Z")
    );
    assert!(output.images[0].age_days.unwrap() > 365);
}

#[tokio::test]
async fn shows_who_an_image_is_shared_with() {
    let account = Account::new();
    let (shared, snapshot) = account.image(REGION, "shared").await;
    let public = account
        .register_ebs(REGION, "public", &[("/dev/xvda", &snapshot)])
        .await;
    let private = account
        .register_ebs(REGION, "private", &[("/dev/xvda", &snapshot)])
        .await;
    let ec2 = account.ec2();
    use aws_sdk_ec2::types::{LaunchPermission, LaunchPermissionModifications, PermissionGroup};
    ec2.modify_image_attribute()
        .image_id(&shared)
        .launch_permission(
            LaunchPermissionModifications::builder()
                .add(LaunchPermission::builder().user_id("111122223333").build())
                .add(LaunchPermission::builder().user_id("444455556666").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.modify_image_attribute()
        .image_id(&public)
        .launch_permission(
            LaunchPermissionModifications::builder()
                .add(
                    LaunchPermission::builder()
                        .group(PermissionGroup::All)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();

    let output = list(&account, &["--shares"]);
    let by_id: BTreeMap<&str, &ImageEntry> = output
        .images
        .iter()
        .map(|image| (image.image_id.as_str(), image))
        .collect();
    let shared_with = by_id[shared.as_str()].shared_with.as_ref().unwrap();
    assert_eq!(shared_with.accounts, ["111122223333", "444455556666"]);
    assert!(shared_with.organizations.is_empty() && shared_with.organizational_units.is_empty());
    assert!(!by_id[shared.as_str()].public);
    assert!(by_id[public.as_str()].public);
    assert!(!by_id[private.as_str()].public);
    assert!(
        by_id[private.as_str()]
            .shared_with
            .as_ref()
            .unwrap()
            .accounts
            .is_empty()
    );

    let table = account.ami().args(["list", "--shares"]).output().unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("2 accounts"), "{text}");
    assert!(text.contains("public"), "{text}");

    // By default (and with --no-shares, kept for old scripts): what DescribeImages says, paged,
    // and nothing per image; sharing unknown (null), `public` still known.
    for args in [&[][..], &["--no-shares"][..]] {
        account.reset_requests();
        let quick = list(&account, args);
        assert!(quick.images.iter().all(|image| image.shared_with.is_none()));
        assert!(quick.images.iter().any(|image| image.public));
        let requests = account.requests();
        assert_eq!(
            requests.keys().collect::<Vec<_>>(),
            ["ec2:DescribeImages"],
            "{args:?}: {requests:?}"
        );
    }
    let table = account.ami().arg("list").output().unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        !text.contains("2 accounts") && text.contains("--shares"),
        "{text}"
    );
    let refused = account
        .ami()
        .args(["list", "--shares", "--owner", "amazon"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}

#[tokio::test]
async fn only_the_accounts_own_images_by_default() {
    let owner = Account::new();
    let other = Account::new();
    let (image, _) = owner.image(REGION, "mine").await;
    assert_eq!(ids(&list(&owner, &[])), [image.as_str()]);
    assert!(ids(&list(&other, &[])).is_empty());
    // Asking for the owner's images explicitly finds nothing shared with `other` either.
    assert!(ids(&list(&other, &["--owner", &owner.id])).is_empty());
}

#[tokio::test]
async fn several_regions_in_one_run() {
    let account = Account::new();
    let east_snapshot = account.snapshot("us-east-1", 8).await;
    let west_snapshot = account.snapshot("eu-west-1", 8).await;
    let east = account
        .register_ebs("us-east-1", "east", &[("/dev/xvda", &east_snapshot)])
        .await;
    let west = account
        .register_ebs("eu-west-1", "west", &[("/dev/xvda", &west_snapshot)])
        .await;

    let output = list(
        &account,
        &["--region", "us-east-1", "--region", "eu-west-1"],
    );
    assert_eq!(output.regions, ["us-east-1", "eu-west-1"]);
    let mut found: Vec<(&str, &str)> = output
        .images
        .iter()
        .map(|i| (i.region.as_str(), i.image_id.as_str()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [("eu-west-1", west.as_str()), ("us-east-1", east.as_str())]
    );

    let table = account.run(["list", "--region", "us-east-1", "--region", "eu-west-1"]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains("REGION") && text.contains("eu-west-1"),
        "{text}"
    );
}

#[tokio::test]
async fn table_output_for_people() {
    let account = Account::new();
    let estate = seed(&account).await;
    let output = account.ami().arg("list").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "IMAGE ID",
        estate.web.as_str(),
        estate.root_snapshot.as_str(),
        "(20 GiB)",
        "instance-store",
        "app=web, env=prod",
        "3 images in us-east-1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        text.contains(&format!("s3://{}", estate.manifest)),
        "{text}"
    );
    // Nothing but the table on stdout: no colour codes when not a terminal.
    assert!(!text.contains('\u{1b}'), "{text:?}");

    let empty = Account::new().ami().arg("list").output().unwrap();
    assert!(empty.status.success());
    assert_eq!(
        String::from_utf8(empty.stdout).unwrap().trim(),
        "No images found in us-east-1."
    );
}
