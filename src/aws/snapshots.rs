//! Snapshots: which of the account's snapshots exist (with sizes), marking the ones a cleanup is
//! about to delete, and deleting them.

use anyhow::Result;
use aws_sdk_ec2::types::{Filter, Tag};
use std::collections::BTreeMap;

use super::Ec2;
use super::error::{AwsError, Operation, service_code};
use crate::model::{
    LockState, SnapshotFact, SnapshotInfo, SnapshotLock, SnapshotLocks, SnapshotState,
};

/// Snapshots planned for deletion carry this tag (value: the image id) from just before the image
/// is deregistered, so a run killed after deregistering can still find and finish them.
pub const PENDING_CLEANUP_TAG: &str = "ami:cleanup-pending-for";

/// EC2 accepts up to 200 values in one filter.
const FILTER_VALUES: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    AlreadyGone,
}

/// Of every snapshot the account owns (`all_owned_snapshots`), those among `ids`.
pub fn among(all: Vec<SnapshotFact>, ids: &[String]) -> BTreeMap<String, SnapshotInfo> {
    let wanted: std::collections::BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    all.into_iter()
        .filter(|s| wanted.contains(s.snapshot_id.as_str()))
        .map(|s| {
            (
                s.snapshot_id,
                SnapshotInfo {
                    size_gib: s.size_gib,
                    tags: s.tags,
                    description: s.description,
                },
            )
        })
        .collect()
}

impl Ec2 {
    /// The account's own snapshots among `ids`; absent ones are someone else's, or gone.
    pub async fn owned_snapshots(&self, ids: &[String]) -> Result<BTreeMap<String, SnapshotInfo>> {
        // Many ids: one paged listing of everything costs fewer calls than filtered lookups.
        if ids.len() > 2 * FILTER_VALUES {
            return Ok(among(self.all_owned_snapshots().await?, ids));
        }
        let mut found = BTreeMap::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            let filter = Filter::builder()
                .name("snapshot-id")
                .set_values(Some(chunk.to_vec()))
                .build();
            self.collect_snapshots(filter, &mut found).await?;
        }
        Ok(found)
    }

    /// Every locked snapshot of the account in the region: one call (locks are few), whatever the
    /// number of snapshots. DescribeLockedSnapshots has no paginator in the SDK; pages by hand.
    pub async fn snapshot_locks(&self) -> SnapshotLocks {
        let mut locks = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = match self
                .client
                .describe_locked_snapshots()
                .max_results(1000)
                .set_next_token(token.take())
                .send()
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    let err =
                        AwsError::from_sdk(Operation::DescribeLockedSnapshots, &self.region, err);
                    return if err.not_offered() {
                        SnapshotLocks::NotOffered(err.to_string())
                    } else {
                        SnapshotLocks::Unreadable(err.to_string())
                    };
                }
            };
            for info in page.snapshots() {
                let Some(id) = info.snapshot_id() else {
                    continue;
                };
                let lock = SnapshotLock {
                    // No state reported: unknown, so treated as locked.
                    state: LockState::parse(info.lock_state().map_or("", |s| s.as_str())),
                    expires: info.lock_expires_on().and_then(|at| {
                        chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos())
                    }),
                };
                locks.insert(id.to_string(), lock);
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return SnapshotLocks::Known(locks),
            }
        }
    }

    /// Every snapshot the account owns in the region, all pages.
    pub async fn all_owned_snapshots(&self) -> Result<Vec<SnapshotFact>> {
        let mut pages = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .max_results(1000)
            .into_paginator()
            .send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                AwsError::from_sdk(Operation::DescribeSnapshots, &self.region, err)
            })?;
            for snapshot in page.snapshots() {
                let Some(id) = snapshot.snapshot_id() else {
                    continue;
                };
                all.push(SnapshotFact {
                    snapshot_id: id.to_string(),
                    description: snapshot.description().map(str::to_string),
                    state: SnapshotState::from(
                        snapshot.state().map_or("unknown", |state| state.as_str()),
                    ),
                    size_gib: snapshot.volume_size().unwrap_or(0),
                    tags: tags_of(snapshot.tags()),
                });
            }
        }
        Ok(all)
    }

    /// Snapshots a killed run marked for deletion on behalf of `image_id`.
    pub async fn pending_cleanup(&self, image_id: &str) -> Result<BTreeMap<String, SnapshotInfo>> {
        let filter = Filter::builder()
            .name(format!("tag:{PENDING_CLEANUP_TAG}"))
            .values(image_id)
            .build();
        let mut found = BTreeMap::new();
        self.collect_snapshots(filter, &mut found).await?;
        Ok(found)
    }

    /// Every snapshot marked for deletion, grouped by the image it was marked for.
    pub async fn all_pending_cleanup(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<String, SnapshotInfo>>> {
        let mut pages = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                Filter::builder()
                    .name("tag-key")
                    .values(PENDING_CLEANUP_TAG)
                    .build(),
            )
            .max_results(1000)
            .into_paginator()
            .send();
        let mut by_image: BTreeMap<String, BTreeMap<String, SnapshotInfo>> = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                AwsError::from_sdk(Operation::DescribeSnapshots, &self.region, err)
            })?;
            for snapshot in page.snapshots() {
                let image = snapshot
                    .tags()
                    .iter()
                    .find(|tag| tag.key() == Some(PENDING_CLEANUP_TAG))
                    .and_then(|tag| tag.value());
                if let (Some(id), Some(image)) = (snapshot.snapshot_id(), image) {
                    by_image.entry(image.to_string()).or_default().insert(
                        id.to_string(),
                        SnapshotInfo {
                            size_gib: snapshot.volume_size().unwrap_or(0),
                            tags: tags_of(snapshot.tags()),
                            description: snapshot.description().map(str::to_string),
                        },
                    );
                }
            }
        }
        Ok(by_image)
    }

    async fn collect_snapshots(
        &self,
        filter: Filter,
        found: &mut BTreeMap<String, SnapshotInfo>,
    ) -> Result<()> {
        let mut pages = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .filters(filter)
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                AwsError::from_sdk(Operation::DescribeSnapshots, &self.region, err)
            })?;
            for snapshot in page.snapshots() {
                if let Some(id) = snapshot.snapshot_id() {
                    found.insert(
                        id.to_string(),
                        SnapshotInfo {
                            size_gib: snapshot.volume_size().unwrap_or(0),
                            tags: tags_of(snapshot.tags()),
                            description: snapshot.description().map(str::to_string),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    pub async fn mark_pending_cleanup(
        &self,
        image_id: &str,
        snapshot_ids: &[String],
    ) -> Result<()> {
        for chunk in snapshot_ids.chunks(1000) {
            self.pacing.tags.take().await;
            self.client
                .create_tags()
                .set_resources(Some(chunk.to_vec()))
                .tags(
                    Tag::builder()
                        .key(PENDING_CLEANUP_TAG)
                        .value(image_id)
                        .build(),
                )
                .send()
                .await
                .map_err(|err| AwsError::from_sdk(Operation::CreateTags, &self.region, err))?;
        }
        Ok(())
    }

    pub async fn delete_snapshot(&self, snapshot_id: &str) -> Result<Deleted, AwsError> {
        self.pacing.delete_snapshot.take().await;
        match self
            .client
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .send()
            .await
        {
            Ok(_) => Ok(Deleted::Deleted),
            Err(err) if service_code(&err) == Some("InvalidSnapshot.NotFound") => {
                Ok(Deleted::AlreadyGone)
            }
            Err(err) => Err(
                AwsError::from_sdk(Operation::DeleteSnapshot, &self.region, err).on(snapshot_id),
            ),
        }
    }

    /// Removes the pending-cleanup mark `mark_pending_cleanup` set for this image (only that
    /// value: a mark for another image stays).
    pub async fn unmark_pending_cleanup(
        &self,
        image_id: &str,
        snapshot_ids: &[String],
    ) -> Result<(), AwsError> {
        for chunk in snapshot_ids.chunks(1000) {
            self.pacing.tags.take().await;
            self.client
                .delete_tags()
                .set_resources(Some(chunk.to_vec()))
                .tags(
                    Tag::builder()
                        .key(PENDING_CLEANUP_TAG)
                        .value(image_id)
                        .build(),
                )
                .send()
                .await
                .map_err(|err| AwsError::from_sdk(Operation::DeleteTags, &self.region, err))?;
        }
        Ok(())
    }
}

fn tags_of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|tag| {
            Some((
                tag.key()?.to_string(),
                tag.value().unwrap_or("").to_string(),
            ))
        })
        .collect()
}
