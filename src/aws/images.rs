//! DescribeImages (every page, every state) and launch permissions, mapped into `model`.

use anyhow::{Context, Result, anyhow};
use aws_sdk_ec2::types::{Filter, ImageAttributeName};
use std::collections::BTreeMap;

use super::Ec2;
use super::error::{AwsError, Operation, service_code};
use crate::model::{
    AncestryEntry, BlockDevice, DeregistrationProtection, Image, ImageState, LaunchPermissions,
    Owner, RootDeviceType, SnapshotReturnCode, parse_time,
};

/// Largest page DescribeImages serves.
const IMAGES_PAGE_SIZE: i32 = 1000;

/// What to list; name and tags are filtered by EC2 itself, so fewer pages come back.
#[derive(Debug, Clone, Default)]
pub struct ImageQuery {
    pub owners: Vec<Owner>,
    pub name_glob: Option<String>,
    pub tags: Vec<(String, String)>,
    /// Only images made from one of these (DescribeImages' `source-image-id` filter).
    pub source_image_ids: Vec<String>,
}

impl Ec2 {
    /// Every image matching the query, all pages, disabled and deprecated included: a lifecycle
    /// tool that cannot see them would decide on half the facts.
    pub async fn describe_images(&self, query: &ImageQuery) -> Result<Vec<Image>> {
        let mut filters = Vec::new();
        if let Some(glob) = &query.name_glob {
            filters.push(Filter::builder().name("name").values(glob).build());
        }
        if !query.source_image_ids.is_empty() {
            filters.push(
                Filter::builder()
                    .name("source-image-id")
                    .set_values(Some(query.source_image_ids.clone()))
                    .build(),
            );
        }
        for (key, value) in &query.tags {
            filters.push(
                Filter::builder()
                    .name(format!("tag:{key}"))
                    .values(value)
                    .build(),
            );
        }
        let mut pages = self
            .client
            .describe_images()
            .set_owners(
                Some(
                    query
                        .owners
                        .iter()
                        .map(|o| o.as_aws().to_string())
                        .collect::<Vec<_>>(),
                )
                .filter(|owners| !owners.is_empty()),
            )
            .set_filters(Some(filters).filter(|filters| !filters.is_empty()))
            .include_disabled(true)
            .include_deprecated(true)
            .max_results(IMAGES_PAGE_SIZE)
            .into_paginator()
            .send();
        let mut images = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|err| AwsError::from_sdk(Operation::DescribeImages, &self.region, err))?;
            for image in page.images() {
                images.push(map_image(&self.region, image)?);
            }
        }
        Ok(images)
    }

    /// The chain from `image_id` to its root (GetImageAncestry), across regions and accounts.
    /// An endpoint without the action is `Err` with [`AwsError::not_offered`].
    pub async fn image_ancestry(&self, image_id: &str) -> Result<Vec<AncestryEntry>, AwsError> {
        let output = self
            .client
            .get_image_ancestry()
            .image_id(image_id)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::GetImageAncestry, &self.region, err).on(image_id)
            })?;
        Ok(output
            .image_ancestry_entries()
            .iter()
            .filter_map(|entry| {
                Some(AncestryEntry {
                    image_id: entry.image_id()?.to_string(),
                    creation_date: entry.creation_date().and_then(|at| {
                        chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos())
                    }),
                    image_owner_alias: entry.image_owner_alias().map(str::to_string),
                    source_image_id: entry.source_image_id().map(str::to_string),
                    source_image_region: entry.source_image_region().map(str::to_string),
                })
            })
            .collect())
    }

    /// One image by id, whoever owns it; None when it does not exist (or is deregistered).
    pub async fn describe_image(&self, image_id: &str) -> Result<Option<Image>> {
        let result = self
            .client
            .describe_images()
            .image_ids(image_id)
            .include_disabled(true)
            .include_deprecated(true)
            .send()
            .await;
        match result {
            Ok(output) => output
                .images()
                .iter()
                .find(|image| image.image_id() == Some(image_id))
                .map(|image| map_image(&self.region, image))
                .transpose(),
            Err(err) if service_code(&err) == Some("InvalidAMIID.NotFound") => Ok(None),
            Err(err) => Err(AwsError::from_sdk(
                Operation::DescribeImages,
                &self.region,
                err,
            ))
            .with_context(|| format!("looking up {image_id}")),
        }
    }

    /// Deregisters; with `delete_snapshots`, AWS deletes the image's snapshots in the same call and
    /// reports each. An image already gone is `Ok(None)`.
    pub async fn deregister(
        &self,
        image_id: &str,
        delete_snapshots: bool,
    ) -> Result<Option<Vec<(String, SnapshotReturnCode)>>, AwsError> {
        self.pacing.deregister.take().await;
        let result = self
            .client
            .deregister_image()
            .image_id(image_id)
            .set_delete_associated_snapshots(delete_snapshots.then_some(true))
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(
                output
                    .delete_snapshot_results()
                    .iter()
                    .filter_map(|result| {
                        Some((
                            result.snapshot_id()?.to_string(),
                            return_code(result.return_code()),
                        ))
                    })
                    .collect(),
            )),
            Err(err)
                if matches!(
                    service_code(&err),
                    Some("InvalidAMIID.NotFound") | Some("InvalidAMIID.Unavailable")
                ) =>
            {
                Ok(None)
            }
            Err(err) => {
                Err(AwsError::from_sdk(Operation::DeregisterImage, &self.region, err).on(image_id))
            }
        }
    }

    pub async fn terminate_instances(&self, instance_ids: &[String]) -> Result<(), AwsError> {
        for chunk in instance_ids.chunks(1000) {
            self.client
                .terminate_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|err| {
                    AwsError::from_sdk(Operation::TerminateInstances, &self.region, err)
                })?;
        }
        Ok(())
    }

    pub async fn launch_permissions(&self, image_id: &str) -> Result<LaunchPermissions> {
        let output = self
            .client
            .describe_image_attribute()
            .image_id(image_id)
            .attribute(ImageAttributeName::LaunchPermission)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::DescribeImageAttribute, &self.region, err)
                    .on(image_id)
            })
            .with_context(|| format!("reading launch permissions of {image_id}"))?;
        let mut permissions = LaunchPermissions::default();
        for permission in output.launch_permissions() {
            if let Some(account) = permission.user_id() {
                permissions.accounts.push(account.to_string());
            }
            if permission
                .group()
                .is_some_and(|group| group.as_str() == "all")
            {
                permissions.public = true;
            }
            if let Some(org) = permission.organization_arn() {
                permissions.organizations.push(org.to_string());
            }
            if let Some(ou) = permission.organizational_unit_arn() {
                permissions.organizational_units.push(ou.to_string());
            }
        }
        permissions.accounts.sort();
        permissions.organizations.sort();
        permissions.organizational_units.sort();
        Ok(permissions)
    }
}

fn map_image(region: &str, image: &aws_sdk_ec2::types::Image) -> Result<Image> {
    let image_id = image
        .image_id()
        .ok_or_else(|| anyhow!("DescribeImages in {region} returned an image without an id"))?
        .to_string();
    let block_devices = image
        .block_device_mappings()
        .iter()
        .map(|mapping| {
            let ebs = mapping.ebs();
            BlockDevice {
                device_name: mapping.device_name().unwrap_or_default().to_string(),
                snapshot_id: ebs.and_then(|ebs| ebs.snapshot_id()).map(str::to_string),
                volume_size_gib: ebs.and_then(|ebs| ebs.volume_size()),
                volume_type: ebs
                    .and_then(|ebs| ebs.volume_type())
                    .map(|kind| kind.as_str().to_string()),
                virtual_name: mapping.virtual_name().map(str::to_string),
            }
        })
        .collect();
    let tags: BTreeMap<String, String> = image
        .tags()
        .iter()
        .filter_map(|tag| {
            tag.key()
                .map(|key| (key.to_string(), tag.value().unwrap_or_default().to_string()))
        })
        .collect();
    Ok(Image {
        region: region.to_string(),
        name: image.name().map(str::to_string),
        description: image.description().map(str::to_string),
        owner_id: image.owner_id().map(str::to_string),
        state: ImageState::from(image.state().map_or("unknown", |state| state.as_str())),
        state_reason: image.state_reason().and_then(|reason| {
            match (reason.code(), reason.message()) {
                (Some(code), Some(message)) => Some(format!("{code}: {message}")),
                (code, message) => code.or(message).map(str::to_string),
            }
        }),
        root_device_type: RootDeviceType::from(
            image
                .root_device_type()
                .map_or("unknown", |kind| kind.as_str()),
        ),
        root_device_name: image.root_device_name().map(str::to_string),
        architecture: image.architecture().map(|arch| arch.as_str().to_string()),
        creation_date: image.creation_date().and_then(parse_time),
        block_devices,
        image_location: image.image_location().map(str::to_string),
        public: image.public().unwrap_or(false),
        tags,
        deprecation_time: image.deprecation_time().and_then(parse_time),
        deregistration_protection: image
            .deregistration_protection()
            .map(DeregistrationProtection::from),
        last_launched_time: image.last_launched_time().and_then(parse_time),
        source_instance_id: image.source_instance_id().map(str::to_string),
        source_image_id: image.source_image_id().map(str::to_string),
        source_image_region: image.source_image_region().map(str::to_string),
        image_owner_alias: image.image_owner_alias().map(str::to_string),
        image_id,
    })
}

fn return_code(code: Option<&aws_sdk_ec2::types::SnapshotReturnCodes>) -> SnapshotReturnCode {
    use aws_sdk_ec2::types::SnapshotReturnCodes as Code;
    match code {
        Some(Code::Success) => SnapshotReturnCode::Success,
        Some(Code::WarnSkipped) => SnapshotReturnCode::Skipped,
        Some(Code::ErrorMissingPermissions) => SnapshotReturnCode::MissingPermissions,
        Some(Code::ErrorCodeInternalError) => SnapshotReturnCode::InternalError,
        Some(Code::ErrorCodeClientError) => SnapshotReturnCode::ClientError,
        Some(other) => SnapshotReturnCode::Other(other.as_str().to_string()),
        None => SnapshotReturnCode::Other(String::new()),
    }
}
