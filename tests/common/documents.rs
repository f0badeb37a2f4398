//! Every verb's `--output json` document as typed structs that reject unknown fields, as a
//! script would read it: a field the binary adds, renames or drops fails here as well as in
//! its schema. `read(schema, document)` reads a document into its verb's struct.
#![allow(dead_code)]

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// Reads `document` into the struct of schema `name`, naming what did not fit.
pub fn read(name: &str, document: &Value) {
    fn into<T: DeserializeOwned>(name: &str, document: &Value) {
        if let Err(err) = serde_json::from_value::<T>(document.clone()) {
            panic!(
                "the {name} document does not read into its typed struct: {err}\n{}",
                serde_json::to_string_pretty(document).unwrap_or_default()
            );
        }
    }
    match name {
        "list" => into::<List>(name, document),
        "recycle-bin" => into::<RecycleBin>(name, document),
        "restore" => into::<Restore>(name, document),
        "create" | "register" => into::<NewImage>(name, document),
        "copy" => into::<Copy>(name, document),
        "share" => into::<Share>(name, document),
        "launch" => into::<Launch>(name, document),
        "release" => into::<Release>(name, document),
        "deregister" => into::<Retirement>(name, document),
        "cleanup" | "apply" => into::<Cleanup>(name, document),
        "dry-run" => into::<DryRun>(name, document),
        "fleet" => into::<Fleet>(name, document),
        "fleet-line" => into::<AccountResult>(name, document),
        other => panic!("no typed struct for the {other} document: add one"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct List {
    pub regions: Vec<String>,
    /// Only with --descendants.
    #[serde(default)]
    pub descendants_of: Option<String>,
    /// Only with --tree.
    #[serde(default)]
    pub tree: bool,
    pub images: Vec<ImageEntry>,
    pub errors: Vec<ListError>,
    /// Left out when there are none.
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    pub region: String,
    pub image_id: String,
    #[serde(deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(deserialize_with = "present")]
    pub description: Option<String>,
    #[serde(deserialize_with = "present")]
    pub owner_id: Option<String>,
    pub state: String,
    pub root_device_type: String,
    #[serde(deserialize_with = "present")]
    pub root_device_name: Option<String>,
    #[serde(deserialize_with = "present")]
    pub architecture: Option<String>,
    #[serde(deserialize_with = "present")]
    pub creation_date: Option<String>,
    #[serde(deserialize_with = "present")]
    pub age_days: Option<i64>,
    pub snapshots: Vec<SnapshotEntry>,
    #[serde(deserialize_with = "present")]
    pub manifest_location: Option<String>,
    pub public: bool,
    #[serde(deserialize_with = "present")]
    pub shared_with: Option<SharedWith>,
    pub tags: BTreeMap<String, String>,
    #[serde(deserialize_with = "present")]
    pub deprecation_time: Option<String>,
    #[serde(deserialize_with = "present")]
    pub deregistration_protection: Option<String>,
    #[serde(deserialize_with = "present")]
    pub last_launched_time: Option<String>,
    #[serde(deserialize_with = "present")]
    pub source_image_id: Option<String>,
    #[serde(deserialize_with = "present")]
    pub source_image_region: Option<String>,
    /// With --ancestry.
    #[serde(default)]
    pub ancestry: Option<Vec<AncestryEntry>>,
    /// With --tree.
    #[serde(default)]
    pub depth: Option<usize>,
    /// With --descendants.
    #[serde(default)]
    pub descent: Option<Descent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotEntry {
    pub device_name: String,
    pub snapshot_id: String,
    #[serde(deserialize_with = "present")]
    pub size_gib: Option<i64>,
    #[serde(deserialize_with = "present")]
    pub volume_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedWith {
    pub accounts: Vec<String>,
    pub organizations: Vec<String>,
    pub organizational_units: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AncestryEntry {
    pub image_id: String,
    #[serde(deserialize_with = "present")]
    pub creation_date: Option<String>,
    #[serde(deserialize_with = "present")]
    pub image_owner_alias: Option<String>,
    #[serde(deserialize_with = "present")]
    pub source_image_id: Option<String>,
    #[serde(deserialize_with = "present")]
    pub source_image_region: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descent {
    pub generation: usize,
    pub by: DescentKind,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DescentKind {
    Copy,
    Build,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListError {
    pub region: String,
    pub image_id: Option<String>,
    pub error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecycleBin {
    pub regions: Vec<String>,
    pub recycle_bin: Vec<BinItem>,
    pub errors: Vec<ListError>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinItem {
    pub region: String,
    pub kind: String,
    pub id: String,
    pub name: Option<String>,
    pub entered: Option<String>,
    pub leaves: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    pub region: String,
    pub dry_run: bool,
    pub images: Vec<RestoredImage>,
    pub snapshots: Vec<RestoredSnapshot>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoredImage {
    pub image_id: String,
    pub name: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub snapshots: Vec<RestoredSnapshot>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoredSnapshot {
    pub snapshot_id: String,
    pub status: String,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewImage {
    pub region: String,
    pub image_id: String,
    pub name: Option<String>,
    pub state: String,
    pub root_device_type: String,
    pub snapshots: Vec<NewSnapshot>,
    pub manifest_location: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub deprecation_time: Option<String>,
    pub deregistration_protection: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSnapshot {
    pub device_name: String,
    pub snapshot_id: String,
    pub size_gib: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Copy {
    pub source_region: String,
    pub source_image_id: String,
    pub name: String,
    pub copies: BTreeMap<String, CopyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyEntry {
    pub image_id: Option<String>,
    pub status: String,
    pub state: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub image_id: String,
    pub action: String,
    pub regions: Vec<RegionShare>,
    pub notes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionShare {
    pub region: String,
    pub image_id: String,
    pub launch_permissions: Option<LaunchPermissions>,
    pub snapshots: Vec<SnapshotShare>,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchPermissions {
    pub public: bool,
    pub accounts: Vec<String>,
    pub organizations: Vec<String>,
    pub organizational_units: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotShare {
    pub snapshot_id: String,
    pub accounts: Vec<String>,
    pub public: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launch {
    pub region: String,
    pub image_id: String,
    pub dry_run: bool,
    pub instances: Vec<Instance>,
    pub check: Option<CheckResult>,
    pub terminated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub instance_id: String,
    pub availability_zone: Option<String>,
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckResult {
    pub command: String,
    pub exit_code: Option<i32>,
    pub passed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub name: String,
    pub source_region: String,
    pub dry_run: bool,
    pub stages: Vec<Stage>,
    pub images: BTreeMap<String, ReleaseImage>,
    pub test_instance: Option<Instance>,
    pub parameters: BTreeMap<String, BTreeMap<String, Published>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub stage: String,
    pub state: StageState,
    pub duration_seconds: f64,
    pub detail: String,
    pub error: Option<String>,
    pub calls: Vec<PlannedCall>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
    Planned,
    NotStarted,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseImage {
    pub image_id: String,
    pub state: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    pub image_id: Option<String>,
    pub status: String,
    pub previous: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRun {
    pub dry_run: bool,
    pub calls: Vec<PlannedCall>,
    pub notes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedCall {
    pub region: String,
    pub call: String,
    pub target: String,
    pub check: String,
    pub reason: Option<String>,
}

/// `deregister` prints one region's retirement report, or (--all-copies) one per region.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Retirement {
    Region(RetireReport),
    AllCopies(AllCopies),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllCopies {
    pub dry_run: bool,
    pub image_ids: Vec<String>,
    pub regions: Vec<RetireReport>,
    pub notes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireReport {
    pub region: String,
    pub dry_run: bool,
    pub cleanup: bool,
    pub images: Vec<ImageItem>,
    pub snapshots: Vec<SnapshotItem>,
    pub bundles: Vec<BundleItem>,
    pub instances_terminated: Vec<String>,
    pub left_behind: LeftBehind,
    pub notes: Vec<String>,
    pub recycle_bin: Option<RecycleSummary>,
}

/// A field the document always has, null or not (serde lets an `Option` go missing).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// An item's status (`commands::retire::report::Status`).
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Planned,
    Done,
    Skipped,
    Failed,
    NotFound,
    NotStarted,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageItem {
    pub image_id: String,
    #[serde(deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(deserialize_with = "present")]
    pub state: Option<String>,
    pub action: ImageAction,
    pub reason: String,
    pub users: Vec<User>,
    pub snapshot_ids: Vec<String>,
    pub delete_associated_snapshots: bool,
    #[serde(deserialize_with = "present")]
    pub recycle_bin: Option<Recovery>,
    pub status: Status,
    #[serde(deserialize_with = "present")]
    pub error: Option<String>,
    #[serde(deserialize_with = "present")]
    pub code: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ImageAction {
    Deregister,
    AlreadyGone,
    NotFound,
    Blocked,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ItemAction {
    Delete,
    Keep,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub kind: String,
    pub id: String,
    #[serde(deserialize_with = "present")]
    pub detail: Option<String>,
    /// Only for a user in another account.
    #[serde(default)]
    pub account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotItem {
    pub snapshot_id: String,
    pub image_id: String,
    #[serde(deserialize_with = "present")]
    pub size_gib: Option<i64>,
    pub action: ItemAction,
    pub reason: String,
    pub deleted_by: DeletedBy,
    #[serde(deserialize_with = "present")]
    pub recycle_bin: Option<Recovery>,
    pub status: Status,
    #[serde(deserialize_with = "present")]
    pub error: Option<String>,
    #[serde(deserialize_with = "present")]
    pub code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleItem {
    pub image_id: String,
    pub bucket: String,
    pub manifest_key: String,
    pub action: ItemAction,
    pub reason: String,
    pub objects: Vec<String>,
    pub missing_parts: Vec<String>,
    pub existing_objects: usize,
    pub bytes: u64,
    pub status: Status,
    #[serde(deserialize_with = "present")]
    pub error: Option<String>,
    pub failed_keys: Vec<FailedKey>,
    #[serde(deserialize_with = "present")]
    pub bucket_deleted: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedKey {
    pub key: String,
    pub error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrphanItem {
    pub snapshot_id: String,
    pub image_id: String,
    #[serde(deserialize_with = "present")]
    pub description: Option<String>,
    pub size_gib: i64,
    pub action: ItemAction,
    pub reason: String,
    #[serde(deserialize_with = "present")]
    pub recycle_bin: Option<Recovery>,
    pub status: Status,
    #[serde(deserialize_with = "present")]
    pub error: Option<String>,
    #[serde(deserialize_with = "present")]
    pub code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeftBehind {
    pub snapshots: usize,
    pub snapshot_gib: i64,
    pub bundle_objects: usize,
    pub bundle_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecycleSummary {
    pub images: Option<RecoveryTally>,
    pub snapshots: Option<RecoveryTally>,
    pub restorable_until: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryTally {
    pub total: usize,
    pub recoverable: usize,
    pub unknown: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cleanup {
    pub dry_run: bool,
    pub regions: Vec<RegionCleanup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionCleanup {
    pub region: String,
    pub account_id: Option<String>,
    pub decisions: Vec<Decision>,
    pub retire: Option<RetireReport>,
    pub staged: Vec<Staged>,
    pub orphans: Vec<OrphanItem>,
    pub orphan_bundles: Vec<OrphanBundle>,
    pub error: Option<String>,
    /// Left out when there are none.
    #[serde(default)]
    pub problems: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(deserialize_with = "present")]
    pub rule: Option<String>,
    pub image_id: String,
    #[serde(deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(deserialize_with = "present")]
    pub family: Option<String>,
    #[serde(deserialize_with = "present")]
    pub creation_date: Option<String>,
    pub verdict: Verdict,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Staged {
    pub image_id: String,
    pub action: StagedAction,
    pub status: Status,
    #[serde(deserialize_with = "present")]
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrphanBundle {
    pub region: String,
    pub bucket: String,
    pub manifest_key: String,
    pub objects: Vec<String>,
    pub bytes: u64,
    pub action: ItemAction,
    pub reason: String,
    pub status: Status,
    #[serde(deserialize_with = "present")]
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    pub accounts: Vec<AccountResult>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountResult {
    pub account_id: String,
    pub role_arn: Option<String>,
    pub error: Option<String>,
    pub result: Option<VerbDocument>,
}

/// An account's result under `--org`/`--accounts`: the verb's own document.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum VerbDocument {
    Cleanup(Box<Cleanup>),
    List(Box<List>),
    RecycleBin(Box<RecycleBin>),
    Copy(Box<Copy>),
    Share(Box<Share>),
    DryRun(Box<DryRun>),
}

/// An item's Recycle Bin fate, as `plan::recovery::Recovery` writes it.
#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Recovery {
    Recoverable { until: String, rule: String },
    NotRecoverable,
    Unknown { reason: String },
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeletedBy {
    DeregisterImage,
    DeleteSnapshot,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Retire,
    Keep,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StagedAction {
    Deregister,
    Deprecate,
    Disable,
}
