//! `ami copy AMI_ID --to-region R...`: copies into other regions concurrently. Idempotent by
//! lineage: a copy of this source already in a target region (AWS records where each image came
//! from) is reused whatever its name; by name only an image with no recorded source is.

use anyhow::{Context, Result, anyhow};
use futures::{StreamExt, stream};
use indicatif::ProgressBar;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::aws::Aws;
use crate::aws::lifecycle::CopyRequest;
use crate::cli::CopyArgs;
use crate::config::{Settings, validate_region};
use crate::error::{Outcome, one_line, usage};
use crate::model::ImageState;
use crate::output::{Render, TableStyle};

use super::dry_run::{DryRunReport, OrDryRun};
use super::new_image::{existing_named, should_wait, wait_until_available};
use crate::aws::Ec2;
use crate::aws::settle::Fresh;
use crate::model::{Image, ImageRef, Origin};
use crate::plan::lineage::copied_from_by_description;
use crate::plan::state::Standing;

#[derive(Debug, Serialize)]
pub struct CopyOutput {
    pub source_region: String,
    pub source_image_id: String,
    pub name: String,
    /// Target region → what happened there.
    pub copies: BTreeMap<String, CopyEntry>,
}

/// What happened in one target region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyStatus {
    Created,
    /// An image of that name was already there.
    Reused,
    Failed,
}

impl CopyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyStatus::Created => "created",
            CopyStatus::Reused => "reused",
            CopyStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CopyEntry {
    pub image_id: Option<String>,
    pub status: CopyStatus,
    pub state: Option<ImageState>,
    pub error: Option<String>,
}

pub async fn run(settings: &Settings, args: &CopyArgs) -> Result<Outcome> {
    crate::ids::image_id(&args.image_id)?;
    let source_region = match &args.source_region {
        Some(region) => region.clone(),
        None => match settings.regions.as_slice() {
            [region] => region.clone(),
            _ => {
                return Err(usage(
                    "pass --source-region (or a single --region) for the image's region",
                ));
            }
        },
    };
    validate_region(&source_region)?;
    for region in &args.to_region {
        validate_region(region)?;
    }
    if let Some(name) = &args.name {
        crate::ids::image_name(name)?;
    }
    let kms = parse_kms_keys(&args.kms_key_id)?;
    let completion = args.complete_within.map(completion_minutes).transpose()?;
    super::fleet::run(settings, &args.accounts, |aws| {
        copy_in(aws, settings, args, source_region.clone(), &kms, completion)
    })
    .await
}

async fn copy_in(
    aws: Aws,
    settings: &Settings,
    args: &CopyArgs,
    source_region: String,
    kms: &KmsKeys,
    completion: Option<u32>,
) -> Result<(OrDryRun<CopyOutput>, Outcome)> {
    let source_ec2 = aws.ec2(&source_region);
    let source = source_ec2
        .describe_image(&args.image_id)
        .await?
        .ok_or_else(|| usage(format!("{} not found in {source_region}", args.image_id)))?;
    let name = match args.name.clone().or(source.name.clone()) {
        Some(name) => name,
        None => return Err(usage(format!("{} has no name: pass --name", args.image_id))),
    };
    let mut targets: Vec<String> = if args.to_regions.is_some() {
        source_ec2
            .enabled_regions()
            .await
            .context("listing the account's enabled regions for --to-regions all")?
            .into_iter()
            .filter(|region| region != &source_region)
            .collect()
    } else {
        args.to_region.clone()
    };
    targets.sort();
    targets.dedup();
    let tags = copy_tags(&source.tags, !args.no_copy_tags, &args.tags);
    let request_for = |region: &str| CopyRequest {
        source_region: &source_region,
        source_image_id: &args.image_id,
        name: &name,
        description: args.description.as_deref(),
        encrypt: args.encrypt,
        kms_key_id: kms.key_for(region),
        tags: &tags,
        completion_minutes: completion,
    };
    if settings.dry_run {
        let call = format!(
            "{} from {source_region} as '{name}'{}",
            args.image_id,
            completion_note(completion)
        );
        return dry_run(&aws, targets, request_for, call, &args.image_id).await;
    }
    let wait = should_wait(&args.wait);
    let bars = crate::output::progress_lines(settings);

    let results: Vec<(String, CopyEntry)> = stream::iter(targets)
        .map(|region| {
            let ec2 = aws.ec2(&region);
            let bar = bars
                .as_ref()
                .map(|bars| crate::output::progress_line(bars, &region, true));
            let request = request_for(&region);
            let timeout = wait.then_some(args.wait.timeout);
            let tags = &tags;
            async move {
                let outcome = copy_one(&ec2, &request, tags, timeout, bar.as_ref()).await;
                if let Some(bar) = bar {
                    bar.finish_with_message(match &outcome {
                        Ok(entry) => entry.status.as_str(),
                        Err(_) => CopyStatus::Failed.as_str(),
                    });
                }
                let entry = outcome.unwrap_or_else(|err| CopyEntry {
                    image_id: None,
                    status: CopyStatus::Failed,
                    state: None,
                    error: Some(one_line(&err)),
                });
                (region, entry)
            }
        })
        .buffer_unordered(crate::concurrency::REGIONS)
        .collect()
        .await;

    let copies: BTreeMap<String, CopyEntry> = results.into_iter().collect();
    let failed = copies
        .values()
        .filter(|c| c.status == CopyStatus::Failed)
        .count();
    let outcome = match failed {
        0 => Outcome::Success,
        n if n == copies.len() => Outcome::Failed,
        _ => Outcome::Partial,
    };
    Ok((
        OrDryRun::Real(CopyOutput {
            source_region: source_region.clone(),
            source_image_id: args.image_id.clone(),
            name: name.clone(),
            copies,
        }),
        outcome,
    ))
}

/// The copies a real run would make, each with AWS's DryRun answer, and the copies it would
/// reuse.
async fn dry_run<'a, F>(
    aws: &Aws,
    targets: Vec<String>,
    request_for: F,
    call: String,
    image_id: &str,
) -> Result<(OrDryRun<CopyOutput>, Outcome)>
where
    F: Fn(&str) -> CopyRequest<'a>,
{
    let checks: Vec<(String, Result<CopyCheck>)> = stream::iter(targets)
        .map(|region| {
            let ec2 = aws.ec2(&region);
            let request = request_for(&region);
            async move {
                let check = match existing_copy(&ec2, &request).await {
                    Ok(Some(image)) => Ok(CopyCheck::Reuse(image.image_id)),
                    Ok(None) => ec2.check_copy_image(&request).await.map(CopyCheck::Copy),
                    Err(err) => Err(err),
                };
                (region, check)
            }
        })
        .buffer_unordered(crate::concurrency::REGIONS)
        .collect()
        .await;
    let mut report = DryRunReport::new();
    let mut failed = false;
    for (region, check) in checks {
        match check {
            Ok(CopyCheck::Copy(check)) => {
                report.call(&region, "ec2:CopyImage", call.clone(), check)
            }
            Ok(CopyCheck::Reuse(existing)) => report.notes.push(format!(
                "{region}: {existing} is already a copy of {}; it would be reused, not copied",
                image_id
            )),
            Err(err) => {
                failed = true;
                report.notes.push(format!("{region}: {}", one_line(&err)));
            }
        }
    }
    report.calls.sort_by(|a, b| a.region.cmp(&b.region));
    report.notes.sort();
    let outcome = if failed {
        Outcome::Failed
    } else {
        report.outcome()
    };
    Ok((OrDryRun::DryRun(report), outcome))
}

/// What a dry run found in a target region.
enum CopyCheck {
    Copy(crate::model::DryRunCheck),
    /// An image of the name is there already.
    Reuse(String),
}

/// Copies into one region (or reuses the copy already there), waits if asked, and puts back
/// tags the region did not copy.
pub(super) async fn copy_one(
    ec2: &crate::aws::Ec2,
    request: &CopyRequest<'_>,
    tags: &[(String, String)],
    wait: Option<Duration>,
    bar: Option<&ProgressBar>,
) -> Result<CopyEntry> {
    let (image_id, status) = match existing_copy(ec2, request).await? {
        None => {
            if let Some(bar) = bar {
                bar.set_message("copying");
            }
            (ec2.copy_image(request).await?, CopyStatus::Created)
        }
        Some(image) => (image.image_id, CopyStatus::Reused),
    };
    // A new copy's id may be unknown to AWS for a while: asked again (`settle`).
    let image = if let Some(timeout) = wait {
        if let Some(bar) = bar {
            bar.set_message(format!("{image_id} waiting"));
        }
        wait_until_available(ec2, &image_id, timeout, None).await?
    } else {
        ec2.new_image(&image_id).await?
    };
    // Not every region (or endpoint) copies tags: put back any that are missing.
    let missing: Vec<(String, String)> = tags
        .iter()
        .filter(|(key, value)| image.tags.get(key) != Some(value))
        .cloned()
        .collect();
    ec2.once_caught_up(Fresh::Image, || {
        ec2.tag_resources(std::slice::from_ref(&image_id), &missing)
    })
    .await?;
    Ok(CopyEntry {
        image_id: Some(image_id),
        status,
        state: Some(image.state),
        error: None,
    })
}

/// The image in the target region that stands for this copy, if any: a copy of the source (by
/// the source AWS records on it, whatever its name) that is available or pending; else, where
/// AWS records no source, an image of the copy's name. An image holding the name that is a copy
/// of something else, built from something, failed or disabled is no copy: the copy stops,
/// naming it, rather than make a second image or reuse the wrong one.
pub(super) async fn existing_copy(ec2: &Ec2, request: &CopyRequest<'_>) -> Result<Option<Image>> {
    let source = ImageRef {
        region: request.source_region.to_string(),
        image_id: request.source_image_id.to_string(),
    };
    let mut copies: Vec<Image> = ec2
        .owned_images_from(std::slice::from_ref(&source.image_id))
        .await?
        .into_iter()
        .filter(|image| image.origin() == Origin::Copied(source.clone()))
        .filter(|image| Standing::of(&image.state).stands_for_new())
        .collect();
    // The oldest available one, else the oldest still being made.
    copies.sort_by_key(|image| {
        (
            image.state != ImageState::Available,
            image.creation_date,
            image.image_id.clone(),
        )
    });
    if let Some(copy) = copies.into_iter().next() {
        return Ok(Some(copy));
    }
    let Some(holder) = existing_named(ec2, request.name).await? else {
        return Ok(None);
    };
    let what = match holder.origin() {
        Origin::Unrecorded if Standing::of(&holder.state).stands_for_new() => {
            // Made before AWS recorded sources: its snapshots' descriptions still say.
            let snapshot_ids: Vec<String> = holder
                .block_devices
                .iter()
                .filter_map(|device| device.snapshot_id.clone())
                .collect();
            let snapshots = ec2.owned_snapshots(&snapshot_ids).await?;
            let copied = !snapshot_ids.is_empty()
                && snapshot_ids.iter().all(|id| {
                    snapshots
                        .get(id)
                        .and_then(|s| s.description.as_deref())
                        .and_then(copied_from_by_description)
                        == Some(source.image_id.as_str())
                });
            if copied {
                return Ok(Some(holder));
            }
            "has no recorded source, and its snapshots do not say it was copied from it".to_string()
        }
        Origin::Unrecorded => format!("is {}", holder.state),
        // One of this source's own copies that holds the name but does not stand for it.
        Origin::Copied(from) if from == source => format!("is a {} copy of it", holder.state),
        Origin::Copied(from) => format!("is a copy of {from}"),
        Origin::Built => format!(
            "was built from {}",
            holder
                .source_instance_id
                .as_deref()
                .unwrap_or("an instance")
        ),
    };
    Err(anyhow!(
        "{} in {} already has the name '{}' and {what}: it is no copy of {source} to reuse; pass \
         --name for another name, or deregister it (ami deregister {} --cleanup --region {}) and \
         copy again",
        holder.image_id,
        ec2.region(),
        request.name,
        holder.image_id,
        ec2.region()
    ))
}

/// `--complete-within D` as CopyImage's SnapshotCopyCompletionDurationMinutes, checked as AWS
/// checks it (15 minutes to 48 hours, in 15-minute steps) before any call.
pub(super) fn completion_minutes(within: Duration) -> Result<u32> {
    let shown = crate::duration::format(within);
    let seconds = within.as_secs();
    if within.subsec_nanos() != 0 || !seconds.is_multiple_of(15 * 60) {
        return Err(usage(format!(
            "--complete-within {shown}: AWS takes whole steps of 15 minutes (15m, 30m, 1h, ...); \
             nothing was changed"
        )));
    }
    let minutes = seconds / 60;
    if !(15..=48 * 60).contains(&minutes) {
        return Err(usage(format!(
            "--complete-within {shown}: AWS takes 15m to 48h; nothing was changed"
        )));
    }
    Ok(minutes as u32)
}

/// How a dry run names a time-based copy.
pub(super) fn completion_note(completion: Option<u32>) -> String {
    completion
        .map(|minutes| format!(", each snapshot within {minutes} minutes"))
        .unwrap_or_default()
}

/// The tags a copy is made with: the source's own (not AWS's reserved `aws:` ones, which no one
/// may set) unless told not to, then the `--tag`s given, which win.
pub(super) fn copy_tags(
    source: &BTreeMap<String, String>,
    include_source: bool,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut tags: BTreeMap<String, String> = if include_source {
        source
            .iter()
            .filter(|(key, _)| !key.starts_with("aws:"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        BTreeMap::new()
    };
    tags.extend(extra.iter().cloned());
    tags.into_iter().collect()
}

/// `--kms-key-id KEY` (every region) or `--kms-key-id REGION=KEY` (one region).
#[derive(Debug, Default, PartialEq)]
struct KmsKeys {
    default: Option<String>,
    per_region: BTreeMap<String, String>,
}

impl KmsKeys {
    fn key_for(&self, region: &str) -> Option<&str> {
        self.per_region
            .get(region)
            .or(self.default.as_ref())
            .map(String::as_str)
    }
}

fn parse_kms_keys(raw: &[String]) -> Result<KmsKeys> {
    let mut keys = KmsKeys::default();
    for value in raw {
        match value.split_once('=') {
            Some((region, key)) if validate_region(region).is_ok() && !key.is_empty() => {
                keys.per_region.insert(region.to_string(), key.to_string());
            }
            Some(_) => {
                return Err(usage(format!(
                    "--kms-key-id '{value}': expected KEY or REGION=KEY"
                )));
            }
            None if keys.default.is_none() => keys.default = Some(value.clone()),
            None => return Err(usage("--kms-key-id without a region given twice")),
        }
    }
    Ok(keys)
}

impl Render for CopyOutput {
    fn render(&self, style: &TableStyle) -> String {
        let mut table = style.table(&["REGION", "IMAGE ID", "STATUS", "STATE", "ERROR"]);
        for (region, copy) in &self.copies {
            let color = (copy.status == CopyStatus::Failed).then_some(comfy_table::Color::Red);
            table.add_row(vec![
                style.cell(region, None),
                style.cell(copy.image_id.as_deref().unwrap_or("-"), None),
                style.cell(copy.status.as_str(), color),
                style.cell(copy.state.as_ref().map_or("-", ImageState::as_str), None),
                style.cell(copy.error.as_deref().unwrap_or(""), None),
            ]);
        }
        format!(
            "{} ({}) from {}:\n{table}",
            self.source_image_id, self.name, self.source_region
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_carry_the_source_tags_but_not_aws_ones_and_given_tags_win() {
        let source: BTreeMap<String, String> = [
            ("team", "core"),
            ("aws:cloudformation:stack-name", "s"),
            ("env", "dev"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let extra = vec![("env".to_string(), "prod".to_string())];
        let pairs = |tags: Vec<(String, String)>| -> Vec<String> {
            tags.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
        };
        assert_eq!(
            pairs(copy_tags(&source, true, &extra)),
            ["env=prod", "team=core"]
        );
        assert_eq!(pairs(copy_tags(&source, false, &extra)), ["env=prod"]);
        assert!(copy_tags(&source, false, &[]).is_empty());
    }

    #[test]
    fn completion_durations_are_aws_steps_of_15_minutes_from_15m_to_48h() {
        let minutes = |s: u64| completion_minutes(Duration::from_secs(s));
        assert_eq!(minutes(15 * 60).unwrap(), 15);
        assert_eq!(minutes(2 * 3600).unwrap(), 120);
        assert_eq!(minutes(48 * 3600).unwrap(), 2880);
        for bad in [0, 60, 14 * 60, 20 * 60, 48 * 3600 + 15 * 60, 49 * 3600] {
            assert!(minutes(bad).is_err(), "{bad}s");
        }
    }

    #[test]
    fn kms_keys_per_region_or_for_all() {
        let keys = parse_kms_keys(&[
            "alias/default".into(),
            "eu-west-1=arn:aws:kms:eu-west-1:111122223333:key/abc".into(),
        ])
        .unwrap();
        assert_eq!(keys.key_for("us-west-2"), Some("alias/default"));
        assert_eq!(
            keys.key_for("eu-west-1"),
            Some("arn:aws:kms:eu-west-1:111122223333:key/abc")
        );
        assert!(parse_kms_keys(&["nowhere=key".into()]).is_err());
        assert!(parse_kms_keys(&["a".into(), "b".into()]).is_err());
        assert_eq!(parse_kms_keys(&[]).unwrap().key_for("us-east-1"), None);
    }
}
