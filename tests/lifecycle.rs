//! `ami create`, `register`, `copy` and `share` through the real binary against the emulator.

mod common;

use common::{Account, REGION, bucket_name, json};
use serde_json::Value;
use std::collections::BTreeSet;

fn run(account: &Account, args: &[&str]) -> (i32, Value) {
    let output = account
        .ami()
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let code = output.status.code().unwrap();
    let value = if output.stdout.is_empty() {
        Value::Null
    } else {
        json(&output)
    };
    if code != 0 {
        eprintln!("{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    (code, value)
}

fn stderr_of(account: &Account, args: &[&str]) -> (i32, String) {
    let output = account.ami().args(args).output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn instance(account: &Account) -> String {
    let snapshot = account.snapshot(REGION, 8).await;
    let base = account
        .register_ebs(
            REGION,
            &format!("base-{}", account.id),
            &[("/dev/xvda", &snapshot)],
        )
        .await;
    account
        .ec2()
        .run_instances()
        .image_id(base)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string()
}

async fn snapshot_tags(account: &Account, region: &str, snapshot: &str) -> Vec<(String, String)> {
    account
        .ec2_in(region)
        .describe_snapshots()
        .snapshot_ids(snapshot)
        .send()
        .await
        .unwrap()
        .snapshots()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect()
}

async fn images_in(account: &Account, region: &str) -> Vec<String> {
    account
        .ec2_in(region)
        .describe_images()
        .owners("self")
        .send()
        .await
        .unwrap()
        .images()
        .iter()
        .map(|i| i.image_id().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn create_from_an_instance_tags_image_and_snapshots() {
    let account = Account::new();
    let instance = instance(&account).await;
    let (code, out) = run(
        &account,
        &[
            "create",
            "--instance-id",
            &instance,
            "--name",
            "web-2026.11",
            "--tag",
            "app=web",
            "--tag",
            "team=core",
            "--protect",
            "--deprecate-after",
            "90d",
            "--wait",
        ],
    );
    assert_eq!(code, 0);
    let image_id = out["image_id"].as_str().unwrap();
    assert!(image_id.starts_with("ami-"));
    assert_eq!(out["state"], "available");
    assert_eq!(out["root_device_type"], "ebs");
    assert_eq!(out["tags"]["app"], "web");
    assert_eq!(out["deregistration_protection"], "enabled-without-cooldown");
    let deprecation = out["deprecation_time"].as_str().unwrap();
    assert!(deprecation > "2027-01-01", "{deprecation}");
    let snapshot = out["snapshots"][0]["snapshot_id"].as_str().unwrap();
    let tags = snapshot_tags(&account, REGION, snapshot).await;
    assert!(tags.contains(&("app".into(), "web".into())), "{tags:?}");
    assert!(tags.contains(&("team".into(), "core".into())), "{tags:?}");

    // The same name again is refused before CreateImage, naming the holder.
    account.reset_requests();
    let (code, stderr) = stderr_of(
        &account,
        &[
            "create",
            "--instance-id",
            &instance,
            "--name",
            "web-2026.11",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("already used by {image_id}")),
        "{stderr}"
    );
    assert!(!account.requests().contains_key("ec2:CreateImage"));

    let (code, stderr) = stderr_of(
        &account,
        &[
            "create",
            "--instance-id",
            "ami-0123456789abcdef0",
            "--name",
            "x-y-z",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("is an AMI id, not an instance id"),
        "{stderr}"
    );
}

#[tokio::test]
async fn register_from_a_root_and_a_data_snapshot() {
    let account = Account::new();
    let root = account.snapshot(REGION, 8).await;
    let data = account.snapshot(REGION, 100).await;
    let (code, out) = run(
        &account,
        &[
            "register",
            "--name",
            "from-snapshots",
            "--root-snapshot",
            &root,
            "--data-snapshot",
            &format!("/dev/xvdb={data}"),
            "--ena",
            "--tag",
            "app=db",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(out["root_device_type"], "ebs");
    let snapshots: Vec<(&str, &str)> = out["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["device_name"].as_str().unwrap(),
                s["snapshot_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        snapshots,
        [("/dev/xvda", root.as_str()), ("/dev/xvdb", data.as_str())]
    );
    assert_eq!(out["tags"]["app"], "db");

    // AWS refuses a snapshot that does not exist; nothing is registered.
    let (code, stderr) = stderr_of(
        &account,
        &[
            "register",
            "--name",
            "ghost",
            "--root-snapshot",
            "snap-0123456789abcdef0",
        ],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("InvalidSnapshot.NotFound"), "{stderr}");
    assert_eq!(images_in(&account, REGION).await.len(), 1);
}

#[tokio::test]
async fn register_from_a_bundle_checks_the_manifest_first() {
    let account = Account::new();
    let bucket = bucket_name(&account, "register");
    let manifest = "<manifest><image><parts count=\"2\">\
        <part index=\"0\"><filename>img.part.00</filename></part>\
        <part index=\"1\"><filename>img.part.01</filename></part></parts></image></manifest>";
    account
        .put_object(&bucket, "ok/img.manifest.xml", manifest.as_bytes())
        .await;
    account.put_object(&bucket, "ok/img.part.00", b"0").await;
    account.put_object(&bucket, "ok/img.part.01", b"1").await;
    account
        .put_object(&bucket, "partial/img.manifest.xml", manifest.as_bytes())
        .await;
    account
        .put_object(&bucket, "partial/img.part.00", b"0")
        .await;
    account
        .put_object(&bucket, "bad/img.manifest.xml", b"<manifest><image>")
        .await;

    let (code, out) = run(
        &account,
        &[
            "register",
            "--name",
            "bundle",
            "--manifest",
            &format!("s3://{bucket}/ok/img.manifest.xml"),
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(out["root_device_type"], "instance-store");
    assert_eq!(
        out["manifest_location"],
        format!("s3://{bucket}/ok/img.manifest.xml")
    );

    account.reset_requests();
    for (key, message) in [
        ("missing/img.manifest.xml", "does not exist"),
        ("bad/img.manifest.xml", "not valid XML"),
        ("partial/img.manifest.xml", "lists 1 part missing"),
    ] {
        let (code, stderr) = stderr_of(
            &account,
            &[
                "register",
                "--name",
                "refused",
                "--manifest",
                &format!("s3://{bucket}/{key}"),
            ],
        );
        assert_eq!(code, 2, "{key}: {stderr}");
        assert!(stderr.contains(message), "{key}: {stderr}");
        assert!(stderr.contains("nothing registered"), "{stderr}");
    }
    assert!(!account.requests().contains_key("ec2:RegisterImage"));
}

#[tokio::test]
async fn copy_to_two_regions_then_rerun_reuses_the_copies() {
    let account = Account::new();
    let (source, _) = account.image(REGION, "to-copy").await;
    account.tag(REGION, &source, "app", "web").await;

    let args = [
        "copy",
        &source,
        "--to-region",
        "eu-west-1",
        "--to-region",
        "ap-southeast-2",
        "--wait",
    ];
    let (code, out) = run(&account, &args);
    assert_eq!(code, 0);
    let west = out["copies"]["eu-west-1"]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    let south = out["copies"]["ap-southeast-2"]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(west, south);
    assert_eq!(out["copies"]["eu-west-1"]["status"], "created");
    for (region, id) in [("eu-west-1", &west), ("ap-southeast-2", &south)] {
        let image = account
            .ec2_in(region)
            .describe_images()
            .image_ids(id)
            .send()
            .await
            .unwrap();
        let image = &image.images()[0];
        assert_eq!(image.name(), Some("to-copy"));
        assert!(
            image
                .tags()
                .iter()
                .any(|t| t.key() == Some("app") && t.value() == Some("web")),
            "tags in {region}"
        );
    }

    let (code, again) = run(&account, &args);
    assert_eq!(code, 0);
    assert_eq!(again["copies"]["eu-west-1"]["image_id"], west.as_str());
    assert_eq!(again["copies"]["eu-west-1"]["status"], "reused");
    assert_eq!(
        images_in(&account, "eu-west-1").await,
        std::slice::from_ref(&west)
    );
    assert_eq!(images_in(&account, "ap-southeast-2").await, [south]);
}

#[tokio::test]
async fn one_failing_region_does_not_hide_the_others() {
    let account = Account::new();
    let (source, _) = account.image(REGION, "dup-name").await;
    // Two images of that name in eu-west-1 already: ambiguous, so that region fails.
    for _ in 0..2 {
        let other = account.snapshot("eu-west-1", 8).await;
        account
            .ec2_in("eu-west-1")
            .register_image()
            .name(format!("dup-{}", rand_suffix()))
            .root_device_name("/dev/xvda")
            .block_device_mappings(
                aws_sdk_ec2::types::BlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .ebs(
                        aws_sdk_ec2::types::EbsBlockDevice::builder()
                            .snapshot_id(other)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let (code, out) = run(
        &account,
        &[
            "copy",
            &source,
            "--to-region",
            "us-west-2",
            "--to-region",
            "xx-nowhere-9",
        ],
    );
    assert_eq!(code, 3, "{out}");
    assert_eq!(out["copies"]["us-west-2"]["status"], "created");
    assert_eq!(out["copies"]["xx-nowhere-9"]["status"], "failed");
    assert!(
        out["copies"]["xx-nowhere-9"]["error"]
            .as_str()
            .unwrap()
            .contains("xx-nowhere-9")
    );
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn share_with_another_account_then_revoke() {
    let owner = Account::new();
    let other = Account::new();
    let root = owner.snapshot(REGION, 8).await;
    let data = owner.snapshot(REGION, 8).await;
    let image = owner
        .register_ebs(
            REGION,
            "shared",
            &[("/dev/xvda", &root), ("/dev/xvdb", &data)],
        )
        .await;

    let visible_to_other = || async {
        other
            .ec2()
            .describe_images()
            .executable_users("self")
            .send()
            .await
            .unwrap()
            .images()
            .iter()
            .any(|i| i.image_id() == Some(image.as_str()))
    };
    assert!(!visible_to_other().await);

    let (code, out) = run(
        &owner,
        &["share", &image, "--account", &other.id, "--with-snapshots"],
    );
    assert_eq!(code, 0);
    assert_eq!(out["action"], "grant");
    assert_eq!(
        out["regions"][0]["launch_permissions"]["accounts"][0],
        other.id.as_str()
    );
    let snapshots = out["regions"][0]["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 2);
    for snapshot in snapshots {
        assert_eq!(snapshot["accounts"][0], other.id.as_str(), "{snapshot}");
    }
    assert!(visible_to_other().await, "account B sees the shared image");
    // B may look, but never change what it does not own.
    other.reset_requests();
    let third = Account::new();
    let (code, stderr) = stderr_of(&other, &["share", &image, "--account", &third.id, "--yes"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("owned by account {}", owner.id)),
        "{stderr}"
    );
    assert_eq!(other.mutating_calls(), Vec::<String>::new());
    let (code, stderr) = stderr_of(&other, &["deregister", &image, "--yes"]);
    assert_eq!(code, 1, "blocked, nothing done: {stderr}");
    assert_eq!(other.mutating_calls(), Vec::<String>::new());
    // Granting twice is fine.
    let (code, _) = run(&owner, &["share", &image, "--account", &other.id]);
    assert_eq!(code, 0);

    let (code, out) = run(
        &owner,
        &[
            "share",
            &image,
            "--account",
            &other.id,
            "--with-snapshots",
            "--revoke",
        ],
    );
    assert_eq!(code, 0);
    assert!(
        out["regions"][0]["launch_permissions"]["accounts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        out["regions"][0]["snapshots"][0]["accounts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(!visible_to_other().await);

    // With no grantee: the current permissions, nothing changed.
    let (code, out) = run(&owner, &["share", &image]);
    assert_eq!(code, 0);
    assert_eq!(out["action"], "show");

    let (code, stderr) = stderr_of(&owner, &["share", &image, "--account", "12345"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("'12345' is not an AWS account id"),
        "{stderr}"
    );
}

#[tokio::test]
async fn public_sharing_needs_its_own_confirmation() {
    let owner = Account::new();
    let (image, _) = owner.image(REGION, "maybe-public").await;
    owner.reset_requests();
    let (code, stderr) = stderr_of(&owner, &["share", &image, "--public", "--yes"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--confirm-public"), "{stderr}");
    assert!(!owner.requests().contains_key("ec2:ModifyImageAttribute"));

    let (code, out) = run(&owner, &["share", &image, "--public", "--confirm-public"]);
    assert_eq!(code, 0);
    assert_eq!(out["regions"][0]["launch_permissions"]["public"], true);
    let (code, out) = run(&owner, &["share", &image, "--public", "--revoke"]);
    assert_eq!(code, 0);
    assert_eq!(out["regions"][0]["launch_permissions"]["public"], false);
}

#[tokio::test]
async fn share_all_copies_by_name() {
    let owner = Account::new();
    let other = Account::new();
    let (image, _) = owner.image(REGION, "everywhere").await;
    let (code, _) = run(&owner, &["copy", &image, "--to-region", "eu-central-1"]);
    assert_eq!(code, 0);
    let (code, out) = run(
        &owner,
        &["share", &image, "--account", &other.id, "--all-copies"],
    );
    assert_eq!(code, 0);
    let regions: BTreeSet<&str> = out["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, BTreeSet::from(["eu-central-1", "us-east-1"]));
    for region in out["regions"].as_array().unwrap() {
        assert_eq!(
            region["launch_permissions"]["accounts"][0],
            other.id.as_str()
        );
    }
}
