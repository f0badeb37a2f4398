//! Faults, throttling and interruption: the final state is what was meant, and the report says
//! what happened. Through the real binary against the emulator with its fault injection.

use crate::common::{Account, json};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `ami cleanup --keep 2 --yes` with the tool's own retry defaults (not the suite's 1 attempt).
fn cleanup(account: &Account, extra: &[&str]) -> (i32, Value) {
    let output = account
        .ami()
        .env_remove("AWS_MAX_ATTEMPTS")
        .args(["cleanup", "--keep", "2", "--output", "json"])
        .args(extra)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    let document = json(&["cleanup"], &output);
    (output.status.code().unwrap(), document)
}

/// Estate names carry their creation time (`fam03-20250101120000-0012`); two estates built a
/// moment apart compare by family and position.
fn normalised(names: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    names
        .into_iter()
        .map(|name| {
            let parts: Vec<&str> = name.split('-').collect();
            format!("{}-{}", parts[0], parts[parts.len() - 1])
        })
        .collect()
}

/// Every item of every retirement report, as (kind, id, status).
fn items(report: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for region in report["regions"].as_array().unwrap() {
        let retire = &region["retire"];
        for (kind, key) in [("image", "image_id"), ("snapshot", "snapshot_id")] {
            for item in retire[format!("{kind}s")].as_array().into_iter().flatten() {
                out.push((
                    kind.to_string(),
                    item[key].as_str().unwrap().to_string(),
                    item["status"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

/// Remaining images (normalised names), and whether the snapshots left are exactly those the
/// remaining images use (nothing a remaining image needs is gone, nothing retired lingers).
async fn final_state(account: &Account) -> BTreeSet<String> {
    let images = account.images_by_name().await;
    let referenced: BTreeSet<String> = images.values().flatten().cloned().collect();
    let snapshots = account.all_snapshot_ids().await;
    assert_eq!(
        snapshots, referenced,
        "account {}: the snapshots left must be exactly those of the images left",
        account.id
    );
    normalised(images.into_keys())
}

/// The names of the images a cleanup document decides to retire (first region).
fn retired_names(plan: &Value) -> BTreeSet<String> {
    plan["regions"][0]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["verdict"] == "retire")
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

/// The images left are those `before` had minus the `retired` names, with exactly their snapshots.
async fn left_as_planned(
    account: &Account,
    before: &BTreeMap<String, Vec<String>>,
    retired: &BTreeSet<String>,
) {
    let expected: BTreeSet<String> = before
        .keys()
        .filter(|name| !retired.contains(*name))
        .cloned()
        .collect();
    let left = account.images_by_name().await;
    assert_eq!(left.keys().cloned().collect::<BTreeSet<_>>(), expected);
    final_state(account).await;
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// xorshift: enough randomness for kill times, reproducible from the printed seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test]
async fn a_fifth_of_calls_failing_changes_nothing_but_the_time_taken() {
    let calm = Account::new();
    let faulty = Account::new();
    calm.seed_estate(300, 10);
    faulty.seed_estate(300, 10);
    // 20% of every call the account makes: throttled, 500 before or after the work is done, the
    // connection dropped before or after (a lost answer).
    faulty.configure(json!({"faults": {
        "throttle": 0.04, "error": 0.04, "error_after": 0.04, "drop": 0.04, "drop_after": 0.04
    }}));

    let (code, calm_report) = cleanup(&calm, &["--yes"]);
    assert_eq!(code, 0);
    let (code, faulty_report) = cleanup(&faulty, &["--yes"]);
    assert_eq!(code, 0, "every fault is retried or recognised");

    // The checks below read the account through the SDK: without faults, so they cannot flake.
    faulty.configure(json!({"faults": null}));
    let injected = faulty.faults_injected();
    for kind in ["throttle", "error", "error_after", "drop", "drop_after"] {
        let count: u64 = injected
            .iter()
            .filter(|(key, _)| key.ends_with(&format!(":{kind}")))
            .map(|(_, n)| n)
            .sum();
        assert!(count > 0, "no {kind} fault was injected: {injected:?}");
    }
    // Nothing reported failed: a retry that finds its work already done counts it done.
    let faulty_items = items(&faulty_report);
    assert!(
        faulty_items
            .iter()
            .all(|(_, _, status)| status == "done" || status == "skipped"),
        "{:?}",
        faulty_items
            .iter()
            .filter(|(_, _, status)| status != "done" && status != "skipped")
            .collect::<Vec<_>>()
    );
    // Reported as in reality: everything reported done is gone.
    let images = faulty.images_by_name().await;
    let image_ids = faulty.image_ids().await;
    let snapshots = faulty.all_snapshot_ids().await;
    for (kind, id, status) in &faulty_items {
        let exists = match kind.as_str() {
            "image" => image_ids.contains(id),
            _ => snapshots.contains(id),
        };
        assert_eq!(exists, status != "done", "{kind} {id} reported {status}");
    }
    // Same retirements as without faults, and the same final state.
    let counts = |report: &Value| -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (kind, _, status) in items(report) {
            *counts.entry(format!("{kind} {status}")).or_default() += 1;
        }
        counts
    };
    assert_eq!(counts(&faulty_report), counts(&calm_report));
    assert_eq!(final_state(&faulty).await, final_state(&calm).await);
    // 2 kept per family, and the one in use.
    assert_eq!(images.len(), 30);
}

/// With AWS's per-action buckets (time compressed 10×) and `ami` told the rates are 10× AWS's,
/// the bulk writes are paced below the buckets' refill: none of them is refused. (Run without
/// pacing, the emulator takes DeregisterImage faster than its bucket refills.)
#[tokio::test]
async fn bulk_writes_are_paced_to_ec2s_buckets_instead_of_throttled() {
    let account = Account::new();
    account.seed_estate(300, 10);
    account.configure(json!({"throttle": {"model": "ec2", "compression": 10}}));
    account.reset_requests();
    let output = account
        .ami()
        .env("AMI_EC2_RATE_SCALE", "10")
        .env_remove("AWS_MAX_ATTEMPTS")
        .args(["cleanup", "--keep", "2", "--yes", "--output", "json"])
        .output()
        .unwrap();
    account.configure(json!({"throttle": null}));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = account.requests();
    assert!(requests["ec2:DeregisterImage"] > 200, "{requests:?}");
    let refused: BTreeMap<String, u64> = account
        .faults_injected()
        .into_iter()
        .filter(|(key, _)| {
            [
                "DeregisterImage",
                "DeleteSnapshot",
                "CreateTags",
                "DeleteTags",
            ]
            .iter()
            .any(|action| key.starts_with(&format!("ec2:{action}:")))
        })
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}

#[tokio::test]
async fn under_ec2_style_throttling_the_client_slows_down_instead_of_failing() {
    let account = Account::new();
    account.seed_estate(100, 5);
    // EC2's model for mutating calls, scaled down: a bucket of 10, refilled at 20 per second.
    account.configure(json!({"throttle": {"burst": 10, "refill_per_second": 20}}));
    account.reset_requests();
    let (code, report) = cleanup(&account, &["--yes"]);
    assert_eq!(code, 0);
    let items = items(&report);
    assert!(items.iter().all(|(_, _, s)| s == "done" || s == "skipped"));
    let throttled: u64 = account.faults_injected().values().sum();
    let deregistered = items
        .iter()
        .filter(|(kind, _, status)| kind == "image" && status == "done")
        .count() as u64;
    assert!(
        throttled > 0,
        "the throttle never bit: the test proves nothing"
    );
    // Client-side rate adaptation, not a retry storm: most calls go through the first time.
    assert!(
        throttled * 2 < deregistered,
        "{throttled} throttled answers for {deregistered} deregistrations"
    );
    // Every DeregisterImage refused was sent again (other calls draw from the bucket too).
    let refused_deregistrations: u64 = account
        .faults_injected()
        .into_iter()
        .filter(|(key, _)| key.starts_with("ec2:DeregisterImage:"))
        .map(|(_, count)| count)
        .sum();
    let requests = account.requests();
    assert_eq!(
        requests["ec2:DeregisterImage"],
        deregistered + refused_deregistrations,
        "{requests:?}"
    );
}

#[tokio::test]
async fn killed_at_random_points_a_rerun_converges_on_the_plan() {
    let account = Account::new();
    account.seed_estate(300, 10);
    let before = account.images_by_name().await;
    let (code, plan) = cleanup(&account, &["--dry-run"]);
    assert_eq!(code, 0);
    let retired = retired_names(&plan);
    assert_eq!(retired.len(), 270);

    let mut state = seed() | 1;
    eprintln!("kill seed: {state}");
    let mut killed_mid_run = 0;
    for _ in 0..4 {
        let delay = Duration::from_millis(200 + next(&mut state) % 2000);
        let mut child = account
            .ami_process()
            .env_remove("AWS_MAX_ATTEMPTS")
            .args(["cleanup", "--keep", "2", "--yes", "--output", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(killed_mid_run > 0, "no run was still going when killed");

    let (code, _) = cleanup(&account, &["--yes"]);
    assert_eq!(code, 0);
    // Every snapshot a kept image uses is there; none of the retired ones is.
    left_as_planned(&account, &before, &retired).await;
}

#[tokio::test]
async fn ctrl_c_finishes_calls_in_flight_starts_nothing_new_and_says_so() {
    let account = Account::new();
    account.seed_estate(120, 4);
    // A slow endpoint, so the run is still going when Ctrl-C comes.
    account.configure(json!({"latency_ms": 150}));
    account.reset_requests();
    let child = account
        .ami_process()
        .env_remove("AWS_MAX_ATTEMPTS")
        .args(["cleanup", "--keep", "2", "--yes", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while account
        .requests()
        .get("ec2:DeregisterImage")
        .copied()
        .unwrap_or(0)
        < 8
    {
        assert!(started.elapsed() < Duration::from_secs(60), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("not started"), "{stderr}");

    let report = json(&["cleanup"], &output);
    let images: Vec<(String, String, String)> = items(&report)
        .into_iter()
        .filter(|(kind, _, _)| kind == "image")
        .collect();
    let done = images.iter().filter(|(_, _, s)| s == "done").count();
    let not_started = images.iter().filter(|(_, _, s)| s == "not_started").count();
    assert!(done >= 8, "calls in flight were finished: {done}");
    assert!(not_started > 0, "work not yet started was not started");
    assert!(
        images
            .iter()
            .all(|(_, _, s)| ["done", "not_started", "skipped"].contains(&s.as_str())),
        "{images:?}"
    );
    // The report is the truth: done is gone, not started is still there.
    let existing = account.image_ids().await;
    for (_, id, status) in &images {
        assert_eq!(existing.contains(id), status != "done", "{id} {status}");
    }

    account.configure(json!({"latency_ms": null}));
    let (code, _) = cleanup(&account, &["--yes"]);
    assert_eq!(code, 0);
    assert_eq!(account.images_by_name().await.len(), 4 * 2 + 4);
    final_state(&account).await;
}

/// Unattended, the retirements start while the consumer checks are still being read (EC2 gives
/// reads and writes separate budgets): with slow launch-permission reads, the first
/// DeregisterImage comes before the last read. The account ends as the plan said.
#[tokio::test]
async fn an_unattended_cleanup_retires_while_it_still_reads() {
    let account = Account::new();
    account.seed_estate(60, 3);
    account.reset_requests();
    let (code, plan) = cleanup(&account, &["--dry-run"]);
    assert_eq!(code, 0);
    let reads = account.requests()["ec2:DescribeImageAttribute"];
    let retired = retired_names(&plan);
    assert!(
        reads > 40 && retired.len() > 40,
        "{reads} reads, {retired:?}"
    );
    let before = account.images_by_name().await;

    account.configure(json!({"faults": {
        "latency": 1.0, "latency_ms": 300, "actions": ["ec2:DescribeImageAttribute"]
    }}));
    account.reset_requests();
    let child = account
        .ami_process()
        .args(["cleanup", "--keep", "2", "--yes", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Watch the counters while the run goes on (its output is read at the same time, so that a
    // full pipe cannot hold it up).
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let account = Account {
            id: account.id.clone(),
        };
        let running = running.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "never finished"
                );
                let requests = account.requests();
                let count = |action: &str| requests.get(action).copied().unwrap_or(0);
                if count("ec2:DeregisterImage") > 0 {
                    return Some(count("ec2:DescribeImageAttribute"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        })
    };
    let output = child.wait_with_output().unwrap();
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    let overlapped = watcher.join().unwrap();
    account.configure(json!({"faults": null}));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let first_write_after = overlapped.expect("no image was deregistered");
    assert!(
        first_write_after < reads,
        "the first DeregisterImage came after all {reads} launch-permission reads"
    );
    // The same reads as the plan, and the plan's result.
    assert_eq!(account.requests()["ec2:DescribeImageAttribute"], reads);
    let report = json(&["cleanup"], &output);
    left_as_planned(&account, &before, &retired).await;
    let images: Vec<(String, String, String)> = items(&report)
        .into_iter()
        .filter(|(kind, _, _)| kind == "image")
        .collect();
    assert_eq!(images.len(), retired.len());
    assert!(
        images.iter().all(|(_, _, status)| status == "done"),
        "{images:?}"
    );
}

/// A launch permission that cannot be read keeps its image (who else uses it is unknown), says
/// why, and the run fails: a check that did not run is not a pass.
#[tokio::test]
async fn an_unreadable_launch_permission_keeps_the_image_and_fails_the_run() {
    let account = Account::new();
    account.seed_estate(20, 2);
    account.configure(json!({"faults": {
        "denied": 1.0, "actions": ["ec2:DescribeImageAttribute"]
    }}));
    account.reset_requests();
    let before = account.image_ids().await;
    let (code, report) = cleanup(&account, &["--yes"]);
    account.configure(json!({"faults": null}));
    assert_eq!(code, 1, "nothing was done, and checks failed: {report}");
    let requests = account.requests();
    assert!(requests["ec2:DescribeImageAttribute"] > 0, "{requests:?}");
    assert!(
        !requests.contains_key("ec2:DeregisterImage"),
        "{requests:?}"
    );
    assert_eq!(account.image_ids().await, before);
    let region = &report["regions"][0];
    let kept_unread: Vec<&Value> = region["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["verdict"] == "keep"
                && d["reason"]
                    .as_str()
                    .unwrap()
                    .contains("launch permissions (could not be read")
        })
        .collect();
    assert!(kept_unread.len() > 10, "{region}");
    let problems = region["problems"].as_array().unwrap();
    assert_eq!(problems.len(), kept_unread.len(), "{problems:?}");
}
