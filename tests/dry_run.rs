//! `--dry-run` on every verb: no call that changes the account, whatever the verb.
//!
//! The verbs are read from `ami --help`, so a verb added later fails here until it has a case
//! (and honours --dry-run, or refuses it with exit 2 before any call).

use crate::common::{Account, REGION};

/// Every subcommand `ami --help` lists (clap's own listing), `help` aside.
pub(crate) fn verbs() -> Vec<String> {
    let output = Account::new().ami().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    let listing = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("a Commands: section in ami --help");
    // A verb's line starts with two spaces; a wrapped description continues further in.
    listing
        .lines()
        .filter(|line| line.starts_with("  ") && !line[2..].starts_with(' '))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|verb| *verb != "help")
        .map(String::from)
        .collect()
}

pub(crate) struct Estate {
    /// An image in the Recycle Bin (a region-level rule keeps deregistered images 7 days).
    binned: String,
    instance: String,
    image: String,
    snapshot: String,
    spare_snapshot: String,
    plan_file: std::path::PathBuf,
    consumer: String,
    _dir: tempfile::TempDir,
}

pub(crate) async fn estate(account: &Account) -> Estate {
    let (image, snapshot) = account.image(REGION, "web-2026-01-01").await;
    account.backdate(REGION, &image, "2026-01-01T00:00:00Z");
    let (newer, _) = account.image(REGION, "web-2026-02-01").await;
    account.backdate(REGION, &newer, "2026-02-01T00:00:00Z");
    let spare_snapshot = account.snapshot(REGION, 8).await;
    let instance = account.launch_instance(REGION, &newer).await;
    let dir = tempfile::tempdir().unwrap();
    let plan_file = dir.path().join("plan.json");
    let output = account
        .ami()
        .args(["cleanup", "--keep", "1", "--plan-out"])
        .arg(&plan_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "plan-out: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    account.recycle_rule(REGION, "EC2_IMAGE", 7, &[]).await;
    let (binned, _) = account.image(REGION, "binned").await;
    account
        .ec2()
        .deregister_image()
        .image_id(&binned)
        .send()
        .await
        .unwrap();
    Estate {
        binned,
        instance,
        image,
        snapshot,
        spare_snapshot,
        plan_file,
        consumer: Account::new().id,
        _dir: dir,
    }
}

/// `args` with --dry-run.
fn dry(mut args: Vec<String>) -> Vec<String> {
    args.push("--dry-run".into());
    args
}

/// The arguments that would change something in the estate, without --dry-run.
pub(crate) fn case(verb: &str, estate: &Estate) -> Vec<String> {
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    match verb {
        "list" => owned(&["list"]),
        "create" => owned(&[
            "create",
            "--instance-id",
            &estate.instance,
            "--name",
            "web-new",
            "--protect",
            "--tag",
            "team=web",
        ]),
        "register" => owned(&[
            "register",
            "--name",
            "web-registered",
            "--root-snapshot",
            &estate.spare_snapshot,
        ]),
        "copy" => owned(&["copy", &estate.image, "--to-region", "eu-west-1", "--wait"]),
        "share" => owned(&[
            "share",
            &estate.image,
            "--account",
            &estate.consumer,
            "--with-snapshots",
        ]),
        "launch" => owned(&["launch", &estate.image, "--terminate-after"]),
        "release" => owned(&[
            "release",
            "--instance-id",
            &estate.instance,
            "--name",
            "web-release",
            "--to-region",
            "eu-west-1",
            "--account",
            &estate.consumer,
            "--ssm-parameter",
            "/web/latest",
        ]),
        "deregister" => owned(&[
            "deregister",
            &estate.image,
            "--cleanup",
            "--terminate-instances",
            "--force",
        ]),
        "cleanup" => owned(&["cleanup", "--keep", "0", "--orphans"]),
        "restore" => owned(&["restore", &estate.binned]),
        "apply" => vec!["apply".into(), estate.plan_file.display().to_string()],
        "completions" => owned(&["completions", "bash"]),
        "man" => owned(&["man"]),
        other => panic!(
            "no --dry-run case for `ami {other}`: add one here (and make the verb honour --dry-run \
             or refuse it with exit 2 before any call)"
        ),
    }
}

#[tokio::test]
async fn no_verb_changes_anything_with_dry_run() {
    let account = Account::new();
    let estate = estate(&account).await;
    let images_before = account.image_ids().await;
    let snapshots_before = account.snapshot_ids().await;
    let verbs = verbs();
    assert!(verbs.len() >= 12, "verbs from --help: {verbs:?}");
    let mut wrong_codes = Vec::new();
    for verb in &verbs {
        account.reset_requests();
        let args = case(verb, &estate);
        let output = account.ami().args(&args).arg("--dry-run").output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        // Each verb's own exit code: today every verb honours --dry-run (0); one that refused
        // it would exit 2 before any call, and nothing would be asked at all.
        if code != Some(expected_exit(verb)) {
            wrong_codes.push(format!("ami {args:?} --dry-run exited {code:?}: {stderr}"));
        }
        assert!(
            !stderr.contains("--dry-run: refused"),
            "ami {verb} --dry-run tried a changing call: {stderr}"
        );
        if code == Some(2) {
            assert!(account.requests().is_empty(), "{verb} refused after calls");
        } else {
            assert!(!output.stdout.is_empty(), "{verb}: nothing printed");
        }
        assert!(
            account.mutating_calls().is_empty(),
            "ami {verb} --dry-run changed the account: {:?}",
            account.mutating_calls()
        );
    }
    assert!(wrong_codes.is_empty(), "{}", wrong_codes.join("\n"));
    assert_eq!(account.image_ids().await, images_before);
    assert_eq!(account.snapshot_ids().await, snapshots_before);
}

/// Each verb's exit code with --dry-run on the estate: 0 where it shows what it would do, 2
/// where it refuses --dry-run before any call.
fn expected_exit(verb: &str) -> i32 {
    match verb {
        "list" | "create" | "register" | "copy" | "share" | "launch" | "release" | "deregister"
        | "cleanup" | "restore" | "apply" | "completions" | "man" => 0,
        other => panic!("no expected --dry-run exit code for `ami {other}`: add one"),
    }
}

/// The verbs that make or share images ask AWS's own DryRun check and print the calls.
#[tokio::test]
async fn create_register_copy_and_share_ask_aws_and_print_the_calls() {
    let account = Account::new();
    let estate = estate(&account).await;
    let expected = [
        ("create", "ec2:CreateImage"),
        ("register", "ec2:RegisterImage"),
        ("copy", "ec2:CopyImage"),
        ("share", "ec2:ModifyImageAttribute"),
    ];
    for (verb, call) in expected {
        account.reset_requests();
        let output = account
            .ami()
            .args(case(verb, &estate))
            .args(["--dry-run", "--output", "json"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{verb}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report = crate::common::json(&dry(case(verb, &estate)), &output);
        assert_eq!(report["dry_run"], true, "{verb}: {report}");
        let calls = report["calls"].as_array().unwrap();
        let asked = calls.iter().find(|c| c["call"] == call).unwrap_or_else(|| {
            panic!("{verb}: no {call} in {report}");
        });
        assert_eq!(asked["check"], "allowed", "{verb}: {report}");
        let requests = account.requests();
        assert_eq!(
            requests.get(&format!("{call}(DryRun)")),
            Some(&1),
            "{verb}: {requests:?}"
        );
        assert!(account.mutating_calls().is_empty(), "{verb}: {requests:?}");
    }
    // share --with-snapshots checks the snapshot grant too; create lists what it cannot check yet.
    let output = account
        .ami()
        .args(case("share", &estate))
        .args(["--dry-run", "--output", "json"])
        .output()
        .unwrap();
    let report = crate::common::json(&dry(case("share", &estate)), &output);
    let snapshot_call = report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call"] == "ec2:ModifySnapshotAttribute")
        .expect("snapshot grant checked");
    assert!(
        snapshot_call["target"]
            .as_str()
            .unwrap()
            .contains(&estate.snapshot)
    );
    let output = account
        .ami()
        .args(case("create", &estate))
        .args(["--dry-run", "--output", "json"])
        .output()
        .unwrap();
    let report = crate::common::json(&dry(case("create", &estate)), &output);
    assert!(report["calls"].as_array().unwrap().iter().any(|c| {
        c["call"] == "ec2:EnableImageDeregistrationProtection" && c["check"] == "not_checked"
    }));
}

/// A call AWS would refuse makes the dry run fail, naming it; still nothing changes.
#[tokio::test]
async fn a_denied_dry_run_check_fails_the_dry_run() {
    let account = Account::new();
    let estate = estate(&account).await;
    account.configure(serde_json::json!({
        "faults": {"denied": 1.0, "actions": ["ec2:CopyImage(DryRun)"]}
    }));
    account.reset_requests();
    let output = account
        .ami()
        .args(case("copy", &estate))
        .args(["--dry-run", "--output", "json"])
        .output()
        .unwrap();
    account.configure(serde_json::json!({"faults": null}));
    assert_eq!(output.status.code(), Some(1));
    let report = crate::common::json(&dry(case("copy", &estate)), &output);
    assert_eq!(report["calls"][0]["check"], "denied", "{report}");
    assert!(
        report["calls"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("UnauthorizedOperation")
    );
    assert!(account.mutating_calls().is_empty());
}

/// A share's dry run plans what the real run would do: nothing, once it is all in place.
#[tokio::test]
async fn a_share_already_in_place_plans_no_change() {
    let account = Account::new();
    let estate = estate(&account).await;
    let grant = case("share", &estate);
    let output = account.run(grant.iter().chain(&["--yes".to_string()]));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    account.reset_requests();
    let output =
        account.run(
            grant
                .iter()
                .map(String::as_str)
                .chain(["--dry-run", "--output", "json"]),
        );
    assert_eq!(output.status.code(), Some(0));
    let report = crate::common::json(&dry(grant.clone()), &output);
    assert_eq!(report["calls"], serde_json::json!([]), "{report}");
    assert!(
        report["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|note| note.as_str().unwrap().contains("already shared with")),
        "{report}"
    );
    assert!(account.mutating_calls().is_empty());
    assert!(
        !account
            .requests()
            .keys()
            .any(|action| action.starts_with("ec2:Modify")),
        "{:?}",
        account.requests()
    );
}

/// A release's dry run reads the SSM parameters and lists the writes it would make, per region.
#[tokio::test]
async fn a_release_dry_run_lists_the_parameters_it_would_publish() {
    let account = Account::new();
    let estate = estate(&account).await;
    account.reset_requests();
    let output = account
        .ami()
        .args(case("release", &estate))
        .args(["--dry-run", "--output", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = crate::common::json(&["release"], &output);
    let publish = &report["stages"][5];
    assert_eq!(publish["stage"], "publish");
    assert_eq!(publish["state"], "planned");
    let calls: Vec<(&str, &str, &str, &str)> = publish["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let field = |name: &str| c[name].as_str().unwrap();
            (
                field("region"),
                field("call"),
                field("target"),
                field("check"),
            )
        })
        .collect();
    let write = "Name=/web/latest Value=(the new image) DataType=aws:ec2:image";
    assert_eq!(
        calls,
        [
            ("eu-west-1", "ssm:PutParameter", write, "not_checked"),
            ("us-east-1", "ssm:PutParameter", write, "not_checked"),
        ]
    );
    // AWS's own DryRun answer where the action has one.
    let create = &report["stages"][0];
    assert_eq!(create["state"], "planned");
    assert_eq!(create["calls"][0]["call"], "ec2:CreateImage");
    assert_eq!(create["calls"][0]["check"], "allowed", "{create}");
    assert_eq!(
        report["parameters"]["us-east-1"]["/web/latest"]["status"],
        "would_write"
    );
    let requests = account.requests();
    assert_eq!(requests.get("ssm:GetParameter"), Some(&2), "{requests:?}");
    assert!(account.mutating_calls().is_empty());
}
