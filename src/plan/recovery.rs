//! Whether what a plan deletes can be brought back: the Recycle Bin keeps a deregistered image or
//! deleted snapshot when one of the region's retention rules selects it.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::model::{BinResource, RecycleRules, RetentionRule};

/// What happens to an image or snapshot after it is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Recovery {
    /// A rule keeps it in the Recycle Bin until then (`ami restore` brings it back).
    Recoverable { until: DateTime<Utc>, rule: String },
    /// No rule selects it: deleting it is final.
    NotRecoverable,
    /// The rules could not be read: never assumed recoverable.
    Unknown { reason: String },
}

impl Recovery {
    /// A few words for a table cell.
    pub fn cell(&self) -> String {
        match self {
            Recovery::Recoverable { until, .. } => format!("until {}", until.format("%Y-%m-%d")),
            Recovery::NotRecoverable => "no".into(),
            Recovery::Unknown { .. } => "unknown".into(),
        }
    }
}

fn has(tags: &BTreeMap<String, String>, (key, value): &(String, Option<String>)) -> bool {
    tags.get(key)
        .is_some_and(|present| value.as_ref().is_none_or(|value| value == present))
}

/// Whether the rule retains a resource with these tags: a tag-level rule, if it has one of the
/// rule's tags; a region-level rule, unless it has one of the exclusion tags.
fn selects(rule: &RetentionRule, tags: &BTreeMap<String, String>) -> bool {
    if rule.tags.is_empty() {
        !rule.exclude_tags.iter().any(|tag| has(tags, tag))
    } else {
        rule.tags.iter().any(|tag| has(tags, tag))
    }
}

/// Where an image or snapshot deleted `now` ends up. Of several rules, the longest retention
/// wins (AWS's rule); a rule not yet `available` retains nothing.
pub fn recovery(
    rules: &RecycleRules,
    resource: BinResource,
    tags: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Recovery {
    let rules = match rules {
        RecycleRules::Known(rules) => rules,
        RecycleRules::Unreadable(reason) => {
            return Recovery::Unknown {
                reason: reason.clone(),
            };
        }
    };
    rules
        .iter()
        .filter(|rule| rule.available && rule.resource == resource && selects(rule, tags))
        .max_by(|a, b| a.days.cmp(&b.days).then_with(|| b.id.cmp(&a.id)))
        .map_or(Recovery::NotRecoverable, |rule| Recovery::Recoverable {
            until: now + Duration::days(i64::from(rule.days)),
            rule: rule.id.clone(),
        })
}

/// How much of what one kind of resource a plan deletes the Recycle Bin keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecoveryTally {
    /// Items the plan deletes.
    pub total: usize,
    pub recoverable: usize,
    /// Items whose rules could not be read: never counted as recoverable.
    pub unknown: usize,
}

/// What a plan deletes that the Recycle Bin keeps, by kind, and until when at least.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecycleSummary {
    pub images: Option<RecoveryTally>,
    pub snapshots: Option<RecoveryTally>,
    /// The earliest time a recoverable item leaves the bin: `ami restore` works until then.
    pub restorable_until: Option<DateTime<Utc>>,
}

/// How much of what a plan deletes can be restored; None when it deletes nothing.
pub fn summary<'a>(
    images: impl IntoIterator<Item = &'a Recovery>,
    snapshots: impl IntoIterator<Item = &'a Recovery>,
) -> Option<RecycleSummary> {
    let mut earliest: Option<DateTime<Utc>> = None;
    let mut tally = |items: &mut dyn Iterator<Item = &'a Recovery>| -> Option<RecoveryTally> {
        let mut counts = RecoveryTally {
            total: 0,
            recoverable: 0,
            unknown: 0,
        };
        for item in items {
            counts.total += 1;
            match item {
                Recovery::Recoverable { until, .. } => {
                    counts.recoverable += 1;
                    earliest = Some(earliest.map_or(*until, |e| e.min(*until)));
                }
                Recovery::Unknown { .. } => counts.unknown += 1,
                Recovery::NotRecoverable => {}
            }
        }
        (counts.total > 0).then_some(counts)
    };
    let images = tally(&mut images.into_iter());
    let snapshots = tally(&mut snapshots.into_iter());
    if images.is_none() && snapshots.is_none() {
        return None;
    }
    Some(RecycleSummary {
        images,
        snapshots,
        restorable_until: earliest,
    })
}

impl std::fmt::Display for RecycleSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let part = |tally: &RecoveryTally, what: &str| {
            let plural = if tally.total == 1 { "" } else { "s" };
            let mut text = format!(
                "{} of {} {what}{plural} recoverable",
                tally.recoverable, tally.total
            );
            if tally.unknown > 0 {
                text.push_str(&format!(
                    " ({} unknown: the rules could not be read)",
                    tally.unknown
                ));
            }
            text
        };
        let parts: Vec<String> = [
            self.images.as_ref().map(|t| part(t, "image")),
            self.snapshots.as_ref().map(|t| part(t, "snapshot")),
        ]
        .into_iter()
        .flatten()
        .collect();
        write!(f, "Recycle Bin: {}", parts.join(", "))?;
        if let Some(until) = self.restorable_until {
            write!(
                f,
                "; `ami restore` brings them back until {} at least",
                until.format("%Y-%m-%d")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
    }

    fn rule(id: &str, resource: BinResource, days: u32) -> RetentionRule {
        RetentionRule {
            id: id.into(),
            resource,
            days,
            tags: Vec::new(),
            exclude_tags: Vec::new(),
            available: true,
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn tag(key: &str, value: Option<&str>) -> (String, Option<String>) {
        (key.into(), value.map(str::to_string))
    }

    #[test]
    fn which_rule_keeps_what() {
        let region = rule("region", BinResource::Image, 14);
        let excluding = RetentionRule {
            exclude_tags: vec![tag("scratch", None)],
            ..rule("excluding", BinResource::Image, 30)
        };
        let tagged = RetentionRule {
            tags: vec![tag("env", Some("prod")), tag("keep", None)],
            ..rule("tagged", BinResource::Snapshot, 7)
        };
        let pending = RetentionRule {
            available: false,
            ..rule("pending", BinResource::Snapshot, 365)
        };
        let until = |days: i64, rule: &str| Recovery::Recoverable {
            until: now() + Duration::days(days),
            rule: rule.into(),
        };
        type Case = (
            &'static str,
            Vec<RetentionRule>,
            BinResource,
            BTreeMap<String, String>,
            Recovery,
        );
        let table: Vec<Case> = vec![
            (
                "no rules",
                vec![],
                BinResource::Image,
                tags(&[]),
                Recovery::NotRecoverable,
            ),
            (
                "region-level",
                vec![region.clone()],
                BinResource::Image,
                tags(&[]),
                until(14, "region"),
            ),
            (
                "other resource type",
                vec![region.clone()],
                BinResource::Snapshot,
                tags(&[]),
                Recovery::NotRecoverable,
            ),
            (
                "longest wins",
                vec![region.clone(), excluding.clone()],
                BinResource::Image,
                tags(&[]),
                until(30, "excluding"),
            ),
            (
                "excluded",
                vec![excluding.clone()],
                BinResource::Image,
                tags(&[("scratch", "yes")]),
                Recovery::NotRecoverable,
            ),
            (
                "excluded from one, kept by another",
                vec![region.clone(), excluding.clone()],
                BinResource::Image,
                tags(&[("scratch", "")]),
                until(14, "region"),
            ),
            (
                "tag and value",
                vec![tagged.clone()],
                BinResource::Snapshot,
                tags(&[("env", "prod")]),
                until(7, "tagged"),
            ),
            (
                "tag with another value",
                vec![tagged.clone()],
                BinResource::Snapshot,
                tags(&[("env", "dev")]),
                Recovery::NotRecoverable,
            ),
            (
                "tag, any value",
                vec![tagged.clone()],
                BinResource::Snapshot,
                tags(&[("keep", "x")]),
                until(7, "tagged"),
            ),
            (
                "untagged",
                vec![tagged.clone()],
                BinResource::Snapshot,
                tags(&[]),
                Recovery::NotRecoverable,
            ),
            (
                "pending rule",
                vec![pending],
                BinResource::Snapshot,
                tags(&[]),
                Recovery::NotRecoverable,
            ),
        ];
        for (case, rules, resource, tags, expected) in table {
            assert_eq!(
                recovery(&RecycleRules::Known(rules), resource, &tags, now()),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn unreadable_rules_make_everything_unknown() {
        assert_eq!(
            recovery(
                &RecycleRules::Unreadable("AccessDenied".into()),
                BinResource::Image,
                &tags(&[]),
                now()
            ),
            Recovery::Unknown {
                reason: "AccessDenied".into()
            }
        );
    }

    #[test]
    fn the_summary_never_calls_unknown_recoverable() {
        let kept = Recovery::Recoverable {
            until: now() + Duration::days(7),
            rule: "r".into(),
        };
        let unknown = Recovery::Unknown { reason: "x".into() };
        assert_eq!(
            summary([&kept], [&Recovery::NotRecoverable, &unknown])
                .unwrap()
                .to_string(),
            "Recycle Bin: 1 of 1 image recoverable, 0 of 2 snapshots recoverable (1 unknown: \
             the rules could not be read); `ami restore` brings them back until 2026-12-07 at least"
        );
        assert_eq!(
            summary([&Recovery::NotRecoverable], [])
                .unwrap()
                .to_string(),
            "Recycle Bin: 0 of 1 image recoverable"
        );
        assert_eq!(summary([], []), None);
    }
}
