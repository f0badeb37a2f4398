//! `ami create`, `register`, `copy` and `share` through the real binary against the emulator.

use crate::common::{Account, REGION, bucket_name, json};
use serde_json::Value;
use std::collections::BTreeMap;

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
        json(args, &output)
    };
    if code != 0 {
        eprintln!("{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    (code, value)
}

fn stderr_of(account: &Account, args: &[&str]) -> (i32, String) {
    let output = account.run(args);
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
    account.launch_instance(REGION, &base).await
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
async fn a_copy_is_tagged_by_copy_image_itself_with_its_snapshots() {
    // Accounts whose tag policies require tags on create refuse a copy tagged afterwards.
    let account = Account::new();
    let (source, _) = account.image(REGION, "tag-on-create").await;
    account.tag(REGION, &source, "app", "web").await;
    account.reset_requests();

    let (code, out) = run(
        &account,
        &[
            "copy",
            &source,
            "--to-region",
            "eu-west-1",
            "--tag",
            "owner=ops",
        ],
    );
    assert_eq!(code, 0);
    let copy = out["copies"]["eu-west-1"]["image_id"].as_str().unwrap();
    let requests = account.requests();
    assert!(
        !requests.contains_key("ec2:CreateTags"),
        "tagged afterwards: {requests:?}"
    );
    let want = [("app", "web"), ("owner", "ops")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
    let tags: Vec<(String, String)> = account
        .tags_of("eu-west-1", copy)
        .await
        .into_iter()
        .collect();
    assert_eq!(tags, want);
    let image = account
        .ec2_in("eu-west-1")
        .describe_images()
        .image_ids(copy)
        .send()
        .await
        .unwrap();
    let snapshot = image.images()[0].block_device_mappings()[0]
        .ebs()
        .and_then(|ebs| ebs.snapshot_id())
        .unwrap()
        .to_string();
    let mut tags = snapshot_tags(&account, "eu-west-1", &snapshot).await;
    tags.sort();
    assert_eq!(tags, want);
}

#[tokio::test]
async fn a_copy_whose_answer_is_lost_is_retried_without_making_a_second_image() {
    let account = Account::new();
    let (source, _) = account.image(REGION, "lost-answer").await;
    // The first CopyImage runs and its answer is lost; the SDK sends it again (seed 1 draws
    // 0.13 then 0.85). Without a client token the retry would be a second copy (here refused as a
    // duplicate name).
    account.configure(serde_json::json!({"faults": {
        "drop_after": 0.5, "actions": ["ec2:CopyImage"], "seed": 1
    }}));
    let output = account
        .ami()
        .env_remove("AWS_MAX_ATTEMPTS")
        .args([
            "copy",
            &source,
            "--to-region",
            "eu-west-1",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    account.configure(serde_json::json!({"faults": null}));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let out = json(&["copy"], &output);
    assert_eq!(
        account.requests()["ec2:CopyImage"],
        2,
        "the answer was lost once"
    );
    assert_eq!(
        images_in(&account, "eu-west-1").await,
        [out["copies"]["eu-west-1"]["image_id"].as_str().unwrap()]
    );
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
            "us-nowhere-9",
        ],
    );
    assert_eq!(code, 3, "{out}");
    assert_eq!(out["copies"]["us-west-2"]["status"], "created");
    assert_eq!(out["copies"]["us-nowhere-9"]["status"], "failed");
    assert!(
        out["copies"]["us-nowhere-9"]["error"]
            .as_str()
            .unwrap()
            .contains("us-nowhere-9")
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

async fn instance_state(account: &Account, instance_id: &str) -> (String, String) {
    let output = account
        .ec2()
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .unwrap();
    let instance = &output.reservations()[0].instances()[0];
    (
        instance
            .state()
            .unwrap()
            .name()
            .unwrap()
            .as_str()
            .to_string(),
        instance
            .placement()
            .unwrap()
            .availability_zone()
            .unwrap()
            .to_string(),
    )
}

#[tokio::test]
async fn launch_in_a_zone_smoke_test_and_refuse_a_disabled_image() {
    let account = Account::new();
    let (image, _) = account.image(REGION, "launchable").await;

    let (code, out) = run(
        &account,
        &[
            "launch",
            &image,
            "--availability-zone",
            "us-east-1b",
            "--instance-type",
            "t3.small",
            "--tag",
            "team=qa",
            "--wait",
        ],
    );
    assert_eq!(code, 0);
    let id = out["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(out["instances"][0]["availability_zone"], "us-east-1b");
    assert_eq!(out["instances"][0]["state"], "running");
    assert_eq!(
        instance_state(&account, &id).await,
        ("running".to_string(), "us-east-1b".to_string())
    );

    // Into a subnet (its zone), with user data, a key and a security group.
    let ec2 = account.ec2();
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.9.1.0/24")
        .availability_zone("us-east-1c")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_string();
    let group = ec2
        .create_security_group()
        .group_name("smoke")
        .description("smoke test")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    ec2.create_key_pair().key_name("ops").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let user_data = dir.path().join("boot.sh");
    std::fs::write(&user_data, "#!/bin/sh\necho hello\n").unwrap();
    let (code, out) = run(
        &account,
        &[
            "launch",
            &image,
            "--subnet-id",
            &subnet,
            "--security-group-id",
            &group,
            "--key-name",
            "ops",
            "--user-data",
            user_data.to_str().unwrap(),
            "--wait",
        ],
    );
    assert_eq!(code, 0);
    let placed = out["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(out["instances"][0]["availability_zone"], "us-east-1c");
    let described = ec2
        .describe_instances()
        .instance_ids(&placed)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(instance.subnet_id(), Some(subnet.as_str()));
    assert_eq!(instance.key_name(), Some("ops"));
    assert!(
        instance
            .security_groups()
            .iter()
            .any(|g| g.group_id() == Some(group.as_str()))
    );
    let data = ec2
        .describe_instance_attribute()
        .instance_id(&placed)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let encoded = data.user_data().unwrap().value().unwrap().to_string();
    assert_eq!(
        aws_smithy_types::base64::decode(encoded).unwrap(),
        b"#!/bin/sh\necho hello\n"
    );

    // A smoke test: running, the check sees the instance, then it is terminated.
    let (code, out) = run(
        &account,
        &[
            "launch",
            &image,
            "--terminate-after",
            "--check",
            "test -n \"$AMI_INSTANCE_ID\" && test \"$AMI_IMAGE_ID\" = \"$EXPECTED\"",
        ],
    );
    assert_eq!(code, 1, "the check ran without EXPECTED set, so it fails");
    assert_eq!(out["check"]["passed"], false);
    let smoke = out["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(instance_state(&account, &smoke).await.0, "terminated");
    let output = account
        .ami()
        .env("EXPECTED", &image)
        .args(["launch", &image, "--terminate-after", "--output", "json"])
        .args([
            "--check",
            "test \"$AMI_IMAGE_ID\" = \"$EXPECTED\" && test -n \"$AMI_AVAILABILITY_ZONE\"",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let out = json(&["launch"], &output);
    assert_eq!(out["check"]["passed"], true);
    assert_eq!(out["terminated"], true);
    let passed = out["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(instance_state(&account, &passed).await.0, "terminated");

    // Disabled: refused by name, nothing launched.
    account
        .ec2()
        .disable_image()
        .image_id(&image)
        .send()
        .await
        .unwrap();
    account.reset_requests();
    let (code, stderr) = stderr_of(&account, &["launch", &image]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&image) && stderr.contains("disabled"),
        "{stderr}"
    );
    assert!(!account.requests().contains_key("ec2:RunInstances"));
    let (code, stderr) = stderr_of(
        &account,
        &["launch", &image, "--subnet-id", "sg-0123456789abcdef0"],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("'sg-0123456789abcdef0' is a security group id"),
        "{stderr}"
    );
}

/// The stages of a release JSON document: stage → state.
fn stage_states(out: &Value) -> Vec<(String, String)> {
    out["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn states(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn visible_to(account: &Account, region: &str, image: &str) -> bool {
    account
        .ec2_in(region)
        .describe_images()
        .image_ids(image)
        .send()
        .await
        .map(|out| !out.images().is_empty())
        .unwrap_or(false)
}

#[tokio::test]
async fn release_creates_tests_copies_and_shares_then_a_rerun_changes_nothing() {
    let owner = Account::new();
    let consumer = Account::new();
    let source = instance(&owner).await;
    let args = [
        "release",
        "--instance-id",
        &source,
        "--name",
        "web-2026.11.23",
        "--to-region",
        "eu-west-1",
        "--to-region",
        "ap-southeast-2",
        "--account",
        &consumer.id,
        "--with-snapshots",
        "--deprecate-after",
        "180d",
        "--tag",
        "app=web",
        "--ssm-parameter",
        "/images/web/latest",
        "--ssm-parameter",
        "web-golden",
    ];
    // One region's parameter already names an older image (SSM takes only an image that exists).
    let (older, _) = owner.image("eu-west-1", "web-2026.10.01").await;
    owner.put_parameter("eu-west-1", "web-golden", &older);
    let (code, out) = run(&owner, &args);
    // Exit 3: the release has images (a partial success); its last stage failed.
    assert_eq!(
        code, 3,
        "an existing parameter is not replaced without --overwrite-ssm"
    );
    assert_eq!(
        stage_states(&out),
        states(&[
            ("create", "done"),
            ("test", "done"),
            ("copy", "done"),
            ("share", "done"),
            ("finish", "done"),
            ("publish", "failed"),
        ])
    );
    let error = out["stages"][5]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "eu-west-1 web-golden: holds {older}; --overwrite-ssm"
        )),
        "{error}"
    );
    let test_instance = out["test_instance"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        out["parameters"]["eu-west-1"]["web-golden"]["status"],
        "refused"
    );
    assert_eq!(
        owner.parameter("eu-west-1", "web-golden").await.as_deref(),
        Some(older.as_str())
    );
    let mut args = args.to_vec();
    args.push("--overwrite-ssm");
    let (code, out) = run(&owner, &args);
    assert_eq!(code, 0);
    assert_eq!(
        out["parameters"]["eu-west-1"]["web-golden"]["status"],
        "replaced"
    );
    assert_eq!(
        out["parameters"]["eu-west-1"]["web-golden"]["previous"],
        older.as_str()
    );
    assert_eq!(
        stage_states(&out),
        states(&[
            ("create", "skipped"),
            ("test", "skipped"),
            ("copy", "skipped"),
            ("share", "skipped"),
            ("finish", "skipped"),
            ("publish", "done"),
        ])
    );
    for stage in out["stages"].as_array().unwrap() {
        assert!(stage["duration_seconds"].is_number(), "{stage}");
    }
    let images = out["images"].as_object().unwrap();
    assert_eq!(
        images.keys().cloned().collect::<Vec<_>>(),
        ["ap-southeast-2", "eu-west-1", "us-east-1"]
    );
    for (region, image) in images {
        let id = image["image_id"].as_str().unwrap();
        assert_eq!(
            named(&owner, region, "web-2026.11.23").await,
            vec![id.to_string()]
        );
        assert!(visible_to(&consumer, region, id).await, "{region} {id}");
    }
    // Each region's parameters hold that region's image.
    for (region, image) in images {
        let id = image["image_id"].as_str().unwrap();
        for name in ["/images/web/latest", "web-golden"] {
            assert_eq!(
                owner.parameter(region, name).await.as_deref(),
                Some(id),
                "{region} {name}"
            );
        }
    }
    assert_eq!(instance_state(&owner, &test_instance).await.0, "terminated");

    // The same command again: everything found, nothing made or changed.
    owner.reset_requests();
    let (code, out) = run(&owner, &args);
    assert_eq!(code, 0);
    assert_eq!(
        stage_states(&out),
        states(&[
            ("create", "skipped"),
            ("test", "skipped"),
            ("copy", "skipped"),
            ("share", "skipped"),
            ("finish", "skipped"),
            ("publish", "skipped"),
        ])
    );
    assert!(
        out["parameters"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|named| named.as_object().unwrap().values())
            .all(|p| p["status"] == "unchanged"),
        "{out:#}"
    );
    assert_eq!(owner.mutating_calls(), Vec::<String>::new());
}

/// A release's dry run lists the calls its real run makes: each action as often, in the regions
/// listed, and no other mutating call reaches AWS.
#[tokio::test]
async fn a_release_makes_the_calls_its_dry_run_listed_and_no_others() {
    let owner = Account::new();
    let consumer = Account::new();
    let source = instance(&owner).await;
    let args = [
        "release",
        "--instance-id",
        &source,
        "--name",
        "listed-1",
        "--to-region",
        "eu-west-1",
        "--account",
        &consumer.id,
        "--with-snapshots",
        "--deprecate-after",
        "30d",
        "--protect",
        "--ssm-parameter",
        "/listed/latest",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let (code, plan) = run(&owner, &dry);
    assert_eq!(code, 0, "{plan:#}");
    let mut listed: Vec<(String, String)> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|stage| stage["calls"].as_array().unwrap())
        .map(|call| {
            let field = |name: &str| call[name].as_str().unwrap().to_string();
            (field("call"), field("region"))
        })
        .collect();
    listed.sort();
    let regions = |action: &str| -> Vec<&str> {
        listed
            .iter()
            .filter(|(call, _)| call == action)
            .map(|(_, region)| region.as_str())
            .collect()
    };
    // Made in every region of the release: the source's and the copy's.
    for action in [
        "ec2:ModifyImageAttribute",
        "ec2:ModifySnapshotAttribute",
        "ec2:EnableImageDeprecation",
        "ec2:EnableImageDeregistrationProtection",
        "ssm:PutParameter",
    ] {
        assert_eq!(regions(action), ["eu-west-1", "us-east-1"], "{action}");
    }
    assert_eq!(regions("ec2:CopyImage"), ["eu-west-1"]);
    assert_eq!(regions("ec2:CreateImage"), ["us-east-1"]);

    owner.reset_requests();
    let (code, out) = run(&owner, &args);
    assert_eq!(code, 0, "{out:#}");
    // As many of each action as listed (the emulator counts requests per action, not region).
    let mut wanted: BTreeMap<String, u64> = BTreeMap::new();
    for (call, _) in &listed {
        *wanted.entry(call.clone()).or_default() += 1;
    }
    let requests = owner.requests();
    let made: BTreeMap<String, u64> = owner
        .mutating_calls()
        .into_iter()
        .map(|action| {
            let count = requests[&action];
            (action, count)
        })
        .collect();
    assert_eq!(made, wanted);
}

#[tokio::test]
async fn a_failed_or_killed_release_resumes_without_new_images() {
    let owner = Account::new();
    let consumer = Account::new();
    let source = instance(&owner).await;
    let args = [
        "release",
        "--instance-id",
        &source,
        "--name",
        "api-7",
        "--to-region",
        "eu-west-1",
        "--to-region",
        "eu-central-1",
        "--account",
        &consumer.id,
        "--no-test",
    ];

    // The share stage fails: exit 3 (the copies finished), the stage and the reason named, and
    // every image made so far listed.
    owner.configure(
        serde_json::json!({"faults": {"error": 1.0, "actions": ["ec2:ModifyImageAttribute"]}}),
    );
    let (code, out) = run(&owner, &args);
    assert_eq!(code, 3);
    assert_eq!(
        stage_states(&out),
        states(&[
            ("create", "done"),
            ("test", "skipped"),
            ("copy", "done"),
            ("share", "failed"),
            ("finish", "not_started"),
            ("publish", "not_started"),
        ])
    );
    let error = out["stages"][3]["error"].as_str().unwrap();
    assert!(error.contains("ModifyImageAttribute"), "{error}");
    assert_eq!(out["images"].as_object().unwrap().len(), 3);

    // Re-run once the fault is gone: the share stage finishes, nothing is made again.
    owner.configure(serde_json::json!({"faults": null}));
    owner.reset_requests();
    let (code, out) = run(&owner, &args);
    assert_eq!(code, 0);
    assert_eq!(
        stage_states(&out)[3],
        ("share".to_string(), "done".to_string())
    );
    assert!(!owner.requests().contains_key("ec2:CopyImage"));

    // A new release killed after its copies, in the middle of sharing (slow answers make it
    // last): the re-run shares and makes nothing new.
    let args = [
        "release",
        "--instance-id",
        &source,
        "--name",
        "api-8",
        "--to-region",
        "eu-west-1",
        "--to-region",
        "eu-central-1",
        "--account",
        &consumer.id,
        "--no-test",
    ];
    owner.configure(serde_json::json!({"faults": {
        "latency": 1.0, "latency_ms": 3000, "actions": ["ec2:DescribeImageAttribute"]
    }}));
    owner.reset_requests();
    let mut child = owner
        .ami_process()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !owner.requests().contains_key("ec2:DescribeImageAttribute") {
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the release ended before the kill: nothing was killed mid-run"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed mid-run, not ended by itself"
    );
    owner.configure(serde_json::json!({"faults": null}));
    for region in ["us-east-1", "eu-west-1", "eu-central-1"] {
        assert_eq!(
            named(&owner, region, "api-8").await.len(),
            1,
            "copied before the kill"
        );
    }

    owner.reset_requests();
    let (code, out) = run(&owner, &args);
    assert_eq!(code, 0);
    assert_eq!(
        stage_states(&out),
        states(&[
            ("create", "skipped"),
            ("test", "skipped"),
            ("copy", "skipped"),
            ("share", "done"),
            ("finish", "skipped"),
            ("publish", "skipped"),
        ])
    );
    let requests = owner.requests();
    assert!(!requests.contains_key("ec2:CreateImage"), "{requests:?}");
    assert!(!requests.contains_key("ec2:CopyImage"), "{requests:?}");
    for (region, image) in out["images"].as_object().unwrap() {
        let id = image["image_id"].as_str().unwrap();
        assert_eq!(named(&owner, region, "api-8").await, vec![id.to_string()]);
        assert!(visible_to(&consumer, region, id).await, "{region} {id}");
    }
}

/// The account's images of this name in the region.
async fn named(account: &Account, region: &str, name: &str) -> Vec<String> {
    account
        .ec2_in(region)
        .describe_images()
        .owners("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("name")
                .values(name)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .images()
        .iter()
        .filter_map(|i| i.image_id().map(String::from))
        .collect()
}

#[tokio::test]
async fn ctrl_c_during_a_smoke_test_still_terminates_the_instance() {
    let account = Account::new();
    let (image, _) = account.image(REGION, "interrupted-smoke").await;
    account.reset_requests();
    use std::os::unix::process::CommandExt;
    // Its own process group, as a terminal's foreground job: Ctrl-C reaches ami and the check.
    let child = account
        .ami_process()
        .process_group(0)
        .args(["launch", &image, "--terminate-after", "--output", "json"])
        .args(["--check", "sleep 60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    // The instance is running once DescribeInstances answered; the check is then sleeping.
    while !account.requests().contains_key("ec2:DescribeInstances") {
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    crate::common::interrupt_group(&child);
    let output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the check was not stopped"
    );
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = json(&["launch"], &output);
    assert_eq!(out["terminated"], true);
    let id = out["instances"][0]["instance_id"].as_str().unwrap();
    assert_eq!(instance_state(&account, id).await.0, "terminated");
}

#[tokio::test]
async fn ctrl_c_stops_a_release_says_where_and_a_rerun_finishes() {
    let owner = Account::new();
    let consumer = Account::new();
    let source = instance(&owner).await;
    let args = [
        "release",
        "--instance-id",
        &source,
        "--name",
        "web-interrupted",
        "--to-region",
        "eu-west-1",
        "--account",
        &consumer.id,
        "--no-test",
        "--output",
        "json",
    ];
    // Slow answers keep the share stage busy when Ctrl-C comes.
    owner.configure(serde_json::json!({"faults": {
        "latency": 1.0, "latency_ms": 5000, "actions": ["ec2:DescribeImageAttribute"]
    }}));
    owner.reset_requests();
    let child = owner
        .ami_process()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !owner.requests().contains_key("ec2:DescribeImageAttribute") {
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    owner.configure(serde_json::json!({"faults": null}));
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = json(&["release"], &output);
    assert_eq!(
        stage_states(&out),
        states(&[
            ("create", "done"),
            ("test", "skipped"),
            ("copy", "done"),
            ("share", "failed"),
            ("finish", "not_started"),
            ("publish", "not_started"),
        ])
    );
    let error = out["stages"][3]["error"].as_str().unwrap();
    assert!(error.contains("interrupted (Ctrl-C)"), "{error}");
    assert_eq!(out["images"].as_object().unwrap().len(), 2);

    let (code, out) = run(&owner, &args[..args.len() - 2]);
    assert_eq!(code, 0);
    assert_eq!(
        stage_states(&out)[3],
        ("share".to_string(), "done".to_string())
    );
    assert_eq!(named(&owner, "eu-west-1", "web-interrupted").await.len(), 1);
}

/// Ctrl-C while RunInstances is under way: the call finishes, and the smoke test's instance,
/// tagged from its first moment, is terminated rather than stranded.
#[tokio::test]
async fn ctrl_c_during_the_launch_call_strands_no_instance() {
    let account = Account::new();
    let (image, _) = account.image(REGION, "interrupted-launch").await;
    account
        .interrupted_launch_strands_no_instance(&image, 2000)
        .await;
}

/// A re-run of a release terminates every test instance an interrupted run left, however many
/// pages DescribeInstances takes to list them.
#[tokio::test]
async fn a_release_rerun_terminates_every_leftover_test_instance() {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let account = Account::new();
    let source = instance(&account).await;
    let (image, _) = account.image(REGION, "web-leftovers").await;
    let tag = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(
            Tag::builder()
                .key("ami:release-test-of")
                .value(&image)
                .build(),
        )
        .build();
    let mut leftovers = Vec::new();
    for _ in 0..101 {
        let launched = account
            .ec2()
            .run_instances()
            .image_id(&image)
            .min_count(1)
            .max_count(1)
            .tag_specifications(tag.clone())
            .send()
            .await
            .unwrap();
        leftovers.push(launched.instances()[0].instance_id().unwrap().to_string());
    }
    // Small pages: the 101 reservations take five.
    account.set_page_size(25);
    let output = account
        .ami()
        .args([
            "release",
            "--instance-id",
            &source,
            "--name",
            "web-leftovers",
        ])
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut live = Vec::new();
    for id in &leftovers {
        let (state, _) = instance_state(&account, id).await;
        if state != "terminated" && state != "shutting-down" {
            live.push(id.clone());
        }
    }
    assert!(
        live.is_empty(),
        "{} leftovers still live: {live:?}",
        live.len()
    );
}
