//! The unattended path (`--yes`, `apply --yes`): retire images while the consumer checks of
//! others are still being read, so the reads and the writes share the run instead of following
//! each other. EC2 gives them separate request budgets.
//!
//! A task of its own reads the launch permissions (`Reader`); the images found shared with
//! accounts get their usage reports in batches meanwhile, and role checks at the end
//! (`check_accounts`). Each fact is handed over as it arrives. The executor plans and executes
//! whatever the facts settle (`plan::stream`), a batch at a time, through the same `execute` as
//! a planned run. What it does is what the whole plan, made at the end from every fact, says:
//! `absorb` lays the batches' results over that plan; anything the plan deletes that no batch
//! did is reported not started after Ctrl-C, and failed otherwise.

use futures::{StreamExt, stream};
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::execute::{ExecuteOptions, execute};
use super::report::{BundleReport, RetireReport};
use crate::aws::{Aws, Ec2};
use crate::interrupt;
use crate::model::{ConsumerChecks, ConsumerFacts, ImageUser, LaunchPermissions};
use crate::plan::stream::{Release, settle};
use crate::plan::users::Usage;
use crate::plan::{self, Inventory, Request};

/// What a streamed retirement starts from: everything but the consumer checks.
pub struct Streaming<F> {
    /// Every image, the targets' snapshots and bundles, the locks and rules; `users` is
    /// replaced by what is known as the checks come in.
    pub inventory: Inventory,
    /// Who uses the images in this account (read before anything else).
    pub at_home: Usage,
    /// What the rules deregister before any consumer check, in plan order: the final targets are
    /// among them.
    pub targets: Vec<String>,
    /// Retirements an interrupted run left unfinished: nothing to check.
    pub pending: Vec<String>,
    /// The consumer checks, already under way.
    pub reader: Reader,
    /// The request each batch is planned with (its targets are the batch's).
    pub request: Request,
    /// The rules' decision for a set of users: the images they deregister.
    pub retired_under: F,
}

/// What the checks found, and the batches as executed.
pub struct Streamed {
    pub facts: ConsumerFacts,
    pub executed: Vec<RetireReport>,
}

enum Arrival {
    Permissions(String, anyhow::Result<LaunchPermissions>),
    Checks(ConsumerChecks),
}

pub async fn stream<F>(aws: &Aws, region: &str, input: Streaming<F>) -> Streamed
where
    F: Fn(&BTreeMap<String, Vec<ImageUser>>) -> BTreeSet<String>,
{
    // Writes start while reads are still going: Ctrl-C must let them finish, not kill them.
    interrupt::watch(crate::output::interrupted);
    let Streaming {
        mut inventory,
        at_home,
        targets,
        pending,
        mut reader,
        request,
        retired_under,
    } = input;
    let own = inventory.account_id.clone();
    let order: Vec<String> = targets.iter().chain(&pending).cloned().collect();
    let mut release = Release::new(plan::sharing_groups(&ties(&inventory, &order)));
    let checking = std::mem::take(&mut reader.checking);
    let accounts = check_accounts(aws, region, reader.follow_up.take());
    let arrivals = &mut reader.arrivals;
    let executor = async {
        let mut facts = ConsumerFacts::default();
        let mut checked: BTreeSet<String> = BTreeSet::new();
        let mut executed = Vec::new();
        let mut reading = true;
        while reading {
            // Wait for the next fact, then take every one already there.
            match arrivals.recv().await {
                Some(arrival) => receive(arrival, &own, &mut facts, &mut checked),
                None => reading = false,
            }
            while let Ok(arrival) = arrivals.try_recv() {
                receive(arrival, &own, &mut facts, &mut checked);
            }
            // After Ctrl-C nothing new starts; the reads in flight finish.
            if interrupt::requested() {
                continue;
            }
            let settled = settle(
                &targets,
                &checking,
                &own,
                &at_home,
                &facts,
                &checked,
                &retired_under,
            );
            let mut retire = settled.retire;
            retire.extend(pending.iter().cloned());
            let going: BTreeSet<String> =
                release.next(&retire, &settled.keep).into_iter().collect();
            if going.is_empty() {
                continue;
            }
            inventory.users = settled.usage.users;
            let batch = Request {
                targets: order
                    .iter()
                    .filter(|id| going.contains(*id))
                    .cloned()
                    .collect(),
                ..request.clone()
            };
            let mut report = RetireReport::new(
                region,
                false,
                true,
                plan::plan(&inventory, &batch),
                Vec::new(),
            );
            execute(aws, region, ExecuteOptions::default(), &mut report).await;
            executed.push(report);
        }
        Streamed { facts, executed }
    };
    let ((), streamed) = futures::join!(accounts, executor);
    streamed
}

/// Per target, what ties its fate to others': its snapshots (an unfinished retirement's marked
/// ones), and the bucket of an instance-store image's bundle (bundles in one bucket are judged
/// against each other).
fn ties(inventory: &Inventory, order: &[String]) -> Vec<(String, Vec<String>)> {
    let images: BTreeMap<&str, &crate::model::Image> = inventory
        .images
        .iter()
        .map(|image| (image.image_id.as_str(), image))
        .collect();
    order
        .iter()
        .map(|id| {
            let mut tied: Vec<String> = Vec::new();
            if let Some(image) = images.get(id.as_str()) {
                tied.extend(
                    image
                        .block_devices
                        .iter()
                        .filter_map(|device| device.snapshot_id.clone()),
                );
                if image.is_instance_store()
                    && let Some((bucket, _, _)) = image
                        .image_location
                        .as_deref()
                        .and_then(plan::manifest::split_location)
                {
                    tied.push(format!("s3://{bucket}"));
                }
            }
            if let Some(marked) = inventory.pending.get(id) {
                tied.extend(marked.iter().cloned());
            }
            (id.clone(), tied)
        })
        .collect()
}

/// A fact in: an image is checked once nothing more about it is coming (its permissions name
/// no other account or could not be read; or its report and each of its accounts are in).
fn receive(arrival: Arrival, own: &str, facts: &mut ConsumerFacts, checked: &mut BTreeSet<String>) {
    // Only what the fact is about can have become complete: one image, or (accounts' checks)
    // the images still waiting.
    let about: Vec<String> = match arrival {
        Arrival::Permissions(image_id, read) => {
            facts.record(
                image_id.clone(),
                read.map_err(|err| crate::error::one_line(&err)),
            );
            vec![image_id]
        }
        Arrival::Checks(checks) => {
            facts.add_checks(checks);
            facts
                .permissions
                .keys()
                .filter(|id| !checked.contains(*id))
                .cloned()
                .collect()
        }
    };
    for image_id in about {
        let complete = match facts.permissions.get(&image_id) {
            None => facts.unreadable.contains_key(&image_id),
            Some(permissions) => {
                !permissions.shared_with_accounts(own)
                    || facts.reports.contains_key(&image_id)
                        && permissions
                            .accounts
                            .iter()
                            .filter(|account| *account != own)
                            .all(|account| facts.accounts.contains_key(account))
            }
        };
        if complete {
            checked.insert(image_id);
        }
    }
}

/// The consumer checks of a streamed retirement. The launch permissions are read by a task of
/// their own (so that planning a batch never holds them up), from before the rest of the
/// inventory is read. Each image found shared with accounts gets its usage report as soon as it
/// is found (in batches, while the reads go on); role checks follow once every permission is in.
pub struct Reader {
    /// The images being checked (none with --ignore-consumers).
    checking: Vec<String>,
    arrivals: UnboundedReceiver<Arrival>,
    /// For the accounts' checks: a way in, and the images found shared with accounts.
    follow_up: Option<(UnboundedSender<Arrival>, UnboundedReceiver<Share>)>,
    task: tokio::task::JoinHandle<()>,
}

/// An image shared with other accounts, and those accounts.
type Share = (String, Vec<String>);

impl Reader {
    /// Starts checking `checking` (the targets, and the images to be disabled).
    pub fn start(aws: &Aws, region: &str, own_account: &str, checking: Vec<String>) -> Reader {
        let checking = if aws.consumers.ignore {
            Vec::new()
        } else {
            checking
        };
        let (sender, arrivals) = tokio::sync::mpsc::unbounded_channel();
        let (found_shared, shared) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(read_permissions(
            aws.ec2(region),
            own_account.to_string(),
            checking.clone(),
            sender.clone(),
            found_shared,
        ));
        Reader {
            checking,
            arrivals,
            follow_up: Some((sender, shared)),
            task,
        }
    }
}

/// A region that fails before its retirement starts stops its reads too.
impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Each launch permission, handed over as it is read (and an image shared with accounts, to
/// the accounts' checks too). Starts nothing after Ctrl-C.
async fn read_permissions(
    ec2: Ec2,
    own: String,
    checking: Vec<String>,
    sender: UnboundedSender<Arrival>,
    found_shared: UnboundedSender<Share>,
) {
    // Futures that own what they use: a task must be `Send` whatever the lifetimes.
    let reads: Vec<_> = checking
        .into_iter()
        .map(|image_id| {
            let ec2 = ec2.clone();
            async move {
                if interrupt::requested() {
                    return None;
                }
                Some(ec2.permissions_of(image_id).await)
            }
        })
        .collect();
    let mut reads = stream::iter(reads).buffer_unordered(crate::concurrency::IMAGE_ATTRIBUTES);
    while let Some(next) = reads.next().await {
        let Some((image_id, permissions)) = next else {
            continue;
        };
        if let Ok(found) = &permissions
            && found.shared_with_accounts(&own)
        {
            let accounts: BTreeSet<String> = found
                .accounts
                .iter()
                .filter(|account| **account != own)
                .cloned()
                .collect();
            let _ = found_shared.send((image_id.clone(), accounts.into_iter().collect()));
        }
        // The executor only stops listening once every sender is gone.
        let _ = sender.send(Arrival::Permissions(image_id, permissions));
    }
}

/// The accounts' checks of the images shared with accounts, as `Aws::check_consumers` makes
/// them: a usage report per image, made for each batch of images found while the previous
/// batch's reports were being made; then, with `--role-name`, a look into each account.
async fn check_accounts(
    aws: &Aws,
    region: &str,
    follow_up: Option<(UnboundedSender<Arrival>, UnboundedReceiver<Share>)>,
) {
    let Some((sender, mut shared)) = follow_up else {
        return;
    };
    let mut every_share: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut reading = true;
    while reading {
        // Wait for one, then take every one already found.
        let mut batch: BTreeMap<String, Vec<String>> = BTreeMap::new();
        match shared.recv().await {
            Some((image_id, accounts)) => {
                batch.insert(image_id, accounts);
            }
            None => reading = false,
        }
        while let Ok((image_id, accounts)) = shared.try_recv() {
            batch.insert(image_id, accounts);
        }
        if batch.is_empty() || interrupt::requested() {
            continue;
        }
        // Reports can take minutes: Ctrl-C does not wait for them.
        let reports = tokio::select! {
            reports = aws.usage_reports_of(region, &batch) => reports,
            () = interrupt::wait() => continue,
        };
        // Without a role, nothing more is learned about the accounts.
        let accounts = match aws.consumers.role_name {
            None => aws.account_checks(region, &batch).await,
            Some(_) => BTreeMap::new(),
        };
        every_share.extend(batch);
        let _ = sender.send(Arrival::Checks(ConsumerChecks { accounts, reports }));
    }
    if aws.consumers.role_name.is_none() || every_share.is_empty() || interrupt::requested() {
        return;
    }
    tokio::select! {
        accounts = aws.account_checks(region, &every_share) => {
            let _ = sender.send(Arrival::Checks(ConsumerChecks { accounts, reports: BTreeMap::new() }));
        }
        () = interrupt::wait() => {}
    }
}

/// Lays the executed batches over the whole plan: each item a batch handled takes its status
/// from there. An item the plan deletes that no batch handled was not started (after Ctrl-C, or
/// if the facts changed under the run: a re-run does it).
///
/// Returns how many items a batch handled that the whole plan does not have (none, as long as
/// the rules are monotone): they are reported as done, and the caller counts them as a problem.
pub fn absorb(report: &mut RetireReport, executed: Vec<RetireReport>) -> usize {
    let mut images = BTreeMap::new();
    let mut snapshots = BTreeMap::new();
    let mut bundles = BTreeMap::new();
    for batch in executed {
        for image in batch.images {
            images.insert(image.plan.image_id.clone(), image);
        }
        for snapshot in batch.snapshots {
            snapshots.insert(snapshot.plan.snapshot_id.clone(), snapshot);
        }
        for bundle in batch.bundles {
            bundles.insert(bundle_key(&bundle), bundle);
        }
        report
            .instances_terminated
            .extend(batch.instances_terminated);
        report.notes.extend(batch.notes);
    }
    for image in report.images.iter_mut() {
        if let Some(done) = images.remove(&image.plan.image_id) {
            (image.status, image.error, image.code) = (done.status, done.error, done.code);
        }
    }
    for snapshot in report.snapshots.iter_mut() {
        if let Some(done) = snapshots.remove(&snapshot.plan.snapshot_id) {
            (snapshot.status, snapshot.error, snapshot.code) = (done.status, done.error, done.code);
        }
    }
    for bundle in report.bundles.iter_mut() {
        if let Some(done) = bundles.remove(&bundle_key(bundle)) {
            bundle.status = done.status;
            bundle.error = done.error;
            bundle.failed_keys = done.failed_keys;
            bundle.bucket_deleted = done.bucket_deleted;
        }
    }
    // A batch never does what the whole plan would not (the rules are monotone); should one
    // have, what it did is still reported, never hidden.
    let beyond = images.len() + snapshots.len() + bundles.len();
    report.images.extend(images.into_values());
    report.snapshots.extend(snapshots.into_values());
    report.bundles.extend(bundles.into_values());
    if interrupt::requested() {
        report.not_started_because("not started: interrupted");
    } else {
        // Without Ctrl-C every check ends, so this is a failure, not a pause.
        report.fail_planned(
            "not done: its checks were not complete when the run ended; a re-run does it",
        );
    }
    report.tally_left_behind();
    beyond
}

fn bundle_key(bundle: &BundleReport) -> (String, String, String) {
    (
        bundle.plan.image_id.clone(),
        bundle.plan.bucket.clone(),
        bundle.plan.manifest_key.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConsumerCheck, UsageReport};

    const OURS: &str = "111111111111";
    const THEIRS: &str = "222222222222";

    fn permissions(accounts: &[&str]) -> anyhow::Result<LaunchPermissions> {
        Ok(LaunchPermissions {
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        })
    }

    fn report_and_account(image: &str) -> Arrival {
        Arrival::Checks(ConsumerChecks {
            reports: BTreeMap::from([(image.to_string(), UsageReport::Unavailable("x".into()))]),
            accounts: BTreeMap::from([(THEIRS.to_string(), ConsumerCheck::NoRole)]),
        })
    }

    #[test]
    fn an_image_is_checked_once_nothing_more_about_it_is_coming() {
        // Table: arrivals in order → the images checked after them.
        let cases: Vec<(&str, Vec<Arrival>, &[&str])> = vec![
            (
                "not shared, or shared with ourselves only",
                vec![
                    Arrival::Permissions("ami-a".into(), permissions(&[])),
                    Arrival::Permissions("ami-b".into(), permissions(&[OURS])),
                ],
                &["ami-a", "ami-b"],
            ),
            (
                "shared with an account: not before its report and account check",
                vec![Arrival::Permissions("ami-a".into(), permissions(&[THEIRS]))],
                &[],
            ),
            (
                "shared, then the checks",
                vec![
                    Arrival::Permissions("ami-a".into(), permissions(&[THEIRS])),
                    report_and_account("ami-a"),
                ],
                &["ami-a"],
            ),
            (
                "the checks first, then the permissions (either order)",
                vec![
                    report_and_account("ami-a"),
                    Arrival::Permissions("ami-a".into(), permissions(&[THEIRS])),
                ],
                &["ami-a"],
            ),
            (
                "a report without the account's check is not enough (--role-name comes last)",
                vec![
                    Arrival::Permissions("ami-a".into(), permissions(&[THEIRS])),
                    Arrival::Checks(ConsumerChecks {
                        reports: BTreeMap::from([(
                            "ami-a".to_string(),
                            UsageReport::Unavailable("x".into()),
                        )]),
                        accounts: BTreeMap::new(),
                    }),
                ],
                &[],
            ),
            (
                "a read that failed: nothing more is coming (the image stays)",
                vec![Arrival::Permissions(
                    "ami-a".into(),
                    Err(anyhow::anyhow!("AccessDenied")),
                )],
                &["ami-a"],
            ),
        ];
        for (label, arrivals, expected) in cases {
            let mut facts = ConsumerFacts::default();
            let mut checked = BTreeSet::new();
            for arrival in arrivals {
                receive(arrival, OURS, &mut facts, &mut checked);
            }
            let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
            assert_eq!(checked, expected, "{label}");
        }
    }
}
