//! Recycle Bin: the region's retention rules (service `rbin`), and EC2's listing and restoring of
//! the images and snapshots in the bin.

use anyhow::{Context, Result, anyhow};
use aws_config::Region;
use aws_sdk_rbin::types::{ResourceTag, ResourceType, RuleStatus};
use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};

use super::error::{AwsError, Operation};
use super::retry::FailFastUntilAnswered;
use super::{Aws, Ec2, guard};
use crate::model::{BinEntry, BinResource, BinnedImages, RecycleRules, RetentionRule};

/// ListImagesInRecycleBin takes at most 20 ids a call.
const IMAGE_IDS_PER_CALL: usize = 20;

impl Aws {
    fn rbin(&self, region: &str) -> aws_sdk_rbin::Client {
        let mut config = aws_sdk_rbin::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .interceptor(FailFastUntilAnswered)
            .retry_classifier(FailFastUntilAnswered);
        if self.read_only {
            config = config.interceptor(guard::ReadOnly);
        }
        aws_sdk_rbin::Client::from_conf(config.build())
    }

    /// Every retention rule for images and snapshots in the region: two ListRules (one per
    /// resource type) and one GetRule per rule (only GetRule has a rule's tags), whatever the
    /// number of images. Any failure makes the whole answer unreadable: a rule missed could be
    /// the one that retains something.
    pub async fn recycle_rules(&self, region: &str) -> RecycleRules {
        match self.read_rules(region).await {
            Ok(rules) => RecycleRules::Known(rules),
            Err(err) => RecycleRules::Unreadable(crate::error::one_line(&err)),
        }
    }

    async fn read_rules(&self, region: &str) -> Result<Vec<RetentionRule>> {
        let client = self.rbin(region);
        let mut ids = Vec::new();
        for (kind, resource) in [
            (ResourceType::Ec2Image, BinResource::Image),
            (ResourceType::EbsSnapshot, BinResource::Snapshot),
        ] {
            let mut pages = client
                .list_rules()
                .resource_type(kind)
                .max_results(1000)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|err| AwsError::from_sdk(Operation::ListRules, region, err))?;
                for rule in page.rules() {
                    if let Some(id) = rule.identifier() {
                        ids.push((id.to_string(), resource));
                    }
                }
            }
        }
        let rules: Vec<Result<RetentionRule>> = stream::iter(ids)
            .map(|(id, resource)| {
                let client = client.clone();
                async move {
                    let rule = client
                        .get_rule()
                        .identifier(&id)
                        .send()
                        .await
                        .map_err(|err| AwsError::from_sdk(Operation::GetRule, region, err))
                        .with_context(|| format!("Recycle Bin rule {id}"))?;
                    let period = rule
                        .retention_period()
                        .ok_or_else(|| anyhow!("Recycle Bin rule {id} has no retention period"))?;
                    let days = u32::try_from(period.retention_period_value())
                        .map_err(|_| anyhow!("Recycle Bin rule {id}: retention out of range"))?;
                    Ok(RetentionRule {
                        id,
                        resource,
                        days,
                        tags: tag_pairs(rule.resource_tags()),
                        exclude_tags: tag_pairs(rule.exclude_resource_tags()),
                        available: rule.status() == Some(&RuleStatus::Available),
                    })
                }
            })
            .buffer_unordered(crate::concurrency::RETENTION_RULES)
            .collect()
            .await;
        let mut rules = rules.into_iter().collect::<Result<Vec<_>>>()?;
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rules)
    }
}

fn tag_pairs(tags: &[ResourceTag]) -> Vec<(String, Option<String>)> {
    tags.iter()
        .map(|tag| {
            (
                tag.resource_tag_key().to_string(),
                tag.resource_tag_value().map(str::to_string),
            )
        })
        .collect()
}

fn time(at: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    at.and_then(|at| DateTime::from_timestamp(at.secs(), at.subsec_nanos()))
}

impl Ec2 {
    /// Every image in the region's Recycle Bin, as a fact for the planner: unreadable keeps
    /// what an image there may need; not offered (no Recycle Bin here) holds nothing.
    pub async fn binned_images(&self) -> BinnedImages {
        match self.images_in_bin(&[]).await {
            Ok(entries) => BinnedImages::Known(
                entries
                    .into_iter()
                    .map(|entry| (entry.id.clone(), entry))
                    .collect(),
            ),
            Err(err) => match err.downcast_ref::<AwsError>() {
                Some(aws) if aws.not_offered() => BinnedImages::NotOffered(aws.to_string()),
                _ => BinnedImages::Unreadable(crate::error::one_line(&err)),
            },
        }
    }

    /// Images in the Recycle Bin: all of them, or those of `ids` that are there.
    pub async fn images_in_bin(&self, ids: &[String]) -> Result<Vec<BinEntry>> {
        let chunks: Vec<Option<Vec<String>>> = if ids.is_empty() {
            vec![None]
        } else {
            ids.chunks(IMAGE_IDS_PER_CALL)
                .map(|chunk| Some(chunk.to_vec()))
                .collect()
        };
        let mut found = Vec::new();
        for chunk in chunks {
            let mut pages = self
                .client
                .list_images_in_recycle_bin()
                .set_image_ids(chunk)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|err| {
                    AwsError::from_sdk(Operation::ListImagesInRecycleBin, &self.region, err)
                })?;
                for image in page.images() {
                    let Some(id) = image.image_id() else { continue };
                    found.push(BinEntry {
                        id: id.to_string(),
                        name: image.name().map(str::to_string),
                        entered: time(image.recycle_bin_enter_time()),
                        leaves: time(image.recycle_bin_exit_time()),
                    });
                }
            }
        }
        Ok(found)
    }

    /// Snapshots in the Recycle Bin: all of them, or those of `ids` that are there.
    pub async fn snapshots_in_bin(&self, ids: &[String]) -> Result<Vec<BinEntry>> {
        let mut pages = self
            .client
            .list_snapshots_in_recycle_bin()
            .set_snapshot_ids((!ids.is_empty()).then(|| ids.to_vec()))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                AwsError::from_sdk(Operation::ListSnapshotsInRecycleBin, &self.region, err)
            })?;
            for snapshot in page.snapshots() {
                let Some(id) = snapshot.snapshot_id() else {
                    continue;
                };
                found.push(BinEntry {
                    id: id.to_string(),
                    name: snapshot.description().map(str::to_string),
                    entered: time(snapshot.recycle_bin_enter_time()),
                    leaves: time(snapshot.recycle_bin_exit_time()),
                });
            }
        }
        Ok(found)
    }

    pub async fn restore_image(&self, image_id: &str) -> Result<()> {
        self.client
            .restore_image_from_recycle_bin()
            .image_id(image_id)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::RestoreImageFromRecycleBin, &self.region, err)
                    .on(image_id)
            })
            .with_context(|| format!("restoring {image_id}"))?;
        Ok(())
    }

    pub async fn restore_snapshot(&self, snapshot_id: &str) -> Result<()> {
        self.client
            .restore_snapshot_from_recycle_bin()
            .snapshot_id(snapshot_id)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::RestoreSnapshotFromRecycleBin, &self.region, err)
                    .on(snapshot_id)
            })
            .with_context(|| format!("restoring {snapshot_id}"))?;
        Ok(())
    }
}
