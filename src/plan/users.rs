//! Who counts as a user of an image, from what `aws/` read. "When in doubt, keep": a read that
//! failed, an alias nobody could resolve, an account nobody could look into, an organization,
//! an OU or the public each count as a user, and a user keeps the image.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    ConsumerCheck, ConsumerFacts, ImageUser, UsageFacts, UsageReport, UsageResource, UserAccount,
    UserKind,
};

/// Users per image id, and notes on what could not be checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Usage {
    pub users: BTreeMap<String, Vec<ImageUser>>,
    pub notes: Vec<String>,
    /// Checks that failed (the images they protect stay): a run that met one did not finish
    /// its job and says so in its exit code.
    pub problems: Vec<String>,
}

impl Usage {
    pub fn merge(&mut self, other: Usage) {
        for (image_id, users) in other.users {
            for user in users {
                self.add(&image_id, user);
            }
        }
        self.notes.extend(other.notes);
        self.problems.extend(other.problems);
    }

    fn add(&mut self, image_id: &str, user: ImageUser) {
        let users = self.users.entry(image_id.to_string()).or_default();
        if !users.contains(&user) {
            users.push(user);
        }
    }
}

/// Users in the account the facts were read in, for the `candidates` the reads were about.
pub fn in_account(facts: &UsageFacts, candidates: &[String]) -> Usage {
    let mut usage = Usage::default();
    for (image_id, users) in &facts.users {
        for user in users {
            usage.add(image_id, user.clone());
        }
    }
    // An alias AWS could not resolve may name any of them. Listed with the other launch
    // templates: after the instances and templates, before launch configurations and references.
    let candidates: BTreeSet<&String> = candidates.iter().collect();
    for alias in &facts.unresolved_aliases {
        for image_id in &candidates {
            let user = ImageUser::new(
                UserKind::LaunchTemplate,
                alias.template_id.clone(),
                Some(format!(
                    "version {}: {} could not be resolved, so it may name this image",
                    alias.version, alias.alias
                )),
            );
            let users = usage.users.entry(image_id.to_string()).or_default();
            if !users.contains(&user) {
                let at = users
                    .iter()
                    .rposition(|u| matches!(u.kind, UserKind::Instance | UserKind::LaunchTemplate))
                    .map_or(0, |last| last + 1);
                users.insert(at, user);
            }
        }
    }
    for (image_id, error) in &facts.unchecked_references {
        usage.add(
            image_id,
            ImageUser::new(
                UserKind::UncheckedReferences,
                "DescribeImageReferences",
                Some(format!(
                    "could not check SSM parameters and Image Builder recipes: {error}"
                )),
            ),
        );
    }
    if let Some(error) = &facts.references_not_offered {
        usage.notes.push(format!(
            "{error}; checked instances, launch templates and launch configurations directly"
        ));
    }
    usage
}

/// Users in the accounts the `candidates` are shared with. An organization, an OU or the public
/// cannot be looked into; an account without a role to look with, or whose check failed, is
/// not known to be clear; a candidate whose launch permissions were not read may be shared with
/// anyone: each of these keeps the image.
pub fn in_consumers(own_account: &str, candidates: &[String], facts: &ConsumerFacts) -> Usage {
    let mut usage = Usage::default();
    let unchecked =
        |id: &str, detail: String| ImageUser::new(UserKind::UncheckedConsumer, id, Some(detail));
    for image_id in candidates
        .iter()
        .filter(|id| !facts.permissions.contains_key(*id))
    {
        let detail = match facts.unreadable.get(image_id) {
            Some(error) => {
                usage.problems.push(format!(
                    "the launch permissions of {image_id} could not be read ({error}): it stays"
                ));
                format!("could not be read ({error}), so it may be shared with anyone")
            }
            None => "not read, so it may be shared with anyone".into(),
        };
        usage.add(image_id, unchecked("launch permissions", detail));
    }
    let mut shared_with: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (image_id, permissions) in &facts.permissions {
        for account in permissions.accounts.iter().filter(|a| *a != own_account) {
            shared_with
                .entry(account.as_str())
                .or_default()
                .push(image_id.clone());
        }
        for arn in permissions
            .organizations
            .iter()
            .chain(&permissions.organizational_units)
        {
            usage.add(
                image_id,
                unchecked(arn, "its accounts cannot be listed and checked".into()),
            );
        }
        if permissions.public {
            usage.add(
                image_id,
                unchecked("public", "any AWS account may be launching it".into()),
            );
        }
    }
    for (account, images) in shared_with {
        in_consumer(&mut usage, account, &images, facts);
    }
    usage
}

/// Users in one consumer account of the images shared with it: by its usage reports and, with a
/// role, by looking; an account that could not be checked keeps its images.
fn in_consumer(usage: &mut Usage, account: &str, images: &[String], facts: &ConsumerFacts) {
    let unchecked =
        |id: &str, detail: String| ImageUser::new(UserKind::UncheckedConsumer, id, Some(detail));
    // What the images' usage reports say this account uses (a role check adds to it).
    let mut unreported = Vec::new();
    for image_id in images {
        match facts.reports.get(image_id) {
            Some(UsageReport::Available {
                report_id,
                usage: counts,
            }) => {
                for (resource, count) in counts.get(account).into_iter().flatten() {
                    usage_of_report(usage, image_id, account, report_id, resource, *count);
                }
            }
            Some(UsageReport::Unavailable(why)) => unreported.push((image_id.clone(), why.clone())),
            None => unreported.push((image_id.clone(), "none was made".to_string())),
        }
    }
    let failure = match facts.accounts.get(account) {
        Some(ConsumerCheck::Checked(found)) => {
            let found = in_account(found, images);
            for (image_id, users) in found.users {
                for user in users {
                    let detail = match &user.detail {
                        Some(detail) => format!("in account {account}, {detail}"),
                        None => format!("in account {account}"),
                    };
                    usage.add(
                        &image_id,
                        ImageUser {
                            detail: Some(detail),
                            account: UserAccount::Consumer(account.to_string()),
                            ..user
                        },
                    );
                }
            }
            usage.notes.extend(
                found
                    .notes
                    .into_iter()
                    .map(|note| format!("account {account}: {note}")),
            );
            return;
        }
        // No role to look in with: the usage report is the check. Images whose report
        // is missing stay. A report counts instances and launch templates only: say what
        // it cannot see.
        Some(ConsumerCheck::NoRole) => {
            if unreported.len() < images.len() {
                usage.notes.push(format!(
                    "account {account}: checked by image usage report (instances, launch \
                     templates); its launch configurations and SSM parameters were not \
                     checked (--role-name checks them)"
                ));
            }
            for (image_id, why) in unreported {
                usage.add(
                    &image_id,
                    unchecked(
                        account,
                        format!(
                            "shared with it, could not be checked: no --role-name to look into \
                             it with, and no image usage report ({why}); --ignore-consumers \
                             retires it anyway"
                        ),
                    ),
                );
            }
            return;
        }
        // The role check was asked for and failed: it keeps the image whatever the report
        // said, as every failed check does.
        Some(ConsumerCheck::Failed(error)) => error.clone(),
        None => "it was not looked into".to_string(),
    };
    for image_id in images {
        usage.add(
            image_id,
            unchecked(
                account,
                format!(
                    "shared with it, could not be checked: {failure}; --ignore-consumers retires it anyway"
                ),
            ),
        );
    }
}

/// A use an image usage report found in a consumer account: a user of the image, named by
/// account and resource type (a report counts resources, it does not name them).
fn usage_of_report(
    usage: &mut Usage,
    image_id: &str,
    account: &str,
    report_id: &str,
    resource: &UsageResource,
    count: i64,
) {
    let (kind, what) = match resource {
        UsageResource::Instance => (UserKind::Instance, "instance"),
        UsageResource::LaunchTemplate => (UserKind::LaunchTemplate, "launch template"),
        UsageResource::Other(aws_type) => (UserKind::Reference(aws_type.clone()), "resource"),
    };
    let plural = if count == 1 { "" } else { "s" };
    usage.add(
        image_id,
        ImageUser {
            kind,
            id: report_id.to_string(),
            detail: Some(format!(
                "{count} {what}{plural} in account {account}, by image usage report"
            )),
            account: UserAccount::Consumer(account.to_string()),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LaunchPermissions, UnresolvedAlias};

    const OURS: &str = "111111111111";
    const THEIRS: &str = "222222222222";

    fn ids(raw: &[&str]) -> Vec<String> {
        raw.iter().map(|id| id.to_string()).collect()
    }

    fn kinds(usage: &Usage, image: &str) -> Vec<(String, String)> {
        usage
            .users
            .get(image)
            .map(|users| {
                users
                    .iter()
                    .map(|user| (user.kind.as_str().into_owned(), user.id.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn found_users_count_and_failed_reads_keep() {
        let mut facts = UsageFacts::default();
        facts.add(
            "ami-1",
            ImageUser::new(UserKind::Instance, "i-1", Some("stopped".into())),
        );
        facts.add(
            "ami-1",
            ImageUser::new(UserKind::LaunchConfiguration, "web-lc", None),
        );
        facts.add(
            "ami-1",
            ImageUser::new(UserKind::Reference("ssm:Parameter".into()), "arn:ssm", None),
        );
        facts
            .unchecked_references
            .push(("ami-2".into(), "AccessDenied".into()));
        facts.unresolved_aliases.push(UnresolvedAlias {
            template_id: "lt-1".into(),
            version: 3,
            alias: "resolve:ssm:/web (ParameterNotFound)".into(),
        });
        let usage = in_account(&facts, &ids(&["ami-1", "ami-2", "ami-3"]));
        // Table: image → users (kind, id), in the order they were found.
        let cases: [(&str, Vec<(&str, &str)>); 3] = [
            // The alias goes with the launch templates, before configurations and references.
            (
                "ami-1",
                vec![
                    ("instance", "i-1"),
                    ("launch_template", "lt-1"),
                    ("launch_configuration", "web-lc"),
                    ("ssm_parameter", "arn:ssm"),
                ],
            ),
            (
                "ami-2",
                vec![
                    ("launch_template", "lt-1"),
                    ("unchecked_references", "DescribeImageReferences"),
                ],
            ),
            ("ami-3", vec![("launch_template", "lt-1")]),
        ];
        for (image, expected) in cases {
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(k, i)| (k.to_string(), i.to_string()))
                .collect();
            assert_eq!(kinds(&usage, image), expected, "{image}");
        }
        assert!(usage.notes.is_empty());
        assert!(
            usage.users["ami-1"]
                .iter()
                .all(|user| user.account.is_ours())
        );
    }

    #[test]
    fn references_not_offered_is_a_note_not_a_user() {
        let facts = UsageFacts {
            references_not_offered: Some("InvalidAction".into()),
            ..Default::default()
        };
        let usage = in_account(&facts, &ids(&["ami-1"]));
        assert!(usage.users.is_empty());
        assert_eq!(usage.notes.len(), 1);
        assert!(usage.notes[0].contains("InvalidAction"));
    }

    fn shared(accounts: &[&str], organizations: &[&str], public: bool) -> LaunchPermissions {
        LaunchPermissions {
            public,
            accounts: ids(accounts),
            organizations: ids(organizations),
            organizational_units: Vec::new(),
        }
    }

    #[test]
    fn who_counts_in_consumer_accounts() {
        let mut in_theirs = UsageFacts::default();
        in_theirs.add("ami-used", ImageUser::new(UserKind::Instance, "i-9", None));
        let checked = ConsumerCheck::Checked(in_theirs);
        let failed = ConsumerCheck::Failed("AccessDenied: not authorized".into());
        // Table: (permissions, the check of THEIRS) → the users of the image (kind, id, account).
        type Expected = Vec<(&'static str, &'static str, Option<&'static str>)>;
        let cases: Vec<(&str, LaunchPermissions, Option<ConsumerCheck>, Expected)> = vec![
            ("not shared", shared(&[], &[], false), None, vec![]),
            (
                "shared with ourselves only",
                shared(&[OURS], &[], false),
                None,
                vec![],
            ),
            (
                "used there",
                shared(&[THEIRS], &[], false),
                Some(checked.clone()),
                vec![("instance", "i-9", Some(THEIRS))],
            ),
            (
                "no role to look with",
                shared(&[THEIRS], &[], false),
                Some(ConsumerCheck::NoRole),
                vec![("unchecked_consumer", THEIRS, None)],
            ),
            (
                "the check failed",
                shared(&[THEIRS], &[], false),
                Some(failed),
                vec![("unchecked_consumer", THEIRS, None)],
            ),
            (
                "never looked into",
                shared(&[THEIRS], &[], false),
                None,
                vec![("unchecked_consumer", THEIRS, None)],
            ),
            (
                "an organization",
                shared(&[], &["arn:aws:organizations::1:organization/o-1"], false),
                None,
                vec![(
                    "unchecked_consumer",
                    "arn:aws:organizations::1:organization/o-1",
                    None,
                )],
            ),
            (
                "the public",
                shared(&[], &[], true),
                None,
                vec![("unchecked_consumer", "public", None)],
            ),
        ];
        for (case, permissions, check, expected) in cases {
            for image in ["ami-used", "ami-clear"] {
                let facts = ConsumerFacts {
                    permissions: BTreeMap::from([(image.to_string(), permissions.clone())]),
                    accounts: check
                        .clone()
                        .map(|check| BTreeMap::from([(THEIRS.to_string(), check)]))
                        .unwrap_or_default(),
                    ..Default::default()
                };
                let usage = in_consumers(OURS, &[image.to_string()], &facts);
                let found: Vec<(String, String, Option<String>)> = usage
                    .users
                    .get(image)
                    .into_iter()
                    .flatten()
                    .map(|user| {
                        let account = match &user.account {
                            UserAccount::Ours => None,
                            UserAccount::Consumer(account) => Some(account.clone()),
                        };
                        (user.kind.as_str().into_owned(), user.id.clone(), account)
                    })
                    .collect();
                // What THEIRS runs is ami-used only: ami-clear is clear there.
                let expected: Vec<(String, String, Option<String>)> = expected
                    .iter()
                    .filter(|(kind, _, _)| image == "ami-used" || *kind != "instance")
                    .map(|(kind, id, account)| {
                        (
                            kind.to_string(),
                            id.to_string(),
                            account.map(str::to_string),
                        )
                    })
                    .collect();
                assert_eq!(found, expected, "{case}, {image}");
                for user in usage.users.get(image).into_iter().flatten() {
                    assert!(
                        !user.terminable(),
                        "{case}: a consumer's user is never ours to end"
                    );
                }
            }
        }
    }

    #[test]
    fn a_consumer_user_names_its_account() {
        let mut in_theirs = UsageFacts::default();
        in_theirs.add(
            "ami-1",
            ImageUser::new(UserKind::Instance, "i-9", Some("running".into())),
        );
        in_theirs.references_not_offered = Some("InvalidAction".into());
        let facts = ConsumerFacts {
            permissions: BTreeMap::from([("ami-1".to_string(), shared(&[THEIRS], &[], false))]),
            accounts: BTreeMap::from([(THEIRS.to_string(), ConsumerCheck::Checked(in_theirs))]),
            ..Default::default()
        };
        let usage = in_consumers(OURS, &ids(&["ami-1"]), &facts);
        let user = &usage.users["ami-1"][0];
        assert_eq!(
            user.detail.as_deref(),
            Some("in account 222222222222, running")
        );
        assert_eq!(
            usage.notes,
            vec![format!(
                "account {THEIRS}: InvalidAction; checked instances, launch templates and launch configurations directly"
            )]
        );
    }

    #[test]
    fn why_a_consumer_could_not_be_checked_is_said() {
        let facts = |check: ConsumerCheck| ConsumerFacts {
            permissions: BTreeMap::from([("ami-1".to_string(), shared(&[THEIRS], &[], false))]),
            accounts: BTreeMap::from([(THEIRS.to_string(), check)]),
            ..Default::default()
        };
        for (check, says) in [
            (ConsumerCheck::NoRole, "no --role-name to look into it with"),
            (
                ConsumerCheck::Failed("AccessDenied: not authorized".into()),
                "AccessDenied: not authorized",
            ),
        ] {
            let usage = in_consumers(OURS, &ids(&["ami-1"]), &facts(check));
            let detail = usage.users["ami-1"][0].detail.clone().unwrap_or_default();
            assert!(detail.contains(says), "{detail}");
        }
    }

    #[test]
    fn a_usage_report_stands_in_for_a_role_but_never_overrides_a_failed_one() {
        const OTHER: &str = "333333333333";
        let report = |usage: &[(&str, UsageResource, i64)]| {
            let mut by_account: BTreeMap<String, Vec<(UsageResource, i64)>> = BTreeMap::new();
            for (account, resource, count) in usage {
                by_account
                    .entry(account.to_string())
                    .or_default()
                    .push((resource.clone(), *count));
            }
            UsageReport::Available {
                report_id: "amiur-1".into(),
                usage: by_account,
            }
        };
        let mut in_theirs = UsageFacts::default();
        in_theirs.add("ami-1", ImageUser::new(UserKind::Instance, "i-9", None));
        type Expected = Vec<(&'static str, &'static str)>;
        let cases: Vec<(&str, Option<ConsumerCheck>, Option<UsageReport>, Expected)> = vec![
            (
                "report: THEIRS runs two instances",
                Some(ConsumerCheck::NoRole),
                Some(report(&[(THEIRS, UsageResource::Instance, 2)])),
                vec![(
                    "instance",
                    "2 instances in account 222222222222, by image usage report",
                )],
            ),
            (
                "report: a launch template there",
                Some(ConsumerCheck::NoRole),
                Some(report(&[(THEIRS, UsageResource::LaunchTemplate, 1)])),
                vec![(
                    "launch_template",
                    "1 launch template in account 222222222222, by image usage report",
                )],
            ),
            (
                "report: nothing uses it there (another account does, not shared with)",
                Some(ConsumerCheck::NoRole),
                Some(report(&[(OTHER, UsageResource::Instance, 1)])),
                vec![],
            ),
            (
                "report timed out",
                Some(ConsumerCheck::NoRole),
                Some(UsageReport::Unavailable("still pending after 10m".into())),
                vec![("unchecked_consumer", "still pending after 10m")],
            ),
            (
                "no report",
                Some(ConsumerCheck::NoRole),
                None,
                vec![(
                    "unchecked_consumer",
                    "no image usage report (none was made)",
                )],
            ),
            (
                "role check failed, report clear: still kept",
                Some(ConsumerCheck::Failed("AccessDenied".into())),
                Some(report(&[])),
                vec![("unchecked_consumer", "AccessDenied")],
            ),
            (
                "role check and report both count",
                Some(ConsumerCheck::Checked(in_theirs)),
                Some(report(&[(THEIRS, UsageResource::LaunchTemplate, 3)])),
                vec![
                    (
                        "launch_template",
                        "3 launch templates in account 222222222222",
                    ),
                    ("instance", "in account 222222222222"),
                ],
            ),
        ];
        for (case, check, report, expected) in cases {
            let facts = ConsumerFacts {
                permissions: BTreeMap::from([("ami-1".to_string(), shared(&[THEIRS], &[], false))]),
                accounts: check
                    .map(|check| BTreeMap::from([(THEIRS.to_string(), check)]))
                    .unwrap_or_default(),
                reports: report
                    .map(|report| BTreeMap::from([("ami-1".to_string(), report)]))
                    .unwrap_or_default(),
                ..Default::default()
            };
            let usage = in_consumers(OURS, &ids(&["ami-1"]), &facts);
            let users = usage.users.get("ami-1").cloned().unwrap_or_default();
            assert_eq!(users.len(), expected.len(), "{case}: {users:?}");
            for (user, (kind, detail)) in users.iter().zip(&expected) {
                assert_eq!(user.kind.as_str(), *kind, "{case}");
                let text = user.detail.clone().unwrap_or_default();
                assert!(text.contains(detail), "{case}: {text}");
                assert!(!user.terminable(), "{case}");
            }
        }
    }

    #[test]
    fn an_image_whose_permissions_were_not_read_is_kept() {
        let facts = ConsumerFacts::default();
        let usage = in_consumers(OURS, &ids(&["ami-1"]), &facts);
        assert_eq!(
            kinds(&usage, "ami-1"),
            vec![(
                "unchecked_consumer".to_string(),
                "launch permissions".to_string()
            )]
        );
    }
}
