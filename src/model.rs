//! The project's own view of AWS resources: what commands and the planner work on.
//! Only `aws/` builds these from SDK types.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub region: String,
    pub image_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub owner_id: Option<String>,
    /// `available`, `pending`, `failed`, `disabled`, ... as AWS reports it.
    pub state: String,
    /// `ebs` or `instance-store`.
    pub root_device_type: String,
    pub root_device_name: Option<String>,
    pub architecture: Option<String>,
    pub creation_date: Option<DateTime<Utc>>,
    pub block_devices: Vec<BlockDevice>,
    /// `bucket/prefix/name.manifest.xml` for instance-store images.
    pub image_location: Option<String>,
    pub public: bool,
    pub tags: BTreeMap<String, String>,
    pub deprecation_time: Option<DateTime<Utc>>,
    /// AWS's value: `disabled`, `enabled-without-cooldown`, `enabled-with-cooldown`,
    /// `disabled-until-<time>` (cooldown running).
    pub deregistration_protection: Option<String>,
    pub last_launched_time: Option<DateTime<Utc>>,
}

impl Image {
    pub fn is_instance_store(&self) -> bool {
        self.root_device_type == "instance-store"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockDevice {
    pub device_name: String,
    pub snapshot_id: Option<String>,
    pub volume_size_gib: Option<i32>,
    pub volume_type: Option<String>,
    /// `ephemeral0` etc. for instance-store volumes.
    pub virtual_name: Option<String>,
}

/// Who may launch an image, from its launch permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LaunchPermissions {
    pub public: bool,
    pub accounts: Vec<String>,
    pub organizations: Vec<String>,
    pub organizational_units: Vec<String>,
}

/// What `--dry-run` learnt about one call it did not make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "check", content = "reason")]
pub enum DryRunCheck {
    /// AWS's own DryRun check answered DryRunOperation: the call would be allowed.
    Allowed,
    /// AWS answered UnauthorizedOperation (or AccessDenied): the call would be refused.
    Denied(String),
    /// The action has no DryRun form, or it acts on something that does not exist yet.
    NotChecked(String),
}

/// Parses the timestamps EC2 returns as strings (`2026-11-23T13:17:42.000Z`).
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ec2_timestamps() {
        let time = parse_time("2026-11-23T13:17:42.000Z").unwrap();
        assert_eq!(time.to_rfc3339(), "2026-11-23T13:17:42+00:00");
        assert!(parse_time("yesterday").is_none());
    }
}
