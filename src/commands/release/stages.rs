//! The six stages of a release behind one trait. A stage's `plan` reads where things stand and
//! says what it does, the same way for a dry run and a real run; the dry run lists and checks
//! those calls, and the real run hands them to `execute`, which makes them and no others.

use anyhow::{Result, anyhow};
use chrono::Utc;
use futures::{StreamExt, stream};
use std::collections::BTreeMap;

use super::calls::{Call, ImageSlot, Instances};
use super::{
    Ended, PublishStatus, Published, ReleaseImage, Run, TEST_INSTANCE_TAG, TESTED_TAG,
    wants_protection,
};
use crate::aws::settle::Fresh;
use crate::commands::copy::{CopyEntry, CopyStatus, copy_one, copy_tags, existing_copy};
use crate::commands::launch::{refuse_unlaunchable, terminate};
use crate::commands::new_image::{
    MadeFrom, deprecation_at, existing_named, made_image, wait_until_available,
};
use crate::commands::share::{ShareAction, share_image};
use crate::error::one_line;
use crate::interrupt;
use crate::model::ImageState;
use crate::plan::state::Standing;

/// What a stage's plan found to do.
pub(super) enum Planned {
    /// Nothing to do, and why.
    Skip(String),
    Work(Work),
}

pub(super) struct Work {
    /// What the stage does, in words (a dry run's detail).
    pub intent: String,
    /// The calls, in the order they are made.
    pub calls: Vec<Call>,
    /// What the plan refused (a parameter holding another value): the stage fails with these
    /// after making its other calls.
    pub refused: Vec<String>,
}

impl Planned {
    fn work(intent: impl Into<String>, calls: Vec<Call>) -> Planned {
        Planned::Work(Work {
            intent: intent.into(),
            calls,
            refused: Vec::new(),
        })
    }
}

pub(super) trait ReleaseStage {
    async fn plan(run: &mut Run<'_>) -> Result<Planned>;
    async fn execute(run: &mut Run<'_>, calls: Vec<Call>) -> Result<Ended>;
}

/// A call handed to a stage that never plans it: a bug, reported instead of ignored.
fn not_this_stage(call: &Call) -> anyhow::Error {
    anyhow!("internal error: this stage does not make {call:?}")
}

pub(super) struct Create;

impl ReleaseStage for Create {
    async fn plan(run: &mut Run<'_>) -> Result<Planned> {
        let args = run.args;
        let existing = existing_named(&run.ec2(), &args.name).await?;
        let Some(image) = existing else {
            return Ok(Planned::work(
                format!(
                    "create '{}' from {}, then wait until it is available",
                    args.name, args.instance_id
                ),
                vec![Call::CreateImage {
                    region: run.region.clone(),
                    instance_id: args.instance_id.clone(),
                    name: args.name.clone(),
                    description: args.description.clone(),
                    no_reboot: args.no_reboot,
                    tags: args.tags.clone(),
                }],
            ));
        };
        run.record(&image);
        match Standing::of(&image.state) {
            Standing::Launchable => Ok(Planned::Skip(format!(
                "{} exists (made by an earlier run)",
                image.image_id
            ))),
            // Made by an earlier run and on its way: the stage only waits.
            Standing::InProgress => Ok(Planned::work(
                format!("wait until {} is available", image.image_id),
                Vec::new(),
            )),
            _ => Err(anyhow!(
                "{} named '{}' is {}: deregister it (ami deregister {} --cleanup) and re-run",
                image.image_id,
                args.name,
                image.state,
                image.image_id
            )),
        }
    }

    async fn execute(run: &mut Run<'_>, calls: Vec<Call>) -> Result<Ended> {
        let ec2 = run.ec2();
        let timeout = run.args.timeout;
        let Some(call) = calls.into_iter().next() else {
            let source = run.source_id(&run.region)?.to_string();
            let image = wait_until_available(&ec2, &source, timeout, None).await?;
            run.record(&image);
            return Ok(Ended::Done(format!(
                "{source} (made by an earlier run) is available"
            )));
        };
        let Call::CreateImage {
            instance_id,
            name,
            description,
            no_reboot,
            tags,
            ..
        } = &call
        else {
            return Err(not_this_stage(&call));
        };
        let made = ec2
            .create_image(instance_id, name, description.as_deref(), *no_reboot, tags)
            .await?;
        let image_id = made_image(&ec2, name, MadeFrom::Instance(instance_id), made).await?;
        run.output.images.insert(
            run.region.clone(),
            ReleaseImage {
                image_id: image_id.clone(),
                state: ImageState::Pending,
            },
        );
        let image = wait_until_available(&ec2, &image_id, timeout, None).await?;
        run.record(&image);
        Ok(Ended::Done(format!("{image_id} created and available")))
    }
}

pub(super) struct Test;

impl ReleaseStage for Test {
    async fn plan(run: &mut Run<'_>) -> Result<Planned> {
        if run.args.no_test {
            return Ok(Planned::Skip("--no-test".into()));
        }
        let region = run.region.clone();
        let instance_type = run.args.placement.instance_type.clone();
        let test_calls = |image: ImageSlot, leftovers: Vec<String>| {
            let mut calls = Vec::new();
            if !leftovers.is_empty() {
                calls.push(Call::TerminateInstances {
                    region: region.clone(),
                    instances: Instances::LeftOver(leftovers),
                });
            }
            calls.extend([
                Call::RunInstances {
                    region: region.clone(),
                    image: image.clone(),
                    instance_type: instance_type.clone(),
                },
                Call::TerminateInstances {
                    region: region.clone(),
                    instances: Instances::TheTestInstance,
                },
                Call::MarkTested {
                    region: region.clone(),
                    image,
                },
            ]);
            calls
        };
        let Some(image_id) = run.source().map(|s| s.image_id.clone()) else {
            return Ok(Planned::work(
                "launch one instance from the new image, wait until running, terminate it",
                test_calls(ImageSlot::ToBeMade, Vec::new()),
            ));
        };
        let ec2 = run.ec2();
        let image = ec2.new_image(&image_id).await?;
        if let Some(when) = image.tags.get(TESTED_TAG) {
            return Ok(Planned::Skip(format!("tested by an earlier run ({when})")));
        }
        // A dry run after an earlier run's image was started expects it to become available.
        if !run.settings.dry_run {
            refuse_unlaunchable(&image)?;
        }
        let leftovers = ec2
            .live_instances_tagged(TEST_INSTANCE_TAG, &image_id)
            .await?
            .into_iter()
            .map(|i| i.instance_id)
            .collect();
        Ok(Planned::work(
            format!("test {image_id}"),
            test_calls(ImageSlot::Made(image_id), leftovers),
        ))
    }

    /// The calls in order; after a failure only the test instance's termination is still
    /// made, so that it never outlives the stage.
    async fn execute(run: &mut Run<'_>, calls: Vec<Call>) -> Result<Ended> {
        let ec2 = run.ec2();
        let timeout = run.args.timeout;
        let mut launched: Vec<String> = Vec::new();
        let mut zone = "-".to_string();
        let mut failure: Option<anyhow::Error> = None;
        for call in calls {
            let cleanup = matches!(
                call,
                Call::TerminateInstances {
                    instances: Instances::TheTestInstance,
                    ..
                }
            );
            if failure.is_some() && !cleanup {
                continue;
            }
            let result =
                match &call {
                    Call::TerminateInstances {
                        instances: Instances::LeftOver(ids),
                        ..
                    } => terminate_leftovers(run, ids).await,
                    Call::RunInstances { image, .. } => {
                        let id = image.id(&run.region)?.to_string();
                        launch_test(run, &id, &mut launched, &mut zone).await
                    }
                    Call::TerminateInstances {
                        instances: Instances::TheTestInstance,
                        ..
                    } if !launched.is_empty() => terminate(&ec2, &launched, timeout, None)
                        .await
                        .map(|terminated| {
                            run.output.test_instance = terminated.into_iter().next();
                        }),
                    Call::TerminateInstances { .. } => Ok(()),
                    Call::MarkTested { image, .. } => {
                        let tested = [(
                            TESTED_TAG.to_string(),
                            Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        )];
                        let id = [image.id(&run.region)?.to_string()];
                        ec2.once_caught_up(Fresh::Image, || ec2.tag_resources(&id, &tested))
                            .await
                    }
                    other => Err(not_this_stage(other)),
                };
            if let Err(err) = result {
                failure.get_or_insert(err);
            }
        }
        if let Some(err) = failure {
            return Err(err);
        }
        Ok(Ended::Done(format!(
            "{} ran in {zone}, then was terminated",
            launched.join(", ")
        )))
    }
}

/// TerminateInstances is sent whatever happens; Ctrl-C only stops the wait for it.
async fn terminate_leftovers(run: &Run<'_>, ids: &[String]) -> Result<()> {
    let ec2 = run.ec2();
    ec2.terminate_instances(ids).await?;
    tokio::select! {
        terminated = ec2.wait_terminated(ids, run.args.timeout) => {
            terminated?;
        }
        _ = interrupt::wait() => {}
    }
    Ok(())
}

/// Launches the test instance and waits until it runs. The stage is not cut short from
/// outside: after Ctrl-C it launches nothing new.
async fn launch_test(
    run: &mut Run<'_>,
    image_id: &str,
    launched: &mut Vec<String>,
    zone: &mut String,
) -> Result<()> {
    if interrupt::requested() {
        return Err(anyhow!("interrupted (Ctrl-C) before the test launch"));
    }
    let ec2 = run.ec2();
    let request = run.test_launch(image_id)?;
    let instances = ec2
        .once_caught_up(Fresh::Image, || ec2.run_instances(&request))
        .await?;
    *launched = instances.iter().map(|i| i.instance_id.clone()).collect();
    run.output.test_instance = instances.into_iter().next();
    let running = tokio::select! {
        running = ec2.wait_running(launched.as_slice(), run.args.timeout) => running?,
        _ = interrupt::wait() => {
            return Err(anyhow!("interrupted (Ctrl-C) while the test instance started"));
        }
    };
    if let Some(instance) = running.into_iter().next() {
        if let Some(az) = &instance.availability_zone {
            *zone = az.clone();
        }
        run.output.test_instance = Some(instance);
    }
    Ok(())
}

pub(super) struct Copy;

impl ReleaseStage for Copy {
    /// A copy an earlier run made is not made again: one available with the source's tags is
    /// done, one still pending (or lacking tags) is waited for and given them.
    async fn plan(run: &mut Run<'_>) -> Result<Planned> {
        if run.targets.is_empty() {
            return Ok(Planned::Skip("no --to-region".into()));
        }
        let source = ImageSlot::from_id(run.source().map(|s| s.image_id.clone()));
        let tags = match &source {
            ImageSlot::Made(source_id) => {
                let image = run.ec2().new_image(source_id).await?;
                // The test mark belongs to the source's own test, not to the copies.
                let mut source_tags = image.tags;
                source_tags.remove(TESTED_TAG);
                copy_tags(&source_tags, true, &[])
            }
            ImageSlot::ToBeMade => Vec::new(),
        };
        let mut calls = Vec::new();
        for target in run.targets.clone() {
            if let ImageSlot::Made(source_id) = &source {
                let request = run.copy_request(source_id, &tags);
                if let Some(image) = existing_copy(&run.aws.ec2(&target), &request).await? {
                    run.record(&image);
                    let missing_tags: Vec<(String, String)> = tags
                        .iter()
                        .filter(|(key, value)| image.tags.get(key) != Some(value))
                        .cloned()
                        .collect();
                    if Standing::of(&image.state) != Standing::Launchable
                        || !missing_tags.is_empty()
                    {
                        calls.push(Call::FinishCopy {
                            region: target,
                            image_id: image.image_id,
                            missing_tags,
                        });
                    }
                    continue;
                }
            }
            calls.push(Call::CopyImage {
                region: target,
                source_region: run.region.clone(),
                source: source.clone(),
                name: run.args.name.clone(),
                completion_minutes: run.completion,
                tags: tags.clone(),
            });
        }
        if calls.is_empty() {
            return Ok(Planned::Skip(format!(
                "found from an earlier run: {}",
                run.found_copies().join(", ")
            )));
        }
        Ok(Planned::work(
            format!(
                "copy to {}, then wait until every copy is available",
                run.targets.join(", ")
            ),
            calls,
        ))
    }

    /// Each copy (or the wait for one an earlier run started), in every region at once.
    async fn execute(run: &mut Run<'_>, calls: Vec<Call>) -> Result<Ended> {
        let found = run.found_copies();
        let source_id = run.source_id(&run.region)?.to_string();
        let timeout = run.args.timeout;
        let runner = &*run;
        let resumed: Vec<String> = calls
            .iter()
            .filter(|call| matches!(call, Call::FinishCopy { .. }))
            .map(|call| call.region().to_string())
            .collect();
        let results: Vec<(String, Result<CopyEntry>)> = stream::iter(calls)
            .map(|call| {
                let source_id = &source_id;
                async move {
                    let region = call.region().to_string();
                    let tags = match &call {
                        Call::CopyImage { tags, .. } => tags.clone(),
                        Call::FinishCopy { missing_tags, .. } => missing_tags.clone(),
                        other => return (region, Err(not_this_stage(other))),
                    };
                    let ec2 = runner.aws.ec2(&region);
                    // The copy an earlier run started is found again and reused, not made.
                    let request = runner.copy_request(source_id, &tags);
                    let entry = copy_one(&ec2, &request, &tags, Some(timeout), None).await;
                    (region, entry)
                }
            })
            .buffer_unordered(crate::concurrency::REGIONS)
            .collect()
            .await;
        let mut made = Vec::new();
        let mut failed = Vec::new();
        for (target, result) in results {
            match result {
                Ok(entry) => {
                    let image_id = entry.image_id.unwrap_or_default();
                    if entry.status == CopyStatus::Created || resumed.contains(&target) {
                        made.push(format!("{target} {image_id}"));
                    }
                    run.output.images.insert(
                        target,
                        ReleaseImage {
                            image_id,
                            state: entry
                                .state
                                .unwrap_or_else(|| ImageState::Other(String::new())),
                        },
                    );
                }
                Err(err) => failed.push(format!("{target}: {}", one_line(&err))),
            }
        }
        if !failed.is_empty() {
            failed.sort();
            return Err(anyhow!("{}", failed.join("; ")));
        }
        made.sort();
        let mut detail = Vec::new();
        if !made.is_empty() {
            detail.push(format!("copied to {}", made.join(", ")));
        }
        if !found.is_empty() {
            detail.push(format!("found from an earlier run: {}", found.join(", ")));
        }
        Ok(if made.is_empty() {
            Ended::Skipped(detail.join("; "))
        } else {
            Ended::Done(detail.join("; "))
        })
    }
}

pub(super) struct Share;

impl ReleaseStage for Share {
    async fn plan(run: &mut Run<'_>) -> Result<Planned> {
        if run.grantees.is_empty() {
            return Ok(Planned::Skip("no --account, --org-arn or --ou-arn".into()));
        }
        let who = run.who();
        let snapshot_accounts = if run.args.with_snapshots {
            run.grantees.accounts.clone()
        } else {
            Vec::new()
        };
        let calls = run
            .places()
            .into_iter()
            .map(|(region, id)| Call::Share {
                region,
                image: ImageSlot::from_id(id),
                who: who.clone(),
                snapshot_accounts: snapshot_accounts.clone(),
            })
            .collect();
        Ok(Planned::work(format!("share with {who}"), calls))
    }

    /// Each region's grants, made only where AWS does not show them already.
    async fn execute(run: &mut Run<'_>, calls: Vec<Call>) -> Result<Ended> {
        let who = run.who();
        let runner = &*run;
        let results: Vec<(String, Result<bool>)> = stream::iter(calls)
            .map(|call| async move {
                let region = call.region().to_string();
                let result = match &call {
                    Call::Share {
                        image,
                        snapshot_accounts,
                        ..
                    } => match image.id(&region) {
                        Ok(id) => share_image(
                            &runner.aws.ec2(&region),
                            id,
                            &runner.grantees,
                            ShareAction::Grant,
                            !snapshot_accounts.is_empty(),
                        )
                        .await
                        .map(|shared| shared.changed),
                        Err(err) => Err(err),
                    },
                    other => Err(not_this_stage(other)),
                };
                (region, result)
            })
            .buffer_unordered(crate::concurrency::REGIONS)
            .collect()
            .await;
        let mut changed = Vec::new();
        let mut already = Vec::new();
        let mut failed = Vec::new();
        for (region, result) in results {
            match result {
                Ok(true) => changed.push(region),
                Ok(false) => already.push(region),
                Err(err) => failed.push(format!("{region}: {}", one_line(&err))),
            }
        }
        changed.sort();
        already.sort();
        if !failed.is_empty() {
            failed.sort();
            return Err(anyhow!("{}", failed.join("; ")));
        }
        let mut detail = Vec::new();
        if !changed.is_empty() {
            detail.push(format!("shared with {who} in {}", changed.join(", ")));
        }
        if !already.is_empty() {
            detail.push(format!("already shared in {}", already.join(", ")));
        }
        // A warning only: the grants are made, whatever it finds or fails to read.
        match run.allowed_warnings().await {
            Ok(warnings) => detail.extend(warnings),
            Err(err) => detail.push(format!(
                "warning: the consumers' Allowed AMIs settings were not checked: {}",
                one_line(&err)
            )),
        }
        Ok(if changed.is_empty() {
            Ended::Skipped(detail.join("; "))
        } else {
            Ended::Done(detail.join("; "))
        })
    }
}

pub(super) struct Finish;

impl ReleaseStage for Finish {
    /// Deprecation and protection for each image that does not have them yet (every one, for
    /// an image not made yet).
    async fn plan(run: &mut Run<'_>) -> Result<Planned> {
        let args = run.args;
        if args.deprecate_after.is_none() && !args.protect {
            return Ok(Planned::Skip("no --deprecate-after or --protect".into()));
        }
        let mut calls = Vec::new();
        for (region, id) in run.places() {
            let (deprecate, protect) = match &id {
                Some(id) => {
                    let image = run.aws.ec2(&region).new_image(id).await?;
                    (
                        image.deprecation_time.is_none(),
                        wants_protection(image.deregistration_protection.as_ref()),
                    )
                }
                None => (true, true),
            };
            let image = ImageSlot::from_id(id);
            if let Some(after) = args.deprecate_after.filter(|_| deprecate) {
                calls.push(Call::EnableDeprecation {
                    region: region.clone(),
                    image: image.clone(),
                    after,
                });
            }
            if args.protect && protect {
                calls.push(Call::EnableProtection { region, image });
            }
        }
        if calls.is_empty() {
            return Ok(Planned::Skip("already set on every image".into()));
        }
        Ok(Planned::work("deprecation and protection", calls))
    }

    async fn execute(run: &mut Run<'_>, calls: Vec<Call>) -> Result<Ended> {
        let (mut deprecated, mut protected) = (0, 0);
        for call in calls {
            let ec2 = run.aws.ec2(call.region());
            match &call {
                Call::EnableDeprecation { image, after, .. } => {
                    let id = image.id(call.region())?;
                    let at = deprecation_at(*after, Utc::now())?;
                    ec2.once_caught_up(Fresh::Image, || ec2.enable_deprecation(id, at))
                        .await?;
                    deprecated += 1;
                }
                Call::EnableProtection { image, .. } => {
                    let id = image.id(call.region())?;
                    ec2.once_caught_up(Fresh::Image, || ec2.enable_protection(id))
                        .await?;
                    protected += 1;
                }
                other => return Err(not_this_stage(other)),
            }
        }
        Ok(Ended::Done(format!(
            "deprecation set on {deprecated}, protection on {protected} image(s)"
        )))
    }
}

pub(super) struct Publish;

impl ReleaseStage for Publish {
    /// Reads every `--ssm-parameter` in every region: one that holds the image id already is
    /// left alone (a re-run changes nothing); one holding another value is replaced only with
    /// `--overwrite-ssm`.
    async fn plan(run: &mut Run<'_>) -> Result<Planned> {
        let args = run.args;
        let names = &args.ssm_parameter;
        if names.is_empty() {
            return Ok(Planned::Skip("no --ssm-parameter".into()));
        }
        let overwrite = args.overwrite_ssm;
        let aws = &run.aws;
        let mut read: Vec<RegionParameters> = stream::iter(run.places())
            .map(|(region, image_id)| async move {
                let ssm = aws.ssm(&region);
                let mut decisions = Vec::new();
                for name in names {
                    let current = ssm.parameter_value(name).await;
                    let decision = decide(current, image_id.as_deref(), overwrite);
                    decisions.push((name.clone(), decision));
                }
                RegionParameters {
                    region,
                    image_id,
                    decisions,
                }
            })
            .buffer_unordered(crate::concurrency::REGIONS)
            .collect()
            .await;
        read.sort_by(|a, b| a.region.cmp(&b.region));
        let mut calls = Vec::new();
        let mut refused = Vec::new();
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for RegionParameters {
            region,
            image_id,
            decisions,
        } in read
        {
            for (name, decision) in decisions {
                let (status, previous) = match decision {
                    Decision::Write { previous } => {
                        calls.push(Call::PutParameter {
                            region: region.clone(),
                            name: name.clone(),
                            image: ImageSlot::from_id(image_id.clone()),
                            overwrite: previous.is_some(),
                        });
                        (PublishStatus::WouldWrite, previous)
                    }
                    Decision::Unchanged => (PublishStatus::Unchanged, None),
                    Decision::Not {
                        status,
                        previous,
                        why,
                    } => {
                        refused.push(format!("{region} {name}: {why}"));
                        (status, previous)
                    }
                };
                *counts.entry(status.summary_word()).or_default() += 1;
                run.output
                    .parameters
                    .entry(region.clone())
                    .or_default()
                    .insert(
                        name,
                        Published {
                            image_id: image_id.clone(),
                            status,
                            previous,
                        },
                    );
            }
        }
        refused.sort();
        if calls.is_empty() && refused.is_empty() {
            return Ok(Planned::Skip(format!(
                "SSM parameters: {}",
                summary(&counts)
            )));
        }
        Ok(Planned::Work(Work {
            intent: format!("SSM parameters: {}", summary(&counts)),
            calls,
            refused,
        }))
    }

    /// Each write, then a read back: SSM validates an aws:ec2:image value after answering, so
    /// a parameter is published once it holds the id.
    async fn execute(run: &mut Run<'_>, calls: Vec<Call>) -> Result<Ended> {
        let aws = &run.aws;
        let results: Vec<(Call, Result<()>)> = stream::iter(calls)
            .map(|call| async move {
                let result = match &call {
                    Call::PutParameter {
                        region,
                        name,
                        image,
                        overwrite,
                    } => match image.id(region) {
                        Ok(id) => write_parameter(&aws.ssm(region), name, id, *overwrite).await,
                        Err(err) => Err(err),
                    },
                    other => Err(not_this_stage(other)),
                };
                (call, result)
            })
            .buffer_unordered(crate::concurrency::REGIONS)
            .collect()
            .await;
        let mut problems = Vec::new();
        for (call, result) in results {
            let Call::PutParameter { region, name, .. } = &call else {
                continue;
            };
            let Some(published) = run
                .output
                .parameters
                .get_mut(region)
                .and_then(|named| named.get_mut(name))
            else {
                continue;
            };
            published.status = match result {
                Ok(()) if published.previous.is_some() => PublishStatus::Replaced,
                Ok(()) => PublishStatus::Created,
                Err(err) => {
                    problems.push(format!("{region} {name}: {}", one_line(&err)));
                    PublishStatus::Failed
                }
            };
        }
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for published in run.output.parameters.values().flat_map(BTreeMap::values) {
            *counts.entry(published.status.summary_word()).or_default() += 1;
        }
        if !problems.is_empty() {
            problems.sort();
            return Err(anyhow!("{}", problems.join("; ")));
        }
        Ok(Ended::Done(format!("SSM parameters: {}", summary(&counts))))
    }
}

fn summary(counts: &BTreeMap<&'static str, usize>) -> String {
    counts
        .iter()
        .map(|(word, n)| format!("{n} {word}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The parameters of one region, each with what it gets.
struct RegionParameters {
    region: String,
    image_id: Option<String>,
    decisions: Vec<(String, Decision)>,
}

/// What one parameter in one region gets, from what it holds now.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Written: it does not exist (`previous` none), or holds another value and may be replaced.
    Write { previous: Option<String> },
    /// Holds the image id already.
    Unchanged,
    /// Not written, and why.
    Not {
        status: PublishStatus,
        previous: Option<String>,
        why: String,
    },
}

/// Decides from the parameter's value and data type (as read), the image id of this region
/// (none in a dry run before it is made) and `--overwrite-ssm`.
fn decide(
    current: Result<Option<(String, String)>>,
    image_id: Option<&str>,
    overwrite: bool,
) -> Decision {
    let current = match current {
        Ok(Some((_, data_type))) if data_type != crate::aws::ssm::IMAGE_DATA_TYPE => {
            // SSM never changes a parameter's data type: overwriting it would fail.
            return Decision::Not {
                status: PublishStatus::Refused,
                previous: None,
                why: format!(
                    "is a parameter of data type {data_type}, not {}: delete it or choose \
                     another name",
                    crate::aws::ssm::IMAGE_DATA_TYPE
                ),
            };
        }
        Ok(current) => current.map(|(value, _)| value),
        Err(err) => {
            return Decision::Not {
                status: PublishStatus::Failed,
                previous: None,
                why: one_line(&err),
            };
        }
    };
    match (current, image_id) {
        (Some(value), Some(id)) if value == id => Decision::Unchanged,
        (Some(value), _) if !overwrite => Decision::Not {
            status: PublishStatus::Refused,
            why: format!("holds {value}; --overwrite-ssm to replace it"),
            previous: Some(value),
        },
        (previous, _) => Decision::Write { previous },
    }
}

/// PutParameter, then a read back until SSM's validation settled.
async fn write_parameter(
    ssm: &crate::aws::ssm::Ssm,
    name: &str,
    id: &str,
    overwrite: bool,
) -> Result<()> {
    ssm.publish_image_id(name, id, overwrite).await?;
    match ssm.read_back_image_id(name, id).await? {
        Some(held) if held == id => Ok(()),
        held => Err(anyhow!(
            "PutParameter answered, but after {} the parameter {} (SSM validates \
             aws:ec2:image values after answering, and drops one that is not an available \
             image of the region)",
            crate::duration::format(ssm.consistency_timeout()),
            match held {
                Some(value) => format!("still holds {value}"),
                None => "does not exist".to_string(),
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = "aws:ec2:image";

    #[test]
    fn a_parameter_is_written_only_where_it_may_be() {
        let held = |value: &str, kind: &str| Ok(Some((value.to_string(), kind.to_string())));
        let write = |previous: Option<&str>| Decision::Write {
            previous: previous.map(str::to_string),
        };
        let cases = [
            ("missing", Ok(None), Some("ami-1"), false, write(None)),
            ("missing, dry run", Ok(None), None, false, write(None)),
            (
                "same id",
                held("ami-1", IMAGE),
                Some("ami-1"),
                false,
                Decision::Unchanged,
            ),
            (
                "same id, overwrite",
                held("ami-1", IMAGE),
                Some("ami-1"),
                true,
                Decision::Unchanged,
            ),
            (
                "other id, overwrite",
                held("ami-0", IMAGE),
                Some("ami-1"),
                true,
                write(Some("ami-0")),
            ),
        ];
        for (case, current, id, overwrite, wanted) in cases {
            assert_eq!(decide(current, id, overwrite), wanted, "{case}");
        }
        let refused = |current, overwrite| match decide(current, Some("ami-1"), overwrite) {
            Decision::Not { status, .. } => status,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(held("ami-0", IMAGE), false), PublishStatus::Refused);
        // Another data type is never overwritten, --overwrite-ssm or not.
        assert_eq!(refused(held("ami-0", "text"), true), PublishStatus::Refused);
        assert_eq!(refused(Err(anyhow!("denied")), true), PublishStatus::Failed);
    }
}
