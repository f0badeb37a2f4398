//! `ami cleanup --policy FILE`: several retention rules in one TOML file, the form a cron job keeps
//! in version control. Unknown keys are errors (a typo must not silently widen a rule).

use anyhow::Result;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::{ActionArg, CleanupArgs, GroupByArg, parse_duration, parse_group_by, parse_tag};
use crate::config::validate_region;
use crate::error::usage;
use crate::plan::retention::RetireAction;
use crate::plan::retention::{GroupBy, Retention};

pub use crate::plan::rules::Rule;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    regions: Option<Vec<String>>,
    #[serde(default)]
    rule: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: Option<String>,
    match_name: Option<String>,
    #[serde(default)]
    match_tags: BTreeMap<String, String>,
    group_by: Option<String>,
    name_pattern: Option<String>,
    keep: Option<usize>,
    older_than: Option<String>,
    unused_for: Option<String>,
    keep_tag: Option<String>,
    #[serde(default)]
    include_public: bool,
    action: Option<String>,
    #[serde(default)]
    orphans: bool,
    #[serde(default)]
    orphan_bundles: Vec<String>,
    #[serde(default, alias = "with-copies")]
    with_copies: bool,
}

/// The regions a policy names (if any) and its rules.
pub fn load(path: &Path) -> Result<(Option<Vec<String>>, Vec<Rule>)> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|err| usage(format!("cannot read policy {shown}: {err}")))?;
    let file: PolicyFile = toml::from_str(&text).map_err(|err| {
        // One line, with where: the error's own rendering spans several.
        let line = err
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let at = line.map(|l| format!(" line {l}")).unwrap_or_default();
        usage(format!("policy {shown}{at}: {}", err.message().trim()))
    })?;
    if file.rule.is_empty() {
        return Err(usage(format!("policy {shown} has no [[rule]]")));
    }
    if let Some(regions) = &file.regions {
        for region in regions {
            validate_region(region)?;
        }
    }
    let mut rules: Vec<Rule> = Vec::new();
    for (index, raw) in file.rule.into_iter().enumerate() {
        let label = raw
            .name
            .clone()
            .unwrap_or_else(|| format!("rule {}", index + 1));
        // Decisions name their rule: two of one name could not be told apart.
        if rules
            .iter()
            .any(|rule| rule.label.as_deref() == Some(label.as_str()))
        {
            return Err(usage(format!(
                "policy {shown}: two rules are named '{label}'; give each its own name"
            )));
        }
        let context = |message: String| usage(format!("policy {shown}, {label}: {message}"));
        let duration = |value: &Option<String>| -> Result<Option<std::time::Duration>> {
            value
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(&context)
        };
        // The file spells actions as `--action` does: one list of names, clap's.
        let action = match raw.action.as_deref() {
            None => ActionArg::Deregister,
            Some(name) => <ActionArg as clap::ValueEnum>::from_str(name, false).map_err(|_| {
                context(format!(
                    "action '{name}' is not deregister, deprecate or disable"
                ))
            })?,
        };
        let group_by =
            parse_group_by(raw.group_by.as_deref().unwrap_or("name")).map_err(&context)?;
        let keep_tag = match raw.keep_tag.as_deref() {
            Some(raw) => parse_tag(raw).map_err(&context)?,
            None => ("retain".to_string(), "true".to_string()),
        };
        let rule = rule_from_parts(
            Some(label.clone()),
            group_by,
            raw.name_pattern.as_deref(),
            raw.match_name.as_deref(),
            raw.match_tags.into_iter().collect(),
            RuleLimits {
                keep: raw.keep,
                older_than: duration(&raw.older_than)?,
                unused_for: duration(&raw.unused_for)?,
            },
            keep_tag,
            raw.include_public,
            action.into(),
            raw.orphans,
            &raw.orphan_bundles,
            raw.with_copies,
        )
        .map_err(|err| context(crate::error::one_line(&err)))?;
        rules.push(rule);
    }
    Ok((file.regions, rules))
}

pub struct RuleLimits {
    pub keep: Option<usize>,
    pub older_than: Option<std::time::Duration>,
    pub unused_for: Option<std::time::Duration>,
}

/// The rule the command-line flags describe.
pub fn from_args(args: &CleanupArgs) -> Result<Rule> {
    rule_from_parts(
        None,
        args.group_by.clone(),
        args.name_pattern.as_deref(),
        args.name.as_deref(),
        args.tags.clone(),
        RuleLimits {
            keep: args.keep,
            older_than: args.older_than,
            unused_for: args.unused_for,
        },
        args.keep_tag.clone(),
        args.include_public,
        args.action.into(),
        args.orphans,
        &args.orphan_bundles,
        args.with_copies,
    )
}

#[allow(clippy::too_many_arguments)]
fn rule_from_parts(
    label: Option<String>,
    group_by: GroupByArg,
    name_pattern: Option<&str>,
    name_glob: Option<&str>,
    tags: Vec<(String, String)>,
    limits: RuleLimits,
    keep_tag: (String, String),
    include_public: bool,
    action: RetireAction,
    orphans: bool,
    orphan_bundles: &[String],
    with_copies: bool,
) -> Result<Rule> {
    let mut sweeps = Vec::new();
    for url in orphan_bundles {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            usage(format!(
                "orphan bundles '{url}' is not an s3://bucket/prefix URL"
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(usage(format!("orphan bundles '{url}' names no bucket")));
        }
        sweeps.push((bucket.to_string(), prefix.to_string()));
    }
    let group_by = match group_by {
        GroupByArg::Name => GroupBy::Name(match name_pattern {
            Some(raw) => {
                let regex = Regex::new(raw).map_err(|err| {
                    usage(format!("name pattern '{raw}' is not a valid regex: {err}"))
                })?;
                if regex.captures_len() < 2 {
                    return Err(usage(format!(
                        "name pattern '{raw}' needs a capture group for the family"
                    )));
                }
                Some(regex)
            }
            None => None,
        }),
        GroupByArg::Tags(_) if name_pattern.is_some() => {
            return Err(usage("a name pattern goes with grouping by name"));
        }
        GroupByArg::Tags(keys) => GroupBy::Tags(keys),
    };
    let duration = |d: Option<std::time::Duration>| -> Result<Option<chrono::Duration>> {
        d.map(chrono::Duration::from_std)
            .transpose()
            .map_err(|err| usage(format!("duration out of range: {err}")))
    };
    let rule = Rule {
        label,
        name_filter: name_glob.map(glob_regex).transpose()?,
        tags,
        retention: Retention {
            group_by,
            keep: limits.keep,
            older_than: duration(limits.older_than)?,
            unused_for: duration(limits.unused_for)?,
            keep_tag,
            include_public,
        },
        action,
        orphans,
        orphan_bundles: sweeps,
        with_copies,
    };
    if with_copies && !rule.selects_images() {
        return Err(usage(
            "with copies retires the copies of the images a rule retires: give keep, older-than or unused-for",
        ));
    }
    if !rule.selects_images() && !rule.orphans && rule.orphan_bundles.is_empty() {
        return Err(usage(
            "nothing selects anything: give keep, older-than, unused-for, orphans or orphan bundles",
        ));
    }
    Ok(rule)
}

/// `*` and `?` as in EC2's name filter, anchored.
pub fn glob_regex(glob: &str) -> Result<Regex> {
    if glob.is_empty() {
        return Err(usage("a name glob must not be empty"));
    }
    let mut pattern = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => pattern.push_str(".*"),
            '?' => pattern.push('.'),
            other => pattern.push_str(&regex::escape(&other.to_string())),
        }
    }
    pattern.push('$');
    Regex::new(&pattern).map_err(|err| usage(format!("name glob '{glob}': {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn a_policy_with_several_rules() {
        let file = write(
            r#"
regions = ["us-east-1", "eu-west-1"]

[[rule]]
name = "web"
match_name = "web-*"
keep = 3
older_than = "30d"

[[rule]]
name = "batch"
group_by = "tag:app"
match_tags = { team = "data" }
keep = 1
action = "disable"
orphans = true
"#,
        );
        let (regions, rules) = load(file.path()).unwrap();
        assert_eq!(regions.unwrap(), ["us-east-1", "eu-west-1"]);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].label.as_deref(), Some("web"));
        assert_eq!(rules[0].retention.keep, Some(3));
        assert_eq!(
            rules[0].retention.older_than,
            Some(chrono::Duration::days(30))
        );
        assert!(rules[0].name_filter.as_ref().unwrap().is_match("web-2026"));
        assert_eq!(rules[1].action, RetireAction::Disable);
        assert_eq!(rules[1].tags, [("team".to_string(), "data".to_string())]);
        assert!(rules[1].orphans);
    }

    #[test]
    fn typos_and_bad_values_are_refused_by_name() {
        let table = [
            ("[[rule]]\nkep = 2\n", "unknown field `kep`"),
            (
                "regoins = [\"us-east-1\"]\n[[rule]]\nkeep = 2\n",
                "unknown field `regoins`",
            ),
            ("", "has no [[rule]]"),
            (
                "[[rule]]\nname = \"x\"\nmatch_name = \"a\"\n",
                "x: nothing selects anything",
            ),
            (
                "[[rule]]\nkeep = 2\nolder_than = \"soon\"\n",
                "rule 1: 'soon' is not a duration",
            ),
            ("[[rule]]\nkeep = 2\naction = \"nuke\"\n", "action 'nuke'"),
            (
                "regions = [\"us-east\"]\n[[rule]]\nkeep = 2\n",
                "invalid region 'us-east'",
            ),
            ("[[rule]]\nkeep = \"two\"\n", "invalid type"),
        ];
        for (text, message) in table {
            let file = write(text);
            let err = load(file.path()).unwrap_err();
            let shown = crate::error::one_line(&err);
            assert!(shown.contains(message), "{text:?}: {shown}");
            assert!(
                err.chain()
                    .any(|cause| cause.is::<crate::error::UsageError>()),
                "{text:?} is a usage error"
            );
        }
    }

    #[test]
    fn name_globs() {
        let regex = glob_regex("web-*-2026.??").unwrap();
        assert!(regex.is_match("web-prod-2026.11"));
        assert!(!regex.is_match("web-prod-2026.1"));
        assert!(!regex.is_match("xweb-prod-2026.11"));
        assert!(glob_regex("a.b").unwrap().is_match("a.b"));
        assert!(!glob_regex("a.b").unwrap().is_match("axb"));
    }
}
