//! Cleanup rules: which images each rule looks at, how the verdicts of several rules (and of a
//! reviewed plan) combine, and which staged retirements (deprecate, disable) are already done.
//! Keep wins over retire; the gentler action wins over deregistration.

use chrono::{DateTime, Utc};
use regex::Regex;
use std::collections::BTreeMap;

use super::retention::{Decision, Retention, RetireAction, Verdict, never_retired, select};
use super::{ImageUser, describe_users};
use crate::model::{Image, ImageRef, ImageState};

/// One rule, resolved: which images it looks at and how it decides.
#[derive(Debug, Clone)]
pub struct Rule {
    pub label: Option<String>,
    pub name_filter: Option<Regex>,
    pub tags: Vec<(String, String)>,
    pub retention: Retention,
    pub action: RetireAction,
    pub orphans: bool,
    /// (bucket, prefix) to sweep for unused bundles.
    pub orphan_bundles: Vec<(String, String)>,
    /// An image this rule retires takes its copies in every enabled region with it.
    pub with_copies: bool,
}

impl Rule {
    pub fn selects_images(&self) -> bool {
        self.retention.keep.is_some()
            || self.retention.older_than.is_some()
            || self.retention.unused_for.is_some()
    }

    /// Whether the image is one of this rule's candidates (its name glob and tags match).
    pub fn looks_at(&self, image: &Image) -> bool {
        self.name_filter
            .as_ref()
            .is_none_or(|regex| image.name.as_deref().is_some_and(|n| regex.is_match(n)))
            && self
                .tags
                .iter()
                .all(|(key, value)| image.tags.get(key) == Some(value))
    }
}

/// Every rule's verdicts, a reviewed plan's re-checked images (`rechecked`), and keep-wins: the
/// decisions and the action for each image to retire.
pub fn decide(
    rules: &[Rule],
    rechecked: Vec<(Decision, RetireAction)>,
    images: &[Image],
    account_id: &str,
    users: &BTreeMap<String, Vec<ImageUser>>,
    now: DateTime<Utc>,
) -> (Vec<Decision>, BTreeMap<String, RetireAction>) {
    let mut decisions: Vec<Decision> = Vec::new();
    let mut actions: BTreeMap<String, RetireAction> = BTreeMap::new();
    for rule in rules.iter().filter(|rule| rule.selects_images()) {
        let candidates: Vec<Image> = images
            .iter()
            .filter(|image| rule.looks_at(image))
            .cloned()
            .collect();
        for mut decision in select(&candidates, users, account_id, &rule.retention, now) {
            decision.rule = rule.label.clone();
            if decision.verdict == Verdict::Retire {
                let gentlest = match actions.get(&decision.image_id) {
                    Some(existing) => existing.gentler(rule.action),
                    None => rule.action,
                };
                actions.insert(decision.image_id.clone(), gentlest);
            }
            decisions.push(decision);
        }
    }
    for (mut decision, action) in rechecked {
        // Deregistration is re-checked by the planner; a staged action is checked here.
        if decision.verdict == Verdict::Retire
            && action != RetireAction::Deregister
            && let Some(users) = users.get(&decision.image_id).filter(|u| !u.is_empty())
        {
            decision.verdict = Verdict::Keep;
            decision.reason = format!("now in use by {}", describe_users(users));
        }
        if decision.verdict == Verdict::Retire {
            // A copy retired with its source may also be a rule's candidate: the gentler wins.
            let gentlest = match actions.get(&decision.image_id) {
                Some(existing) => existing.gentler(action),
                None => action,
            };
            actions.insert(decision.image_id.clone(), gentlest);
        }
        decisions.push(decision);
    }
    let kept: BTreeMap<String, String> = decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Keep)
        .map(|d| {
            (
                d.image_id.clone(),
                d.rule.clone().unwrap_or_else(|| "the rule".into()),
            )
        })
        .collect();
    for decision in decisions
        .iter_mut()
        .filter(|d| d.verdict == Verdict::Retire)
    {
        if let Some(rule) = kept.get(&decision.image_id) {
            decision.verdict = Verdict::Keep;
            decision.reason = format!("{}; but kept by {rule}", decision.reason);
            actions.remove(&decision.image_id);
        }
    }
    (decisions, actions)
}

/// A copy of an image that a rule with `with_copies` retires, to be retired with it in the
/// copy's own region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOf {
    pub image_id: String,
    /// The image it was copied from (the retired one, or a copy of it).
    pub source: ImageRef,
    /// The image the rule retires.
    pub retired: ImageRef,
    /// The rule's label (None: the command line's).
    pub rule: Option<String>,
    pub action: RetireAction,
}

/// The verdicts on copies retired with their source, for `decide`'s `rechecked`: each copy is
/// still judged by its own region's facts and kept by every never-retire rule (another owner,
/// its state, the rule's keep tag, in use, public, protected, made by an AWS service); one gone
/// since it was found is kept, and one that is no copy of that source (by what AWS records) is
/// kept too.
pub fn copy_decisions(
    copies: &[CopyOf],
    rules: &[Rule],
    images: &[Image],
    account_id: &str,
    users: &BTreeMap<String, Vec<ImageUser>>,
    now: DateTime<Utc>,
) -> Vec<(Decision, RetireAction)> {
    copies
        .iter()
        .map(|copy| {
            let image = images.iter().find(|i| i.image_id == copy.image_id);
            let rule = rules.iter().find(|r| r.label == copy.rule);
            let judged = match (image, rule) {
                (None, _) => Err("gone since its copies were looked for".to_string()),
                (Some(_), None) => Err("its rule is not in this run".to_string()),
                (Some(image), Some(rule)) => {
                    if image.origin() != crate::model::Origin::Copied(copy.source.clone()) {
                        Err(format!(
                            "AWS does not record it as a copy of {}",
                            copy.source
                        ))
                    } else if let Some(why) =
                        never_retired(image, users, account_id, &rule.retention, now)
                    {
                        Err(why)
                    } else {
                        Ok(format!(
                            "a copy of {}, which {} retires (with copies)",
                            copy.retired,
                            rule.label.as_deref().unwrap_or("the rule")
                        ))
                    }
                }
            };
            let (verdict, reason) = match judged {
                Ok(reason) => (Verdict::Retire, reason),
                Err(why) => (
                    Verdict::Keep,
                    format!("a copy of {}, kept: {why}", copy.retired),
                ),
            };
            let decision = Decision {
                rule: copy.rule.clone(),
                image_id: copy.image_id.clone(),
                name: image.and_then(|i| i.name.clone()),
                family: None,
                creation_date: image.and_then(|i| i.creation_date),
                verdict,
                reason,
            };
            (decision, copy.action)
        })
        .collect()
}

/// A deprecation or disabling to do instead of a deregistration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub image_id: String,
    pub action: RetireAction,
    /// The image is in that state already: nothing to do.
    pub already: bool,
    /// Why AWS would refuse it, so it is not asked: a public image more than 2 years old takes
    /// no deprecation time at all.
    pub refused: Option<String>,
}

/// The staged actions among `actions`; an image already deprecated (or due to be, by the soonest
/// deprecation time AWS takes now) or disabled is already done.
pub fn staged(
    images: &[Image],
    actions: &BTreeMap<String, RetireAction>,
    now: DateTime<Utc>,
) -> Vec<Staged> {
    actions
        .iter()
        .filter(|(_, action)| **action != RetireAction::Deregister)
        .map(|(image_id, action)| {
            let image = images.iter().find(|i| &i.image_id == image_id);
            let already = image.is_some_and(|image| match action {
                RetireAction::Disable => image.state == ImageState::Disabled,
                // Deprecated, or due to be by the soonest time AWS would take now.
                RetireAction::Deprecate => image
                    .deprecation_time
                    .is_some_and(|t| t <= super::deprecation::as_soon_as_possible(now)),
                RetireAction::Deregister => false,
            });
            let refused = match (action, image) {
                (RetireAction::Deprecate, Some(image)) if !already => {
                    let public_since = image.public.then_some(image.creation_date).flatten();
                    let soonest = super::deprecation::as_soon_as_possible(now);
                    super::deprecation::accepted(soonest, now, public_since).err()
                }
                _ => None,
            };
            Staged {
                image_id: image_id.clone(),
                action: *action,
                already,
                refused,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImageUser, UserKind};
    use crate::plan::fixture::ACCOUNT;
    use crate::plan::retention::GroupBy;
    use chrono::{Duration, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
    }

    fn image(id: &str, name: &str, days_old: i64) -> Image {
        crate::plan::fixture::aged(id, name, days_old, now())
    }

    fn rule(label: &str, name: &str, keep: usize, action: RetireAction) -> Rule {
        Rule {
            label: Some(label.into()),
            name_filter: Some(Regex::new(name).unwrap()),
            tags: Vec::new(),
            retention: Retention {
                group_by: GroupBy::Name(None),
                keep: Some(keep),
                older_than: None,
                unused_for: None,
                keep_tag: ("retain".into(), "true".into()),
                include_public: false,
            },
            action,
            orphans: false,
            orphan_bundles: Vec::new(),
            with_copies: false,
        }
    }

    fn verdicts(decisions: &[Decision]) -> Vec<(String, Option<String>, Verdict)> {
        decisions
            .iter()
            .map(|d| (d.image_id.clone(), d.rule.clone(), d.verdict))
            .collect()
    }

    #[test]
    fn keep_wins_and_the_gentler_action_wins() {
        let images = vec![
            image("ami-old", "web-1", 30),
            image("ami-mid", "web-2", 20),
            image("ami-new", "web-3", 10),
        ];
        // Table: rules → the action each image ends with (None: kept).
        type Expected = [(&'static str, Option<RetireAction>); 3];
        let cases: Vec<(&str, Vec<Rule>, Expected)> = vec![
            (
                "one rule, keep 1",
                vec![rule("a", "^web", 1, RetireAction::Deregister)],
                [
                    ("ami-old", Some(RetireAction::Deregister)),
                    ("ami-mid", Some(RetireAction::Deregister)),
                    ("ami-new", None),
                ],
            ),
            (
                "a rule keeping 2 wins over one keeping 1",
                vec![
                    rule("a", "^web", 1, RetireAction::Deregister),
                    rule("b", "^web", 2, RetireAction::Deregister),
                ],
                [
                    ("ami-old", Some(RetireAction::Deregister)),
                    ("ami-mid", None),
                    ("ami-new", None),
                ],
            ),
            (
                "disable is gentler than deregister, whichever rule comes first",
                vec![
                    rule("a", "^web", 1, RetireAction::Disable),
                    rule("b", "^web", 1, RetireAction::Deregister),
                ],
                [
                    ("ami-old", Some(RetireAction::Disable)),
                    ("ami-mid", Some(RetireAction::Disable)),
                    ("ami-new", None),
                ],
            ),
            (
                "a rule that looks at other names decides nothing here",
                vec![rule("a", "^db", 0, RetireAction::Deregister)],
                [("ami-old", None), ("ami-mid", None), ("ami-new", None)],
            ),
        ];
        for (case, rules, expected) in cases {
            let (decisions, actions) = decide(
                &rules,
                Vec::new(),
                &images,
                ACCOUNT,
                &BTreeMap::new(),
                now(),
            );
            for (image_id, action) in expected {
                assert_eq!(actions.get(image_id).copied(), action, "{case}: {image_id}");
            }
            if case.starts_with("a rule keeping 2") {
                // ami-mid: rule a would retire it, rule b keeps it; a's decision says so.
                let mid = decisions
                    .iter()
                    .find(|d| d.image_id == "ami-mid" && d.rule.as_deref() == Some("a"))
                    .unwrap();
                assert_eq!(mid.verdict, Verdict::Keep, "{case}");
                assert!(
                    mid.reason.ends_with("but kept by b"),
                    "{case}: {}",
                    mid.reason
                );
                let on_mid: Vec<Verdict> = verdicts(&decisions)
                    .into_iter()
                    .filter(|(id, _, _)| id == "ami-mid")
                    .map(|(_, _, verdict)| verdict)
                    .collect();
                assert_eq!(on_mid, vec![Verdict::Keep, Verdict::Keep], "{case}");
            }
        }
    }

    #[test]
    fn the_gentler_action_wins_in_either_order() {
        use RetireAction::{Deprecate, Deregister, Disable};
        let images = vec![image("ami-old", "web-1", 30), image("ami-new", "web-2", 10)];
        for (first, second, expected) in [
            (Deregister, Disable, Disable),
            (Disable, Deregister, Disable),
            (Deregister, Deprecate, Deprecate),
            (Deprecate, Deregister, Deprecate),
            (Disable, Deprecate, Deprecate),
            (Deprecate, Disable, Deprecate),
        ] {
            let rules = [rule("a", "^web", 1, first), rule("b", "^web", 1, second)];
            let (_, actions) = decide(
                &rules,
                Vec::new(),
                &images,
                ACCOUNT,
                &BTreeMap::new(),
                now(),
            );
            assert_eq!(
                actions.get("ami-old"),
                Some(&expected),
                "{first:?} then {second:?}"
            );
        }
    }

    #[test]
    fn a_reviewed_staged_retirement_of_an_image_now_in_use_is_kept() {
        let images = vec![image("ami-1", "web-1", 30), image("ami-2", "web-2", 30)];
        let reviewed = |id: &str, action| {
            (
                Decision {
                    rule: Some("reviewed plan".into()),
                    image_id: id.into(),
                    name: None,
                    family: None,
                    creation_date: None,
                    verdict: Verdict::Retire,
                    reason: "in the reviewed plan".into(),
                },
                action,
            )
        };
        let users = BTreeMap::from([(
            "ami-1".to_string(),
            vec![ImageUser::new(UserKind::Instance, "i-1", None)],
        )]);
        for (action, expected) in [
            // The planner re-checks deregistrations itself; decide leaves them to it.
            (RetireAction::Deregister, Some(RetireAction::Deregister)),
            (RetireAction::Disable, None),
            (RetireAction::Deprecate, None),
        ] {
            let (decisions, actions) = decide(
                &[],
                vec![reviewed("ami-1", action), reviewed("ami-2", action)],
                &images,
                ACCOUNT,
                &users,
                now(),
            );
            assert_eq!(actions.get("ami-1").copied(), expected, "{action:?}");
            assert_eq!(actions.get("ami-2").copied(), Some(action), "{action:?}");
            if expected.is_none() {
                assert!(
                    decisions[0]
                        .reason
                        .starts_with("now in use by instance i-1")
                );
            }
        }
    }

    #[test]
    fn staged_actions_already_done_are_recognised() {
        let mut disabled = image("ami-d", "web-1", 30);
        disabled.state = crate::model::ImageState::Disabled;
        let mut deprecated = image("ami-p", "web-2", 30);
        deprecated.deprecation_time = Some(now() - Duration::days(1));
        let mut deprecating = image("ami-f", "web-3", 30);
        deprecating.deprecation_time = Some(now() + Duration::days(1));
        let images = vec![
            disabled,
            deprecated,
            deprecating,
            image("ami-x", "web-4", 30),
        ];
        let actions = BTreeMap::from([
            ("ami-d".to_string(), RetireAction::Disable),
            ("ami-p".to_string(), RetireAction::Deprecate),
            ("ami-f".to_string(), RetireAction::Deprecate),
            ("ami-x".to_string(), RetireAction::Deregister),
        ]);
        let found: Vec<(String, bool)> = staged(&images, &actions, now())
            .into_iter()
            .map(|s| (s.image_id, s.already))
            .collect();
        assert_eq!(
            found,
            vec![
                ("ami-d".to_string(), true),
                ("ami-f".to_string(), false),
                ("ami-p".to_string(), true),
            ]
        );
    }

    /// A deprecation due in a minute or two counts as done (the soonest time AWS takes); a
    /// public image older than 2 years takes none, so it is not asked for.
    #[test]
    fn staged_deprecations_are_ones_aws_accepts() {
        let mut soon = image("ami-s", "web-1", 30);
        soon.deprecation_time = Some(now() + Duration::minutes(1));
        let mut public_old = image("ami-o", "web-2", 800);
        public_old.public = true;
        let mut public_young = image("ami-y", "web-3", 300);
        public_young.public = true;
        let images = vec![soon, public_old, public_young];
        let actions: BTreeMap<String, RetireAction> = ["ami-s", "ami-o", "ami-y"]
            .into_iter()
            .map(|id| (id.to_string(), RetireAction::Deprecate))
            .collect();
        let found: Vec<(String, bool, bool)> = staged(&images, &actions, now())
            .into_iter()
            .map(|s| (s.image_id, s.already, s.refused.is_some()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("ami-o".to_string(), false, true),
                ("ami-s".to_string(), true, false),
                ("ami-y".to_string(), false, false),
            ]
        );
    }

    #[test]
    fn copies_go_with_their_source_unless_their_own_region_keeps_them() {
        let mut rule = rule("releases", "^app", 1, RetireAction::Deregister);
        rule.with_copies = true;
        let source = ImageRef {
            region: "us-east-1".into(),
            image_id: "ami-src".into(),
        };
        let copy = |id: &str| {
            crate::plan::fixture::image(id)
                .region("eu-west-1")
                .name("app-1")
                .copied_from("us-east-1", "ami-src")
        };
        let images = vec![
            copy("ami-plain").build(),
            copy("ami-tagged").tag("retain", "true").build(),
            copy("ami-used").build(),
            // Made from the source by an instance: no copy.
            crate::plan::fixture::image("ami-built")
                .built_from("us-east-1", "ami-src", "i-1")
                .build(),
            crate::plan::fixture::image("ami-grandchild")
                .region("ap-south-1")
                .copied_from("eu-west-1", "ami-plain")
                .build(),
        ];
        let users = BTreeMap::from([(
            "ami-used".to_string(),
            vec![ImageUser::new(
                crate::model::UserKind::Instance,
                "i-9",
                Some("running".into()),
            )],
        )]);
        let mut copies: Vec<CopyOf> = [
            "ami-plain",
            "ami-tagged",
            "ami-used",
            "ami-built",
            "ami-gone",
        ]
        .iter()
        .map(|id| CopyOf {
            image_id: id.to_string(),
            source: source.clone(),
            retired: source.clone(),
            rule: Some("releases".into()),
            action: RetireAction::Deregister,
        })
        .collect();
        // A copy of a copy goes with the image the rule retires too.
        copies.push(CopyOf {
            image_id: "ami-grandchild".into(),
            source: ImageRef {
                region: "eu-west-1".into(),
                image_id: "ami-plain".into(),
            },
            ..copies[0].clone()
        });
        let decided = copy_decisions(
            &copies,
            std::slice::from_ref(&rule),
            &images,
            crate::plan::fixture::ACCOUNT,
            &users,
            now(),
        );
        let verdicts: Vec<(&str, Verdict)> = decided
            .iter()
            .map(|(d, _)| (d.image_id.as_str(), d.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("ami-plain", Verdict::Retire),
                ("ami-tagged", Verdict::Keep),
                ("ami-used", Verdict::Keep),
                ("ami-built", Verdict::Keep),
                ("ami-gone", Verdict::Keep),
                ("ami-grandchild", Verdict::Retire),
            ]
        );
        assert!(
            decided[0]
                .0
                .reason
                .contains("a copy of ami-src in us-east-1")
        );
        assert!(decided[3].0.reason.contains("does not record it as a copy"));
    }
}
