//! `ami register --name N`: an image from EBS snapshots, or from an instance-store bundle whose
//! manifest is checked first (it parses, lists parts, and every part exists).

use anyhow::Result;

use crate::aws::Aws;
use crate::aws::lifecycle::EbsRegistration;
use crate::cli::RegisterArgs;
use crate::config::Settings;
use crate::error::{Outcome, usage};
use crate::output::Printer;
use crate::plan::ManifestRead;
use crate::plan::manifest::split_location;

use super::dry_run::DryRunReport;
use super::new_image::{MadeFrom, finish, made_image, refuse_taken_name};

pub async fn run(settings: &Settings, args: &RegisterArgs) -> Result<Outcome> {
    crate::ids::image_name(&args.name)?;
    if let Some(root) = &args.root_snapshot {
        crate::ids::snapshot_id(root)?;
        for (_, snapshot) in &args.data_snapshot {
            crate::ids::snapshot_id(snapshot)?;
        }
    }
    let manifest = match &args.manifest {
        Some(url) => {
            let location = url.strip_prefix("s3://").ok_or_else(|| {
                usage(format!("--manifest '{url}' is not an s3://bucket/key URL"))
            })?;
            Some(split_location(location).ok_or_else(|| {
                usage(format!("--manifest '{url}' is not an s3://bucket/key URL"))
            })?)
        }
        None => None,
    };
    if let Some(after) = args.new_image.deprecate_after {
        super::new_image::deprecation_at(after, chrono::Utc::now())?;
    }
    let [region] = settings.regions.as_slice() else {
        return Err(usage(
            "register works in one region: pass a single --region",
        ));
    };
    let aws = Aws::connect(settings).await?;
    let ec2 = aws.ec2(region);
    refuse_taken_name(&ec2, &args.name).await?;

    let source = match (&args.root_snapshot, manifest) {
        (_, Some((bucket, key, prefix))) => {
            check_bundle(&aws, region, &bucket, &key, &prefix).await?;
            Source::Bundle(format!("{bucket}/{key}"))
        }
        (Some(root), None) => {
            let mut devices = vec![(args.root_device_name.clone(), root.clone())];
            devices.extend(args.data_snapshot.iter().cloned());
            Source::Ebs(EbsRegistration {
                name: args.name.clone(),
                description: args.description.clone(),
                root_device_name: args.root_device_name.clone(),
                devices,
                architecture: args.architecture.clone(),
                boot_mode: args.boot_mode.clone(),
                ena: args.ena,
                imds_v2: args.imds_v2,
                tpm: args.tpm,
                volume_type: args.volume_type.clone(),
                tags: args.new_image.tags.clone(),
            })
        }
        (None, None) => return Err(usage("give --root-snapshot or --manifest")),
    };
    let description = args.description.as_deref();
    if settings.dry_run {
        let (check, from) = match &source {
            Source::Bundle(location) => (
                ec2.check_register_bundle(
                    &args.name,
                    location,
                    description,
                    &args.architecture,
                    &args.new_image.tags,
                )
                .await?,
                format!("s3://{location}"),
            ),
            Source::Ebs(spec) => (
                ec2.check_register_ebs(spec).await?,
                spec.devices
                    .iter()
                    .map(|(device, snapshot)| format!("{device}={snapshot}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        let mut report = DryRunReport::new();
        report.call(
            region,
            "ec2:RegisterImage",
            format!("'{}' from {from}", args.name),
            check,
        );
        report.new_image_follow_ups(region, &args.new_image);
        Printer::new(settings).emit(&report)?;
        return Ok(report.outcome());
    }
    let (made, from) = match &source {
        Source::Bundle(location) => (
            ec2.register_bundle(
                &args.name,
                location,
                description,
                &args.architecture,
                &args.new_image.tags,
            )
            .await?,
            MadeFrom::Manifest(location),
        ),
        Source::Ebs(spec) => (
            ec2.register_ebs(spec).await?,
            MadeFrom::Snapshots(&spec.devices),
        ),
    };
    let image_id = made_image(&ec2, &args.name, from, made).await?;
    let output = finish(settings, &ec2, &image_id, &args.new_image).await?;
    Printer::new(settings).emit(&output)?;
    Ok(Outcome::Success)
}

/// Where the image comes from.
enum Source {
    /// `bucket/key` of a checked bundle manifest.
    Bundle(String),
    Ebs(EbsRegistration),
}

/// The same reading the cleanup planner trusts: a bundle it could not delete safely is one it
/// will not register either.
async fn check_bundle(
    aws: &Aws,
    region: &str,
    bucket: &str,
    key: &str,
    prefix: &str,
) -> Result<()> {
    let facts = crate::plan::BundleFacts::read(
        aws.s3(region)
            .bundle_objects(
                bucket,
                key,
                prefix,
                crate::plan::manifest::MAX_MANIFEST_BYTES,
            )
            .await,
    );
    let url = format!("s3://{bucket}/{key}");
    let manifest = match facts.manifest {
        ManifestRead::Parsed(manifest) => manifest,
        ManifestRead::Missing => {
            return Err(usage(format!(
                "manifest {url} does not exist; nothing registered"
            )));
        }
        ManifestRead::Unreadable(why) => {
            return Err(usage(format!(
                "manifest {url} cannot be read ({why}); nothing registered"
            )));
        }
        ManifestRead::Invalid(why) => {
            return Err(usage(format!("manifest {url}: {why}; nothing registered")));
        }
    };
    let missing: Vec<String> = manifest
        .parts
        .iter()
        .map(|part| format!("{prefix}{part}"))
        .filter(|key| !facts.existing.contains_key(key))
        .collect();
    if !missing.is_empty() {
        return Err(usage(format!(
            "manifest {url} lists {} part{} missing from s3://{bucket}/ (first: {}); nothing registered",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            missing[0]
        )));
    }
    Ok(())
}
