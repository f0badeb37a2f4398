//! Many accounts: `--role-arn`, `--accounts --role-name`, `--accounts-from-org`, and checking the
//! accounts an image is shared with before retiring it. The emulator maps an assumed role's
//! credentials to the role's account, and can refuse chosen roles.

use crate::common::{Account, REGION, json};
use serde_json::{Value, json};

fn run(account: &Account, args: &[&str]) -> (i32, Value) {
    let output = account
        .ami()
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    if !output.status.success() {
        eprintln!("{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    // Across accounts, the verb's document is wrapped per account; else it is the verb's own.
    let document = json(args, &output);
    (output.status.code().unwrap(), document)
}

fn image_ids_of(result: &Value) -> Vec<(String, String)> {
    let mut ids: Vec<(String, String)> = result["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["region"].as_str().unwrap().to_string(),
                i["image_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn list_across_accounts_and_regions_reports_each_and_survives_a_refused_role() {
    let tooling = Account::new();
    let (a, b, c) = (Account::new(), Account::new(), Account::new());
    let mut expected = Vec::new();
    for account in [&a, &b, &c] {
        let mut mine = Vec::new();
        for region in [REGION, "eu-west-1"] {
            let (image, _) = account.image(region, &format!("app-{}", account.id)).await;
            mine.push((region.to_string(), image));
        }
        mine.sort();
        expected.push(mine);
    }
    let accounts = format!("{},{},{}", a.id, b.id, c.id);
    let args = [
        "list",
        "--accounts",
        &accounts,
        "--role-name",
        "Admin",
        "--region",
        REGION,
        "--region",
        "eu-west-1",
    ];
    tooling.reset_requests();
    let (code, out) = run(&tooling, &args);
    assert_eq!(code, 0);
    // One AssumeRole per account, whatever the regions: the session is reused.
    assert_eq!(
        tooling.requests().get("sts:AssumeRole"),
        Some(&3),
        "{:?}",
        tooling.requests()
    );
    let listed = out["accounts"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for (entry, (account, mine)) in listed.iter().zip([&a, &b, &c].iter().zip(&expected)) {
        assert_eq!(entry["account_id"], account.id.as_str());
        assert_eq!(
            entry["role_arn"],
            format!("arn:aws:iam::{}:role/Admin", account.id).as_str()
        );
        assert_eq!(
            &image_ids_of(&entry["result"]),
            mine,
            "six pairs, each its own"
        );
    }

    // B refuses the role: A and C are still listed, B's error is reported, exit 3.
    b.configure(json!({"refuse_roles": ["Admin"]}));
    let (code, out) = run(&tooling, &args);
    assert_eq!(code, 3);
    let listed = out["accounts"].as_array().unwrap();
    assert_eq!(&image_ids_of(&listed[0]["result"]), &expected[0]);
    assert_eq!(&image_ids_of(&listed[2]["result"]), &expected[2]);
    assert!(listed[1]["result"].is_null());
    let error = listed[1]["error"].as_str().unwrap();
    assert!(
        error.contains("AccessDenied") && error.contains(&format!("{}:role/Admin", b.id)),
        "{error}"
    );

    // --output jsonl: a line per account as it finishes, each an account's entry.
    let output = tooling
        .ami()
        .args(args)
        .args(["--output", "jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON document"))
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        crate::common::schema::check("fleet-line", line);
    }
    let mut ids: Vec<&str> = lines
        .iter()
        .map(|l| l["account_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut given = vec![a.id.as_str(), b.id.as_str(), c.id.as_str()];
    given.sort();
    assert_eq!(ids, given);
    let refused = lines
        .iter()
        .find(|l| l["account_id"] == b.id.as_str())
        .unwrap();
    assert!(refused["result"].is_null() && refused["error"].is_string());

    // The table groups by account.
    let output = tooling.run(args);
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains(&format!("=== account {}", a.id)), "{table}");
    assert!(table.contains("FAILED: cannot assume"), "{table}");
}

#[tokio::test]
async fn one_role_or_the_whole_organization() {
    let tooling = Account::new();
    let workload = Account::new();
    let (image, _) = workload.image(REGION, "workload-app").await;

    // --role-arn: the verb's own document, in the role's account.
    let arn = format!("arn:aws:iam::{}:role/Deployer", workload.id);
    let (code, out) = run(&tooling, &["list", "--role-arn", &arn]);
    assert_eq!(code, 0);
    assert_eq!(out["images"][0]["image_id"], image.as_str());
    let other = Account::new();
    let (code, out) = run(
        &tooling,
        &["share", &image, "--account", &other.id, "--role-arn", &arn],
    );
    assert_eq!(code, 0);
    assert_eq!(
        out["regions"][0]["launch_permissions"]["accounts"][0],
        other.id.as_str()
    );
    let output = tooling.run(["list", "--role-arn", "arn:aws:iam::12:role/x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("'arn:aws:iam::12:role/x'"));

    // --accounts-from-org: every active account of the organization.
    let org = tooling.organizations();
    org.create_organization().send().await.unwrap();
    org.create_account()
        .account_name("workload-2")
        .email("w2@example.com")
        .send()
        .await
        .unwrap();
    let members: Vec<String> = org
        .list_accounts()
        .send()
        .await
        .unwrap()
        .accounts()
        .iter()
        .filter_map(|a| a.id().map(String::from))
        .collect();
    assert_eq!(members.len(), 2);
    // The management account has no OrganizationAccountAccessRole: it is worked on with the
    // caller's own credentials.
    tooling.configure(json!({"refuse_roles": ["OrganizationAccountAccessRole"]}));
    let (code, out) = run(
        &tooling,
        &[
            "list",
            "--accounts-from-org",
            "--role-name",
            "OrganizationAccountAccessRole",
        ],
    );
    assert_eq!(code, 0);
    let mut listed: Vec<String> = out["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account_id"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut members = members;
    members.sort();
    assert_eq!(listed, members);
    let own = out["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account_id"] == tooling.id.as_str())
        .unwrap();
    assert!(own["role_arn"].is_null(), "{own}");
    assert!(own["error"].is_null(), "{own}");
}

#[tokio::test]
async fn shards_split_the_accounts_into_disjoint_parts_that_cover_them_all() {
    let tooling = Account::new();
    let accounts: Vec<Account> = (0..5).map(|_| Account::new()).collect();
    let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    let list = ids.join(",");
    let mut seen: Vec<String> = Vec::new();
    for shard in ["0/3", "1/3", "2/3"] {
        let args = [
            "list",
            "--accounts",
            &list,
            "--role-name",
            "Admin",
            "--shard",
            shard,
        ];
        let (code, out) = run(&tooling, &args);
        assert_eq!(code, 0, "{out}");
        seen.extend(
            out["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["account_id"].as_str().unwrap().to_string()),
        );
    }
    seen.sort();
    let mut all: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    all.sort();
    assert_eq!(seen, all, "every account in exactly one shard");

    // auto/N takes the scheduler's index; without one, or without many accounts, it is refused.
    let auto = [
        "list",
        "--accounts",
        &list,
        "--role-name",
        "Admin",
        "--shard",
        "auto/3",
    ];
    let output = tooling
        .ami()
        .args(auto)
        .args(["--output", "json"])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let output = tooling.run(auto);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("JOB_COMPLETION_INDEX"));
    let output = tooling.run(["list", "--shard", "0/2"]);
    assert_eq!(output.status.code(), Some(2));
}

/// The tooling account shares two old images with B; B still runs one of them.
#[tokio::test]
async fn cleanup_keeps_what_a_consumer_account_still_runs() {
    let tooling = Account::new();
    let consumer = Account::new();
    let mut images = Vec::new();
    for (name, day) in [
        ("app-2026.01.01", "2026-01-01"),
        ("app-2026.02.01", "2026-02-01"),
        ("app-2026.03.01", "2026-03-01"),
    ] {
        let (image, _) = tooling.image(REGION, name).await;
        tooling.backdate(REGION, &image, &format!("{day}T00:00:00Z"));
        images.push(image);
    }
    let (still_run, no_longer_used, newest) = (&images[0], &images[1], &images[2]);
    for image in [still_run, no_longer_used] {
        tooling.share_with(image, &consumer.id).await;
    }
    let instance = consumer.launch_instance(REGION, still_run).await;
    let verdicts = |out: &Value| -> Vec<(String, String, String)> {
        let mut v: Vec<(String, String, String)> = out["regions"][0]["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["image_id"].as_str().unwrap().to_string(),
                    d["verdict"].as_str().unwrap().to_string(),
                    d["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let verdict_of = |out: &Value, image: &str| -> (String, String) {
        verdicts(out)
            .into_iter()
            .find(|(id, _, _)| id == image)
            .map(|(_, verdict, reason)| (verdict, reason))
            .unwrap()
    };

    // Without a role to look with, a shared image cannot be checked: kept, and said why.
    let (code, out) = run(&tooling, &["cleanup", "--keep", "1", "--dry-run"]);
    assert_eq!(code, 0);
    for image in [still_run, no_longer_used] {
        let (verdict, reason) = verdict_of(&out, image);
        assert_eq!(verdict, "keep");
        assert!(
            reason.contains(&consumer.id) && reason.contains("could not be checked"),
            "{reason}"
        );
    }

    // B's role refused: the same, with IAM's answer.
    consumer.configure(json!({"refuse_roles": ["Admin"]}));
    let (_, out) = run(
        &tooling,
        &[
            "cleanup",
            "--keep",
            "1",
            "--dry-run",
            "--role-name",
            "Admin",
        ],
    );
    let (verdict, reason) = verdict_of(&out, no_longer_used);
    assert_eq!(verdict, "keep");
    assert!(reason.contains("AccessDenied"), "{reason}");
    consumer.configure(json!({"refuse_roles": null}));

    // Looked into B: the image B runs stays, the one it no longer uses goes.
    tooling.reset_requests();
    let (code, out) = run(
        &tooling,
        &["cleanup", "--keep", "1", "--yes", "--role-name", "Admin"],
    );
    assert_eq!(code, 0);
    let (verdict, reason) = verdict_of(&out, still_run);
    assert_eq!(verdict, "keep");
    assert!(
        reason.contains(&instance) && reason.contains(&format!("in account {}", consumer.id)),
        "{reason}"
    );
    assert_eq!(verdict_of(&out, no_longer_used).0, "retire");
    assert_eq!(verdict_of(&out, newest).0, "keep");
    let left = tooling.image_ids().await;
    assert!(left.contains(still_run) && left.contains(newest));
    assert!(!left.contains(no_longer_used));
    // The cost: one launch-permission read per image about to go, and B's usage reads.
    let requests = tooling.requests();
    assert_eq!(
        requests.get("ec2:DescribeImageAttribute"),
        Some(&2),
        "{requests:?}"
    );
    let consumer_reads = consumer.requests();
    assert!(
        consumer_reads.contains_key("ec2:DescribeInstances"),
        "{consumer_reads:?}"
    );

    // --ignore-consumers: B is not looked into.
    let (code, out) = run(
        &tooling,
        &["cleanup", "--keep", "1", "--dry-run", "--ignore-consumers"],
    );
    assert_eq!(code, 0);
    assert_eq!(verdict_of(&out, still_run).0, "retire");
}

#[tokio::test]
async fn deregister_checks_consumers_too() {
    let owner = Account::new();
    let consumer = Account::new();
    let (image, _) = owner.image(REGION, "shared-and-used").await;
    owner.share_with(&image, &consumer.id).await;
    consumer.launch_template("uses-shared", &image).await;
    let (code, out) = run(
        &owner,
        &[
            "deregister",
            &image,
            "--cleanup",
            "--yes",
            "--role-name",
            "Admin",
        ],
    );
    assert_eq!(code, 1, "blocked, nothing done");
    let reason = out["images"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("launch template") && reason.contains(&consumer.id),
        "{reason}"
    );
    assert!(owner.image_ids().await.contains(&image));
}

#[tokio::test]
async fn terminate_instances_never_reaches_into_a_consumer_account() {
    let owner = Account::new();
    let consumer = Account::new();
    let (image, _) = owner.image(REGION, "shared-and-running").await;
    owner.share_with(&image, &consumer.id).await;
    let theirs = consumer.launch_instance(REGION, &image).await;
    let ours = owner.launch_instance(REGION, &image).await;
    let args = [
        "deregister",
        image.as_str(),
        "--cleanup",
        "--terminate-instances",
        "--yes",
        "--role-name",
        "Admin",
    ];
    let (code, out) = run(&owner, &args);
    assert_eq!(code, 1, "blocked by the consumer's instance: {out}");
    assert_eq!(out["images"][0]["action"], "blocked");
    let reason = out["images"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&theirs) && reason.contains(&consumer.id),
        "{reason}"
    );
    assert_eq!(out["instances_terminated"], json!([]));
    assert!(!owner.requests().contains_key("ec2:TerminateInstances"));
    assert!(owner.image_ids().await.contains(&image));

    // --force deregisters it, terminating only this account's instance.
    let mut forced = args.to_vec();
    forced.push("--force");
    let (code, out) = run(&owner, &forced);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["instances_terminated"], json!([ours]));
    assert!(!owner.image_ids().await.contains(&image));
    let state = consumer
        .ec2()
        .describe_instances()
        .instance_ids(&theirs)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string());
    assert_eq!(state.as_deref(), Some("running"));
}

/// Image usage reports look into the accounts an image is shared with, without a role there:
/// the image B runs stays, naming B and what runs it; the one nobody uses goes.
#[tokio::test]
async fn usage_reports_find_a_consumer_without_a_role() {
    let tooling = Account::new();
    let consumer = Account::new();
    let mut images = Vec::new();
    for (name, day) in [
        ("svc-2026.01.01", "2026-01-01"),
        ("svc-2026.02.01", "2026-02-01"),
        ("svc-2026.03.01", "2026-03-01"),
    ] {
        let (image, _) = tooling.image(REGION, name).await;
        tooling.backdate(REGION, &image, &format!("{day}T00:00:00Z"));
        images.push(image);
    }
    let (used, unused) = (&images[0], &images[1]);
    for image in [used, unused] {
        tooling.share_with(image, &consumer.id).await;
    }
    consumer.launch_instance(REGION, used).await;
    consumer.launch_template("runs-it", used).await;
    tooling.reset_requests();
    consumer.reset_requests();

    let (code, out) = run(&tooling, &["cleanup", "--keep", "1", "--yes"]);
    assert_eq!(code, 0, "{out:#}");
    let decision = |image: &str| {
        out["regions"][0]["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["image_id"] == image)
            .unwrap()
            .clone()
    };
    assert_eq!(decision(used)["verdict"], "keep");
    let reason = decision(used)["reason"].as_str().unwrap().to_string();
    for says in [
        format!("1 instance in account {}", consumer.id),
        format!("1 launch template in account {}", consumer.id),
        "image usage report".to_string(),
    ] {
        assert!(reason.contains(&says), "{says}: {reason}");
    }
    assert_eq!(decision(unused)["verdict"], "retire");
    let left = tooling.image_ids().await;
    assert!(left.contains(used) && !left.contains(unused));
    // One report per shared candidate, nothing assumed, nothing read in B.
    let requests = tooling.requests();
    assert_eq!(
        requests.get("ec2:CreateImageUsageReport"),
        Some(&2),
        "{requests:?}"
    );
    assert!(!requests.contains_key("sts:AssumeRole"), "{requests:?}");
    assert!(consumer.requests().is_empty(), "{:?}", consumer.requests());
}

/// A report that is not ready in time, ends in error or is not offered keeps the image it covers.
#[tokio::test]
async fn a_usage_report_that_does_not_come_keeps_the_image() {
    let owner = Account::new();
    let consumer = Account::new();
    let (image, _) = owner.image(REGION, "shared-unknown").await;
    owner.share_with(&image, &consumer.id).await;
    let cases = [
        (
            json!({"usage_report_delay": 3600}),
            vec!["deregister", &image, "--yes", "--timeout", "2s"],
            "still pending after 2s (--timeout)",
        ),
        (
            json!({"usage_report_delay": 0.1, "usage_report_fail": true}),
            vec!["deregister", &image, "--yes"],
            "is error: The report could not be created",
        ),
        (
            json!({"usage_report_fail": false,
                   "faults": {"not_offered": 1.0, "actions": ["ec2:CreateImageUsageReport"]}}),
            vec!["deregister", &image, "--yes"],
            "InvalidAction",
        ),
    ];
    for (settings, args, says) in cases {
        owner.configure(settings);
        let started = std::time::Instant::now();
        let (code, out) = run(&owner, &args);
        assert_eq!(code, 1, "{says}: {out:#}");
        let reason = out["images"][0]["reason"].as_str().unwrap();
        assert!(
            reason.contains(says) && reason.contains(&consumer.id),
            "{says}: {reason}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
    owner.configure(json!({"faults": null, "usage_report_delay": 0.2}));
    assert!(owner.image_ids().await.contains(&image));
    // With the reports back, nobody uses it: it goes.
    let (code, out) = run(&owner, &["deregister", &image, "--yes"]);
    assert_eq!(code, 0, "{out:#}");
    assert!(!owner.image_ids().await.contains(&image));
}

/// Streamed (`--yes`): images that share a snapshot go together, once each of them is settled.
/// In each family the older image is clear at once and the newer one, shared with B, waits for
/// its usage report (slow here). `web`: B does not use it, so both go, and their snapshot with the
/// last of them (had the older gone alone, the snapshot would be left behind for good). `api`: B
/// runs it, so it stays with its snapshot, and only its partner goes.
#[tokio::test]
async fn images_sharing_a_snapshot_wait_for_each_others_checks() {
    let owner = Account::new();
    let consumer = Account::new();
    let mut images: std::collections::BTreeMap<String, String> = Default::default();
    let mut roots: std::collections::BTreeMap<&str, String> = Default::default();
    for family in ["web", "api"] {
        let root = owner.snapshot(REGION, 8).await;
        for (n, day) in [(1, "01"), (2, "02"), (3, "03"), (4, "04")] {
            // 1 and 2 share the family's root snapshot; 3 and 4 (kept by --keep 2) have their own.
            let snapshot = match n {
                1 | 2 => root.clone(),
                _ => owner.snapshot(REGION, 8).await,
            };
            let name = format!("{family}-2026.{day}.01");
            let image = owner
                .register_ebs(REGION, &name, &[("/dev/xvda", &snapshot)])
                .await;
            owner.backdate(REGION, &image, &format!("2026-{day}-01T00:00:00Z"));
            images.insert(name, image);
        }
        roots.insert(family, root);
    }
    for name in ["web-2026.02.01", "api-2026.02.01"] {
        owner.share_with(&images[name], &consumer.id).await;
    }
    consumer
        .launch_instance(REGION, &images["api-2026.02.01"])
        .await;
    owner.configure(json!({"usage_report_delay": 2}));

    let (code, out) = run(&owner, &["cleanup", "--keep", "2", "--yes"]);
    owner.configure(json!({"usage_report_delay": 0.2}));
    assert_eq!(code, 0, "{out:#}");
    let left = owner.image_ids().await;
    let gone = ["web-2026.01.01", "web-2026.02.01", "api-2026.01.01"];
    for (name, image) in &images {
        assert_eq!(
            left.contains(image),
            !gone.contains(&name.as_str()),
            "{name}"
        );
    }
    let kept = out["regions"][0]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["image_id"] == images["api-2026.02.01"].as_str())
        .unwrap();
    assert_eq!(kept["verdict"], "keep");
    assert!(
        kept["reason"].as_str().unwrap().contains(&consumer.id),
        "{kept}"
    );
    let snapshots = owner.snapshot_ids().await;
    assert!(
        !snapshots.contains(&roots["web"]),
        "web's shared snapshot was left behind"
    );
    assert!(
        snapshots.contains(&roots["api"]),
        "api's shared snapshot went"
    );
}

/// `deregister` stops, naming the image, when its launch permissions cannot be read: even
/// `--force` must not retire an image that may be shared with anyone.
#[tokio::test]
async fn deregister_stops_when_it_cannot_tell_who_else_may_launch_the_image() {
    let owner = Account::new();
    let (image, _) = owner.image(REGION, "unreadable-sharing").await;
    owner.configure(json!({"faults": {
        "denied": 1.0, "actions": ["ec2:DescribeImageAttribute"]
    }}));
    owner.reset_requests();
    let output = owner.run(["deregister", &image, "--cleanup", "--force", "--yes"]);
    owner.configure(json!({"faults": null}));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&image) && stderr.contains("could not be read"),
        "{stderr}"
    );
    assert!(owner.image_ids().await.contains(&image));
    assert!(
        owner.mutating_calls().is_empty(),
        "{:?}",
        owner.mutating_calls()
    );
}

/// The four oldest of `estate` are gone with their snapshots; the two newest stay with theirs.
async fn only_the_four_oldest_went(account: &Account, estate: &[(String, Vec<String>)]) {
    let (images, snapshots) = (account.image_ids().await, account.snapshot_ids().await);
    for (index, (image, own)) in estate.iter().enumerate() {
        let kept = index >= 4;
        assert_eq!(images.contains(image), kept, "{image} in {}", account.id);
        for snapshot in own {
            assert_eq!(snapshots.contains(snapshot), kept, "{snapshot} of {image}");
        }
    }
}

/// A long run outlives its role sessions: AWS ends them (the emulator after 2 s, so the SDK
/// renews B's and C's before every request), and refuses B's role once B has served its first
/// DeregisterImage (its trust policy changed mid-run). B fails alone, mid-way, naming its role;
/// what B lost was only what its plan retired; C, renewing its sessions, is done in full; a
/// re-run finishes B.
#[tokio::test]
async fn an_account_whose_credentials_cannot_be_refreshed_fails_alone() {
    let tooling = Account::new();
    let (b, c) = (Account::new(), Account::new());
    // Per account: (image, its snapshots) from oldest to newest; the two oldest share a data
    // snapshot, so one of them going alone must leave it.
    let mut estates = Vec::new();
    for account in [&b, &c] {
        let shared = account.snapshot(REGION, 8).await;
        let mut images = Vec::new();
        for month in 1..=6 {
            let root = account.snapshot(REGION, 8).await;
            let mut devices = vec![("/dev/xvda", root.as_str())];
            if month <= 2 {
                devices.push(("/dev/xvdb", shared.as_str()));
            }
            let name = format!("app-2026.0{month}.01");
            let image = account.register_ebs(REGION, &name, &devices).await;
            account.backdate(REGION, &image, &format!("2026-0{month}-01T00:00:00Z"));
            let snapshots: Vec<String> = devices.iter().map(|(_, s)| s.to_string()).collect();
            images.push((image, snapshots));
        }
        estates.push(images);
    }
    b.configure(json!({
        "session_seconds": 2,
        "latency_ms": 100,
        "refuse_roles": ["Admin"],
        "refuse_roles_after": "ec2:DeregisterImage",
    }));
    c.configure(json!({"session_seconds": 2, "latency_ms": 200}));
    let accounts = format!("{},{}", b.id, c.id);
    let cleanup = [
        "cleanup",
        "--keep",
        "2",
        "--yes",
        "--accounts",
        &accounts,
        "--role-name",
        "Admin",
    ];
    let (code, out) = run(&tooling, &cleanup);
    assert_eq!(code, 3, "{out:#}");
    let (in_b, in_c) = (&out["accounts"][0], &out["accounts"][1]);

    // C: its four oldest and every snapshot they alone used are gone; the two newest stay.
    assert!(in_c["error"].is_null(), "{in_c:#}");
    only_the_four_oldest_went(&c, &estates[1]).await;

    // B: failed, naming its role and why, with what it did before.
    let error = in_b["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("arn:aws:iam::{}:role/Admin", b.id))
            && error.contains("could not be refreshed")
            && error.contains("AccessDenied"),
        "{error}"
    );
    // What B did before is reported: images it could no longer deregister failed, saying why.
    let failed: Vec<&Value> = in_b["result"]["regions"][0]["retire"]["images"]
        .as_array()
        .unwrap_or_else(|| panic!("{in_b:#}"))
        .iter()
        .filter(|image| image["status"] == "failed")
        .collect();
    assert!(!failed.is_empty(), "{in_b:#}");
    for image in failed {
        let why = image["error"].as_str().unwrap();
        assert!(why.contains("could not be refreshed"), "{why}");
    }
    // Once a renewal failed, B's later calls failed at once: STS was not asked again.
    assert_eq!(
        b.faults_injected().get("sts:AssumeRole:refused"),
        Some(&1),
        "{:?}",
        b.faults_injected()
    );
    // Stopped mid-way: something went, something planned stayed.
    let (images, snapshots) = (b.image_ids().await, b.snapshot_ids().await);
    let gone: Vec<&String> = estates[0]
        .iter()
        .map(|(image, _)| image)
        .filter(|image| !images.contains(*image))
        .collect();
    assert!(!gone.is_empty() && gone.len() < 4, "gone: {gone:?}");
    // Nothing went that the plan did not retire, and no snapshot an image still uses.
    for (index, (image, own)) in estates[0].iter().enumerate() {
        if index >= 4 {
            assert!(images.contains(image), "{image} was kept");
        }
        if images.contains(image) {
            for snapshot in own {
                assert!(
                    snapshots.contains(snapshot),
                    "{snapshot} is still used by {image}"
                );
            }
        }
    }

    // Trusted again: a re-run finishes B's plan.
    b.configure(json!({
        "session_seconds": null,
        "latency_ms": null,
        "refuse_roles": null,
        "refuse_roles_after": null,
    }));
    let (code, out) = run(
        &tooling,
        &[
            "cleanup",
            "--keep",
            "2",
            "--yes",
            "--accounts",
            &b.id,
            "--role-name",
            "Admin",
        ],
    );
    assert_eq!(code, 0, "{out:#}");
    only_the_four_oldest_went(&b, &estates[0]).await;
}

/// A consumer check inside an assumed account assumes the consumer's role with the caller's own
/// credentials, not through the account it runs in: a chain would tie one account's renewals to
/// another's, and cap its sessions at an hour.
#[tokio::test]
async fn roles_are_assumed_from_the_caller_never_chained() {
    let tooling = Account::new();
    let (owner, consumer) = (Account::new(), Account::new());
    let (old, _) = owner.image(REGION, "app-2026.01.01").await;
    owner.backdate(REGION, &old, "2026-01-01T00:00:00Z");
    owner.image(REGION, "app-2026.02.01").await;
    owner.share_with(&old, &consumer.id).await;
    tooling.reset_requests();
    owner.reset_requests();
    let (code, out) = run(
        &tooling,
        &[
            "cleanup",
            "--keep",
            "1",
            "--dry-run",
            "--accounts",
            &owner.id,
            "--role-name",
            "Admin",
        ],
    );
    assert_eq!(code, 0, "{out:#}");
    // The consumer was looked into (its instances read) ...
    assert!(
        consumer.requests().contains_key("ec2:DescribeInstances"),
        "{:?}",
        consumer.requests()
    );
    // ... through a role the caller assumed: the owner's and the consumer's, both by the caller.
    assert_eq!(tooling.requests().get("sts:AssumeRole"), Some(&2));
    assert_eq!(owner.requests().get("sts:AssumeRole"), None);
}
