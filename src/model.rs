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
    pub state: ImageState,
    /// Why it is in its state, when AWS says (a `failed` image's cause).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    pub root_device_type: RootDeviceType,
    pub root_device_name: Option<String>,
    pub architecture: Option<String>,
    pub creation_date: Option<DateTime<Utc>>,
    pub block_devices: Vec<BlockDevice>,
    /// `bucket/prefix/name.manifest.xml` for instance-store images.
    pub image_location: Option<String>,
    pub public: bool,
    pub tags: BTreeMap<String, String>,
    pub deprecation_time: Option<DateTime<Utc>>,
    /// None where the endpoint does not report it.
    pub deregistration_protection: Option<DeregistrationProtection>,
    pub last_launched_time: Option<DateTime<Utc>>,
    /// The instance a CreateImage image was made from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_instance_id: Option<String>,
    /// The image this one was made from (CreateImage: the instance's image; CopyImage: the
    /// source) and its region, where AWS records it (not for RegisterImage images).
    pub source_image_id: Option<String>,
    pub source_image_region: Option<String>,
    /// `amazon`, `aws-backup-vault`, `aws-marketplace`, where AWS assigns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_owner_alias: Option<String>,
}

/// A value AWS names with a word (`available`, `ebs`, `completed`): the enum, its AWS word both
/// ways, and the word in JSON. A word this build does not know is kept by its name, so a new AWS
/// value is shown as AWS sent it and decides nothing it was not meant to.
macro_rules! aws_words {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $($variant,)+
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $word,)+
                    $name::Other(word) => word,
                }
            }
        }

        impl From<&str> for $name {
            fn from(word: &str) -> $name {
                match word {
                    $($word => $name::$variant,)+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

aws_words!(
    /// An image's state, as AWS names it. An unknown state is treated as not available.
    ImageState {
        Available = "available",
        Pending = "pending",
        Failed = "failed",
        Error = "error",
        Invalid = "invalid",
        Transient = "transient",
        Disabled = "disabled",
        Deregistered = "deregistered",
    }
);

aws_words!(
    /// Where an image's root volume lives: an EBS snapshot or an S3 bundle.
    RootDeviceType {
        Ebs = "ebs",
        InstanceStore = "instance-store",
    }
);

aws_words!(
    /// A snapshot's state, as AWS names it. Only a `completed` snapshot is ever deleted.
    SnapshotState {
        Pending = "pending",
        Completed = "completed",
        Error = "error",
        Recoverable = "recoverable",
        Recovering = "recovering",
    }
);

/// An image's deregistration protection, as AWS reports it (`disabled`,
/// `enabled-without-cooldown`, `enabled-with-cooldown`, `disabled-until-<time>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeregistrationProtection {
    Disabled,
    /// On; with a cooldown, disabling it leaves the image protected for 24 more hours.
    Enabled {
        cooldown: bool,
    },
    /// Disabled, but its cooldown keeps the image protected until then (`aws`: the value as
    /// AWS sent it, shown unchanged).
    DisabledUntil {
        until: DateTime<Utc>,
        aws: String,
    },
    /// A value this build does not know, kept as AWS sent it: treated as protected.
    Other(String),
}

impl DeregistrationProtection {
    /// Whether protection is switched on (a running cooldown is not: it only delays).
    pub fn is_on(&self) -> bool {
        matches!(self, DeregistrationProtection::Enabled { .. })
    }

    /// Whether protection is known to be switched off (disabled, or its cooldown running): a
    /// value this build does not know is not.
    pub fn is_off(&self) -> bool {
        matches!(
            self,
            DeregistrationProtection::Disabled | DeregistrationProtection::DisabledUntil { .. }
        )
    }

    pub fn as_aws(&self) -> String {
        match self {
            DeregistrationProtection::Disabled => "disabled".into(),
            DeregistrationProtection::Enabled { cooldown: false } => {
                "enabled-without-cooldown".into()
            }
            DeregistrationProtection::Enabled { cooldown: true } => "enabled-with-cooldown".into(),
            DeregistrationProtection::DisabledUntil { aws, .. } => aws.clone(),
            DeregistrationProtection::Other(value) => value.clone(),
        }
    }
}

impl From<&str> for DeregistrationProtection {
    fn from(value: &str) -> DeregistrationProtection {
        match value {
            "disabled" => DeregistrationProtection::Disabled,
            // Older endpoints answer plain `enabled`.
            "enabled-without-cooldown" | "enabled" => {
                DeregistrationProtection::Enabled { cooldown: false }
            }
            "enabled-with-cooldown" => DeregistrationProtection::Enabled { cooldown: true },
            other => match other.strip_prefix("disabled-until-").and_then(parse_time) {
                Some(until) => DeregistrationProtection::DisabledUntil {
                    until,
                    aws: other.to_string(),
                },
                None => DeregistrationProtection::Other(other.to_string()),
            },
        }
    }
}

impl std::fmt::Display for DeregistrationProtection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_aws())
    }
}

impl Serialize for DeregistrationProtection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.as_aws())
    }
}

/// Whose images a listing asks for (DescribeImages' `Owners`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The calling account (`self`).
    Caller,
    Account(String),
    /// An owner alias AWS assigns: `amazon`, `aws-marketplace`, `aws-backup-vault`.
    Alias(String),
}

impl Owner {
    /// `self`, a 12-digit account id, or a lowercase alias; anything else is not an owner.
    pub fn parse(raw: &str) -> Option<Owner> {
        if raw == "self" {
            Some(Owner::Caller)
        } else if raw.len() == 12 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Some(Owner::Account(raw.to_string()))
        } else if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            Some(Owner::Alias(raw.to_string()))
        } else {
            None
        }
    }

    pub fn as_aws(&self) -> &str {
        match self {
            Owner::Caller => "self",
            Owner::Account(id) | Owner::Alias(id) => id,
        }
    }
}

/// Who to grant (or revoke) launch permission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grantees {
    pub accounts: Vec<String>,
    pub organizations: Vec<String>,
    pub organizational_units: Vec<String>,
    pub public: bool,
}

impl Grantees {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.organizations.is_empty()
            && self.organizational_units.is_empty()
            && !self.public
    }
}

impl Image {
    pub fn is_instance_store(&self) -> bool {
        self.root_device_type == RootDeviceType::InstanceStore
    }

    /// The image this one was made from, where AWS records it.
    pub fn source(&self) -> Option<ImageRef> {
        Some(ImageRef {
            region: self.source_image_region.clone()?,
            image_id: self.source_image_id.clone()?,
        })
    }

    /// How this image came from its source: a CreateImage image records the instance it was
    /// made from; a copy (CopyImage) records only its source.
    pub fn origin(&self) -> Origin {
        match (self.source(), &self.source_instance_id) {
            (None, _) => Origin::Unrecorded,
            (Some(_), Some(_)) => Origin::Built,
            (Some(source), None) => Origin::Copied(source),
        }
    }

    pub fn reference(&self) -> ImageRef {
        ImageRef {
            region: self.region.clone(),
            image_id: self.image_id.clone(),
        }
    }
}

/// An image by region and id: ids are unique, but the region says where to ask about it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ImageRef {
    pub region: String,
    pub image_id: String,
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in {}", self.image_id, self.region)
    }
}

/// Where an image came from, as far as AWS records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A copy of this image (CopyImage, or CreateRestoreImageTask).
    Copied(ImageRef),
    /// Built from an instance launched from its source (CreateImage).
    Built,
    /// No source recorded (RegisterImage, or made before AWS recorded sources).
    Unrecorded,
}

/// One image of an ancestry chain (GetImageAncestry), from the image asked about to its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AncestryEntry {
    pub image_id: String,
    pub creation_date: Option<DateTime<Utc>>,
    pub image_owner_alias: Option<String>,
    pub source_image_id: Option<String>,
    pub source_image_region: Option<String>,
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

impl LaunchPermissions {
    /// Shared with an account other than `own_account`: only that account can say whether it
    /// uses the image (a usage report or a role check).
    pub fn shared_with_accounts(&self, own_account: &str) -> bool {
        self.accounts.iter().any(|account| account != own_account)
    }
}

/// One of the account's snapshots, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotInfo {
    pub size_gib: i32,
    /// Its tags: Recycle Bin rules select by tag.
    pub tags: BTreeMap<String, String>,
    /// AWS's description: a CreateImage or CopyImage snapshot names the image it was made for
    /// (which may be in the Recycle Bin, needing it).
    pub description: Option<String>,
}

/// A snapshot as the orphan sweep sees it: AWS's description names the image it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFact {
    pub snapshot_id: String,
    pub description: Option<String>,
    pub state: SnapshotState,
    pub size_gib: i32,
    pub tags: BTreeMap<String, String>,
}

/// What a Recycle Bin retention rule keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinResource {
    Image,
    Snapshot,
}

/// A Recycle Bin retention rule (rbin GetRule): what it retains, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    pub id: String,
    pub resource: BinResource,
    pub days: u32,
    /// A tag-level rule: resources with any of these tags (key, and value if given).
    pub tags: Vec<(String, Option<String>)>,
    /// A region-level rule: every resource but those with any of these tags.
    pub exclude_tags: Vec<(String, Option<String>)>,
    /// `available` (rules are `pending` for a while after they are made, and retain nothing yet).
    pub available: bool,
}

/// The region's Recycle Bin rules, as far as they could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecycleRules {
    Known(Vec<RetentionRule>),
    /// The read failed: whether anything will be recoverable is unknown.
    Unreadable(String),
}

impl Default for RecycleRules {
    fn default() -> Self {
        RecycleRules::Known(Vec::new())
    }
}

/// An image or snapshot in the Recycle Bin (ListImagesInRecycleBin, ListSnapshotsInRecycleBin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BinEntry {
    pub id: String,
    /// The image's name, or the snapshot's description.
    pub name: Option<String>,
    pub entered: Option<DateTime<Utc>>,
    /// When it leaves the bin for good, unless restored before.
    pub leaves: Option<DateTime<Utc>>,
}

/// The images in a region's Recycle Bin (ListImagesInRecycleBin), as far as they could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinnedImages {
    /// Every image in the bin, by id.
    Known(BTreeMap<String, BinEntry>),
    /// The endpoint does not offer the Recycle Bin: nothing can be in it.
    NotOffered(String),
    /// The read failed: any image may be in the bin.
    Unreadable(String),
}

/// Not read is not empty: anything may be in the bin.
impl Default for BinnedImages {
    fn default() -> Self {
        BinnedImages::Unreadable("the Recycle Bin was not read".into())
    }
}

/// An EBS snapshot lock's state (DescribeLockedSnapshots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    Governance,
    /// Compliance mode, still within its cooling-off period.
    ComplianceCooloff,
    Compliance,
    /// The lock's time is over: the snapshot is not locked.
    Expired,
    /// A state this build does not know: treated as locked.
    Other(String),
}

impl LockState {
    pub fn parse(raw: &str) -> LockState {
        match raw {
            "governance" => LockState::Governance,
            "compliance-cooloff" => LockState::ComplianceCooloff,
            "compliance" => LockState::Compliance,
            "expired" => LockState::Expired,
            other => LockState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            LockState::Governance => "governance",
            LockState::ComplianceCooloff => "compliance-cooloff",
            LockState::Compliance => "compliance",
            LockState::Expired => "expired",
            LockState::Other(other) => other,
        }
    }
}

/// A lock on one of the account's snapshots: it cannot be deleted until the lock ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotLock {
    pub state: LockState,
    pub expires: Option<DateTime<Utc>>,
}

/// The region's snapshot locks, as far as they could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotLocks {
    /// Every locked snapshot of the account in the region (any other is not locked).
    Known(BTreeMap<String, SnapshotLock>),
    /// The endpoint does not offer DescribeLockedSnapshots (no snapshot can be locked there).
    NotOffered(String),
    /// The read failed: any snapshot may be locked.
    Unreadable(String),
}

impl Default for SnapshotLocks {
    fn default() -> Self {
        SnapshotLocks::Known(BTreeMap::new())
    }
}

/// What kind of thing uses an image. Serialised as before: `instance`, `launch_template`,
/// `launch_configuration`, an image-reference type (`ssm:Parameter` → `ssm_parameter`), and the
/// two stand-ins for checks that could not be made, which keep the image like any user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum UserKind {
    Instance,
    LaunchTemplate,
    LaunchConfiguration,
    /// A resource DescribeImageReferences reported, by its AWS type (`ssm:Parameter`, ...).
    Reference(String),
    /// DescribeImageReferences could not be read for the image.
    UncheckedReferences,
    /// An account, organization, OU or the public the image is shared with, not looked into.
    UncheckedConsumer,
}

impl UserKind {
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self {
            UserKind::Instance => Cow::Borrowed("instance"),
            UserKind::LaunchTemplate => Cow::Borrowed("launch_template"),
            UserKind::LaunchConfiguration => Cow::Borrowed("launch_configuration"),
            UserKind::Reference(aws_type) => Cow::Owned(aws_type.replace(':', "_").to_lowercase()),
            UserKind::UncheckedReferences => Cow::Borrowed("unchecked_references"),
            UserKind::UncheckedConsumer => Cow::Borrowed("unchecked_consumer"),
        }
    }
}

impl Serialize for UserKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.as_str())
    }
}

/// Whose account a user is in: ours (the caller's) or a consumer account the image is shared with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UserAccount {
    #[default]
    Ours,
    Consumer(String),
}

impl UserAccount {
    pub fn is_ours(&self) -> bool {
        matches!(self, UserAccount::Ours)
    }
}

/// Absent for our own account (as before), the account id for a consumer's.
impl Serialize for UserAccount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            UserAccount::Ours => serializer.serialize_none(),
            UserAccount::Consumer(account) => serializer.serialize_str(account),
        }
    }
}

/// Something that would break if the image went away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageUser {
    pub kind: UserKind,
    pub id: String,
    /// `running`, `version 3`, ...
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "UserAccount::is_ours")]
    pub account: UserAccount,
}

impl ImageUser {
    pub fn new(kind: UserKind, id: impl Into<String>, detail: Option<String>) -> ImageUser {
        ImageUser {
            kind,
            id: id.into(),
            detail,
            account: UserAccount::Ours,
        }
    }

    /// An instance of the caller's own account: the only kind `--terminate-instances` may end.
    pub fn terminable(&self) -> bool {
        self.kind == UserKind::Instance && self.account.is_ours()
    }
}

/// A launch template version whose image id is a `resolve:ssm:` alias AWS did not resolve: it
/// may name any image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedAlias {
    pub template_id: String,
    pub version: i64,
    /// The alias, with why it was not resolved.
    pub alias: String,
}

/// What one account's reads found about who uses some images, in one region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFacts {
    /// Users found by image id: instances, launch template versions, launch configurations,
    /// image references.
    pub users: BTreeMap<String, Vec<ImageUser>>,
    pub unresolved_aliases: Vec<UnresolvedAlias>,
    /// Images whose DescribeImageReferences call failed, with the error.
    pub unchecked_references: Vec<(String, String)>,
    /// DescribeImageReferences is not offered by the endpoint: the error.
    pub references_not_offered: Option<String>,
}

impl UsageFacts {
    pub fn add(&mut self, image_id: &str, user: ImageUser) {
        let users = self.users.entry(image_id.to_string()).or_default();
        if !users.contains(&user) {
            users.push(user);
        }
    }

    /// Adds what another read found, after what is here (users keep the order they were read in).
    pub fn append(&mut self, other: UsageFacts) {
        for (image_id, users) in other.users {
            for user in users {
                self.add(&image_id, user);
            }
        }
        self.unresolved_aliases.extend(other.unresolved_aliases);
        self.unchecked_references.extend(other.unchecked_references);
        if other.references_not_offered.is_some() {
            self.references_not_offered = other.references_not_offered;
        }
    }
}

/// How looking into one consumer account went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerCheck {
    Checked(UsageFacts),
    /// No `--role-name` to assume there.
    NoRole,
    /// The role could not be assumed, or a read failed: the error.
    Failed(String),
}

/// Who else may launch some images, and what was found in each account they are shared with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerFacts {
    pub permissions: BTreeMap<String, LaunchPermissions>,
    /// Images whose launch permissions could not be read, with the error.
    pub unreadable: BTreeMap<String, String>,
    pub accounts: BTreeMap<String, ConsumerCheck>,
    /// Image usage reports, by image: what the accounts it is shared with use it for.
    pub reports: BTreeMap<String, UsageReport>,
}

/// What was found in the accounts images are shared with: their usage reports and role checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerChecks {
    pub accounts: BTreeMap<String, ConsumerCheck>,
    pub reports: BTreeMap<String, UsageReport>,
}

impl ConsumerFacts {
    /// One image's launch-permission read, as it went (a failure as its one line).
    pub fn record(&mut self, image_id: String, read: Result<LaunchPermissions, String>) {
        match read {
            Ok(permissions) => {
                self.unreadable.remove(&image_id);
                self.permissions.insert(image_id, permissions);
            }
            Err(why) => {
                self.unreadable.insert(image_id, why);
            }
        }
    }

    pub fn add_checks(&mut self, checks: ConsumerChecks) {
        self.accounts.extend(checks.accounts);
        self.reports.extend(checks.reports);
    }
}

/// What an image usage report (CreateImageUsageReport) found, or why it found nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageReport {
    /// The report finished: per account that uses the image, what uses it and how many.
    Available {
        report_id: String,
        usage: BTreeMap<String, Vec<(UsageResource, i64)>>,
    },
    /// Not made, failed (`error`), timed out or not offered: the reason.
    Unavailable(String),
}

/// A resource type an image usage report counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum UsageResource {
    Instance,
    LaunchTemplate,
    /// A type this build does not know: still a use.
    Other(String),
}

impl UsageResource {
    pub fn parse(raw: &str) -> UsageResource {
        match raw {
            "ec2:Instance" => UsageResource::Instance,
            "ec2:LaunchTemplate" => UsageResource::LaunchTemplate,
            other => UsageResource::Other(other.to_string()),
        }
    }
}

/// A bundle manifest as S3 gave it (read up to a limit), before anyone parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestFetch {
    Fetched(Vec<u8>),
    Missing,
    /// Larger than the limit it was read with: its declared size.
    TooLarge(u64),
    /// Could not be fetched (access denied, throttled ...), with the reason.
    Unreadable(String),
}

/// An instance-store bundle in S3 as found: the manifest and the objects under its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleObjects {
    pub bucket: String,
    pub manifest_key: String,
    /// Key prefix the parts live under (`dir/` or empty).
    pub prefix: String,
    pub manifest: ManifestFetch,
    /// Every object under the prefix with its size (none if the bucket is gone), or why the
    /// listing failed.
    pub listing: Result<BTreeMap<String, u64>, String>,
}

/// What DeregisterImage with DeleteAssociatedSnapshots says it did with one snapshot. Anything
/// but `Success` leaves the snapshot to its own DeleteSnapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotReturnCode {
    Success,
    Skipped,
    MissingPermissions,
    InternalError,
    ClientError,
    /// A code this build does not know (AWS added one), or none at all.
    Other(String),
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

    #[test]
    fn aws_words_round_trip_and_keep_unknown_ones() {
        assert_eq!(
            RootDeviceType::from("instance-store"),
            RootDeviceType::InstanceStore
        );
        assert_eq!(SnapshotState::from("completed").as_str(), "completed");
        assert_eq!(
            SnapshotState::from("archived"),
            SnapshotState::Other("archived".into())
        );
        assert_eq!(ImageState::from("weird").to_string(), "weird");
    }

    #[test]
    fn a_running_cooldown_is_protection_switched_off() {
        // AWS's value → on, known off.
        let table = [
            ("disabled", false, true),
            ("enabled", true, false),
            ("enabled-without-cooldown", true, false),
            ("enabled-with-cooldown", true, false),
            ("disabled-until-2026-11-24T00:00:00.000Z", false, true),
            ("something-new", false, false),
        ];
        for (aws, on, off) in table {
            let protection = DeregistrationProtection::from(aws);
            assert_eq!(protection.is_on(), on, "{aws}");
            assert_eq!(protection.is_off(), off, "{aws}");
            if aws != "enabled" {
                assert_eq!(protection.as_aws(), aws, "shown as AWS sent it");
            }
        }
        assert!(matches!(
            DeregistrationProtection::from("disabled-until-2026-11-24T00:00:00.000Z"),
            DeregistrationProtection::DisabledUntil { .. }
        ));
    }

    #[test]
    fn owners() {
        assert_eq!(Owner::parse("self"), Some(Owner::Caller));
        assert_eq!(
            Owner::parse("123456789012"),
            Some(Owner::Account("123456789012".into()))
        );
        assert_eq!(
            Owner::parse("amazon").map(|o| o.as_aws().to_string()),
            Some("amazon".into())
        );
        assert_eq!(Owner::parse("12345"), None);
        assert_eq!(Owner::parse("Self"), None);
    }
}

/// An account's Allowed AMIs settings in a region (GetAllowedImagesSettings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedImages {
    pub state: AllowedState,
    pub criteria: Vec<ImageCriterion>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedState {
    /// Every image is allowed.
    Disabled,
    /// Every image is allowed; AWS only marks those the criteria would refuse.
    AuditMode,
    /// Only images matching a criterion can be discovered and launched.
    Enabled,
    Other(String),
}

/// One Allowed AMIs criterion: an image matches when it meets every condition given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageCriterion {
    /// Account ids, `amazon`, `aws-marketplace`, `aws-backup-vault`, or `none` (the account's
    /// own images only).
    pub providers: Vec<String>,
    /// Name globs (`*`, `?`).
    pub names: Vec<String>,
    pub product_codes: Vec<String>,
    pub max_days_since_created: Option<i32>,
    pub max_days_since_deprecated: Option<i32>,
    /// Conditions this build cannot judge from the image's description.
    pub unchecked: Vec<&'static str>,
}
