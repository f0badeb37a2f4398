//! The Recycle Bin: plans say what will be recoverable, `ami restore` brings it back, `ami list
//! --recycle-bin` shows what is there.

use crate::common::{Account, REGION, json};
use serde_json::Value;
use std::collections::BTreeSet;

fn ami(account: &Account, args: &[&str]) -> (i32, Value, String) {
    let output = account
        .ami()
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let value = if output.stdout.is_empty() {
        Value::Null
    } else {
        json(args, &output)
    };
    (output.status.code().unwrap(), value, stderr)
}

/// `ami list --recycle-bin`: the ids in the bin, and the document.
fn in_the_bin(account: &Account) -> (BTreeSet<String>, Value) {
    let (code, bin, stderr) = ami(account, &["list", "--recycle-bin"]);
    assert_eq!(code, 0, "{stderr}");
    let ids = bin["recycle_bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_string())
        .collect();
    (ids, bin)
}

fn by_id<'a>(items: &'a Value, key: &str, id: &str) -> &'a Value {
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item[key] == id)
        .unwrap_or_else(|| panic!("no {id} in {items:#}"))
}

/// A cleanup whose plan says recoverable; the image and its snapshot restored; the image
/// launches again.
#[tokio::test]
async fn a_retired_image_comes_back_with_its_snapshot_and_launches() {
    let account = Account::new();
    // Images: every one, 14 days. Snapshots: only those tagged team=web, 7 days.
    account.recycle_rule(REGION, "EC2_IMAGE", 14, &[]).await;
    account
        .recycle_rule(REGION, "EBS_SNAPSHOT", 7, &[("team", Some("web"))])
        .await;
    let (old, old_snapshot) = account.image(REGION, "app-2026.01.01").await;
    account.backdate(REGION, &old, "2026-01-01T00:00:00Z");
    account.tag(REGION, &old_snapshot, "team", "web").await;
    let (other, other_snapshot) = account.image(REGION, "app-2026.02.01").await;
    account.backdate(REGION, &other, "2026-02-01T00:00:00Z");
    let (_newest, _) = account.image(REGION, "app-2026.03.01").await;

    let (code, plan, stderr) = ami(&account, &["cleanup", "--keep", "1", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    let retire = &plan["regions"][0]["retire"];
    let image = by_id(&retire["images"], "image_id", &old);
    assert_eq!(image["recycle_bin"]["status"], "recoverable", "{image:#}");
    let until = image["recycle_bin"]["until"].as_str().unwrap();
    let days = (chrono::DateTime::parse_from_rfc3339(until)
        .unwrap()
        .to_utc()
        - chrono::Utc::now())
    .num_hours();
    // Its snapshot is kept 7 days: the image is usable that long.
    assert!((7 * 24 - 2..=7 * 24).contains(&days), "{until}");
    let tagged = by_id(&retire["snapshots"], "snapshot_id", &old_snapshot);
    assert_eq!(tagged["recycle_bin"]["status"], "recoverable");
    // Not tagged: the snapshot rule does not select it.
    let untagged = by_id(&retire["snapshots"], "snapshot_id", &other_snapshot);
    assert_eq!(untagged["recycle_bin"]["status"], "not_recoverable");
    // The other image would come back without its snapshot: it cannot launch, so it does not
    // count as recoverable.
    let other_image = by_id(&retire["images"], "image_id", &other);
    assert_eq!(other_image["recycle_bin"]["status"], "not_recoverable");
    let summary = &retire["recycle_bin"];
    assert_eq!(
        summary["images"],
        serde_json::json!({"total": 2, "recoverable": 1, "unknown": 0}),
        "{summary}"
    );
    assert_eq!(
        summary["snapshots"],
        serde_json::json!({"total": 2, "recoverable": 1, "unknown": 0}),
        "{summary}"
    );
    assert!(summary["restorable_until"].is_string(), "{summary}");
    // The table says it too.
    let table = account.run(["cleanup", "--keep", "1", "--dry-run"]).stdout;
    let table = String::from_utf8_lossy(&table);
    assert!(
        table.contains("UNDO") && table.contains("Recycle Bin: 1 of 2"),
        "{table}"
    );

    let (code, _, stderr) = ami(&account, &["cleanup", "--keep", "1", "--yes"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!account.image_ids().await.contains(&old));

    // What the bin holds, and until when.
    let (ids, bin) = in_the_bin(&account);
    assert_eq!(
        ids,
        BTreeSet::from([old.clone(), other.clone(), old_snapshot.clone()])
    );
    assert!(by_id(&bin["recycle_bin"], "id", &old)["leaves"].is_string());

    // A dry run restores nothing.
    account.reset_requests();
    let (code, dry, _) = ami(&account, &["restore", &old, "--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(dry["images"][0]["status"], "would_restore");
    assert!(account.mutating_calls().is_empty());

    let (code, restored, stderr) = ami(&account, &["restore", &old]);
    assert_eq!(code, 0, "{stderr}");
    let image = &restored["images"][0];
    assert_eq!(image["status"], "restored", "{restored:#}");
    assert_eq!(image["snapshots"][0]["snapshot_id"], old_snapshot.as_str());
    assert_eq!(image["snapshots"][0]["status"], "restored");
    assert!(account.image_ids().await.contains(&old));
    assert!(account.snapshot_ids().await.contains(&old_snapshot));
    // It launches.
    account.launch_instance(REGION, &old).await;
}

#[tokio::test]
async fn an_id_not_in_the_bin_stops_before_any_change() {
    let account = Account::new();
    account.recycle_rule(REGION, "EC2_IMAGE", 7, &[]).await;
    let (binned, _) = account.image(REGION, "binned").await;
    account
        .ec2()
        .deregister_image()
        .image_id(&binned)
        .send()
        .await
        .unwrap();
    let gone = "ami-0123456789abcdef0";
    account.reset_requests();
    let (code, _, stderr) = ami(&account, &["restore", &binned, gone]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "neither in the Recycle Bin of {REGION} nor in the account: {gone}"
        )),
        "{stderr}"
    );
    assert!(account.mutating_calls().is_empty());
    let (code, _, stderr) = ami(&account, &["restore", "vol-12345678"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("'vol-12345678'"), "{stderr}");
    assert!(!account.image_ids().await.contains(&binned));
}

/// Rules that cannot be read make the outcome unknown, never recoverable; the plan still runs.
#[tokio::test]
async fn unreadable_rules_are_unknown_not_recoverable() {
    let account = Account::new();
    account.recycle_rule(REGION, "EC2_IMAGE", 7, &[]).await;
    let (image, _) = account.image(REGION, "rules-denied").await;
    for action in ["rbin:ListRules", "rbin:GetRule"] {
        account.configure(serde_json::json!({
            "faults": {"denied": 1.0, "actions": [action]}
        }));
        let (code, report, stderr) = ami(&account, &["deregister", &image, "--dry-run"]);
        assert_eq!(code, 0, "{stderr}");
        let recovery = &report["images"][0]["recycle_bin"];
        assert_eq!(recovery["status"], "unknown", "{action}: {report:#}");
        assert!(
            recovery["reason"]
                .as_str()
                .unwrap()
                .contains("AccessDenied"),
            "{recovery}"
        );
        assert_eq!(
            report["recycle_bin"]["images"],
            serde_json::json!({"total": 1, "recoverable": 0, "unknown": 1}),
            "{report:#}"
        );
        assert_eq!(report["recycle_bin"]["restorable_until"], Value::Null);
    }
    account.configure(serde_json::json!({"faults": null}));
    let (_, report, _) = ami(&account, &["deregister", &image, "--dry-run"]);
    assert_eq!(report["images"][0]["recycle_bin"]["status"], "recoverable");
}

/// Rules, locks, usage reports and the bin are read to their last page: with one item a page,
/// nothing is missed.
#[tokio::test]
async fn every_new_listing_is_read_to_its_last_page() {
    let account = Account::new();
    let consumer = Account::new();
    for days in [7, 14] {
        account.recycle_rule(REGION, "EC2_IMAGE", days, &[]).await;
        account
            .recycle_rule(REGION, "EBS_SNAPSHOT", days, &[("never", None)])
            .await;
    }
    let root = account.snapshot(REGION, 8).await;
    let data = account.snapshot(REGION, 8).await;
    let locked = account
        .register_ebs(
            REGION,
            "paged-locked",
            &[("/dev/xvda", &root), ("/dev/xvdb", &data)],
        )
        .await;
    for snapshot in [&root, &data] {
        account.lock_snapshot(REGION, snapshot, 7).await;
    }
    let mut shared = Vec::new();
    for name in ["paged-a", "paged-b", "paged-c"] {
        let (image, _) = account.image(REGION, name).await;
        account.share_with(&image, &consumer.id).await;
        shared.push(image);
    }
    // The consumer runs b and c: two entries in two reports.
    consumer.launch_instance(REGION, &shared[1]).await;
    consumer.launch_instance(REGION, &shared[2]).await;
    account.set_page_size(1);
    account.reset_requests();

    let (code, report, stderr) = ami(
        &account,
        &[
            "deregister",
            &locked,
            &shared[0],
            &shared[1],
            &shared[2],
            "--cleanup",
            "--yes",
        ],
    );
    // Two images are in use: a partial success.
    assert_eq!(code, 3, "{stderr}");
    let image = |id: &str| by_id(&report["images"], "image_id", id).clone();
    assert_eq!(image(&locked)["status"], "done");
    assert_eq!(image(&shared[0])["status"], "done");
    for used in &shared[1..] {
        assert_eq!(image(used)["action"], "blocked", "{:#}", image(used));
    }
    for snapshot in [&root, &data] {
        let item = by_id(&report["snapshots"], "snapshot_id", snapshot);
        assert_eq!(item["action"], "keep", "{item:#}");
        assert!(
            item["reason"].as_str().unwrap().starts_with("locked"),
            "{item:#}"
        );
    }
    // Four rules over two resource types, one a page: at least two pages each.
    let requests = account.requests();
    assert!(requests["rbin:ListRules"] >= 4, "{requests:?}");
    assert_eq!(requests["rbin:GetRule"], 4, "{requests:?}");
    assert!(requests["ec2:DescribeLockedSnapshots"] >= 2, "{requests:?}");

    let (ids, _) = in_the_bin(&account);
    assert_eq!(ids, BTreeSet::from([locked.clone(), shared[0].clone()]));
}

/// Interrupted after the image came back but before its snapshot did: the same command again
/// finishes the job (the image is `present`, its snapshot restored) instead of refusing.
#[tokio::test]
async fn a_rerun_finishes_an_interrupted_restore() {
    let account = Account::new();
    account.recycle_rule(REGION, "EC2_IMAGE", 7, &[]).await;
    account.recycle_rule(REGION, "EBS_SNAPSHOT", 7, &[]).await;
    // Registered from a snapshot made by hand: its description does not name the image, so only
    // the restored image's mapping leads to it.
    let (image, snapshot) = account.image(REGION, "half-restored").await;
    let (code, _, stderr) = ami(&account, &["deregister", &image, "--cleanup", "--yes"]);
    assert_eq!(code, 0, "{stderr}");
    // What a run stopped between its two steps leaves: the image back, the snapshot in the bin.
    account
        .ec2()
        .restore_image_from_recycle_bin()
        .image_id(&image)
        .send()
        .await
        .unwrap();
    assert!(!account.snapshot_ids().await.contains(&snapshot));

    let (code, report, stderr) = ami(&account, &["restore", &image]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["images"][0]["status"], "present", "{report:#}");
    assert_eq!(
        report["images"][0]["snapshots"][0]["snapshot_id"],
        snapshot.as_str()
    );
    assert_eq!(report["images"][0]["snapshots"][0]["status"], "restored");
    assert!(account.snapshot_ids().await.contains(&snapshot));
    // Once more: everything is there, nothing to do.
    account.reset_requests();
    let (code, report, _) = ami(&account, &["restore", &image]);
    assert_eq!(code, 0);
    assert_eq!(report["images"][0]["snapshots"][0]["status"], "present");
    assert!(account.mutating_calls().is_empty());
}
