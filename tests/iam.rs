//! Least privilege: every verb, run the ways the docs (docs/usage.md) show, calls only the actions the
//! per-verb IAM table in docs/aws.md grants it. A verb that starts calling something new fails here
//! until the policy operators copy from docs/aws.md says so.

use crate::common::{Account, REGION, bucket_name};
use std::collections::{BTreeMap, BTreeSet};

/// The table in docs/aws.md between `<!-- iam:begin -->` and `<!-- iam:end -->`: verb → actions.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/aws.md"))
        .expect("docs/aws.md");
    let table = readme
        .split("<!-- iam:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- iam:end -->").next())
        .expect("docs/aws.md has the IAM table markers");
    let mut verbs = BTreeMap::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let verb = cells[1].trim_matches('`').to_string();
        let actions = cells[2]
            .split(',')
            .map(|a| a.trim().trim_matches('`').to_string())
            .filter(|a| !a.is_empty())
            .collect();
        verbs.insert(verb, actions);
    }
    verbs
}

/// The emulator counts S3 REST operations; IAM names the permission. An EC2 DryRun check
/// (`ec2:X(DryRun)`) needs the permission of the call it checks.
fn iam_action(counted: &str) -> String {
    let counted = counted.trim_end_matches("(DryRun)");
    match counted {
        "s3:ListObjectsV2" | "s3:ListObjects" | "s3:HeadBucket" => "s3:ListBucket".into(),
        "s3:HeadObject" => "s3:GetObject".into(),
        "s3:DeleteObjects" => "s3:DeleteObject".into(),
        other => other.into(),
    }
}

/// Runs `ami ARGS` in the account and returns the IAM actions it used.
fn actions_of(account: &Account, args: &[&str]) -> BTreeSet<String> {
    account.reset_requests();
    let output = account.run(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    account.requests().keys().map(|k| iam_action(k)).collect()
}

#[tokio::test]
async fn every_verb_calls_only_what_its_documented_policy_grants() {
    let policy = documented();
    let mut used: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut record = |verb: &'static str, actions: BTreeSet<String>| {
        used.entry(verb).or_default().extend(actions);
    };

    let account = Account::new();
    let other = Account::new();
    let (base, _) = account.image(REGION, "iam-base").await;
    let instance = account.launch_instance(REGION, &base).await;
    // Deregistered images and deleted snapshots go to the Recycle Bin: plans read the rules,
    // and `restore` has something to bring back.
    account.recycle_rule(REGION, "EC2_IMAGE", 7, &[]).await;
    account.recycle_rule(REGION, "EBS_SNAPSHOT", 7, &[]).await;

    record("list", actions_of(&account, &["list"]));
    record("list", actions_of(&account, &["list", "--shares"]));

    record(
        "create",
        actions_of(
            &account,
            &[
                "create",
                "--instance-id",
                &instance,
                "--name",
                "iam-created",
                "--tag",
                "app=web",
                "--protect",
                "--deprecate-after",
                "90d",
                "--wait",
            ],
        ),
    );

    let root = account.snapshot(REGION, 8).await;
    record(
        "register",
        actions_of(
            &account,
            &[
                "register",
                "--name",
                "iam-registered",
                "--root-snapshot",
                &root,
                "--tag",
                "a=b",
            ],
        ),
    );
    let bucket = bucket_name(&account, "iam");
    account
        .put_bundle(&bucket, "b/", "img", &["img.part.00"])
        .await;
    let location = format!("s3://{bucket}/b/img.manifest.xml");
    record(
        "register",
        actions_of(
            &account,
            &["register", "--name", "iam-bundle", "--manifest", &location],
        ),
    );

    record(
        "copy",
        actions_of(
            &account,
            &["copy", &base, "--to-region", "eu-west-1", "--wait"],
        ),
    );

    record(
        "share",
        actions_of(
            &account,
            &[
                "share",
                &base,
                "--account",
                &other.id,
                "--with-snapshots",
                "--all-copies",
            ],
        ),
    );
    record(
        "share",
        actions_of(&account, &["share", &base, "--public", "--confirm-public"]),
    );
    record("share", actions_of(&account, &["share", &base]));

    record(
        "launch",
        actions_of(
            &account,
            &[
                "launch",
                &base,
                "--tag",
                "a=b",
                "--terminate-after",
                "--check",
                "true",
            ],
        ),
    );
    record(
        "launch",
        actions_of(&account, &["launch", &base, "--dry-run"]),
    );
    record(
        "release",
        actions_of(
            &account,
            &[
                "release",
                "--instance-id",
                &instance,
                "--name",
                "iam-release",
                "--tag",
                "a=b",
                "--to-region",
                "eu-central-1",
                "--account",
                &other.id,
                "--with-snapshots",
                "--deprecate-after",
                "30d",
                "--protect",
                "--ssm-parameter",
                "/iam/release",
            ],
        ),
    );

    // deregister: an EBS image, a bundle image, with everything they can use.
    let (ebs, _) = account.image(REGION, "iam-ebs").await;
    // Shared with an account that does not use it: a usage report clears it.
    account.share_with(&ebs, &other.id).await;
    let bundle_image = account
        .ec2()
        .describe_images()
        .owners("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("name")
                .values("iam-bundle")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .images()[0]
        .image_id()
        .unwrap()
        .to_string();
    record(
        "deregister",
        actions_of(
            &account,
            &[
                "deregister",
                &ebs,
                &bundle_image,
                "--cleanup",
                "--delete-empty-bucket",
                "--yes",
            ],
        ),
    );
    let (in_use, _) = account.image(REGION, "iam-in-use").await;
    account.launch_instance(REGION, &in_use).await;
    record(
        "deregister",
        actions_of(
            &account,
            &[
                "deregister",
                &in_use,
                "--cleanup",
                "--terminate-instances",
                "--yes",
            ],
        ),
    );

    // cleanup: every action, the orphan sweeps, and a reviewed plan applied.
    for n in 0..4 {
        let (image, _) = account.image(REGION, &format!("fam-2026.0{n}")).await;
        account.backdate(REGION, &image, &format!("2026-0{}-01T00:00:00Z", n + 1));
    }
    record(
        "cleanup",
        actions_of(
            &account,
            &[
                "cleanup",
                "--keep",
                "3",
                "--name-pattern",
                "^(fam)-",
                "--action",
                "deprecate",
                "--yes",
            ],
        ),
    );
    record(
        "cleanup",
        actions_of(
            &account,
            &[
                "cleanup",
                "--keep",
                "2",
                "--name-pattern",
                "^(fam)-",
                "--action",
                "disable",
                "--yes",
            ],
        ),
    );
    let orphans = bucket_name(&account, "iam-orphans");
    account
        .put_bundle(&orphans, "old/", "img", &["img.part.00"])
        .await;
    record(
        "cleanup",
        actions_of(
            &account,
            &[
                "cleanup",
                "--keep",
                "1",
                "--orphans",
                "--orphan-bundles",
                &format!("s3://{orphans}/"),
                "--yes",
            ],
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let plan = plan.to_str().unwrap();
    let (image, _) = account.image(REGION, "fam-2026.09").await;
    account.backdate(REGION, &image, "2026-09-01T00:00:00Z");
    record(
        "cleanup",
        actions_of(&account, &["cleanup", "--keep", "1", "--plan-out", plan]),
    );
    record("apply", actions_of(&account, &["apply", plan, "--yes"]));
    record("list", actions_of(&account, &["list", "--recycle-bin"]));
    record("restore", actions_of(&account, &["restore", &ebs]));

    let mut undocumented = Vec::new();
    for (verb, actions) in &used {
        let allowed = policy
            .get(*verb)
            .unwrap_or_else(|| panic!("the IAM table in docs/aws.md has no row for `{verb}`"));
        for action in actions.difference(allowed) {
            undocumented.push(format!("{verb}: {action}"));
        }
    }
    assert!(
        undocumented.is_empty(),
        "called but not in the IAM table in docs/aws.md: {undocumented:?}\nused: {used:#?}"
    );
}
