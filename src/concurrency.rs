//! Every bound on how many AWS calls `ami` has in flight, each named once with its reason.
//!
//! EC2 throttles per account and region, in separate buckets for reads and for mutations, and
//! the SDK's adaptive retries slow a client down further when AWS throttles. These bounds keep a
//! run well inside those buckets while hiding round-trip latency; accounts never share a budget.

/// Regions are independent endpoints with their own rate limits, so they run side by side; 8
/// covers the regions an estate usually spans without holding a connection pool per region for
/// every region AWS has.
pub const REGIONS: usize = 8;

/// Accounts in flight at once unless `--max-accounts` says otherwise. What bounds them is this
/// process, not AWS: each account runs its regions concurrently; 64 accounts were measured at
/// 71 MiB (docs/aws.md, "accounts at once").
pub const ACCOUNTS: usize = 64;

/// Mutating EC2 calls (deregister, delete, restore, modify) in one region: they share an
/// account-wide mutation bucket (EC2's default: a burst of 200, then 5 a second per action
/// family); 8 in flight keeps well inside it.
pub const MUTATIONS: usize = 8;

/// CreateImageUsageReport is a mutating call in a small bucket of its own (a burst of 50, then
/// 5 a second): a few at a time.
pub const USAGE_REPORTS: usize = 4;

/// Per-image reads EC2 has no bulk form for (DescribeImageAttribute, launch permissions): 8 in
/// flight stays well inside the describe bucket.
pub const IMAGE_ATTRIBUTES: usize = 8;

/// DescribeImageReferences chunks (10 image ids each) in flight.
pub const IMAGE_REFERENCES: usize = 8;

/// Launch templates are read one at a time, each with many versions: a few in flight.
pub const LAUNCH_TEMPLATES: usize = 4;

/// Consumer accounts checked at once, each through its own role and its own budget.
pub const CONSUMER_ACCOUNTS: usize = 8;

/// S3 bundle manifests read at once: they are small and S3's limits are far above this.
pub const MANIFESTS: usize = 4;

/// Recycle Bin retention rules are few; reading them a few at a time is plenty.
pub const RETENTION_RULES: usize = 4;
