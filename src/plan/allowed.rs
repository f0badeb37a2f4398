//! Whether a consumer account's Allowed AMIs settings will let it see and launch an image it is
//! given: judged from the settings (GetAllowedImagesSettings) and the image's description, before
//! or while sharing. Only a warning: the settings are the consumer's to change.

use chrono::{DateTime, Utc};

use crate::model::{AllowedImages, AllowedState, Image, ImageCriterion};

/// What the consumer's settings make of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Enabled, and no criterion matches: the consumer cannot see or launch it.
    Refused(String),
    /// Audit mode: allowed today, refused once the consumer enables the settings.
    RefusedWhenEnabled(String),
    /// A criterion this build cannot judge might match: it may or may not be allowed.
    Unknown(String),
}

/// `owner`: the image's owner account; `consumer`: the account given it.
pub fn judge(
    settings: &AllowedImages,
    image: &Image,
    owner: &str,
    consumer: &str,
    now: DateTime<Utc>,
) -> Verdict {
    let enforced = match &settings.state {
        AllowedState::Disabled => return Verdict::Allowed,
        AllowedState::Enabled => true,
        AllowedState::AuditMode => false,
        AllowedState::Other(state) => {
            return Verdict::Unknown(format!("Allowed AMIs state '{state}' is not understood"));
        }
    };
    let mut misses = Vec::new();
    let mut unsure = Vec::new();
    for (index, criterion) in settings.criteria.iter().enumerate() {
        match miss(criterion, image, owner, consumer, now) {
            None if criterion.unchecked.is_empty() => return Verdict::Allowed,
            None => unsure.push(format!(
                "criterion {} also needs {}, which ami cannot check",
                index + 1,
                criterion.unchecked.join(" and ")
            )),
            Some(why) => misses.push(format!("criterion {}: {why}", index + 1)),
        }
    }
    if !unsure.is_empty() {
        return Verdict::Unknown(unsure.join("; "));
    }
    let why = if misses.is_empty() {
        "no image criteria are set, so no image is allowed".to_string()
    } else {
        format!(
            "it matches none of the image criteria ({})",
            misses.join("; ")
        )
    };
    if enforced {
        Verdict::Refused(why)
    } else {
        Verdict::RefusedWhenEnabled(why)
    }
}

/// The first condition of `criterion` the image does not meet, or None when it meets them all.
fn miss(
    criterion: &ImageCriterion,
    image: &Image,
    owner: &str,
    consumer: &str,
    now: DateTime<Utc>,
) -> Option<String> {
    if !criterion.providers.is_empty() {
        let provided = criterion
            .providers
            .iter()
            .any(|provider| match provider.as_str() {
                "none" => owner == consumer,
                alias @ ("amazon" | "aws-marketplace" | "aws-backup-vault") => {
                    image.image_owner_alias.as_deref() == Some(alias)
                }
                account => account == owner,
            });
        if !provided {
            return Some(format!(
                "images of account {owner} are not among its providers ({})",
                criterion.providers.join(", ")
            ));
        }
    }
    if !criterion.names.is_empty() {
        let name = image.name.as_deref().unwrap_or_default();
        if !criterion.names.iter().any(|glob| glob_matches(glob, name)) {
            return Some(format!(
                "the name '{name}' matches none of {}",
                criterion.names.join(", ")
            ));
        }
    }
    if !criterion.product_codes.is_empty() {
        return Some("it needs a Marketplace product code, and the image has none".to_string());
    }
    if let Some(days) = criterion.max_days_since_created {
        let age = image
            .creation_date
            .map(|created| (now - created).num_days());
        if age.is_none_or(|age| age > i64::from(days)) {
            return Some(format!(
                "it allows images up to {days} days old; this one is {}",
                age.map_or("of unknown age".to_string(), |age| format!(
                    "{age} days old"
                ))
            ));
        }
    }
    if let Some(days) = criterion.max_days_since_deprecated
        && let Some(deprecated) = image.deprecation_time.filter(|at| *at <= now)
        && (now - deprecated).num_days() > i64::from(days)
    {
        return Some(format!(
            "it allows images deprecated up to {days} days ago; this one was deprecated {}",
            deprecated.to_rfc3339()
        ));
    }
    None
}

/// EC2's name globs: `*` any run of characters, `?` one character.
fn glob_matches(glob: &str, name: &str) -> bool {
    let (glob, name): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    // Classic wildcard matching with one backtrack point for the last `*`.
    let (mut g, mut n, mut star, mut mark) = (0, 0, None, 0);
    while n < name.len() {
        if g < glob.len() && (glob[g] == '?' || glob[g] == name[n]) {
            g += 1;
            n += 1;
        } else if g < glob.len() && glob[g] == '*' {
            star = Some(g);
            mark = n;
            g += 1;
        } else if let Some(s) = star {
            g = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixture::image;

    const OWNER: &str = "111111111111";
    const CONSUMER: &str = "222222222222";

    fn settings(state: AllowedState, criteria: Vec<ImageCriterion>) -> AllowedImages {
        AllowedImages { state, criteria }
    }

    #[test]
    fn the_image_is_judged_by_every_criterion_as_aws_does() {
        let now = Utc::now();
        let app = image("ami-1")
            .name("app-2026.12")
            .created(now - chrono::Duration::days(10))
            .build();
        let ours = ImageCriterion {
            providers: vec![OWNER.into()],
            ..Default::default()
        };
        let amazon_only = ImageCriterion {
            providers: vec!["amazon".into()],
            ..Default::default()
        };
        let named = |glob: &str| ImageCriterion {
            names: vec![glob.into()],
            ..Default::default()
        };
        let young = ImageCriterion {
            max_days_since_created: Some(5),
            ..Default::default()
        };
        let watermarked = ImageCriterion {
            providers: vec![OWNER.into()],
            unchecked: vec!["image watermarks"],
            ..Default::default()
        };
        let judge_with = |state: AllowedState, criteria: Vec<ImageCriterion>| {
            judge(&settings(state, criteria), &app, OWNER, CONSUMER, now)
        };
        assert_eq!(judge_with(AllowedState::Disabled, vec![]), Verdict::Allowed);
        assert_eq!(
            judge_with(
                AllowedState::Enabled,
                vec![amazon_only.clone(), ours.clone()]
            ),
            Verdict::Allowed
        );
        assert_eq!(
            judge_with(AllowedState::Enabled, vec![named("app-*")]),
            Verdict::Allowed
        );
        assert_eq!(
            judge_with(AllowedState::Enabled, vec![named("app-????.1?")]),
            Verdict::Allowed
        );
        assert!(matches!(
            judge_with(AllowedState::Enabled, vec![amazon_only.clone()]),
            Verdict::Refused(why) if why.contains("not among its providers")
        ));
        assert!(matches!(
            judge_with(AllowedState::AuditMode, vec![named("web-*")]),
            Verdict::RefusedWhenEnabled(why) if why.contains("'app-2026.12'")
        ));
        assert!(matches!(
            judge_with(AllowedState::Enabled, vec![young]),
            Verdict::Refused(why) if why.contains("10 days old")
        ));
        assert!(matches!(
            judge_with(AllowedState::Enabled, vec![]),
            Verdict::Refused(why) if why.contains("no image criteria")
        ));
        assert!(matches!(
            judge_with(AllowedState::Enabled, vec![watermarked]),
            Verdict::Unknown(_)
        ));
        // `none`: only the consumer's own images.
        let own_only = ImageCriterion {
            providers: vec!["none".into()],
            ..Default::default()
        };
        assert!(matches!(
            judge_with(AllowedState::Enabled, vec![own_only]),
            Verdict::Refused(_)
        ));
    }

    #[test]
    fn globs() {
        for (glob, name, matches) in [
            ("app-*", "app-1", true),
            ("app-*", "app-", true),
            ("app-*", "web-1", false),
            ("*-prod", "api-prod", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(glob_matches(glob, name), matches, "{glob} {name}");
        }
    }
}
