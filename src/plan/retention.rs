//! Retention: which images a cleanup retires. Groups images into families, keeps the newest N of
//! each, applies the age rules, and never retires what must stay (in use, keep-tagged, not owned,
//! public, protected). Pure, like the rest of the planner; the snapshots and bundles of the
//! images it retires are then planned by `plan::plan`, the same as for `ami deregister`.

use chrono::{DateTime, Duration, Utc};
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;

use super::state::Standing;
use super::{ImageUser, describe_users, protection_block};
use crate::model::Image;

/// What retiring an image means: deregister it (with the snapshots and bundles only it uses), or
/// a gentler first stage. Part of the plan file's contract (`action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetireAction {
    Deregister,
    Deprecate,
    Disable,
}

impl RetireAction {
    /// The gentler of two: deprecating (the image still launches) before disabling (it can be
    /// re-enabled) before deregistering.
    pub fn gentler(self, other: RetireAction) -> RetireAction {
        let rank = |action: RetireAction| match action {
            RetireAction::Deprecate => 0,
            RetireAction::Disable => 1,
            RetireAction::Deregister => 2,
        };
        if rank(other) < rank(self) {
            other
        } else {
            self
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RetireAction::Deregister => "deregister",
            RetireAction::Deprecate => "deprecate",
            RetireAction::Disable => "disable",
        }
    }
}

#[derive(Debug, Clone)]
pub enum GroupBy {
    /// The name without its trailing date/version, or the first capture group of a pattern.
    Name(Option<Regex>),
    /// The values of these tags.
    Tags(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Retention {
    pub group_by: GroupBy,
    /// Keep the newest N of each family (by creation date).
    pub keep: Option<usize>,
    /// Only retire images older than this.
    pub older_than: Option<Duration>,
    /// Only retire images not launched for this long.
    pub unused_for: Option<Duration>,
    /// Images with this tag (key, value) are never retired.
    pub keep_tag: (String, String),
    pub include_public: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Retire,
    Keep,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The policy rule that decided (null for the command-line rule).
    pub rule: Option<String>,
    pub image_id: String,
    pub name: Option<String>,
    pub family: Option<String>,
    pub creation_date: Option<DateTime<Utc>>,
    pub verdict: Verdict,
    pub reason: String,
}

/// The family of a name: without a trailing version or date (`web-2026-01-01` → `web`,
/// `app-v1.2.3` → `app`, `ubuntu-22.04-amd64-2026.01` → `ubuntu-22.04-amd64`). A family needs a
/// letter: a name that is only a date is a family of its own.
pub fn default_family(name: &str) -> String {
    // A streamed cleanup decides again each time facts come in: thousands of names, each worked
    // out once.
    static KNOWN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(Default::default);
    let lock = || {
        known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(family) = lock().get(name) {
        return family.clone();
    }
    let family = family_of_name(name);
    lock().insert(name.to_string(), family.clone());
    family
}

fn family_of_name(name: &str) -> String {
    static SUFFIX: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let suffix = SUFFIX.get_or_init(|| {
        Regex::new(r"^(?P<family>[^A-Za-z]*[A-Za-z].*?)(?:[-_. ]+v?[0-9][0-9._:TZ-]*)?$")
            .expect("static regex")
    });
    suffix
        .captures(name)
        .and_then(|captures| captures.name("family"))
        .map(|family| family.as_str().to_string())
        .unwrap_or_else(|| name.to_string())
}

fn family_of(image: &Image, group_by: &GroupBy) -> Result<String, String> {
    match group_by {
        GroupBy::Name(pattern) => {
            let Some(name) = image.name.as_deref() else {
                return Err("has no name: not in any family".into());
            };
            match pattern {
                None => Ok(default_family(name)),
                Some(pattern) => pattern
                    .captures(name)
                    .and_then(|captures| captures.get(1))
                    .map(|family| family.as_str().to_string())
                    .ok_or_else(|| "name does not match --name-pattern: not in any family".into()),
            }
        }
        GroupBy::Tags(keys) => {
            let mut parts = Vec::new();
            for key in keys {
                match image.tags.get(key) {
                    Some(value) => parts.push(format!("{key}={value}")),
                    None => return Err(format!("no {key} tag: not in any family")),
                }
            }
            Ok(parts.join(","))
        }
    }
}

fn human(duration: Duration) -> String {
    let days = duration.num_days();
    if days >= 1 {
        format!("{days}d")
    } else {
        format!("{}h", duration.num_hours())
    }
}

/// Decides each image. `users` says who uses which image; `account_id` is the caller.
pub fn select(
    images: &[Image],
    users: &BTreeMap<String, Vec<ImageUser>>,
    account_id: &str,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let mut families: BTreeMap<String, Vec<&Image>> = BTreeMap::new();
    let mut decisions: Vec<Decision> = Vec::new();
    // A deregistered image AWS still lists is not an image any more: no family, no decision.
    for image in images.iter().filter(|i| Standing::of(&i.state).exists()) {
        match family_of(image, &retention.group_by) {
            Ok(family) => families.entry(family).or_default().push(image),
            Err(reason) => decisions.push(decision(image, None, Verdict::Keep, reason)),
        }
    }
    for (family, mut members) in families {
        // Newest first; images without a creation date count as newest (when in doubt, keep).
        members.sort_by(|a, b| {
            let key = |image: &Image| image.creation_date.unwrap_or(DateTime::<Utc>::MAX_UTC);
            key(b)
                .cmp(&key(a))
                .then_with(|| b.image_id.cmp(&a.image_id))
        });
        // Images that are never retired do not count towards --keep: `--keep 2` with the newest
        // image in use still keeps two others (the rollback image). Nor do images that cannot be
        // launched (failed, disabled): only a launchable image is a rollback image.
        let mut rank = 0;
        for image in members {
            let (verdict, reason) = match never_retired(image, users, account_id, retention, now) {
                Some(reason) => (Verdict::Keep, reason),
                None => {
                    let standing = Standing::of(&image.state);
                    let slot = match standing.slot_note(&image.state) {
                        None => Slot::Rank(rank),
                        Some(note) => Slot::None(note),
                    };
                    let verdict = judge(image, slot, retention, now);
                    if standing.takes_keep_slot() {
                        rank += 1;
                    }
                    match verdict {
                        Ok(reason) => (Verdict::Retire, reason),
                        Err(reason) => (Verdict::Keep, reason),
                    }
                }
            };
            decisions.push(decision(image, Some(family.clone()), verdict, reason));
        }
    }
    decisions
}

fn decision(image: &Image, family: Option<String>, verdict: Verdict, reason: String) -> Decision {
    Decision {
        rule: None,
        image_id: image.image_id.clone(),
        name: image.name.clone(),
        family,
        creation_date: image.creation_date,
        verdict,
        reason,
    }
}

/// An image's place among its family's `--keep` slots.
enum Slot {
    /// The how-manieth launchable candidate it is, newest first.
    Rank(usize),
    /// It takes none: why (it cannot be launched).
    None(String),
}

/// Why an image is never retired, whatever the rules: another owner, its state (pending, not
/// understood), the keep tag, in use, public, protected.
pub(super) fn never_retired(
    image: &Image,
    users: &BTreeMap<String, Vec<ImageUser>>,
    account_id: &str,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Option<String> {
    if image.owner_id.as_deref() != Some(account_id) {
        return Some(format!(
            "owned by {}, not this account",
            image.owner_id.as_deref().unwrap_or("an unknown account")
        ));
    }
    if let Some(reason) = Standing::of(&image.state).never_retired(&image.state) {
        return Some(reason);
    }
    if let Some(reason) = super::managed::managed_block(image) {
        return Some(reason);
    }
    let (keep_key, keep_value) = &retention.keep_tag;
    if image.tags.get(keep_key) == Some(keep_value) {
        return Some(format!("tagged {keep_key}={keep_value}"));
    }
    if let Some(image_users) = users.get(&image.image_id).filter(|u| !u.is_empty()) {
        return Some(format!("in use by {}", describe_users(image_users)));
    }
    if image.public && !retention.include_public {
        return Some("public (--include-public to retire public images)".into());
    }
    protection_block(image.deregistration_protection.as_ref(), now)
}

/// Ok(why it goes) or Err(why it stays), for an image no never-retire rule keeps; its `slot`
/// counts only such images that can be launched, newest first.
fn judge(
    image: &Image,
    slot: Slot,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let mut why = Vec::new();
    if let Some(keep) = retention.keep {
        match slot {
            Slot::Rank(rank) if rank < keep => {
                return Err(format!("one of the newest {keep} of its family"));
            }
            Slot::Rank(_) => why.push(format!("older than the newest {keep} of its family")),
            Slot::None(note) => why.push(format!("{note}, so not one of the newest {keep}")),
        }
    }
    if let Some(older_than) = retention.older_than {
        match image.creation_date {
            Some(created) if now - created >= older_than => {
                why.push(format!("created {} ago", human(now - created)))
            }
            Some(created) => {
                return Err(format!(
                    "only {} old (--older-than {})",
                    human(now - created),
                    human(older_than)
                ));
            }
            None => return Err("creation date unknown".into()),
        }
    }
    if let Some(unused_for) = retention.unused_for {
        match image.last_launched_time {
            Some(last) if now - last >= unused_for => {
                why.push(format!("last launched {} ago", human(now - last)))
            }
            Some(last) => {
                return Err(format!(
                    "launched {} ago (--unused-for {})",
                    human(now - last),
                    human(unused_for)
                ));
            }
            None => {
                return Err(
                    "last launch time not reported here, so --unused-for cannot be judged".into(),
                );
            }
        }
    }
    if why.is_empty() {
        // No rule selected it: nothing retires by default.
        return Err("no retention rule selects it".into());
    }
    Ok(why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Image, ImageUser, UserKind};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
    }

    fn image(id: &str, name: &str, days_old: i64) -> Image {
        crate::plan::fixture::aged(id, name, days_old, now())
    }

    fn keep(n: usize) -> Retention {
        Retention {
            group_by: GroupBy::Name(None),
            keep: Some(n),
            older_than: None,
            unused_for: None,
            keep_tag: ("retain".into(), "true".into()),
            include_public: false,
        }
    }

    fn verdicts(decisions: &[Decision]) -> BTreeMap<String, Verdict> {
        decisions
            .iter()
            .map(|d| (d.image_id.clone(), d.verdict))
            .collect()
    }

    #[test]
    fn families_from_names() {
        let table = [
            ("web-2026-01-01", "web"),
            ("web-2026.11.23", "web"),
            ("app-v1.2.3", "app"),
            ("db-20261123140240", "db"),
            ("ubuntu-22.04-amd64-2026.01", "ubuntu-22.04-amd64"),
            ("base-image", "base-image"),
            ("web_42", "web"),
            ("2026-01-01", "2026-01-01"),
        ];
        for (name, family) in table {
            assert_eq!(default_family(name), family, "{name}");
        }
    }

    #[test]
    fn keeps_the_newest_n_per_family() {
        let images = vec![
            image("ami-w1", "web-1", 30),
            image("ami-w2", "web-2", 20),
            image("ami-w3", "web-3", 10),
            image("ami-d1", "db-1", 40),
            image("ami-d2", "db-2", 5),
        ];
        let decisions = select(&images, &BTreeMap::new(), "111122223333", &keep(2), now());
        let v = verdicts(&decisions);
        assert_eq!(v["ami-w1"], Verdict::Retire);
        assert_eq!(v["ami-w2"], Verdict::Keep);
        assert_eq!(v["ami-w3"], Verdict::Keep);
        assert_eq!(v["ami-d1"], Verdict::Keep);
        assert_eq!(v["ami-d2"], Verdict::Keep);
        let w1 = decisions.iter().find(|d| d.image_id == "ami-w1").unwrap();
        assert_eq!(w1.family.as_deref(), Some("web"));
        assert_eq!(w1.reason, "older than the newest 2 of its family");
    }

    /// The newest images of a family in every state but available, then three available ones:
    /// `--keep 2` keeps the two newest that can be launched, whatever is newer.
    #[test]
    fn only_launchable_images_take_keep_slots() {
        let in_state = |id: &str, name: &str, days_old: i64, state: &str| {
            crate::plan::fixture::image(id)
                .name(name)
                .created(now() - chrono::Duration::days(days_old))
                .state(state)
                .build()
        };
        let images = vec![
            in_state("ami-gone", "web-9", 1, "deregistered"),
            in_state("ami-pending", "web-8", 2, "pending"),
            in_state("ami-failed", "web-7", 3, "failed"),
            in_state("ami-disabled", "web-6", 4, "disabled"),
            in_state("ami-odd", "web-5", 5, "some-new-state"),
            image("ami-a3", "web-3", 10),
            image("ami-a2", "web-2", 20),
            image("ami-a1", "web-1", 30),
        ];
        let decisions = select(&images, &BTreeMap::new(), "111122223333", &keep(2), now());
        let v = verdicts(&decisions);
        // Table: image → verdict (a deregistered image is no image: no decision at all).
        let expected = [
            ("ami-pending", Verdict::Keep),
            ("ami-failed", Verdict::Retire),
            ("ami-disabled", Verdict::Retire),
            ("ami-odd", Verdict::Keep),
            ("ami-a3", Verdict::Keep),
            ("ami-a2", Verdict::Keep),
            ("ami-a1", Verdict::Retire),
        ];
        for (id, verdict) in expected {
            assert_eq!(v[id], verdict, "{id}");
        }
        assert!(!v.contains_key("ami-gone"), "{v:?}");
        let reason = |id: &str| {
            decisions
                .iter()
                .find(|d| d.image_id == id)
                .map(|d| d.reason.clone())
                .unwrap()
        };
        assert!(reason("ami-pending").contains("still being made"));
        assert_eq!(
            reason("ami-failed"),
            "failed: can never be launched, so not one of the newest 2"
        );
        assert_eq!(reason("ami-a1"), "older than the newest 2 of its family");
        // A failed image still answers to the other rules: too young for --older-than, it stays.
        let young_only = Retention {
            older_than: Some(chrono::Duration::days(7)),
            ..keep(2)
        };
        let v = verdicts(&select(
            &images,
            &BTreeMap::new(),
            "111122223333",
            &young_only,
            now(),
        ));
        assert_eq!(v["ami-failed"], Verdict::Keep);
        assert_eq!(v["ami-a1"], Verdict::Retire);
    }

    #[test]
    fn never_retired_images_stay_and_do_not_count_towards_keep() {
        let mut tagged = image("ami-t", "web-0", 100);
        tagged.tags.insert("retain".into(), "true".into());
        let mut public = image("ami-p", "web-00", 90);
        public.public = true;
        let mut protected = image("ami-x", "web-000", 80);
        protected.deregistration_protection = Some("enabled-with-cooldown".into());
        let mut foreign = image("ami-f", "web-0000", 70);
        foreign.owner_id = Some("999988887777".into());
        let images = vec![
            tagged,
            public,
            protected,
            foreign,
            image("ami-used", "web-5", 60),
            image("ami-old", "web-6", 50),
            image("ami-new", "web-7", 1),
        ];
        let mut users = BTreeMap::new();
        users.insert(
            "ami-used".to_string(),
            vec![ImageUser::new(
                UserKind::LaunchTemplate,
                "lt-1",
                Some("version 1".into()),
            )],
        );
        let decisions = select(&images, &users, "111122223333", &keep(1), now());
        let v = verdicts(&decisions);
        assert_eq!(v["ami-new"], Verdict::Keep);
        assert_eq!(v["ami-old"], Verdict::Retire);
        for kept in ["ami-t", "ami-p", "ami-x", "ami-f", "ami-used"] {
            assert_eq!(v[kept], Verdict::Keep, "{kept}");
        }
        let reason = |id: &str| {
            decisions
                .iter()
                .find(|d| d.image_id == id)
                .unwrap()
                .reason
                .clone()
        };
        assert_eq!(reason("ami-t"), "tagged retain=true");
        assert!(reason("ami-p").starts_with("public"));
        assert!(reason("ami-x").contains("deregistration protection"));
        assert!(reason("ami-f").contains("999988887777"));
        assert_eq!(
            reason("ami-used"),
            "in use by launch template lt-1 (version 1)"
        );
    }

    #[test]
    fn pinned_images_newer_than_the_candidates_take_no_keep_slot() {
        for pin in ["in use", "tag", "public", "protected", "foreign"] {
            let mut newest = image("ami-pin", "web-9", 1);
            let mut users = BTreeMap::new();
            match pin {
                "in use" => {
                    users.insert(
                        "ami-pin".to_string(),
                        vec![ImageUser::new(UserKind::Instance, "i-1", None)],
                    );
                }
                "tag" => {
                    newest.tags.insert("retain".into(), "true".into());
                }
                "public" => newest.public = true,
                "protected" => {
                    newest.deregistration_protection = Some("enabled-without-cooldown".into())
                }
                _ => newest.owner_id = Some("999988887777".into()),
            }
            let images = vec![
                image("ami-a", "web-1", 30),
                image("ami-b", "web-2", 20),
                image("ami-c", "web-3", 25),
                newest,
            ];
            let decisions = select(&images, &users, "111122223333", &keep(2), now());
            let v = verdicts(&decisions);
            assert_eq!(v["ami-pin"], Verdict::Keep, "{pin}");
            assert_eq!(v["ami-b"], Verdict::Keep, "{pin}: newest retirable");
            assert_eq!(v["ami-c"], Verdict::Keep, "{pin}: second newest retirable");
            assert_eq!(v["ami-a"], Verdict::Retire, "{pin}: third");
            let c = decisions.iter().find(|d| d.image_id == "ami-c").unwrap();
            assert_eq!(c.reason, "one of the newest 2 of its family", "{pin}");
        }
    }

    #[test]
    fn age_rules_combine_with_keep() {
        let images = vec![
            image("ami-1", "app-1", 200),
            image("ami-2", "app-2", 100),
            image("ami-3", "app-3", 50),
            image("ami-4", "app-4", 1),
        ];
        let mut rules = keep(1);
        rules.older_than = Some(Duration::days(90));
        let v = verdicts(&select(
            &images,
            &BTreeMap::new(),
            "111122223333",
            &rules,
            now(),
        ));
        assert_eq!(v["ami-1"], Verdict::Retire);
        assert_eq!(v["ami-2"], Verdict::Retire);
        assert_eq!(v["ami-3"], Verdict::Keep, "younger than 90 days");
        assert_eq!(v["ami-4"], Verdict::Keep, "newest");

        // Without --keep, age alone.
        rules.keep = None;
        let v = verdicts(&select(
            &images,
            &BTreeMap::new(),
            "111122223333",
            &rules,
            now(),
        ));
        assert_eq!(v["ami-2"], Verdict::Retire);
        assert_eq!(v["ami-3"], Verdict::Keep);
    }

    #[test]
    fn unused_for_keeps_what_it_cannot_judge() {
        let mut launched_recently = image("ami-r", "svc-1", 300);
        launched_recently.last_launched_time = Some(now() - Duration::days(3));
        let mut launched_long_ago = image("ami-l", "svc-2", 300);
        launched_long_ago.last_launched_time = Some(now() - Duration::days(400));
        let unknown = image("ami-u", "svc-3", 300);
        let rules = Retention {
            keep: None,
            unused_for: Some(Duration::days(60)),
            ..keep(0)
        };
        let decisions = select(
            &[launched_recently, launched_long_ago, unknown],
            &BTreeMap::new(),
            "111122223333",
            &rules,
            now(),
        );
        let v = verdicts(&decisions);
        assert_eq!(v["ami-r"], Verdict::Keep);
        assert_eq!(v["ami-l"], Verdict::Retire);
        assert_eq!(v["ami-u"], Verdict::Keep);
        assert!(
            decisions
                .iter()
                .any(|d| d.reason.contains("cannot be judged"))
        );
    }

    #[test]
    fn tag_families_and_patterns() {
        let mut a = image("ami-a", "x-1", 30);
        a.tags.insert("app".into(), "web".into());
        let mut b = image("ami-b", "y-1", 20);
        b.tags.insert("app".into(), "web".into());
        let untagged = image("ami-c", "z-1", 400);
        let rules = Retention {
            group_by: GroupBy::Tags(vec!["app".into()]),
            ..keep(1)
        };
        let decisions = select(
            &[a, b, untagged],
            &BTreeMap::new(),
            "111122223333",
            &rules,
            now(),
        );
        let v = verdicts(&decisions);
        assert_eq!(v["ami-a"], Verdict::Retire);
        assert_eq!(v["ami-b"], Verdict::Keep);
        assert_eq!(v["ami-c"], Verdict::Keep);
        assert!(
            decisions
                .iter()
                .any(|d| d.reason == "no app tag: not in any family")
        );

        let rules = Retention {
            group_by: GroupBy::Name(Some(Regex::new(r"^(\w+)-build-\d+$").unwrap())),
            ..keep(1)
        };
        let images = vec![
            image("ami-1", "api-build-1", 10),
            image("ami-2", "api-build-2", 5),
            image("ami-3", "unrelated", 500),
        ];
        let v = verdicts(&select(
            &images,
            &BTreeMap::new(),
            "111122223333",
            &rules,
            now(),
        ));
        assert_eq!(v["ami-1"], Verdict::Retire);
        assert_eq!(v["ami-2"], Verdict::Keep);
        assert_eq!(v["ami-3"], Verdict::Keep);
    }

    #[test]
    fn no_rule_retires_nothing() {
        let rules = Retention {
            keep: None,
            ..keep(0)
        };
        let v = verdicts(&select(
            &[image("ami-1", "a-1", 999)],
            &BTreeMap::new(),
            "111122223333",
            &rules,
            now(),
        ));
        assert_eq!(v["ami-1"], Verdict::Keep);
    }
}
