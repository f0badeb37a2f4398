//! `ami cleanup` through the real binary against the emulator.

use crate::common::{Account, REGION, bundle_manifest, json};
use serde_json::Value;
use std::collections::BTreeSet;

fn cleanup(account: &Account, args: &[&str]) -> (i32, Value) {
    let output = account
        .ami()
        .arg("cleanup")
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    let document = json(&["cleanup"], &output);
    (output.status.code().unwrap(), document)
}

struct Estate {
    /// Images that must go, with the snapshots only they use.
    retired: Vec<String>,
    retired_snapshots: Vec<String>,
    /// Everything that must stay.
    kept: Vec<String>,
    kept_snapshots: Vec<String>,
    orphan: String,
    manual: String,
}

/// Five families. In `web`: 7 images, 2 newest kept, 5 older of which four are protected by a
/// rule (instance, standalone template, an old default template version, a launch
/// configuration) and one retain-tagged... and so on, see the comments.
async fn estate(account: &Account) -> Estate {
    let ec2 = account.ec2();
    let mut retired = Vec::new();
    let mut retired_snapshots = Vec::new();
    let mut kept = Vec::new();
    let mut kept_snapshots = Vec::new();

    let mut web = Vec::new();
    let mut web_snapshots = Vec::new();
    for day in 1..=9 {
        let snapshot = account.snapshot(REGION, 8).await;
        let image = account
            .register_ebs(
                REGION,
                &format!("web-2026-01-0{day}"),
                &[("/dev/xvda", &snapshot)],
            )
            .await;
        account.backdate(REGION, &image, &format!("2026-01-0{day}T00:00:00Z"));
        web.push(image);
        web_snapshots.push(snapshot);
    }
    // web[8] is in use (the latest version of a template below, and an instance), so it takes no
    // keep slot: web[7] and web[6] are the newest two that could go, and stay.
    kept.extend([web[8].clone(), web[7].clone(), web[6].clone()]);
    kept_snapshots.extend([
        web_snapshots[8].clone(),
        web_snapshots[7].clone(),
        web_snapshots[6].clone(),
    ]);
    // web[0]: a running instance.
    account.launch_instance(REGION, &web[0]).await;
    // web[1]: a standalone launch template.
    account.launch_template("solo", &web[1]).await;
    // web[2]: version 1 (the default) of a template whose latest version moved on.
    let template = account.launch_template("moved", &web[2]).await;
    account.launch_template_version(&template, &web[8]).await;
    // web[3]: a launch configuration.
    account
        .autoscaling()
        .create_launch_configuration()
        .launch_configuration_name(format!("lc-{}", account.id))
        .image_id(&web[3])
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    // web[4]: retain-tagged.
    account.tag(REGION, &web[4], "retain", "true").await;
    kept.extend(web[..5].iter().cloned());
    kept_snapshots.extend(web_snapshots[..5].iter().cloned());
    // web[5]: old and unused: retired with its snapshot.
    retired.push(web[5].clone());
    retired_snapshots.push(web_snapshots[5].clone());

    // `db`: 3 images sharing one base snapshot, each with its own data snapshot. The oldest goes,
    // but the shared snapshot stays for the two that remain.
    let base = account.snapshot(REGION, 20).await;
    let mut db = Vec::new();
    for day in 1..=3 {
        let data = account.snapshot(REGION, 50).await;
        let image = account
            .register_ebs(
                REGION,
                &format!("db-2026.0{day}"),
                &[("/dev/xvda", &base), ("/dev/xvdb", &data)],
            )
            .await;
        account.backdate(REGION, &image, &format!("2026-0{day}-01T00:00:00Z"));
        db.push((image, data));
    }
    retired.push(db[0].0.clone());
    retired_snapshots.push(db[0].1.clone());
    kept.extend([db[1].0.clone(), db[2].0.clone()]);
    kept_snapshots.extend([base, db[1].1.clone(), db[2].1.clone()]);

    // An orphan: made by CreateImage for an image that is gone. A manual snapshot stays.
    let instance = account.launch_instance(REGION, &web[8]).await;
    let gone = ec2
        .create_image()
        .instance_id(&instance)
        .name(format!("gone-{}", account.id))
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_string();
    let orphan = ec2
        .describe_images()
        .image_ids(&gone)
        .send()
        .await
        .unwrap()
        .images()[0]
        .block_device_mappings()[0]
        .ebs()
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_string();
    ec2.deregister_image().image_id(&gone).send().await.unwrap();
    let manual = account.snapshot(REGION, 8).await;
    kept_snapshots.push(manual.clone());
    Estate {
        retired,
        retired_snapshots,
        kept,
        kept_snapshots,
        orphan,
        manual,
    }
}

#[tokio::test]
async fn keep_two_per_family_retires_exactly_the_intended_images() {
    let account = Account::new();
    let estate = estate(&account).await;
    let before_images = account.image_ids().await;
    let before_snapshots = account.snapshot_ids().await;

    // The plan first: nothing changes.
    account.reset_requests();
    let (code, plan) = cleanup(&account, &["--keep", "2", "--orphans", "--dry-run"]);
    assert_eq!(code, 0, "{plan}");
    let region = &plan["regions"][0];
    let retire: BTreeSet<&str> = region["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["verdict"] == "retire")
        .map(|d| d["image_id"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = estate.retired.iter().map(String::as_str).collect();
    assert_eq!(retire, expected, "{plan:#}");
    let mutating: Vec<String> = account
        .requests()
        .into_keys()
        .filter(|action| {
            let name = action.split(':').nth(1).unwrap_or_default();
            !["Describe", "Get", "List", "Head"]
                .iter()
                .any(|p| name.starts_with(p))
        })
        .collect();
    assert!(mutating.is_empty(), "dry run made {mutating:?}");
    assert_eq!(account.image_ids().await, before_images);
    assert_eq!(account.snapshot_ids().await, before_snapshots);

    let (code, result) = cleanup(&account, &["--keep", "2", "--orphans", "--yes"]);
    assert_eq!(code, 0, "{result:#}");
    let report = &result["regions"][0]["retire"];
    // The plan already knew which snapshots are shared: no delete was refused by AWS.
    for snapshot in report["snapshots"].as_array().unwrap() {
        assert_ne!(snapshot["status"], "failed", "{snapshot}");
    }

    let images = account.image_ids().await;
    for image in &estate.retired {
        assert!(!images.contains(image), "{image} should be gone");
    }
    for image in &estate.kept {
        assert!(images.contains(image), "{image} should stay");
    }
    let snapshots = account.snapshot_ids().await;
    for snapshot in &estate.retired_snapshots {
        assert!(!snapshots.contains(snapshot), "{snapshot} should be gone");
    }
    for snapshot in &estate.kept_snapshots {
        assert!(snapshots.contains(snapshot), "{snapshot} should stay");
    }
    assert!(!snapshots.contains(&estate.orphan), "the orphan goes");
    assert!(
        snapshots.contains(&estate.manual),
        "the manual snapshot stays"
    );

    // Safe to run again: nothing more to do.
    let (code, again) = cleanup(&account, &["--keep", "2", "--orphans", "--yes"]);
    assert_eq!(code, 0);
    assert!(again["regions"][0]["retire"].is_null(), "{again:#}");
    assert_eq!(account.image_ids().await, images);
}

#[tokio::test]
async fn cron_without_yes_changes_nothing() {
    let account = Account::new();
    let snapshot = account.snapshot(REGION, 8).await;
    for day in 1..=3 {
        account
            .register_ebs(
                REGION,
                &format!("app-2026-01-0{day}"),
                &[("/dev/xvda", &snapshot)],
            )
            .await;
    }
    let output = account.run(["cleanup", "--keep", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--yes"));
    assert_eq!(account.image_ids().await.len(), 3);

    let output = account.run(["cleanup"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing selects anything"));

    let output = account.run(["cleanup", "--keep", "1", "--yes"]);
    assert!(output.status.success());
    // One summary line on stderr for the cron log; the shared snapshot stays with the newest.
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(
        summary.contains("ami cleanup: retired 2 image(s)"),
        "{summary}"
    );
    assert_eq!(account.image_ids().await.len(), 1);
    assert_eq!(account.snapshot_ids().await, BTreeSet::from([snapshot]));
}

#[tokio::test]
async fn older_than_and_tag_families() {
    let account = Account::new();
    let mut images = Vec::new();
    for (name, date, app) in [
        ("one", "2020-01-01T00:00:00Z", "api"),
        ("two", "2026-11-20T00:00:00Z", "api"),
        ("three", "2020-01-01T00:00:00Z", "batch"),
    ] {
        let snapshot = account.snapshot(REGION, 8).await;
        let image = account
            .register_ebs(REGION, name, &[("/dev/xvda", &snapshot)])
            .await;
        account.tag(REGION, &image, "app", app).await;
        account.backdate(REGION, &image, date);
        images.push(image);
    }
    let (code, result) = cleanup(
        &account,
        &[
            "--group-by",
            "tag:app",
            "--keep",
            "1",
            "--older-than",
            "365d",
            "--yes",
        ],
    );
    assert_eq!(code, 0, "{result:#}");
    // api: `one` is old and not the newest; `two` is the newest. batch: `three` is its newest.
    let remaining = account.image_ids().await;
    assert!(!remaining.contains(&images[0]));
    assert!(remaining.contains(&images[1]));
    assert!(remaining.contains(&images[2]));
}

#[tokio::test]
async fn staged_retirement_disables_instead_of_deregistering() {
    let account = Account::new();
    let mut images = Vec::new();
    for day in 1..=3 {
        let snapshot = account.snapshot(REGION, 8).await;
        let image = account
            .register_ebs(
                REGION,
                &format!("stage-2026-01-0{day}"),
                &[("/dev/xvda", &snapshot)],
            )
            .await;
        account.backdate(REGION, &image, &format!("2026-01-0{day}T00:00:00Z"));
        images.push(image);
    }
    let snapshots_before = account.snapshot_ids().await;
    let (code, result) = cleanup(&account, &["--keep", "1", "--action", "disable", "--yes"]);
    assert_eq!(code, 0, "{result:#}");
    let staged = result["regions"][0]["staged"].as_array().unwrap();
    assert_eq!(staged.len(), 2);
    assert!(
        staged
            .iter()
            .all(|s| s["status"] == "done" && s["action"] == "disable")
    );
    // Nothing deregistered or deleted: the two older images are disabled, the newest untouched.
    assert_eq!(account.image_ids().await.len(), 3);
    assert_eq!(account.snapshot_ids().await, snapshots_before);
    let described = account
        .ec2()
        .describe_images()
        .owners("self")
        .include_disabled(true)
        .send()
        .await
        .unwrap();
    let disabled: BTreeSet<&str> = described
        .images()
        .iter()
        .filter(|i| i.state().map(|s| s.as_str()) == Some("disabled"))
        .filter_map(|i| i.image_id())
        .collect();
    assert_eq!(
        disabled,
        BTreeSet::from([images[0].as_str(), images[1].as_str()])
    );

    // Run again: already disabled, nothing more to do.
    let (code, again) = cleanup(&account, &["--keep", "1", "--action", "disable", "--yes"]);
    assert_eq!(code, 0);
    assert!(
        again["regions"][0]["staged"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["error"] == "already in that state")
    );
}

#[tokio::test]
async fn a_policy_file_runs_several_rules_and_keep_wins() {
    let account = Account::new();
    let mut web = Vec::new();
    let mut api = Vec::new();
    for day in 1..=3 {
        let (image, _) = account.image(REGION, &format!("web-2026-02-0{day}")).await;
        account.backdate(REGION, &image, &format!("2026-02-0{day}T00:00:00Z"));
        web.push(image);
        let (image, _) = account.image(REGION, &format!("api-2026-02-0{day}")).await;
        account.backdate(REGION, &image, &format!("2026-02-0{day}T00:00:00Z"));
        account.tag(REGION, &image, "team", "core").await;
        api.push(image);
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("retention.toml");
    std::fs::write(
        &policy,
        r#"
regions = ["us-east-1"]

[[rule]]
name = "web keep 1"
match_name = "web-*"
keep = 1

[[rule]]
name = "core keep 2"
match_tags = { team = "core" }
keep = 2

# A broad rule that would retire everything older than a day: the rules above keep their newest.
[[rule]]
name = "old"
older_than = "1d"
"#,
    )
    .unwrap();
    let policy_arg = policy.to_str().unwrap();
    let (code, result) = cleanup(&account, &["--policy", policy_arg, "--yes"]);
    assert_eq!(code, 0, "{result:#}");
    let remaining = account.image_ids().await;
    assert_eq!(
        remaining,
        BTreeSet::from([web[2].clone(), api[1].clone(), api[2].clone()]),
        "{result:#}"
    );
    let decisions = result["regions"][0]["decisions"].as_array().unwrap();
    assert!(decisions.iter().any(|d| d["rule"] == "old"
        && d["image_id"] == web[2].as_str()
        && d["verdict"] == "keep"
        && d["reason"].as_str().unwrap().contains("kept by web keep 1")));

    // A typo in a key is refused, naming it, and nothing runs.
    std::fs::write(&policy, "[[rule]]\nkep = 2\n").unwrap();
    let output = account.run(["cleanup", "--policy", policy_arg, "--yes"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown field `kep`"));
}

#[tokio::test]
async fn a_reviewed_plan_is_rechecked_when_applied() {
    let account = Account::new();
    let mut images = Vec::new();
    let mut snapshots = Vec::new();
    for day in 1..=4 {
        let (image, snapshot) = account.image(REGION, &format!("svc-2026-03-0{day}")).await;
        account.backdate(REGION, &image, &format!("2026-03-0{day}T00:00:00Z"));
        images.push(image);
        snapshots.push(snapshot);
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let plan_arg = plan.to_str().unwrap();

    // The plan: keep 1, so svc-01..03 go. Writing it changes nothing (no --yes needed).
    account.reset_requests();
    let output = account.run(["cleanup", "--keep", "1", "--plan-out", plan_arg]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("ami apply"));
    assert!(account.mutating_calls().is_empty());
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(file["account_id"], account.id.as_str());
    assert_eq!(file["regions"][0]["images"].as_array().unwrap().len(), 3);

    // Meanwhile an instance is launched from svc-01, and a new image starts using svc-02's
    // snapshot; svc-04 gets older than everything (it would now be retired by the rules, but
    // it is not in the reviewed plan).
    account.launch_instance(REGION, &images[0]).await;
    let newcomer = account
        .register_ebs(REGION, "newcomer", &[("/dev/xvda", &snapshots[1])])
        .await;

    let (code, result) = {
        let output = account.run(["apply", plan_arg, "--yes", "--output", "json"]);
        (output.status.code().unwrap(), json(&["apply"], &output))
    };
    // Skipping what changed is what apply is for: not a failure.
    assert_eq!(code, 0, "{result:#}");
    let report = &result["regions"][0]["retire"];
    let image = |id: &str| {
        report["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["image_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(image(&images[0])["action"], "blocked");
    assert!(
        image(&images[0])["reason"]
            .as_str()
            .unwrap()
            .contains("in use by instance")
    );
    assert_eq!(image(&images[1])["status"], "done");
    assert_eq!(image(&images[2])["status"], "done");
    let remaining = account.image_ids().await;
    assert_eq!(
        remaining,
        BTreeSet::from([images[0].clone(), images[3].clone(), newcomer.clone()])
    );
    let left = account.snapshot_ids().await;
    assert!(
        left.contains(&snapshots[0]),
        "svc-01 stays with its snapshot"
    );
    assert!(
        left.contains(&snapshots[1]),
        "the newcomer now uses svc-02's snapshot"
    );
    assert!(!left.contains(&snapshots[2]));
    assert!(left.contains(&snapshots[3]));

    // A plan from elsewhere is refused before any change.
    let other = Account::new();
    let output = other.run(["apply", plan_arg, "--yes"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("was made for account"));
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
        .filter_map(|o| o.key().map(String::from))
        .collect()
}

#[tokio::test]
async fn orphan_bundles_go_with_exactly_their_parts() {
    let account = Account::new();
    let bucket = crate::common::bucket_name(&account, "sweep");
    // An old bundle nothing uses; a live one an image uses; an unused one sharing a part with
    // the live one; a hostile one; and an unrelated object.
    account
        .put_bundle(&bucket, "b/", "old", &["old.0", "old.1"])
        .await;
    account.put_bundle(&bucket, "b/", "live", &["live.0"]).await;
    account
        .put_object(
            &bucket,
            "b/copy.manifest.xml",
            &bundle_manifest(&["live.0"]),
        )
        .await;
    account
        .put_object(
            &bucket,
            "b/evil.manifest.xml",
            &bundle_manifest(&["../victim"]),
        )
        .await;
    account.put_object(&bucket, "victim", b"stays").await;
    account.put_object(&bucket, "b/notes.txt", b"stays").await;
    account
        .register_manifest(REGION, "live", &format!("{bucket}/b/live.manifest.xml"))
        .await;

    let url = format!("s3://{bucket}/b/");
    let (code, result) = cleanup(&account, &["--orphan-bundles", &url, "--yes"]);
    assert_eq!(code, 0, "{result:#}");
    let bundles = result["regions"][0]["orphan_bundles"].as_array().unwrap();
    let by_key = |key: &str| {
        bundles
            .iter()
            .find(|b| b["manifest_key"] == key)
            .unwrap()
            .clone()
    };
    assert_eq!(by_key("b/old.manifest.xml")["status"], "done");
    assert_eq!(by_key("b/copy.manifest.xml")["action"], "keep");
    assert_eq!(by_key("b/evil.manifest.xml")["action"], "keep");
    let keys = object_keys(&account, &bucket).await;
    let expected: BTreeSet<String> = [
        "b/live.manifest.xml",
        "b/live.0",
        "b/copy.manifest.xml",
        "b/evil.manifest.xml",
        "victim",
        "b/notes.txt",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    assert_eq!(keys, expected);
}

/// A bundle is judged once, against the images of every region in the run and of its bucket's
/// region: a us-east-1 image's bundle survives a run over us-east-1 and eu-west-1, and a run over
/// eu-west-1 alone.
#[tokio::test]
async fn orphan_bundles_across_regions_keep_what_any_region_uses() {
    let account = Account::new();
    let bucket = crate::common::bucket_name(&account, "regions");
    account.put_bundle(&bucket, "p/", "live", &["live.0"]).await;
    account.put_bundle(&bucket, "p/", "old", &["old.0"]).await;
    account
        .register_manifest(REGION, "live", &format!("{bucket}/p/live.manifest.xml"))
        .await;
    let url = format!("s3://{bucket}/p/");

    // Only eu-west-1 in the run: the bucket's region (us-east-1) is read too.
    account.reset_requests();
    let (code, result) = cleanup(
        &account,
        &[
            "--region",
            "eu-west-1",
            "--orphan-bundles",
            &url,
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{result:#}");
    let bundles = result["regions"][0]["orphan_bundles"].as_array().unwrap();
    assert_eq!(bundles.len(), 1, "{result:#}");
    assert_eq!(bundles[0]["manifest_key"], "p/old.manifest.xml");
    assert!(account.requests().contains_key("s3:GetBucketLocation"));

    let (code, result) = cleanup(
        &account,
        &[
            "--region",
            "us-east-1",
            "--region",
            "eu-west-1",
            "--orphan-bundles",
            &url,
            "--yes",
        ],
    );
    assert_eq!(code, 0, "{result:#}");
    let judged: Vec<&Value> = result["regions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["orphan_bundles"].as_array().unwrap())
        .collect();
    assert_eq!(judged.len(), 1, "judged once: {result:#}");
    assert_eq!(judged[0]["manifest_key"], "p/old.manifest.xml");
    assert_eq!(judged[0]["status"], "done");
    assert_eq!(
        object_keys(&account, &bucket).await,
        BTreeSet::from(["p/live.manifest.xml".to_string(), "p/live.0".to_string()])
    );
}

/// A region of the run whose images cannot be read keeps every bundle, and the run says so.
#[tokio::test]
async fn an_unreadable_region_keeps_every_bundle() {
    let account = Account::new();
    let bucket = crate::common::bucket_name(&account, "unreadable");
    account.put_bundle(&bucket, "p/", "old", &["old.0"]).await;
    let url = format!("s3://{bucket}/p/");
    account.configure(serde_json::json!({
        "faults": {"denied": 1.0, "actions": ["ec2:DescribeImages"]}
    }));
    let (code, result) = cleanup(&account, &["--orphan-bundles", &url, "--yes"]);
    account.configure(serde_json::json!({"faults": null}));
    assert_eq!(code, 1, "{result:#}");
    let bundles = result["regions"][0]["orphan_bundles"].as_array().unwrap();
    assert_eq!(bundles[0]["action"], "keep", "{result:#}");
    assert!(
        bundles[0]["reason"].as_str().unwrap().contains("us-east-1"),
        "{result:#}"
    );
    assert_eq!(
        object_keys(&account, &bucket).await,
        BTreeSet::from(["p/old.manifest.xml".to_string(), "p/old.0".to_string()])
    );
}

/// A keep tag put on an image after the review keeps it when the plan is applied.
#[tokio::test]
async fn a_keep_tag_added_after_the_review_keeps_the_image() {
    let account = Account::new();
    let mut images = Vec::new();
    for day in 1..=3 {
        let (image, _) = account
            .image(REGION, &format!("tagged-2026-04-0{day}"))
            .await;
        account.backdate(REGION, &image, &format!("2026-04-0{day}T00:00:00Z"));
        images.push(image);
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let output = account
        .ami()
        .args(["cleanup", "--keep", "1", "--plan-out"])
        .arg(&plan)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    account.tag(REGION, &images[0], "retain", "true").await;
    let output = account.run(["apply", plan.to_str().unwrap(), "--yes", "--output", "json"]);
    let result = json(&["apply"], &output);
    assert_eq!(output.status.code(), Some(0), "{result:#}");
    let decision = result["regions"][0]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["image_id"] == images[0].as_str())
        .unwrap()
        .clone();
    assert_eq!(decision["verdict"], "keep", "{result:#}");
    assert!(
        decision["reason"].as_str().unwrap().contains("retain=true"),
        "{decision}"
    );
    assert_eq!(
        account.image_ids().await,
        BTreeSet::from([images[0].clone(), images[2].clone()])
    );
}

/// -q leaves stderr to errors: no summary line, no "plan written" line.
#[tokio::test]
async fn quiet_means_only_errors_on_stderr() {
    let account = Account::new();
    let (image, _) = account.image(REGION, "quiet-2026-01-01").await;
    account.backdate(REGION, &image, "2026-01-01T00:00:00Z");
    account.image(REGION, "quiet-2026-02-01").await;
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    for args in [
        vec!["cleanup", "--keep", "1", "--yes", "-q"],
        vec![
            "cleanup",
            "--keep",
            "1",
            "-q",
            "--plan-out",
            plan.to_str().unwrap(),
        ],
    ] {
        let output = account.run(&args);
        assert!(output.status.success(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            "",
            "{args:?} wrote to stderr"
        );
    }
}

/// Ctrl-C during the orphan sweep: the table says "not started" for what was never attempted.
#[tokio::test]
async fn an_interrupted_sweep_says_not_started() {
    let account = Account::new();
    let (base, _) = account.image(REGION, "sweep-base").await;
    let ec2 = account.ec2();
    let instance = account.launch_instance(REGION, &base).await;
    for n in 0..12 {
        let gone = ec2
            .create_image()
            .instance_id(&instance)
            .name(format!("gone-{n}-{}", account.id))
            .send()
            .await
            .unwrap()
            .image_id()
            .unwrap()
            .to_string();
        ec2.deregister_image().image_id(&gone).send().await.unwrap();
    }
    account.configure(serde_json::json!({"faults": {
        "latency": 1.0, "latency_ms": 1500, "actions": ["ec2:DeleteSnapshot"]
    }}));
    account.reset_requests();
    use std::os::unix::process::CommandExt;
    let child = account
        .ami_process()
        .process_group(0)
        .args(["cleanup", "--orphans", "--yes", "--color", "never"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !account.requests().contains_key("ec2:DeleteSnapshot") {
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    crate::common::interrupt_group(&child);
    let output = child.wait_with_output().unwrap();
    account.configure(serde_json::json!({"faults": null}));
    let table = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{table}");
    assert!(table.contains("not started"), "{table}");
    assert!(!table.contains("notstarted"), "{table}");
}

/// The rollback image: with the newest image pinned (retain tag, or in use), `--keep 2` still
/// keeps the two newest others, with flags and in a policy rule alike.
#[tokio::test]
async fn a_pinned_newest_image_takes_no_keep_slot() {
    for pin in ["tag", "instance"] {
        let account = Account::new();
        let mut images = Vec::new();
        for day in 1..=4 {
            let (image, _) = account.image(REGION, &format!("app-2026-01-0{day}")).await;
            account.backdate(REGION, &image, &format!("2026-01-0{day}T00:00:00Z"));
            images.push(image);
        }
        if pin == "tag" {
            account.tag(REGION, &images[3], "retain", "true").await;
        } else {
            account.launch_instance(REGION, &images[3]).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("keep.toml");
        std::fs::write(&policy, "[[rule]]\nmatch_name = \"app-*\"\nkeep = 2\n").unwrap();
        for args in [
            vec!["--keep", "2", "--dry-run"],
            vec!["--policy", policy.to_str().unwrap(), "--dry-run"],
        ] {
            let (code, plan) = cleanup(&account, &args);
            assert_eq!(code, 0, "{plan:#}");
            let retired: Vec<&str> = plan["regions"][0]["decisions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["verdict"] == "retire")
                .map(|d| d["image_id"].as_str().unwrap())
                .collect();
            assert_eq!(retired, [images[0].as_str()], "{pin} {args:?}: {plan:#}");
        }
    }
}

/// A pending-cleanup mark whose image still exists (a run killed before it deregistered) is
/// removed by the next cleanup, so the snapshot survives the image going some other way later.
#[tokio::test]
async fn a_stale_cleanup_mark_is_removed_not_acted_on() {
    let account = Account::new();
    let (image, snapshot) = account.image(REGION, "stale-mark").await;
    account
        .tag(REGION, &snapshot, "ami:cleanup-pending-for", &image)
        .await;
    let (code, result) = cleanup(&account, &["--keep", "5", "--yes"]);
    assert_eq!(code, 0, "{result:#}");
    let tags = account.tags_of(REGION, &snapshot).await;
    assert!(tags.is_empty(), "{tags:?}");
    account
        .ec2()
        .deregister_image()
        .image_id(&image)
        .send()
        .await
        .unwrap();
    let (code, result) = cleanup(&account, &["--keep", "5", "--yes"]);
    assert_eq!(code, 0, "{result:#}");
    assert!(account.snapshot_ids().await.contains(&snapshot));
}

/// The bucket's region cannot be found: no bundle is touched and the run says so (exit 3), while
/// the region's shown retirements still happen.
#[tokio::test]
async fn an_unlocatable_bucket_sweeps_nothing_and_says_so() {
    let account = Account::new();
    let bucket = crate::common::bucket_name(&account, "unlocatable");
    account.put_bundle(&bucket, "p/", "old", &["old.0"]).await;
    let (old, _) = account.image(REGION, "loc-2026-01-01").await;
    account.backdate(REGION, &old, "2026-01-01T00:00:00Z");
    let (new, _) = account.image(REGION, "loc-2026-02-01").await;
    account.backdate(REGION, &new, "2026-02-01T00:00:00Z");
    account.configure(serde_json::json!({
        "faults": {"denied": 1.0, "actions": ["s3:GetBucketLocation"]}
    }));
    let url = format!("s3://{bucket}/p/");
    let (code, result) = cleanup(
        &account,
        &["--keep", "1", "--orphan-bundles", &url, "--yes"],
    );
    account.configure(serde_json::json!({"faults": null}));
    assert_eq!(code, 3, "{result:#}");
    let problems = result["regions"][0]["problems"].as_array().unwrap();
    assert!(
        problems[0].as_str().unwrap().contains("not swept"),
        "{result:#}"
    );
    assert_eq!(
        object_keys(&account, &bucket).await,
        BTreeSet::from(["p/old.manifest.xml".to_string(), "p/old.0".to_string()])
    );
    assert_eq!(account.image_ids().await, BTreeSet::from([new]));
}

#[tokio::test]
async fn unused_for_judges_by_the_launch_time_describe_images_reports() {
    let account = Account::new();
    let mut images = Vec::new();
    for name in ["stale", "recent", "never"] {
        let (image, _) = account.image(REGION, &format!("app-{name}")).await;
        account.backdate(REGION, &image, "2025-01-01T00:00:00Z");
        images.push(image);
    }
    // Launched (and the instance gone): long ago, and just now. `never` has no launch time.
    for image in &images[..2] {
        let instance = account.launch_instance(REGION, image).await;
        account
            .ec2()
            .terminate_instances()
            .instance_ids(instance)
            .send()
            .await
            .unwrap();
    }
    account.backdate_launch(REGION, &images[0], "2026-01-01T00:00:00Z");
    account.reset_requests();

    let (code, result) = cleanup(&account, &["--unused-for", "90d", "--yes"]);
    assert_eq!(code, 0, "{result:#}");
    let decision = |id: &str| {
        result["regions"][0]["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["image_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(decision(&images[0])["verdict"], "retire", "{result:#}");
    let recent = decision(&images[1]);
    assert_eq!(recent["verdict"], "keep");
    assert!(
        recent["reason"].as_str().unwrap().contains("launched"),
        "{recent}"
    );
    let never = decision(&images[2]);
    assert_eq!(never["verdict"], "keep");
    assert!(
        never["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be judged"),
        "{never}"
    );
    assert_eq!(
        account.image_ids().await,
        BTreeSet::from([images[1].clone(), images[2].clone()])
    );
    // Read from DescribeImages, never one attribute call per image.
    let reads = account.attribute_reads();
    assert!(!reads.contains_key("lastLaunchedTime"), "{reads:?}");
}
