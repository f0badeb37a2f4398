//! Streaming a retirement: which images may go while other images' consumer checks are still
//! being read. Pure, like the rest of the planner.
//!
//! The rules are monotone: a user found for one image can only keep images (that one, and older
//! ones of its family whose rank it no longer takes). So an image the rules retire when every
//! image not yet checked is taken to be in use is retired by the final decision too, and an
//! image they keep when those images are taken to be unused is kept by it. Images that share a
//! snapshot or a bundle bucket go together, once each of them is settled one way or the other.

use std::collections::{BTreeMap, BTreeSet};

use super::ImageUser;
use super::users::{Usage, in_consumers};
use crate::model::ConsumerFacts;

/// What can be said now about the images a retirement may deregister.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Retired whatever the checks still running find: may go now.
    pub retire: BTreeSet<String>,
    /// Kept whatever they find.
    pub keep: BTreeSet<String>,
    /// Every user known now; an image not yet checked has a user standing for the check.
    pub usage: Usage,
}

/// `targets`: the images the rules retire before any consumer check (nothing can add to them);
/// `checking`: the images whose consumer checks decide (every target among them); `checked`:
/// those whose checks are complete. `retired_under(users)` is the rules' decision for a set of
/// users: the images they deregister.
pub fn settle(
    targets: &[String],
    checking: &[String],
    own_account: &str,
    at_home: &Usage,
    facts: &ConsumerFacts,
    checked: &BTreeSet<String>,
    retired_under: impl Fn(&BTreeMap<String, Vec<ImageUser>>) -> BTreeSet<String>,
) -> Settled {
    // Pessimistic: an image whose check is not complete counts as used ("not read", "not looked
    // into"), which is what `in_consumers` says of it.
    let mut usage = at_home.clone();
    usage.merge(in_consumers(own_account, checking, facts));
    let retired_now = retired_under(&usage.users);
    let awaited: BTreeSet<&String> = checking
        .iter()
        .filter(|id| !checked.contains(*id))
        .collect();
    // A target still awaiting its own check is never among them (the check stands as a user);
    // the filter also covers a reviewed deregistration, which users do not change.
    let retire: BTreeSet<String> = targets
        .iter()
        .filter(|id| retired_now.contains(*id) && !awaited.contains(id))
        .cloned()
        .collect();
    // What is kept for good matters only to a group with a checked member that is not going;
    // until there is one (the usual case while launch permissions come in), it is not worked out.
    let undecided = targets
        .iter()
        .any(|id| !retire.contains(id) && !awaited.contains(id));
    if !undecided {
        return Settled {
            retire,
            keep: BTreeSet::new(),
            usage,
        };
    }
    // Optimistic: only what the complete checks found.
    let done: Vec<String> = checking
        .iter()
        .filter(|id| checked.contains(*id))
        .cloned()
        .collect();
    fn only_checked<V: Clone>(
        by_image: &BTreeMap<String, V>,
        checked: &BTreeSet<String>,
    ) -> BTreeMap<String, V> {
        by_image
            .iter()
            .filter(|(id, _)| checked.contains(*id))
            .map(|(id, value)| (id.clone(), value.clone()))
            .collect()
    }
    let complete = ConsumerFacts {
        permissions: only_checked(&facts.permissions, checked),
        unreadable: only_checked(&facts.unreadable, checked),
        accounts: facts.accounts.clone(),
        reports: facts.reports.clone(),
    };
    let mut hopeful = at_home.clone();
    hopeful.merge(in_consumers(own_account, &done, &complete));
    let retired_at_best = retired_under(&hopeful.users);
    Settled {
        retire,
        keep: targets
            .iter()
            .filter(|id| !retired_at_best.contains(*id))
            .cloned()
            .collect(),
        usage,
    }
}

/// Groups of targets released one at a time, each once all its members are settled.
#[derive(Debug)]
pub struct Release {
    groups: Vec<Vec<String>>,
    released: Vec<bool>,
}

impl Release {
    /// `groups`: the targets, grouped so that images sharing a snapshot or a bundle bucket are
    /// in one group (`sharing_groups`).
    pub fn new(groups: Vec<Vec<String>>) -> Release {
        let released = vec![false; groups.len()];
        Release { groups, released }
    }

    /// The images to retire now: the retiring members of every group not yet released whose
    /// members are all settled. Such a group is released, whether anything in it goes or not.
    pub fn next(&mut self, retire: &BTreeSet<String>, keep: &BTreeSet<String>) -> Vec<String> {
        let mut going = Vec::new();
        for (group, released) in self.groups.iter().zip(self.released.iter_mut()) {
            if *released
                || !group
                    .iter()
                    .all(|id| retire.contains(id) || keep.contains(id))
            {
                continue;
            }
            *released = true;
            going.extend(group.iter().filter(|id| retire.contains(*id)).cloned());
        }
        going
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LaunchPermissions, UserKind};

    const OURS: &str = "111111111111";

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn set(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn shared_with(accounts: &[&str]) -> LaunchPermissions {
        LaunchPermissions {
            accounts: ids(accounts),
            ..Default::default()
        }
    }

    /// A family of `keep 1`, newest first: an image in use does not take a rank, so the next
    /// one is kept in its place (the rules' monotone behaviour, in miniature).
    fn keep_newest_unused(
        family: &[&str],
    ) -> impl Fn(&BTreeMap<String, Vec<ImageUser>>) -> BTreeSet<String> {
        let family = ids(family);
        move |users| {
            let mut rank = 0;
            let mut retired = BTreeSet::new();
            for id in &family {
                if users.get(id).is_some_and(|u| !u.is_empty()) {
                    continue;
                }
                if rank >= 1 {
                    retired.insert(id.clone());
                }
                rank += 1;
            }
            retired
        }
    }

    /// `settle` for the family's older images, with no user at home.
    fn settle_family(
        family: &[&str],
        targets: &[String],
        facts: &ConsumerFacts,
        checked: &[&str],
    ) -> Settled {
        settle(
            targets,
            targets,
            OURS,
            &Usage::default(),
            facts,
            &set(checked),
            keep_newest_unused(family),
        )
    }

    #[test]
    fn an_image_goes_once_no_pending_check_can_keep_it() {
        // ami-0 newest (kept by rank), ami-1..3 retired before any consumer check.
        let family = ["ami-0", "ami-1", "ami-2", "ami-3"];
        let targets = ids(&["ami-1", "ami-2", "ami-3"]);
        let unshared = LaunchPermissions::default();
        // Table: (permissions read, checked) → (retire now, keep for good).
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, LaunchPermissions)>,
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: Vec<Case> = vec![
            ("nothing read yet: nothing settled", vec![], &[], &[], &[]),
            (
                "ami-2 read and not shared: it goes, whatever ami-1 turns out to be",
                vec![("ami-2", unshared.clone())],
                &["ami-2"],
                &["ami-2"],
                &[],
            ),
            (
                "ami-1 shared with an account, its report not in yet: it waits; ami-3 goes",
                vec![
                    ("ami-1", shared_with(&["222222222222"])),
                    ("ami-3", unshared.clone()),
                ],
                &["ami-3"],
                &["ami-3"],
                &[],
            ),
            (
                "our own account in the list is no share",
                vec![("ami-1", shared_with(&[OURS]))],
                &["ami-1"],
                &["ami-1"],
                &[],
            ),
        ];
        for (label, read, checked, retire, keep) in cases {
            let mut facts = ConsumerFacts::default();
            for (id, permissions) in read {
                facts.permissions.insert(id.to_string(), permissions);
            }
            let settled = settle_family(&family, &targets, &facts, checked);
            assert_eq!(settled.retire, set(retire), "{label}");
            assert_eq!(settled.keep, set(keep), "{label}");
        }
    }

    #[test]
    fn an_image_kept_at_best_is_kept_for_good_and_one_in_doubt_waits() {
        // ami-1 is public (a user whatever its other checks find): kept for good. ami-2 and
        // ami-3 are not read yet, so either might be in use: neither goes.
        let family = ["ami-0", "ami-1", "ami-2", "ami-3"];
        let targets = ids(&["ami-1", "ami-2", "ami-3"]);
        let mut facts = ConsumerFacts::default();
        facts.permissions.insert(
            "ami-1".into(),
            LaunchPermissions {
                public: true,
                ..Default::default()
            },
        );
        let settled = settle_family(&family, &targets, &facts, &["ami-1"]);
        assert_eq!(settled.keep, set(&["ami-1"]));
        // ami-2 and ami-3 are not read yet: nothing goes.
        assert!(settled.retire.is_empty());
        let users = &settled.usage.users;
        assert!(
            users["ami-2"]
                .iter()
                .any(|u| u.kind == UserKind::UncheckedConsumer)
        );

        // A failed read settles the image: it stays, and the failure is a problem.
        facts
            .unreadable
            .insert("ami-2".into(), "AccessDenied".into());
        facts
            .permissions
            .insert("ami-3".into(), LaunchPermissions::default());
        let settled = settle_family(&family, &targets, &facts, &["ami-1", "ami-2", "ami-3"]);
        assert_eq!(settled.keep, set(&["ami-1", "ami-2"]));
        // ami-0 keeps its rank; ami-1 and ami-2 take none; ami-3 is second: it goes.
        assert_eq!(settled.retire, set(&["ami-3"]));
        assert_eq!(settled.usage.problems.len(), 1);
    }

    #[test]
    fn a_group_goes_when_every_member_is_settled_and_only_once() {
        let mut release = Release::new(vec![ids(&["ami-a", "ami-b"]), ids(&["ami-c"])]);
        // ami-b not settled: its group waits; ami-c's goes.
        assert_eq!(
            release.next(&set(&["ami-a", "ami-c"]), &set(&[])),
            ids(&["ami-c"])
        );
        // ami-b settled as kept: only ami-a goes (the shared snapshot stays for ami-b).
        assert_eq!(
            release.next(&set(&["ami-a", "ami-c"]), &set(&["ami-b"])),
            ids(&["ami-a"])
        );
        // Nothing twice.
        assert!(
            release
                .next(&set(&["ami-a", "ami-c"]), &set(&["ami-b"]))
                .is_empty()
        );
    }
}
