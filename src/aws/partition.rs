//! The partition of a region (`aws`, `aws-cn`, `aws-us-gov`, `aws-iso`, ...), for every ARN
//! `ami` builds. The table is the SDK's own endpoint data: each partition's region pattern as the
//! SDK crates carry it (their `partitions.json`), in the order the SDK tries them, `aws` for
//! anything else (the SDK does not expose its partition resolver). A test holds each
//! partition's known regions to the SDK's endpoint resolver: the endpoint it resolves carries
//! that partition's DNS suffix. A partition the SDK adds must be added here by hand.

use regex::Regex;
use std::sync::OnceLock;

/// (partition, its region pattern, its DNS suffix), as in the SDK's partition data.
const PARTITIONS: [(&str, &str, &str); 8] = [
    (
        "aws",
        r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$",
        "amazonaws.com",
    ),
    ("aws-cn", r"^cn\-\w+\-\d+$", "amazonaws.com.cn"),
    ("aws-eusc", r"^eusc\-(de)\-\w+\-\d+$", "amazonaws.eu"),
    ("aws-iso", r"^us\-iso\-\w+\-\d+$", "c2s.ic.gov"),
    ("aws-iso-b", r"^us\-isob\-\w+\-\d+$", "sc2s.sgov.gov"),
    ("aws-iso-e", r"^eu\-isoe\-\w+\-\d+$", "cloud.adc-e.uk"),
    ("aws-iso-f", r"^us\-isof\-\w+\-\d+$", "csp.hci.ic.gov"),
    ("aws-us-gov", r"^us\-gov\-\w+\-\d+$", "amazonaws.com"),
];

/// The partition a region belongs to; `aws` when no pattern matches (as the SDK resolves it).
pub fn partition(region: &str) -> &'static str {
    static PATTERNS: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        PARTITIONS
            .iter()
            .map(|(name, pattern, _)| (*name, Regex::new(pattern).expect("static regex")))
            .collect()
    });
    patterns
        .iter()
        .find(|(_, pattern)| pattern.is_match(region))
        .map_or("aws", |(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sts::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};

    /// Every partition's regions, as the SDK knows them: our partition, and the SDK's own
    /// endpoint for the region (STS's regional endpoint) carries that partition's DNS suffix.
    #[tokio::test]
    async fn every_region_the_sdk_knows_is_in_its_partition() {
        let table = [
            ("us-east-1", "aws"),
            ("eu-west-1", "aws"),
            ("ap-southeast-7", "aws"),
            ("mx-central-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("cn-northwest-1", "aws-cn"),
            ("eusc-de-east-1", "aws-eusc"),
            ("us-iso-east-1", "aws-iso"),
            ("us-iso-west-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-south-1", "aws-iso-f"),
            ("us-isof-east-1", "aws-iso-f"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-gov-east-1", "aws-us-gov"),
        ];
        let resolver = DefaultResolver::new();
        for (region, expected) in table {
            assert_eq!(partition(region), expected, "{region}");
            let params = Params::builder()
                .region(region.to_string())
                .use_fips(false)
                .use_dual_stack(false)
                .use_global_endpoint(false)
                .build()
                .expect("endpoint parameters");
            let endpoint = resolver
                .resolve_endpoint(&params)
                .await
                .expect("the SDK resolves the region");
            let suffix = PARTITIONS
                .iter()
                .find(|(name, _, _)| *name == expected)
                .map(|(_, _, suffix)| *suffix)
                .unwrap();
            assert!(
                endpoint.url().ends_with(suffix),
                "{region}: the SDK's endpoint {} is not in {expected} ({suffix})",
                endpoint.url()
            );
        }
        // A region the data does not list falls back to `aws`, as in the SDK.
        assert_eq!(partition("xx-new-1"), "aws");
    }
}
