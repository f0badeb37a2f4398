//! What an image's state means, for every rule that looks at one: retention (`--keep` slots,
//! what is never retired), the planner (a target that is gone), unfinished retirements (a mark
//! whose image is gone), orphans, `copy` and `release` (which existing image stands for the one
//! they would make) and `list`. One table, so that no two places read a state two ways.
//!
//! AWS's states: `pending` (CreateImage and CopyImage images, for minutes to hours),
//! `available`, `failed` / `error` / `invalid` (never launchable), `transient`, `disabled`
//! (re-enabled with EnableImage), `deregistered` (DescribeImages lists a deregistered image "for
//! a short interval" after it goes).

use crate::model::ImageState;

/// The part an image in some state plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// `available`: it can be launched.
    Launchable,
    /// `disabled`: a stage of retirement; it launches again only once re-enabled.
    Disabled,
    /// `pending`, `transient`: still being made; it may yet become available.
    InProgress,
    /// `failed`, `error`, `invalid`: it can never be launched.
    Broken,
    /// `deregistered`: gone, though still listed for a while.
    Gone,
    /// A state this build does not know: kept, and nothing is assumed of it.
    Unknown,
}

impl Standing {
    pub fn of(state: &ImageState) -> Standing {
        match state {
            ImageState::Available => Standing::Launchable,
            ImageState::Disabled => Standing::Disabled,
            ImageState::Pending | ImageState::Transient => Standing::InProgress,
            ImageState::Failed | ImageState::Error | ImageState::Invalid => Standing::Broken,
            ImageState::Deregistered => Standing::Gone,
            ImageState::Other(_) => Standing::Unknown,
        }
    }

    /// Whether the image is still there: a deregistered image is not, whatever DescribeImages
    /// still lists.
    pub fn exists(self) -> bool {
        self != Standing::Gone
    }

    /// Whether it takes one of `--keep N`'s slots: only an image that can be launched is a
    /// rollback image. A pending, failed or disabled image newer than the rest must not push
    /// the last launchable one out.
    pub fn takes_keep_slot(self) -> bool {
        self == Standing::Launchable
    }

    /// Why no rule retires it, if none may: a pending image may yet be the newest release, a
    /// gone one has nothing left to retire, an unknown state is not guessed at.
    pub fn never_retired(self, state: &ImageState) -> Option<String> {
        match self {
            Standing::InProgress => Some(format!(
                "{state}: still being made (it may yet become available); never retired"
            )),
            Standing::Gone => Some("already deregistered".to_string()),
            Standing::Unknown => Some(format!("state '{state}' is not understood: kept")),
            Standing::Launchable | Standing::Disabled | Standing::Broken => None,
        }
    }

    /// Why an image that takes no `--keep` slot is not one of the newest N, for the plan.
    pub fn slot_note(self, state: &ImageState) -> Option<String> {
        match self {
            Standing::Disabled => Some(format!("{state}: cannot be launched until re-enabled")),
            Standing::Broken => Some(format!("{state}: can never be launched")),
            _ => None,
        }
    }

    /// Whether an existing image of the name stands for the one `copy` or `release` would
    /// make: one that is or may become available. A failed or disabled one does not, and its
    /// name is taken, so the caller stops and names it.
    pub fn stands_for_new(self) -> bool {
        matches!(self, Standing::Launchable | Standing::InProgress)
    }

    /// Whether it can be launched now.
    pub fn launchable(self) -> bool {
        self == Standing::Launchable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole table, as docs/usage.md gives it: state → exists, takes a --keep slot,
    /// retired by rules, stands for a new copy, launchable.
    #[test]
    fn every_state_means_one_thing() {
        let table: [(&str, bool, bool, bool, bool, bool); 9] = [
            ("available", true, true, true, true, true),
            ("disabled", true, false, true, false, false),
            ("pending", true, false, false, true, false),
            ("transient", true, false, false, true, false),
            ("failed", true, false, true, false, false),
            ("error", true, false, true, false, false),
            ("invalid", true, false, true, false, false),
            ("deregistered", false, false, false, false, false),
            ("some-new-state", true, false, false, false, false),
        ];
        for (name, exists, slot, retired, stands_for_new, launchable) in table {
            let state = ImageState::from(name);
            let standing = Standing::of(&state);
            assert_eq!(standing.exists(), exists, "{name}: exists");
            assert_eq!(standing.takes_keep_slot(), slot, "{name}: --keep slot");
            assert_eq!(
                standing.never_retired(&state).is_none(),
                retired,
                "{name}: retired by rules"
            );
            assert_eq!(standing.stands_for_new(), stands_for_new, "{name}: copy");
            assert_eq!(standing.launchable(), launchable, "{name}: launchable");
            // An image that takes no slot and may be retired says why it is not a keeper.
            if !slot && retired {
                assert!(standing.slot_note(&state).is_some(), "{name}: slot note");
            }
        }
    }
}
