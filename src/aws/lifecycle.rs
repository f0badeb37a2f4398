//! Making images: CreateImage, RegisterImage, CopyImage, and what follows them (tags,
//! deprecation, deregistration protection, waiting until available).

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_ec2::primitives::DateTime as AwsDateTime;
use aws_sdk_ec2::types::{
    ArchitectureValues, BlockDeviceMapping, BootModeValues, EbsBlockDevice, Filter,
    ImdsSupportValues, ResourceType, Tag, TagSpecification, TpmSupportValues, VolumeType,
};
use chrono::{DateTime, Utc};
use std::time::Duration;

use aws_sdk_ec2::operation::copy_image::builders::CopyImageFluentBuilder;
use aws_sdk_ec2::operation::create_image::builders::CreateImageFluentBuilder;
use aws_sdk_ec2::operation::register_image::builders::RegisterImageFluentBuilder;

use aws_sdk_ec2::config::http::HttpResponse;

use super::Ec2;
use super::error::{AwsError, Operation, dry_run_answer, service_code};

/// The first pause between two looks at an image being made; each doubles, up to
/// `LONGEST_POLL` (the SDK's own image waiter polls every 15 seconds).
const FIRST_POLL: Duration = Duration::from_secs(1);
const LONGEST_POLL: Duration = Duration::from_secs(15);
use crate::model::{DryRunCheck, Image};

/// AWS's answer when an image of the account in the region already has the name.
const NAME_TAKEN: &str = "InvalidAMIName.Duplicate";

/// What a CreateImage or RegisterImage came to. Neither takes an idempotency token: when the
/// first attempt's answer is lost (AWS made the image, the client never heard), the SDK's retry
/// meets the name taken, by that very image or by another. The caller finds out which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    /// AWS's answer: the new image's id.
    Image(String),
    /// A retry met `InvalidAMIName.Duplicate` after an attempt whose answer was lost (or was an
    /// internal error): that attempt may have made the image.
    NameTakenOnRetry,
}

/// Watches a call's attempts for one whose answer may hide work done: no answer at all (the
/// connection was lost, or timed out), an internal or gateway error (AWS may fail the response
/// after the work), or a success whose body was lost. A conflict met after such an attempt may
/// be the call's own work; one met after a definite refusal (throttled: nothing ran) is not.
#[derive(Debug, Clone, Default)]
struct Attempts(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Attempts {
    fn may_have_made_it(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl aws_sdk_ec2::config::Intercept for Attempts {
    fn name(&self) -> &'static str {
        "Attempts"
    }

    fn read_after_attempt(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<'_>,
        _components: &aws_sdk_ec2::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> std::result::Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let may_hide_work = match context.response() {
            // The connection was lost or timed out.
            None => true,
            Some(response) => {
                let status = response.status().as_u16();
                // An internal error, a gateway's; or a success whose body never arrived whole.
                matches!(status, 500 | 502 | 504)
                    || (status < 300 && context.output_or_error().is_some_and(|r| r.is_err()))
            }
        };
        if may_hide_work {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A CreateImage's or RegisterImage's answer (the new id, when it carried one) as a `Made`.
fn made<E>(
    operation: Operation,
    region: &str,
    attempts: &Attempts,
    result: std::result::Result<Option<String>, aws_sdk_ec2::error::SdkError<E, HttpResponse>>,
) -> Result<Made>
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(Some(image_id)) => Ok(Made::Image(image_id)),
        Ok(None) => Err(anyhow!("{operation} in {region} returned no image id")),
        Err(err) if attempts.may_have_made_it() && service_code(&err) == Some(NAME_TAKEN) => {
            Ok(Made::NameTakenOnRetry)
        }
        Err(err) => Err(AwsError::from_sdk(operation, region, err).into()),
    }
}

/// Values one DescribeImages filter takes.
const SOURCE_FILTER_VALUES: usize = 200;

/// A CopyImage into the client's region.
#[derive(Debug, Clone)]
pub struct CopyRequest<'a> {
    pub source_region: &'a str,
    pub source_image_id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub encrypt: bool,
    pub kms_key_id: Option<&'a str>,
    /// Tags for the copy and its snapshots, set by CopyImage itself: accounts whose tag policies
    /// require tags on create refuse an untagged copy.
    pub tags: &'a [(String, String)],
    /// A time-based copy: every snapshot done within this many minutes (checked before).
    pub completion_minutes: Option<u32>,
}

/// An EBS-backed image from existing snapshots.
#[derive(Debug, Clone)]
pub struct EbsRegistration {
    pub name: String,
    pub description: Option<String>,
    pub root_device_name: String,
    /// (device, snapshot id), the root first.
    pub devices: Vec<(String, String)>,
    pub architecture: String,
    pub boot_mode: Option<String>,
    pub ena: bool,
    pub imds_v2: bool,
    pub tpm: bool,
    pub volume_type: String,
    pub tags: Vec<(String, String)>,
}

pub(super) fn tag_spec(kind: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(key, value)| Tag::builder().key(key).value(value).build())
                .collect(),
        ))
        .build()
}

impl Ec2 {
    /// The account's images here made from any of `sources` (copies, and images built on them),
    /// as DescribeImages lists them. At most 200 sources a call: EC2's filter-value bound.
    pub async fn owned_images_from(&self, sources: &[String]) -> Result<Vec<Image>> {
        let mut images = Vec::new();
        for chunk in sources.chunks(SOURCE_FILTER_VALUES) {
            images.extend(
                self.describe_images(&super::images::ImageQuery {
                    owners: vec![crate::model::Owner::Caller],
                    source_image_ids: chunk.to_vec(),
                    ..Default::default()
                })
                .await?,
            );
        }
        Ok(images)
    }

    /// The account's images in this region with exactly this name, as DescribeImages lists them
    /// (at most one that exists on AWS, and recently deregistered ones).
    pub async fn owned_images_named(&self, name: &str) -> Result<Vec<Image>> {
        self.describe_images(&super::images::ImageQuery {
            owners: vec![crate::model::Owner::Caller],
            name_glob: Some(name.to_string()),
            ..Default::default()
        })
        .await
        .map(|images| {
            images
                .into_iter()
                .filter(|image| image.name.as_deref() == Some(name))
                .collect()
        })
    }

    fn create_image_request(
        &self,
        instance_id: &str,
        name: &str,
        description: Option<&str>,
        no_reboot: bool,
        tags: &[(String, String)],
    ) -> CreateImageFluentBuilder {
        let mut request = self
            .client
            .create_image()
            .instance_id(instance_id)
            .name(name)
            .set_description(description.map(str::to_string))
            .no_reboot(no_reboot);
        if !tags.is_empty() {
            request = request
                .tag_specifications(tag_spec(ResourceType::Image, tags))
                .tag_specifications(tag_spec(ResourceType::Snapshot, tags));
        }
        request
    }

    /// CreateImage has no idempotency token: see `Made`.
    pub async fn create_image(
        &self,
        instance_id: &str,
        name: &str,
        description: Option<&str>,
        no_reboot: bool,
        tags: &[(String, String)],
    ) -> Result<Made> {
        let attempts = Attempts::default();
        let result = self
            .create_image_request(instance_id, name, description, no_reboot, tags)
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await;
        let result = result.map(|output| output.image_id().map(str::to_string));
        made(Operation::CreateImage, &self.region, &attempts, result)
            .with_context(|| format!("creating image {name} from {instance_id}"))
    }

    /// AWS's DryRun check of the same CreateImage.
    pub async fn check_create_image(
        &self,
        instance_id: &str,
        name: &str,
        description: Option<&str>,
        no_reboot: bool,
        tags: &[(String, String)],
    ) -> Result<DryRunCheck> {
        let result = self
            .create_image_request(instance_id, name, description, no_reboot, tags)
            .dry_run(true)
            .send()
            .await;
        Ok(dry_run_answer(
            Operation::CreateImage,
            &self.region,
            result,
        )?)
    }

    fn register_ebs_request(&self, spec: &EbsRegistration) -> RegisterImageFluentBuilder {
        let mut request = self
            .client
            .register_image()
            .name(&spec.name)
            .set_description(spec.description.clone())
            .root_device_name(&spec.root_device_name)
            .architecture(ArchitectureValues::from(spec.architecture.as_str()))
            .virtualization_type("hvm")
            .ena_support(spec.ena);
        for (device, snapshot) in &spec.devices {
            request = request.block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(device)
                    .ebs(
                        EbsBlockDevice::builder()
                            .snapshot_id(snapshot)
                            .volume_type(VolumeType::from(spec.volume_type.as_str()))
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            );
        }
        if let Some(mode) = &spec.boot_mode {
            request = request.boot_mode(BootModeValues::from(mode.as_str()));
        }
        if spec.imds_v2 {
            request = request.imds_support(ImdsSupportValues::V20);
        }
        if spec.tpm {
            request = request.tpm_support(TpmSupportValues::V20);
        }
        if !spec.tags.is_empty() {
            request = request.tag_specifications(tag_spec(ResourceType::Image, &spec.tags));
        }
        request
    }

    /// RegisterImage has no idempotency token: see `Made`.
    pub async fn register_ebs(&self, spec: &EbsRegistration) -> Result<Made> {
        let attempts = Attempts::default();
        let result = self
            .register_ebs_request(spec)
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await
            .map(|output| output.image_id().map(str::to_string));
        made(Operation::RegisterImage, &self.region, &attempts, result)
            .with_context(|| format!("registering {}", spec.name))
    }

    /// AWS's DryRun check of the same RegisterImage.
    pub async fn check_register_ebs(&self, spec: &EbsRegistration) -> Result<DryRunCheck> {
        let result = self.register_ebs_request(spec).dry_run(true).send().await;
        Ok(dry_run_answer(
            Operation::RegisterImage,
            &self.region,
            result,
        )?)
    }

    fn register_bundle_request(
        &self,
        name: &str,
        location: &str,
        description: Option<&str>,
        architecture: &str,
        tags: &[(String, String)],
    ) -> RegisterImageFluentBuilder {
        let mut request = self
            .client
            .register_image()
            .name(name)
            .image_location(location)
            .set_description(description.map(str::to_string))
            .architecture(ArchitectureValues::from(architecture));
        if !tags.is_empty() {
            request = request.tag_specifications(tag_spec(ResourceType::Image, tags));
        }
        request
    }

    pub async fn register_bundle(
        &self,
        name: &str,
        location: &str,
        description: Option<&str>,
        architecture: &str,
        tags: &[(String, String)],
    ) -> Result<Made> {
        let attempts = Attempts::default();
        let result = self
            .register_bundle_request(name, location, description, architecture, tags)
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await
            .map(|output| output.image_id().map(str::to_string));
        made(Operation::RegisterImage, &self.region, &attempts, result)
            .with_context(|| format!("registering {name} from s3://{location}"))
    }

    /// AWS's DryRun check of the same RegisterImage.
    pub async fn check_register_bundle(
        &self,
        name: &str,
        location: &str,
        description: Option<&str>,
        architecture: &str,
        tags: &[(String, String)],
    ) -> Result<DryRunCheck> {
        let result = self
            .register_bundle_request(name, location, description, architecture, tags)
            .dry_run(true)
            .send()
            .await;
        Ok(dry_run_answer(
            Operation::RegisterImage,
            &self.region,
            result,
        )?)
    }

    /// No ClientToken here: the SDK fills one in per call (CopyImage's is an idempotency token in
    /// the model) and resends it on each retry, so a retry after a lost answer returns the first
    /// copy. A re-run finds that copy by name instead (`copy_one`).
    fn copy_image_request(&self, copy: &CopyRequest<'_>) -> CopyImageFluentBuilder {
        self.client
            .copy_image()
            .source_region(copy.source_region)
            .source_image_id(copy.source_image_id)
            .name(copy.name)
            .set_description(copy.description.map(str::to_string))
            .set_encrypted((copy.encrypt || copy.kms_key_id.is_some()).then_some(true))
            .set_kms_key_id(copy.kms_key_id.map(str::to_string))
            .set_snapshot_copy_completion_duration_minutes(copy.completion_minutes.map(i64::from))
            .set_tag_specifications((!copy.tags.is_empty()).then(|| {
                vec![
                    tag_spec(ResourceType::Image, copy.tags),
                    tag_spec(ResourceType::Snapshot, copy.tags),
                ]
            }))
    }

    /// AWS's DryRun check of the same CopyImage.
    pub async fn check_copy_image(&self, copy: &CopyRequest<'_>) -> Result<DryRunCheck> {
        let result = self.copy_image_request(copy).dry_run(true).send().await;
        Ok(dry_run_answer(Operation::CopyImage, &self.region, result)?)
    }

    /// Copies the source image into this client's region.
    pub async fn copy_image(&self, copy: &CopyRequest<'_>) -> Result<String> {
        let output = self
            .copy_image_request(copy)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(Operation::CopyImage, &self.region, err))?;
        output
            .image_id()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("CopyImage into {} returned no image id", self.region))
    }

    pub async fn tag_resources(&self, ids: &[String], tags: &[(String, String)]) -> Result<()> {
        if ids.is_empty() || tags.is_empty() {
            return Ok(());
        }
        self.client
            .create_tags()
            .set_resources(Some(ids.to_vec()))
            .set_tags(Some(
                tags.iter()
                    .map(|(key, value)| Tag::builder().key(key).value(value).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(Operation::CreateTags, &self.region, err))?;
        Ok(())
    }

    pub async fn enable_deprecation(&self, image_id: &str, at: DateTime<Utc>) -> Result<()> {
        self.client
            .enable_image_deprecation()
            .image_id(image_id)
            .deprecate_at(AwsDateTime::from_secs(at.timestamp()))
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::EnableImageDeprecation, &self.region, err)
                    .on(image_id)
            })?;
        Ok(())
    }

    pub async fn disable_image(&self, image_id: &str) -> Result<()> {
        self.client
            .disable_image()
            .image_id(image_id)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::DisableImage, &self.region, err).on(image_id)
            })?;
        Ok(())
    }

    pub async fn enable_protection(&self, image_id: &str) -> Result<()> {
        self.client
            .enable_image_deregistration_protection()
            .image_id(image_id)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(
                    Operation::EnableImageDeregistrationProtection,
                    &self.region,
                    err,
                )
            })?;
        Ok(())
    }

    /// Polls DescribeImages until the image's state no longer `still_waiting` (the caller says
    /// which states are "not there yet"), within `timeout`; meanwhile, when asked to, reports the
    /// least-advanced snapshot's progress in percent. The SDK's waiter gives up on the first
    /// `InvalidAMIID.NotFound`, which AWS answers for a while about a new image: here an image
    /// unknown to DescribeImages is asked for again within the consistency bound (`settle`).
    pub async fn wait_image(
        &self,
        image_id: &str,
        timeout: Duration,
        still_waiting: impl Fn(&crate::model::ImageState) -> bool,
        progress: Option<&(dyn Fn(u64) + Sync)>,
    ) -> Result<Image> {
        let started = tokio::time::Instant::now();
        let mut pause = FIRST_POLL;
        loop {
            let image = self.describe_image(image_id).await?;
            let waited = started.elapsed();
            match image {
                Some(image) if !still_waiting(&image.state) => return Ok(image),
                Some(image) => {
                    if waited >= timeout {
                        bail!(
                            "{image_id} in {} did not become available within {} (still {})",
                            self.region,
                            crate::duration::format(timeout),
                            image.state
                        );
                    }
                    if let Some(report) = progress
                        && let Ok(percent) = self.snapshot_progress(&image).await
                    {
                        report(percent);
                    }
                }
                None if waited >= self.consistency_timeout.min(timeout) => bail!(
                    "{image_id} in {} is still unknown to DescribeImages after {} (AWS has not \
                     caught up)",
                    self.region,
                    crate::duration::format(waited)
                ),
                None => {}
            }
            tokio::time::sleep(pause.min(timeout.saturating_sub(waited))).await;
            pause = (pause * 2).min(LONGEST_POLL);
        }
    }

    /// The least-advanced snapshot of the image, in percent.
    async fn snapshot_progress(&self, image: &Image) -> Result<u64> {
        let ids: Vec<String> = image
            .block_devices
            .iter()
            .filter_map(|d| d.snapshot_id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let output = self
            .client
            .describe_snapshots()
            .filters(
                Filter::builder()
                    .name("snapshot-id")
                    .set_values(Some(ids))
                    .build(),
            )
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(Operation::DescribeSnapshots, &self.region, err))?;
        Ok(output
            .snapshots()
            .iter()
            .map(|snapshot| {
                snapshot
                    .progress()
                    .and_then(|p| p.trim_end_matches('%').parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(0))
    }

    /// Regions enabled for the account (opted in or not requiring it).
    pub async fn enabled_regions(&self) -> Result<Vec<String>> {
        let output = self
            .client
            .describe_regions()
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(Operation::DescribeRegions, &self.region, err))?;
        let mut regions: Vec<String> = output
            .regions()
            .iter()
            .filter(|region| {
                region
                    .opt_in_status()
                    .is_none_or(|status| status != "not-opted-in")
            })
            .filter_map(|region| region.region_name().map(str::to_string))
            .collect();
        regions.sort();
        Ok(regions)
    }
}
