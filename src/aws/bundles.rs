//! Instance-store bundles in S3: reading a manifest (bounded), seeing which of its objects exist,
//! and deleting exactly the planned keys.

use anyhow::Result;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use std::collections::BTreeMap;

use super::S3;
use super::error::{AwsError, Operation, service_code};
use crate::model::{BundleObjects, ManifestFetch};

/// DeleteObjects takes at most 1,000 keys.
const DELETE_BATCH: usize = 1000;

/// What happened to each key of a delete.
#[derive(Debug, Default)]
pub struct DeleteOutcome {
    pub deleted: Vec<String>,
    /// Key and the S3 error code.
    pub failed: Vec<(String, String)>,
}

impl S3 {
    /// The manifest (read up to `limit` bytes) and every object under the bundle's prefix.
    pub async fn bundle_objects(
        &self,
        bucket: &str,
        manifest_key: &str,
        prefix: &str,
        limit: u64,
    ) -> BundleObjects {
        let manifest = self.read_manifest(bucket, manifest_key, limit).await;
        let listing = match self.list_objects(bucket, prefix).await {
            Ok(objects) => Ok(objects.into_iter().collect()),
            // The bucket is gone: so is every object that was in it.
            Err(err) if err.code.as_deref() == Some("NoSuchBucket") => Ok(BTreeMap::new()),
            Err(err) => Err(err.to_string()),
        };
        BundleObjects {
            bucket: bucket.to_string(),
            manifest_key: manifest_key.to_string(),
            prefix: prefix.to_string(),
            manifest,
            listing,
        }
    }

    /// At most `limit` bytes are read, whatever the object's declared length.
    async fn read_manifest(&self, bucket: &str, key: &str, limit: u64) -> ManifestFetch {
        let response = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(response) => response,
            Err(err) => {
                return match service_code(&err) {
                    Some("NoSuchKey") | Some("NoSuchBucket") => ManifestFetch::Missing,
                    _ => ManifestFetch::Unreadable(
                        AwsError::from_sdk(Operation::GetObject, &self.region, err)
                            .on(format!("s3://{bucket}/{key}"))
                            .to_string(),
                    ),
                };
            }
        };
        let declared = response.content_length().unwrap_or(0).max(0) as u64;
        if declared > limit {
            return ManifestFetch::TooLarge(declared);
        }
        // Read at most one byte past the limit, whatever the header said.
        let mut body = response.body.into_async_read();
        let mut bytes = Vec::new();
        use tokio::io::AsyncReadExt;
        let read = (&mut body).take(limit + 1).read_to_end(&mut bytes).await;
        match read {
            Err(err) => ManifestFetch::Unreadable(format!("reading s3://{bucket}/{key}: {err}")),
            Ok(_) if bytes.len() as u64 > limit => ManifestFetch::TooLarge(bytes.len() as u64),
            Ok(_) => ManifestFetch::Fetched(bytes),
        }
    }

    /// The region a bucket is in (GetBucketLocation: no constraint is us-east-1, `EU` is
    /// eu-west-1).
    pub async fn bucket_region(&self, bucket: &str) -> Result<String, AwsError> {
        let output = self
            .client
            .get_bucket_location()
            .bucket(bucket)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::GetBucketLocation, &self.region, err).on(bucket)
            })?;
        Ok(match output.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_string(),
            Some("EU") => "eu-west-1".to_string(),
            Some(region) => region.to_string(),
        })
    }

    /// Every object under `prefix` with its size, all pages.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<(String, u64)>, AwsError> {
        let mut objects = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|err| AwsError::from_sdk(Operation::ListObjectsV2, &self.region, err))?;
            objects.extend(page.contents().iter().filter_map(|object| {
                object
                    .key()
                    .map(|key| (key.to_string(), object.size().unwrap_or(0).max(0) as u64))
            }));
        }
        Ok(objects)
    }

    /// Deletes a bundle's planned keys (parts first, the manifest last): the manifest only once
    /// every part is gone, so a failed run leaves the manifest for a re-run to find.
    pub async fn delete_bundle(&self, bucket: &str, objects: &[String]) -> DeleteOutcome {
        let (parts, manifest) = objects.split_at(objects.len().saturating_sub(1));
        let mut outcome = self.delete_keys(bucket, parts).await;
        if outcome.failed.is_empty() {
            let last = self.delete_keys(bucket, manifest).await;
            outcome.deleted.extend(last.deleted);
            outcome.failed.extend(last.failed);
        }
        outcome
    }

    /// Deletes exactly these keys, in order, in batches. A key already gone counts as deleted.
    pub async fn delete_keys(&self, bucket: &str, keys: &[String]) -> DeleteOutcome {
        let mut outcome = DeleteOutcome::default();
        for batch in keys.chunks(DELETE_BATCH) {
            let objects: Vec<ObjectIdentifier> = batch
                .iter()
                .filter_map(|key| ObjectIdentifier::builder().key(key).build().ok())
                .collect();
            let delete = match Delete::builder().set_objects(Some(objects)).build() {
                Ok(delete) => delete,
                Err(err) => {
                    outcome
                        .failed
                        .extend(batch.iter().map(|key| (key.clone(), err.to_string())));
                    continue;
                }
            };
            match self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
            {
                Ok(response) => {
                    let failed: BTreeMap<&str, &str> = response
                        .errors()
                        .iter()
                        .filter_map(|error| {
                            error
                                .key()
                                .map(|key| (key, error.code().unwrap_or("unknown error")))
                        })
                        .collect();
                    for key in batch {
                        match failed.get(key.as_str()) {
                            Some(code) => outcome.failed.push((key.clone(), code.to_string())),
                            None => outcome.deleted.push(key.clone()),
                        }
                    }
                }
                Err(err) => {
                    let err =
                        AwsError::from_sdk(Operation::DeleteObjects, &self.region, err).to_string();
                    outcome
                        .failed
                        .extend(batch.iter().map(|key| (key.clone(), err.clone())));
                }
            }
        }
        outcome
    }

    /// Deletes the bucket if nothing is left in it. Ok(false): not empty, left alone.
    pub async fn delete_bucket_if_empty(&self, bucket: &str) -> Result<bool, AwsError> {
        let listing = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(1)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(Operation::ListObjectsV2, &self.region, err))?;
        if listing.key_count().unwrap_or(0) > 0 || !listing.contents().is_empty() {
            return Ok(false);
        }
        self.client
            .delete_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::DeleteBucket, &self.region, err).on(bucket)
            })?;
        Ok(true)
    }
}
