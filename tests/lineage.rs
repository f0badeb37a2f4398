//! Lineage through the real binary: copies found by where AWS records each image came from
//! (never by name), retiring an image with every copy, the forest and a base's descendants,
//! images AWS services own, time-based copies and Allowed AMIs warnings.

use crate::common::{Account, REGION, json};
use serde_json::Value;
use std::collections::BTreeSet;

const EU: &str = "eu-west-1";
const AP: &str = "ap-southeast-2";

fn run(account: &Account, args: &[&str]) -> (i32, Value) {
    let output = account
        .ami()
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let code = output.status.code().unwrap();
    if code != 0 {
        eprintln!("{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let value = if output.stdout.is_empty() {
        Value::Null
    } else {
        json(args, &output)
    };
    (code, value)
}

/// `ami copy IMAGE --to-region REGION [--name NAME] --wait`: the copy's id.
fn copy(account: &Account, image: &str, region: &str, name: Option<&str>) -> String {
    let mut args = vec!["copy", image, "--to-region", region, "--wait"];
    if let Some(name) = name {
        args.extend(["--name", name]);
    }
    let (code, out) = run(account, &args);
    assert_eq!(code, 0, "{out}");
    out["copies"][region]["image_id"]
        .as_str()
        .expect("a copy id")
        .to_string()
}

async fn state(account: &Account, region: &str, image: &str) -> Option<String> {
    let found = account
        .ec2_in(region)
        .describe_images()
        .image_ids(image)
        .send()
        .await
        .ok()?;
    found
        .images()
        .first()
        .map(|i| i.state().unwrap().as_str().to_string())
}

async fn launch_accounts(account: &Account, region: &str, image: &str) -> Vec<String> {
    account
        .ec2_in(region)
        .describe_image_attribute()
        .image_id(image)
        .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
        .send()
        .await
        .unwrap()
        .launch_permissions()
        .iter()
        .filter_map(|p| p.user_id().map(String::from))
        .collect()
}

/// An image, its copy under another name, and an unrelated image of the same name in a third
/// region: sharing and retiring "all copies" touch exactly the image and its copy.
#[tokio::test]
async fn all_copies_are_found_by_lineage_not_by_name() {
    let owner = Account::new();
    let consumer = Account::new();
    let (image, snapshot) = owner.image(REGION, "app").await;
    let copied = copy(&owner, &image, EU, Some("app-renamed"));
    let (unrelated, unrelated_snapshot) = owner.image(AP, "app").await;
    // Built from an instance of the image: made from it, but no copy of it.
    let instance = owner.launch_instance(REGION, &image).await;
    let built = owner
        .ec2()
        .create_image()
        .instance_id(&instance)
        .name("app-built")
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_string();
    owner
        .ec2()
        .terminate_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();

    let (code, out) = run(
        &owner,
        &["share", &image, "--account", &consumer.id, "--all-copies"],
    );
    assert_eq!(code, 0, "{out}");
    let shared: BTreeSet<(String, String)> = out["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["region"].as_str().unwrap().to_string(),
                r["image_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        shared,
        BTreeSet::from([
            (REGION.to_string(), image.clone()),
            (EU.to_string(), copied.clone())
        ])
    );
    assert_eq!(
        launch_accounts(&owner, EU, &copied).await,
        std::slice::from_ref(&consumer.id)
    );
    assert!(launch_accounts(&owner, AP, &unrelated).await.is_empty());
    assert!(launch_accounts(&owner, REGION, &built).await.is_empty());

    // Another account's image is no release of the caller's: refused before anything.
    consumer.reset_requests();
    let output = consumer.run(["deregister", &image, "--all-copies", "--cleanup", "--yes"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("owned by account"), "{stderr}");
    assert!(consumer.mutating_calls().is_empty());

    // The plan: the image here, its copy there, nothing in the third region; nothing changes.
    owner.reset_requests();
    let (code, plan) = run(
        &owner,
        &[
            "deregister",
            &image,
            "--all-copies",
            "--cleanup",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{plan}");
    let planned: BTreeSet<(String, String)> = plan["regions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let region = r["region"].as_str().unwrap().to_string();
            r["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |i| (region.clone(), i["image_id"].as_str().unwrap().to_string()))
        })
        .collect();
    assert_eq!(planned, shared);
    assert!(
        owner.mutating_calls().is_empty(),
        "{:?}",
        owner.mutating_calls()
    );

    let (code, done) = run(
        &owner,
        &["deregister", &image, "--all-copies", "--cleanup", "--yes"],
    );
    assert_eq!(code, 0, "{done}");
    for (region, id) in &shared {
        assert!(
            matches!(
                state(&owner, region, id).await.as_deref(),
                None | Some("deregistered")
            ),
            "{id} in {region} is still there"
        );
    }
    assert!(!owner.snapshot_ids().await.contains(&snapshot));
    assert_eq!(
        state(&owner, AP, &unrelated).await.as_deref(),
        Some("available")
    );
    let built_state = state(&owner, REGION, &built).await;
    assert!(
        built_state.as_deref().is_some_and(|s| s != "deregistered"),
        "{built_state:?}"
    );
    let left: BTreeSet<String> = owner
        .ec2_in(AP)
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(String::from))
        .collect();
    assert!(left.contains(&unrelated_snapshot), "{left:?}");
}

#[tokio::test]
async fn copy_reuses_a_copy_by_lineage_and_never_an_unrelated_image_of_the_name() {
    let owner = Account::new();
    let (image, _) = owner.image(REGION, "web").await;
    let first = copy(&owner, &image, EU, Some("web-eu"));
    // Again, under the source's name: the copy made under another name is the copy.
    let (code, out) = run(&owner, &["copy", &image, "--to-region", EU]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["copies"][EU]["image_id"], first.as_str());
    assert_eq!(out["copies"][EU]["status"], "reused");

    // The name is taken there by an image made from something else: no copy, and it is named.
    let (unrelated, _) = owner.image(AP, "web").await;
    owner.reset_requests();
    let (code, out) = run(&owner, &["copy", &image, "--to-region", AP]);
    assert_ne!(code, 0);
    let error = out["copies"][AP]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&unrelated) && error.contains("no recorded source"),
        "{out}"
    );
    assert!(!owner.requests().contains_key("ec2:CopyImage"));
}

#[tokio::test]
async fn a_completion_duration_is_checked_before_any_call_and_sent_as_given() {
    let owner = Account::new();
    let (image, _) = owner.image(REGION, "timed").await;
    owner.reset_requests();
    for bad in ["20m", "10m", "49h"] {
        let output = owner.run(["copy", &image, "--to-region", EU, "--complete-within", bad]);
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--complete-within"), "{stderr}");
    }
    assert!(owner.requests().is_empty(), "{:?}", owner.requests());

    let (code, plan) = run(
        &owner,
        &[
            "copy",
            &image,
            "--to-region",
            EU,
            "--complete-within",
            "2h",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{plan}");
    assert!(plan.to_string().contains("within 120 minutes"), "{plan}");

    let copied = copy_within(&owner, &image, "2h");
    assert_eq!(completion_minutes(&owner, EU, &copied).await, Some(120));
}

fn copy_within(owner: &Account, image: &str, within: &str) -> String {
    let (code, out) = run(
        owner,
        &[
            "copy",
            image,
            "--to-region",
            EU,
            "--complete-within",
            within,
        ],
    );
    assert_eq!(code, 0, "{out}");
    out["copies"][EU]["image_id"].as_str().unwrap().to_string()
}

/// base → app (built from an instance of base) → app's copy in another region; app2 built on
/// app; an unrelated image. The forest, a base's descendants, and ancestry through a
/// deregistered image.
#[tokio::test]
async fn the_forest_and_what_descends_from_a_base() {
    let owner = Account::new();
    let (base, _) = owner.image(REGION, "base").await;
    let instance = owner.launch_instance(REGION, &base).await;
    let (code, made) = run(
        &owner,
        &[
            "create",
            "--instance-id",
            &instance,
            "--name",
            "app",
            "--no-reboot",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{made}");
    let app = made["image_id"].as_str().unwrap().to_string();
    let app_eu = copy(&owner, &app, EU, Some("app-eu"));
    let (unrelated, _) = owner.image(REGION, "app-eu").await;

    let (code, tree) = run(
        &owner,
        &["list", "--tree", "--region", REGION, "--region", EU],
    );
    assert_eq!(code, 0, "{tree}");
    let rows: Vec<(String, u64)> = tree["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["image_id"].as_str().unwrap().to_string(),
                i["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    // The line base → app → its copy, in that order; the unrelated image a root of its own
    // (roots made in the same second may come in either order).
    let at = rows.iter().position(|(id, _)| id == &base).unwrap();
    assert_eq!(
        rows[at..at + 3],
        [(base.clone(), 0), (app.clone(), 1), (app_eu.clone(), 2)]
    );
    assert!(rows.contains(&(unrelated.clone(), 0)), "{rows:?}");
    assert_eq!(rows.len(), 4);
    let eu_row = &tree["images"][at + 2];
    assert_eq!(eu_row["source_image_id"], app.as_str());
    assert_eq!(eu_row["source_image_region"], REGION);

    let descendants = |owner: &Account| {
        let (code, out) = run(owner, &["list", "--descendants", &base]);
        assert_eq!(code, 0, "{out}");
        out["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["image_id"].as_str().unwrap().to_string(),
                    i["descent"]["generation"].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(descendants(&owner), [(app.clone(), 1), (app_eu.clone(), 2)]);
    // From app, its copy descends by copying; from base, by a build along the way.
    let by = |base: &str| {
        let (code, out) = run(&owner, &["list", "--descendants", base]);
        assert_eq!(code, 0, "{out}");
        out["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["descent"]["by"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(by(&app), ["copy"]);
    assert_eq!(by(&base), ["build", "build"]);

    // With the middle image gone, GetImageAncestry still ties the copy to the base.
    owner
        .ec2()
        .deregister_image()
        .image_id(&app)
        .send()
        .await
        .unwrap();
    owner.reset_requests();
    assert_eq!(descendants(&owner), [(app_eu.clone(), 2)]);
    assert!(owner.requests().contains_key("ec2:GetImageAncestry"));

    let (code, chain) = run(&owner, &["list", "--ancestry", "--region", EU]);
    assert_eq!(code, 0, "{chain}");
    let ids: Vec<&str> = chain["images"][0]["ancestry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["image_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [app_eu.as_str(), app.as_str(), base.as_str()]);
}

#[tokio::test]
async fn images_aws_services_own_are_kept_naming_the_service() {
    let owner = Account::new();
    let (backup, _) = owner.image(REGION, "backup-made").await;
    owner.mark_managed(REGION, &backup, "backup");
    let (dlm, _) = owner.image(REGION, "dlm-made").await;
    owner.mark_managed(REGION, &dlm, "dlm");
    owner.reset_requests();

    let (code, out) = run(
        &owner,
        &["deregister", &backup, "--cleanup", "--yes", "--force"],
    );
    assert_ne!(code, 0);
    let reason = out["images"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("AWS Backup") && reason.contains("recovery point"),
        "{reason}"
    );
    assert!(!owner.requests().contains_key("ec2:DeregisterImage"));

    let (code, plan) = run(
        &owner,
        &["cleanup", "--name", "dlm-*", "--keep", "0", "--dry-run"],
    );
    assert_eq!(code, 0, "{plan}");
    let decision = &plan["regions"][0]["decisions"][0];
    assert_eq!(decision["image_id"], dlm.as_str());
    assert!(
        decision["reason"]
            .as_str()
            .unwrap()
            .contains("Data Lifecycle Manager"),
        "{decision}"
    );
}

#[tokio::test]
async fn sharing_warns_when_the_consumer_would_not_allow_the_image() {
    let owner = Account::new();
    let consumer = Account::new();
    let (image, _) = owner.image(REGION, "for-consumer").await;
    let ec2 = consumer.ec2();
    ec2.enable_allowed_images_settings()
        .allowed_images_settings_state(
            aws_sdk_ec2::types::AllowedImagesSettingsEnabledState::Enabled,
        )
        .send()
        .await
        .unwrap();
    let share = || {
        run(
            &owner,
            &[
                "share",
                &image,
                "--account",
                &consumer.id,
                "--role-name",
                "ami-reader",
            ],
        )
    };
    allow_only(&ec2, "amazon").await;
    let (code, out) = share();
    assert_eq!(code, 0, "{out}");
    let notes = out["notes"].to_string();
    assert!(
        notes.contains(&consumer.id) && notes.contains("will not let it see or launch"),
        "{notes}"
    );

    // Allowed once the consumer lists this owner among its providers.
    allow_only(&ec2, &owner.id).await;
    let (code, out) = share();
    assert_eq!(code, 0, "{out}");
    assert!(!out["notes"].to_string().contains("Allowed AMIs"), "{out}");
}

/// The consumer's Allowed AMIs criteria: images of this one provider only.
async fn allow_only(ec2: &aws_sdk_ec2::Client, provider: &str) {
    ec2.replace_image_criteria_in_allowed_images_settings()
        .image_criteria(
            aws_sdk_ec2::types::ImageCriterionRequest::builder()
                .image_providers(provider)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// A retention rule with copies: the image it retires takes its copies (a copy's copy too) in
/// other regions with it; in a region outside the run nothing else is judged, swept or retired.
#[tokio::test]
async fn a_rule_with_copies_retires_the_copies_of_what_it_retires_and_nothing_else_there() {
    let owner = Account::new();
    let (old, _) = owner.image(REGION, "rel-1").await;
    owner.backdate(REGION, &old, "2026-01-01T00:00:00Z");
    let (new, _) = owner.image(REGION, "rel-2").await;
    let old_eu = copy(&owner, &old, EU, Some("rel-1-eu"));
    let old_ap = copy_from(&owner, &old_eu, EU, AP, "rel-1-ap");
    let new_eu = copy(&owner, &new, EU, Some("rel-2-eu"));
    // One family in the copies' region, which the run does not cover: `--keep 1` would retire
    // the older of them there, and `--orphans` would sweep the orphan, were the rule applied.
    let (stray_old, _) = owner.image(EU, "rel-7").await;
    owner.backdate(EU, &stray_old, "2025-01-01T00:00:00Z");
    let (stray_new, _) = owner.image(EU, "rel-8").await;
    let orphan = orphan_snapshot(&owner, EU).await;

    let args = |extra: &'static str| {
        vec![
            "cleanup",
            "--name",
            "rel-*",
            "--keep",
            "1",
            "--with-copies",
            "--orphans",
            extra,
        ]
    };
    owner.reset_requests();
    let (code, plan) = run(&owner, &args("--dry-run"));
    assert_eq!(code, 0, "{plan}");
    assert!(
        owner.mutating_calls().is_empty(),
        "{:?}",
        owner.mutating_calls()
    );
    let decided = |region: &str| -> Vec<(String, String)> {
        plan["regions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["region"] == region)
            .flat_map(|r| r["decisions"].as_array().unwrap().iter())
            .map(|d| {
                (
                    d["image_id"].as_str().unwrap().to_string(),
                    d["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let here = decided(REGION);
    assert!(here.contains(&(old.clone(), "retire".into())), "{here:?}");
    assert!(here.contains(&(new.clone(), "keep".into())), "{here:?}");
    assert_eq!(decided(EU), [(old_eu.clone(), "retire".to_string())]);
    assert_eq!(decided(AP), [(old_ap.clone(), "retire".to_string())]);

    let (code, done) = run(&owner, &args("--yes"));
    assert_eq!(code, 0, "{done}");
    for (region, id) in [(REGION, &old), (EU, &old_eu), (AP, &old_ap)] {
        assert!(
            matches!(
                state(&owner, region, id).await.as_deref(),
                None | Some("deregistered")
            ),
            "{id} in {region} is still there"
        );
    }
    for (region, id) in [
        (REGION, &new),
        (EU, &new_eu),
        (EU, &stray_old),
        (EU, &stray_new),
    ] {
        assert_eq!(
            state(&owner, region, id).await.as_deref(),
            Some("available"),
            "{id}"
        );
    }
    let left = owner
        .ec2_in(EU)
        .describe_snapshots()
        .snapshot_ids(&orphan)
        .send()
        .await;
    assert!(
        left.is_ok_and(|l| l.snapshots().len() == 1),
        "the orphan in {EU} was swept"
    );
}

/// `ami copy IMAGE --source-region FROM --to-region TO --name NAME --wait`: the copy's id.
fn copy_from(account: &Account, image: &str, from: &str, to: &str, name: &str) -> String {
    let (code, out) = run(
        account,
        &[
            "copy",
            image,
            "--source-region",
            from,
            "--to-region",
            to,
            "--name",
            name,
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{out}");
    out["copies"][to]["image_id"].as_str().unwrap().to_string()
}

/// A snapshot whose description names an image that does not exist: what the orphan sweep takes.
async fn orphan_snapshot(account: &Account, region: &str) -> String {
    let ec2 = account.ec2_in(region);
    let volume = ec2
        .create_volume()
        .availability_zone(format!("{region}a"))
        .size(8)
        .send()
        .await
        .unwrap();
    ec2.create_snapshot()
        .volume_id(volume.volume_id().unwrap())
        .description("Created by CreateImage(i-0123456789abcdef0) for ami-0123456789abcdef0")
        .send()
        .await
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_string()
}

/// `release` copies within the deadline asked, finds its copy by lineage on a re-run, and warns
/// when a consumer's Allowed AMIs settings would refuse the release.
#[tokio::test]
async fn a_release_copies_on_time_and_warns_about_a_consumer_that_would_refuse_it() {
    let owner = Account::new();
    let consumer = Account::new();
    let ec2 = consumer.ec2_in(EU);
    ec2.enable_allowed_images_settings()
        .allowed_images_settings_state(
            aws_sdk_ec2::types::AllowedImagesSettingsEnabledState::AuditMode,
        )
        .send()
        .await
        .unwrap();
    allow_only(&ec2, "amazon").await;
    let (base, _) = owner.image(REGION, "release-base").await;
    let instance = owner.launch_instance(REGION, &base).await;
    let args = [
        "release",
        "--instance-id",
        &instance,
        "--name",
        "svc-2026.12.02",
        "--no-test",
        "--to-region",
        EU,
        "--complete-within",
        "1h",
        "--account",
        &consumer.id,
        "--role-name",
        "ami-reader",
    ];
    let (code, out) = run(&owner, &args);
    assert_eq!(code, 0, "{out}");
    let copied = out["images"][EU]["image_id"].as_str().unwrap().to_string();
    let share = out["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "share")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        share.contains(&format!("account {} in {EU}", consumer.id)) && share.contains("audit mode"),
        "{share}"
    );
    assert_eq!(completion_minutes(&owner, EU, &copied).await, Some(60));

    // A bad deadline stops the release before anything.
    owner.reset_requests();
    let mut bad = args.to_vec();
    let at = bad.iter().position(|a| *a == "1h").unwrap();
    bad[at] = "50m";
    let output = owner.run(&bad);
    assert_eq!(output.status.code(), Some(2));
    assert!(owner.requests().is_empty(), "{:?}", owner.requests());
}

/// The time-based copy duration AWS reports on an image's root snapshot.
async fn completion_minutes(account: &Account, region: &str, image: &str) -> Option<i32> {
    let ec2 = account.ec2_in(region);
    let described = ec2.describe_images().image_ids(image).send().await.unwrap();
    let snapshot = described.images()[0].block_device_mappings()[0]
        .ebs()
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_string();
    let snapshots = ec2
        .describe_snapshots()
        .snapshot_ids(snapshot)
        .send()
        .await
        .unwrap();
    snapshots.snapshots()[0].completion_duration_minutes()
}

/// AWS takes time: a copy still being made is found (it is listed as pending) and kept, saying
/// why, while the image itself goes; a re-run once it is available retires it.
#[tokio::test]
async fn a_pending_copy_is_kept_by_deregister_all_copies_until_it_is_available() {
    let owner = Account::new();
    let (image, _) = owner.image(REGION, "slow").await;
    owner.configure(serde_json::json!({ "timing": { "pending": 3 } }));
    let (code, out) = run(&owner, &["copy", &image, "--to-region", EU, "--no-wait"]);
    assert_eq!(code, 0, "{out}");
    let copied = out["copies"][EU]["image_id"].as_str().unwrap().to_string();

    let (code, out) = run(&owner, &["deregister", &image, "--all-copies", "--yes"]);
    assert_eq!(code, 3, "{out}");
    let eu = out["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == EU)
        .expect("the copy's region is planned");
    assert_eq!(eu["images"][0]["image_id"], copied.as_str());
    assert_eq!(eu["images"][0]["action"], "blocked");
    assert!(
        eu["images"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("being made"),
        "{eu}"
    );
    assert!(matches!(
        state(&owner, REGION, &image).await.as_deref(),
        None | Some("deregistered")
    ));

    // Once available it is still a copy of the image (gone now): a re-run from the copy itself.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    owner.configure(serde_json::json!({ "timing": null }));
    assert_eq!(
        state(&owner, EU, &copied).await.as_deref(),
        Some("available")
    );
    let (code, out) = run(
        &owner,
        &[
            "deregister",
            &copied,
            "--region",
            EU,
            "--all-copies",
            "--yes",
        ],
    );
    assert_eq!(code, 0, "{out}");
}
