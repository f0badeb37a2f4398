//! AWS takes time: every verb against an emulator as slow to settle as AWS is
//! (tests/emulator/timing.py): images pending before they are available (or failed), new ids
//! unknown for a while, deregistered images still listed, snapshots in use for a while after
//! their image went, read-backs that show the old value, lost answers. Windows of a second or two
//! keep the suite fast.

use crate::common::{Account, REGION, json};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Runs `ami ARGS --output json`: the exit code, the document (Null when none) and stderr.
fn run(account: &Account, args: &[&str]) -> (i32, Value, String) {
    run_with(account, args, &[])
}

fn run_with(account: &Account, args: &[&str], env: &[(&str, &str)]) -> (i32, Value, String) {
    let output = account
        .ami()
        .args(args)
        .args(["--output", "json"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let code = output.status.code().unwrap();
    let document = if output.stdout.is_empty() {
        Value::Null
    } else {
        json(args, &output)
    };
    (
        code,
        document,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Sets the account's timing knobs (null: AWS has caught up with everything).
fn timing(account: &Account, knobs: Value) {
    account.configure(json!({ "timing": knobs }));
}

/// An instance to make images from (launched from an image of its own family).
async fn instance(account: &Account) -> String {
    let (base, _) = account.image(REGION, &format!("base-{}", account.id)).await;
    account.launch_instance(REGION, &base).await
}

async fn create_image(account: &Account, instance: &str, name: &str) -> String {
    account
        .ec2()
        .create_image()
        .instance_id(instance)
        .name(name)
        .send()
        .await
        .expect("create image")
        .image_id()
        .unwrap()
        .to_string()
}

async fn deregister(account: &Account, image: &str) {
    account
        .ec2()
        .deregister_image()
        .image_id(image)
        .send()
        .await
        .expect("deregister");
}

/// The account's images in a region as DescribeImages lists them: id → state.
async fn listed(account: &Account, region: &str) -> BTreeMap<String, String> {
    account
        .ec2_in(region)
        .describe_images()
        .owners("self")
        .include_disabled(true)
        .send()
        .await
        .unwrap()
        .images()
        .iter()
        .map(|i| {
            (
                i.image_id().unwrap().to_string(),
                i.state().unwrap().as_str().to_string(),
            )
        })
        .collect()
}

/// Two images of a family sharing a root snapshot; the one to retire also has a data volume of
/// its own, which goes by its own DeleteSnapshot once the image is gone.
struct Pair {
    leaving: String,
    staying: String,
    shared: String,
    data: String,
}

async fn pair(account: &Account, family: &str) -> Pair {
    let shared = account.snapshot(REGION, 8).await;
    let data = account.snapshot(REGION, 8).await;
    let devices = [("/dev/xvda", shared.as_str()), ("/dev/xvdb", data.as_str())];
    let leaving = account
        .register_ebs(REGION, &format!("{family}-1"), &devices)
        .await;
    let staying = account
        .register_ebs(REGION, &format!("{family}-2"), &devices[..1])
        .await;
    Pair {
        leaving,
        staying,
        shared,
        data,
    }
}

fn item<'a>(items: &'a Value, key: &str, id: &str) -> &'a Value {
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item[key] == id)
        .unwrap_or_else(|| panic!("no {key} {id} in {items:#}"))
}

/// Defect 1: `--keep N` counted images in any state. Newer than the three launchable releases:
/// one deregistered moments ago (still listed), one still pending, one that failed. The two
/// newest launchable ones stay, the pending one is not touched, the failed one goes.
#[tokio::test]
async fn keep_counts_only_images_that_can_be_launched() {
    let account = Account::new();
    let source = instance(&account).await;
    let mut releases = Vec::new();
    for (n, month) in [(1, "08"), (2, "09"), (3, "10")] {
        let (image, snapshot) = account.image(REGION, &format!("web-{n}")).await;
        account.backdate(REGION, &image, &format!("2026-{month}-01T00:00:00Z"));
        releases.push((image, snapshot));
    }
    timing(&account, json!({ "fail": ["web-6"] }));
    let failed = create_image(&account, &source, "web-6").await;
    timing(
        &account,
        json!({ "pending": 60, "deregistered_listed": 60, "fail": ["web-6"] }),
    );
    let pending = create_image(&account, &source, "web-5").await;
    let (gone, _) = account.image(REGION, "web-4").await;
    deregister(&account, &gone).await;
    let before = listed(&account, REGION).await;
    assert_eq!(before[&gone], "deregistered");
    assert_eq!(before[&pending], "pending");
    assert_eq!(before[&failed], "failed");

    let (code, out, stderr) = run(&account, &["cleanup", "--keep", "2", "--yes"]);
    assert_eq!(code, 0, "{stderr}");
    let decisions = &out["regions"][0]["decisions"];
    assert!(
        item(decisions, "image_id", &pending)["reason"]
            .as_str()
            .unwrap()
            .contains("still being made"),
        "{decisions:#}"
    );
    // What exists: the images this run deregistered are still listed for a while.
    let mut after = listed(&account, REGION).await;
    after.retain(|_, state| state != "deregistered");
    let (web1, web2, web3) = (&releases[0].0, &releases[1].0, &releases[2].0);
    assert!(
        after.contains_key(web3) && after.contains_key(web2),
        "{after:?}"
    );
    assert!(!after.contains_key(web1), "{after:?}");
    assert_eq!(after.get(&pending).map(String::as_str), Some("pending"));
    assert!(
        !after.contains_key(&failed),
        "the failed image was not retired: {after:?}"
    );
    // The rollback image keeps its snapshot.
    let snapshots = account.snapshot_ids().await;
    assert!(snapshots.contains(&releases[2].1) && snapshots.contains(&releases[1].1));
    assert!(!snapshots.contains(&releases[0].1));
    timing(&account, Value::Null);
}

/// Defect 2: a mark whose image AWS still lists as deregistered was taken for a stale mark and
/// removed, stranding its snapshot. The image is gone: the snapshot is finished.
#[tokio::test]
async fn a_mark_whose_image_is_listed_as_deregistered_is_finished() {
    let account = Account::new();
    timing(&account, json!({ "deregistered_listed": 60 }));
    let (image, snapshot) = account.image(REGION, "db-1").await;
    let (_other, _) = account.image(REGION, "db-2").await;
    // What a run killed after deregistering leaves: the mark on the snapshot, the image gone.
    account
        .tag(REGION, &snapshot, "ami:cleanup-pending-for", &image)
        .await;
    deregister(&account, &image).await;
    assert_eq!(listed(&account, REGION).await[&image], "deregistered");

    let (code, out, stderr) = run(&account, &["cleanup", "--keep", "1", "--yes"]);
    assert_eq!(code, 0, "{stderr}");
    let snapshots = &out["regions"][0]["retire"]["snapshots"];
    assert_eq!(
        item(snapshots, "snapshot_id", &snapshot)["status"],
        "done",
        "{out:#}"
    );
    assert!(!account.snapshot_ids().await.contains(&snapshot));
    timing(&account, Value::Null);
}

/// Defects 2 and 3: a DeregisterImage that did its work but failed its answer, with the image
/// then listed as deregistered, was reported failed (its snapshot's mark removed); and the
/// DeleteSnapshot right after met InvalidSnapshot.InUse and failed. Now: the image is seen gone,
/// and the snapshot is deleted once AWS has caught up.
#[tokio::test]
async fn a_deregistration_seen_gone_is_finished_once_its_snapshot_is_free() {
    let account = Account::new();
    let Pair {
        leaving: image,
        staying,
        shared,
        data,
    } = pair(&account, "app").await;
    timing(
        &account,
        json!({ "deregistered_listed": 60, "in_use_after_deregister": 2 }),
    );
    account.configure(json!({ "faults": {
        "error_after": 1.0, "actions": ["ec2:DeregisterImage"]
    }}));
    let (code, out, stderr) = run(&account, &["deregister", &image, "--cleanup", "--yes"]);
    account.configure(json!({ "faults": null }));
    assert_eq!(code, 0, "{stderr}\n{out:#}");
    assert_eq!(item(&out["images"], "image_id", &image)["status"], "done");
    assert_eq!(
        item(&out["snapshots"], "snapshot_id", &data)["status"],
        "done"
    );
    let snapshots = account.snapshot_ids().await;
    assert!(!snapshots.contains(&data));
    assert!(snapshots.contains(&shared), "{staying} still uses it");
    timing(&account, Value::Null);
}

/// Defect 3: two retired images share a snapshot; the last one's DeleteAssociatedSnapshots skips
/// it while the first deregistration settles, and DeleteSnapshot meets InUse past the bound.
/// The snapshot is reported with AWS's answer, and marked before the images went, so re-running
/// the command finishes it.
#[tokio::test]
async fn a_shared_snapshot_in_use_past_the_bound_is_left_marked_for_the_rerun() {
    let account = Account::new();
    let shared = account.snapshot(REGION, 8).await;
    let first = account
        .register_ebs(REGION, "pair-1", &[("/dev/xvda", &shared)])
        .await;
    let second = account
        .register_ebs(REGION, "pair-2", &[("/dev/xvda", &shared)])
        .await;
    timing(&account, json!({ "in_use_after_deregister": 30 }));
    let bound = [("AMI_CONSISTENCY_TIMEOUT", "2s")];
    let args = ["deregister", &first, &second, "--cleanup", "--yes"];
    let (code, out, stderr) = run_with(&account, &args, &bound);
    assert_eq!(code, 3, "{stderr}\n{out:#}");
    let snapshot = item(&out["snapshots"], "snapshot_id", &shared);
    assert_eq!(snapshot["status"], "failed", "{out:#}");
    assert!(
        snapshot["error"]
            .as_str()
            .unwrap()
            .contains("InvalidSnapshot.InUse"),
        "{snapshot:#}"
    );
    let tags = account.tags_of(REGION, &shared).await;
    assert!(
        tags.contains_key("ami:cleanup-pending-for"),
        "the snapshot was not marked: {tags:?}"
    );
    // AWS catches up; the next cleanup finishes it (the images are gone, the mark is there).
    timing(&account, Value::Null);
    let (code, out, stderr) = run(&account, &["cleanup", "--keep", "1", "--yes"]);
    assert_eq!(code, 0, "{stderr}\n{out:#}");
    assert!(!account.snapshot_ids().await.contains(&shared));
}

/// Defect 4: protection and deprecation were sent on the new id before AWS knew it, and the SDK's
/// waiter gave up on the first NotFound. Now `create` waits for the id, then for `pending` to end;
/// an image that ends `failed` is an error naming its state and AWS's reason.
#[tokio::test]
async fn create_waits_for_the_new_image_and_says_when_it_failed() {
    let account = Account::new();
    let source = instance(&account).await;
    timing(
        &account,
        json!({ "unknown_for": 1.5, "pending": 2, "fail": ["bad-*"] }),
    );
    let args = [
        "create",
        "--instance-id",
        &source,
        "--name",
        "web-2026.12.02",
        "--protect",
        "--deprecate-after",
        "30d",
        "--wait",
    ];
    let (code, out, stderr) = run(&account, &args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(out["state"], "available");
    assert_eq!(out["deregistration_protection"], "enabled-without-cooldown");
    assert!(out["deprecation_time"].is_string(), "{out:#}");

    let (code, _, stderr) = run(
        &account,
        &[
            "create",
            "--instance-id",
            &source,
            "--name",
            "bad-1",
            "--wait",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("ended failed") && stderr.contains("Client.ImageCreationFailed"),
        "{stderr}"
    );
    timing(&account, Value::Null);
}

/// Defect 6: CreateImage and RegisterImage have no idempotency token. When the first answer is
/// lost, the retry meets InvalidAMIName.Duplicate: the image the call made is found by its name
/// and source (while it is still missing from listings), and the verb carries on with it.
#[tokio::test]
async fn a_lost_answer_finds_the_image_the_call_made() {
    let account = Account::new();
    let source = instance(&account).await;
    timing(&account, json!({ "unknown_for": 1 }));
    account.configure(json!({ "lose_answers": {
        "ec2:CreateImage": 1, "ec2:RegisterImage": 1
    }}));
    let (code, out, stderr) = run(
        &account,
        &[
            "create",
            "--max-attempts",
            "3",
            "--instance-id",
            &source,
            "--name",
            "lost-1",
            "--no-wait",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let made = out["image_id"].as_str().unwrap().to_string();
    assert_eq!(account.requests()["ec2:CreateImage"], 2);

    let root = account.snapshot(REGION, 8).await;
    account.reset_requests();
    let (code, out, stderr) = run(
        &account,
        &[
            "register",
            "--max-attempts",
            "3",
            "--name",
            "lost-2",
            "--root-snapshot",
            &root,
            "--no-wait",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let registered = out["image_id"].as_str().unwrap().to_string();
    assert_eq!(account.requests()["ec2:RegisterImage"], 2);
    account.configure(json!({ "lose_answers": null }));
    timing(&account, Value::Null);
    // One image each: the retry made none of its own.
    let listed = listed(&account, REGION).await;
    assert!(listed.contains_key(&made) && listed.contains_key(&registered));
    assert_eq!(listed.len(), 3, "the base image and the two: {listed:?}");
}

/// Defects 4 and 8: `copy` waits for a copy AWS does not know yet, and reuses an image of the name
/// only when it is (or may become) available: a failed one is named, not reused.
#[tokio::test]
async fn copy_waits_for_its_copy_and_never_reuses_a_failed_one() {
    let account = Account::new();
    let (image, _) = account.image(REGION, "svc-1").await;
    timing(&account, json!({ "unknown_for": 1, "pending": 1.5 }));
    let (code, out, stderr) = run(
        &account,
        &["copy", &image, "--to-region", "eu-west-1", "--wait"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(out["copies"]["eu-west-1"]["status"], "created");
    assert_eq!(out["copies"]["eu-west-1"]["state"], "available");

    // A copy that failed holds the name in ap-southeast-2.
    timing(&account, json!({ "fail": ["svc-1"] }));
    let failed = account
        .ec2_in("ap-southeast-2")
        .copy_image()
        .source_image_id(&image)
        .source_region(REGION)
        .name("svc-1")
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_string();
    timing(&account, Value::Null);
    let (code, out, _) = run(&account, &["copy", &image, "--to-region", "ap-southeast-2"]);
    assert_eq!(code, 1, "{out:#}");
    let entry = &out["copies"]["ap-southeast-2"];
    assert_eq!(entry["status"], "failed");
    let error = entry["error"].as_str().unwrap();
    assert!(
        error.contains(&failed) && error.contains("failed"),
        "{error}"
    );
}

/// Defect 5: the read-back straight after ModifyImageAttribute showed the old value, and `share`
/// reported "not granted after the change".
#[tokio::test]
async fn share_reads_back_until_aws_shows_the_change() {
    let account = Account::new();
    let consumer = Account::new();
    let (image, snapshot) = account.image(REGION, "shared-1").await;
    timing(&account, json!({ "read_back_lag": 1.5 }));
    let grant = [
        "share",
        &image,
        "--account",
        &consumer.id,
        "--with-snapshots",
    ];
    let (code, out, stderr) = run(&account, &grant);
    assert_eq!(code, 0, "{stderr}");
    let region = &out["regions"][0];
    assert_eq!(
        region["launch_permissions"]["accounts"],
        json!([consumer.id])
    );
    assert_eq!(region["snapshots"][0]["snapshot_id"], snapshot);
    assert_eq!(region["snapshots"][0]["accounts"], json!([consumer.id]));
    let mut revoke = grant.to_vec();
    revoke.push("--revoke");
    let (code, out, stderr) = run(&account, &revoke);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        out["regions"][0]["launch_permissions"]["accounts"],
        json!([])
    );
    // A grant made moments ago (elsewhere) does not show in the read yet (for longer than the
    // run takes to read it): the revoke still removes it.
    timing(&account, json!({ "read_back_lag": 10 }));
    account
        .ec2()
        .modify_image_attribute()
        .image_id(&image)
        .launch_permission(
            aws_sdk_ec2::types::LaunchPermissionModifications::builder()
                .add(
                    aws_sdk_ec2::types::LaunchPermission::builder()
                        .user_id(&consumer.id)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (code, _, stderr) = run(&account, &revoke);
    assert_eq!(code, 0, "{stderr}");
    timing(&account, Value::Null);
    let permissions = account
        .ec2()
        .describe_image_attribute()
        .image_id(&image)
        .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
        .send()
        .await
        .unwrap();
    assert!(
        permissions.launch_permissions().is_empty(),
        "the grant survived the revoke: {permissions:?}"
    );
}

/// Defect 4, `launch`: TerminateInstances right after RunInstances may answer NotFound. Ctrl-C
/// during the launch must still terminate the instance, not give up and leave it running.
#[tokio::test]
async fn ctrl_c_right_after_the_launch_terminates_an_instance_aws_does_not_know_yet() {
    let account = Account::new();
    let (image, _) = account.image(REGION, "launch-1").await;
    timing(&account, json!({ "unknown_for": 2 }));
    // Ctrl-C while RunInstances is in flight: the terminate that follows meets NotFound.
    account
        .interrupted_launch_strands_no_instance(&image, 1500)
        .await;
    timing(&account, Value::Null);
}

/// Every stage of a release with AWS slow everywhere: the new image and its copy pending, their
/// ids unknown for a while, read-backs late, the SSM value validated after PutParameter answered.
#[tokio::test]
async fn a_release_rides_out_a_slow_aws_from_create_to_publish() {
    let owner = Account::new();
    let consumer = Account::new();
    let source = instance(&owner).await;
    timing(
        &owner,
        json!({
            "unknown_for": 1, "pending": 1.5, "read_back_lag": 1, "ssm_image_validation": 1
        }),
    );
    let (code, out, stderr) = run(
        &owner,
        &[
            "release",
            "--instance-id",
            &source,
            "--name",
            "rel-2026.12.02",
            "--to-region",
            "eu-west-1",
            "--account",
            &consumer.id,
            "--with-snapshots",
            "--deprecate-after",
            "180d",
            "--protect",
            "--ssm-parameter",
            "/images/rel/latest",
        ],
    );
    assert_eq!(code, 0, "{stderr}\n{out:#}");
    for stage in out["stages"].as_array().unwrap() {
        assert_eq!(stage["state"], "done", "{stage:#}");
    }
    let published = &out["parameters"][REGION]["/images/rel/latest"];
    assert_eq!(published["status"], "created");
    assert_eq!(
        owner.parameter(REGION, "/images/rel/latest").await,
        out["images"][REGION]["image_id"].as_str().map(String::from)
    );
    timing(&owner, Value::Null);
}

/// A release whose copy was still pending when it stopped: the re-run makes no second copy but
/// waits for the first, and goes on only once it is available.
#[tokio::test]
async fn a_release_rerun_waits_for_the_copy_an_earlier_run_left_pending() {
    let owner = Account::new();
    let source = instance(&owner).await;
    let base = [
        "release",
        "--instance-id",
        &source,
        "--name",
        "slowcopy-2026.12.02",
        "--no-test",
    ];
    let (code, _, stderr) = run(&owner, &base);
    assert_eq!(code, 0, "{stderr}");
    timing(&owner, json!({ "pending": 5 }));
    let mut args = base.to_vec();
    args.extend(["--to-region", "eu-west-1"]);
    let mut short = args.clone();
    short.extend(["--timeout", "1s"]);
    let (code, out, stderr) = run(&owner, &short);
    assert_eq!(
        code, 1,
        "the copy was made, and is pending: {stderr}\n{out:#}"
    );
    assert_eq!(item(&out["stages"], "stage", "copy")["state"], "failed");
    assert_eq!(owner.requests().get("ec2:CopyImage"), Some(&1));

    let (code, out, stderr) = run(&owner, &args);
    assert_eq!(code, 0, "{stderr}\n{out:#}");
    let stage = item(&out["stages"], "stage", "copy");
    assert_eq!(stage["state"], "done", "{stage:#}");
    assert_eq!(out["images"]["eu-west-1"]["state"], "available", "{out:#}");
    assert_eq!(
        owner.requests().get("ec2:CopyImage"),
        Some(&1),
        "one copy in all"
    );
    timing(&owner, Value::Null);
}

/// Defect 11: PutParameter's 200 does not mean the parameter holds the id. Past the bound the
/// publish stage fails, saying what the parameter holds; once SSM has caught up, a re-run finds
/// it published.
#[tokio::test]
async fn a_publish_ssm_has_not_taken_within_the_bound_fails_the_stage() {
    let owner = Account::new();
    let (image, _) = owner.image(REGION, "pub-1").await;
    let source = owner.launch_instance(REGION, &image).await;
    timing(&owner, json!({ "ssm_image_validation": 4 }));
    let args = [
        "release",
        "--instance-id",
        &source,
        "--name",
        "pub-2026.12.02",
        "--no-test",
        "--ssm-parameter",
        "/images/pub/latest",
    ];
    let bound = [("AMI_CONSISTENCY_TIMEOUT", "1s")];
    let (code, out, stderr) = run_with(&owner, &args, &bound);
    assert_eq!(code, 1, "{stderr}\n{out:#}");
    let publish = item(&out["stages"], "stage", "publish");
    assert_eq!(publish["state"], "failed");
    assert!(
        publish["error"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{publish:#}"
    );
    // SSM takes it after its validation; the same command then finds it published.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let (code, out, stderr) = run(&owner, &args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        out["parameters"][REGION]["/images/pub/latest"]["status"],
        "unchanged"
    );
    timing(&owner, Value::Null);
}

/// `restore` read the restored image at once; AWS may not know it again for a while.
#[tokio::test]
async fn restore_waits_for_the_restored_image() {
    let account = Account::new();
    account.recycle_rule(REGION, "EC2_IMAGE", 7, &[]).await;
    account.recycle_rule(REGION, "EBS_SNAPSHOT", 7, &[]).await;
    let (image, snapshot) = account.image(REGION, "bin-1").await;
    let (code, _, stderr) = run(&account, &["deregister", &image, "--cleanup", "--yes"]);
    assert_eq!(code, 0, "{stderr}");
    timing(&account, json!({ "unknown_for": 1.5 }));
    let (code, out, stderr) = run(&account, &["restore", &image]);
    assert_eq!(code, 0, "{stderr}\n{out:#}");
    let restored = item(&out["images"], "image_id", &image);
    assert_eq!(restored["status"], "restored");
    assert_eq!(
        item(&restored["snapshots"], "snapshot_id", &snapshot)["status"],
        "restored"
    );
    timing(&account, Value::Null);
}

/// Defect 10: an image a Recycle Bin rule holds is not in DescribeImages, yet it needs its
/// snapshots to be restored: the orphan sweep keeps them, saying until when. The snapshot of an
/// image gone for good (still listed as deregistered) is an orphan like any other.
#[tokio::test]
async fn orphans_of_an_image_in_the_recycle_bin_are_kept() {
    let account = Account::new();
    let source = instance(&account).await;
    // A tag-level rule: only images tagged bin=yes go to the bin.
    account
        .recycle_rule(REGION, "EC2_IMAGE", 7, &[("bin", Some("yes"))])
        .await;
    let binned = create_image(&account, &source, "binned-1").await;
    account.tag(REGION, &binned, "bin", "yes").await;
    let gone = create_image(&account, &source, "gone-1").await;
    let snapshot_of = |image: String| {
        let account = &account;
        async move {
            account
                .ec2()
                .describe_images()
                .image_ids(&image)
                .send()
                .await
                .unwrap()
                .images()[0]
                .block_device_mappings()[0]
                .ebs()
                .unwrap()
                .snapshot_id()
                .unwrap()
                .to_string()
        }
    };
    let binned_snapshot = snapshot_of(binned.clone()).await;
    let gone_snapshot = snapshot_of(gone.clone()).await;
    timing(&account, json!({ "deregistered_listed": 30 }));
    deregister(&account, &binned).await;
    deregister(&account, &gone).await;
    assert_eq!(
        listed(&account, REGION)
            .await
            .get(&gone)
            .map(String::as_str),
        Some("deregistered")
    );

    let (code, out, stderr) = run(&account, &["cleanup", "--orphans", "--yes"]);
    assert_eq!(code, 0, "{stderr}\n{out:#}");
    let orphans = &out["regions"][0]["orphans"];
    let kept = item(orphans, "snapshot_id", &binned_snapshot);
    assert_eq!(kept["action"], "keep", "{orphans:#}");
    assert!(
        kept["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("{binned} is in the Recycle Bin")),
        "{kept:#}"
    );
    assert_eq!(
        item(orphans, "snapshot_id", &gone_snapshot)["action"],
        "delete"
    );
    let snapshots = account.snapshot_ids().await;
    assert!(snapshots.contains(&binned_snapshot));
    assert!(!snapshots.contains(&gone_snapshot));
    // And the binned image can still come back whole.
    let (code, _, stderr) = run(&account, &["restore", &binned]);
    assert_eq!(code, 0, "{stderr}");
    timing(&account, Value::Null);
}

/// A snapshot made for an image now in the Recycle Bin (its description names it) is kept when
/// another image that shared it is retired: without it the binned image could not be restored.
#[tokio::test]
async fn a_retirement_keeps_the_snapshot_an_image_in_the_recycle_bin_needs() {
    let account = Account::new();
    let source = instance(&account).await;
    account.recycle_rule(REGION, "EC2_IMAGE", 7, &[]).await;
    let binned = create_image(&account, &source, "made-1").await;
    let snapshot = account
        .ec2()
        .describe_images()
        .image_ids(&binned)
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
    let sharing = account
        .register_ebs(REGION, "reg-1", &[("/dev/xvda", &snapshot)])
        .await;
    deregister(&account, &binned).await;
    let (code, out, stderr) = run(&account, &["deregister", &sharing, "--cleanup", "--yes"]);
    assert_eq!(code, 0, "{stderr}\n{out:#}");
    let kept = item(&out["snapshots"], "snapshot_id", &snapshot);
    assert_eq!(kept["action"], "keep", "{out:#}");
    assert!(
        kept["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("{binned} is in the Recycle Bin")),
        "{kept:#}"
    );
    assert!(account.snapshot_ids().await.contains(&snapshot));
    let (code, _, stderr) = run(&account, &["restore", &binned]);
    assert_eq!(code, 0, "{stderr}");
}

/// `list` shows what exists: not the deregistered images AWS still lists, and pending ones as
/// pending.
#[tokio::test]
async fn list_leaves_out_what_aws_still_lists_as_deregistered() {
    let account = Account::new();
    let source = instance(&account).await;
    timing(
        &account,
        json!({ "deregistered_listed": 30, "pending": 30 }),
    );
    let (gone, _) = account.image(REGION, "list-1").await;
    deregister(&account, &gone).await;
    let pending = create_image(&account, &source, "list-2").await;
    let (code, out, stderr) = run(&account, &["list"]);
    assert_eq!(code, 0, "{stderr}");
    let images = out["images"].as_array().unwrap();
    assert!(
        images.iter().all(|i| i["image_id"] != gone.as_str()),
        "{out:#}"
    );
    assert_eq!(
        item(&out["images"], "image_id", &pending)["state"],
        "pending"
    );
    timing(&account, Value::Null);
}

/// `apply` carries out a reviewed plan with AWS slow to let go of the snapshots its images used.
#[tokio::test]
async fn apply_finishes_a_reviewed_plan_while_aws_settles() {
    let account = Account::new();
    let Pair {
        leaving: old,
        shared,
        data,
        ..
    } = pair(&account, "job").await;
    account.backdate(REGION, &old, "2026-09-01T00:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let plan = plan.to_str().unwrap();
    let (code, _, stderr) = run(&account, &["cleanup", "--keep", "1", "--plan-out", plan]);
    assert_eq!(code, 0, "{stderr}");
    timing(
        &account,
        json!({ "deregistered_listed": 30, "in_use_after_deregister": 2 }),
    );
    let (code, out, stderr) = run(&account, &["apply", plan, "--yes"]);
    assert_eq!(code, 0, "{stderr}\n{out:#}");
    let snapshots = account.snapshot_ids().await;
    assert!(!snapshots.contains(&data) && snapshots.contains(&shared));
    // Gone: at most still listed as deregistered.
    let state = listed(&account, REGION).await.get(&old).cloned();
    assert!(
        matches!(state.as_deref(), None | Some("deregistered")),
        "{state:?}"
    );
    timing(&account, Value::Null);
}

/// Defect 7: deprecation times are checked before any call as AWS checks them (here, past its
/// 10-year limit: nothing is made); a staged deprecation asks for the soonest time AWS takes.
#[tokio::test]
async fn deprecation_times_are_ones_aws_accepts() {
    let account = Account::new();
    let source = instance(&account).await;
    account.reset_requests();
    let (code, _, stderr) = run(
        &account,
        &[
            "create",
            "--instance-id",
            &source,
            "--name",
            "far-1",
            "--deprecate-after",
            "4000d",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("10 years"), "{stderr}");
    assert_eq!(account.mutating_calls(), Vec::<String>::new());

    let (old, _) = account.image(REGION, "dep-1").await;
    account.backdate(REGION, &old, "2026-09-01T00:00:00Z");
    let (_new, _) = account.image(REGION, "dep-2").await;
    let (code, out, stderr) = run(
        &account,
        &["cleanup", "--keep", "1", "--action", "deprecate", "--yes"],
    );
    assert_eq!(code, 0, "{stderr}\n{out:#}");
    let deprecation = account
        .ec2()
        .describe_images()
        .image_ids(&old)
        .send()
        .await
        .unwrap()
        .images()[0]
        .deprecation_time()
        .unwrap()
        .to_string();
    let at = chrono::DateTime::parse_from_rfc3339(&deprecation).unwrap();
    assert!(at > chrono::Utc::now(), "{deprecation}");
    assert_eq!(chrono::Timelike::second(&at), 0, "{deprecation}");
    // Run again: already deprecated (by the soonest time AWS takes), nothing sent.
    account.reset_requests();
    let (code, _, stderr) = run(
        &account,
        &["cleanup", "--keep", "1", "--action", "deprecate", "--yes"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !account
            .requests()
            .contains_key("ec2:EnableImageDeprecation")
    );
}

/// A snapshot two retired images share is marked under one of them before they go. Interrupted
/// after the first is deregistered, the second stays, and still uses it: the mark is removed, so
/// no later run deletes a snapshot an image uses once that image goes some other way.
#[tokio::test]
async fn an_interrupted_pair_leaves_no_mark_on_the_snapshot_the_staying_one_uses() {
    let account = Account::new();
    let shared = account.snapshot(REGION, 8).await;
    let first = account
        .register_ebs(REGION, "duo-1", &[("/dev/xvda", &shared)])
        .await;
    let second = account
        .register_ebs(REGION, "duo-2", &[("/dev/xvda", &shared)])
        .await;
    let out = account.interrupted_while(
        &["deregister", &first, &second, "--cleanup", "--yes"],
        "ec2:DeregisterImage",
        1500,
    );
    assert_eq!(item(&out["images"], "image_id", &first)["status"], "done");
    assert_eq!(
        item(&out["images"], "image_id", &second)["status"],
        "not_started"
    );
    let images = listed(&account, REGION).await;
    assert!(images.contains_key(&second));
    let tags = account.tags_of(REGION, &shared).await;
    assert!(
        !tags.contains_key("ami:cleanup-pending-for"),
        "{second} still uses {shared}, yet it is marked: {tags:?}"
    );
}

/// The other side of a lost answer: when the first attempt was refused outright (throttled:
/// nothing ran), the name taken on the retry is another image's, even one made from the same
/// instance (an earlier run's, not listed yet). It is never adopted.
#[tokio::test]
async fn a_name_taken_after_a_throttled_attempt_is_not_the_call_s_image() {
    let account = Account::new();
    let source = instance(&account).await;
    // Another run's image, made moments ago: not in listings yet, so its name looks free.
    timing(&account, json!({ "unknown_for": 4 }));
    // One token for mutating calls, refilled slowly: the other run's CreateImage takes it.
    account.configure(json!({"throttle": {"burst": 1, "refill_per_second": 0.5}}));
    let twin = create_image(&account, &source, "twin-1").await;
    let (code, _, stderr) = run(
        &account,
        &[
            "create",
            "--max-attempts",
            "5",
            "--instance-id",
            &source,
            "--name",
            "twin-1",
            "--no-wait",
        ],
    );
    account.configure(json!({"throttle": null}));
    timing(&account, Value::Null);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("InvalidAMIName.Duplicate") && stderr.contains(&twin),
        "{stderr}"
    );
    assert!(
        account
            .faults_injected()
            .keys()
            .any(|k| k.ends_with(":throttle"))
    );
}

/// Ctrl-C while the release's test launch is in flight: the instance that launch made is found
/// by its tag and terminated, not left to a re-run.
#[tokio::test]
async fn ctrl_c_during_the_release_test_launch_terminates_the_test_instance() {
    let owner = Account::new();
    let source = instance(&owner).await;
    let out = owner.interrupted_while(
        &["release", "--instance-id", &source, "--name", "cut-1"],
        "ec2:RunInstances",
        2000,
    );
    let test = item(&out["stages"], "stage", "test");
    assert!(
        test["error"].as_str().unwrap().contains("terminated"),
        "{test:#}"
    );
    // Only the instance the images are made from is left running.
    let live = owner.live_instances().await;
    assert_eq!(live, [source], "a test instance was left running");
}
