//! What happens to a planned snapshot once the images were deregistered: decided here, from
//! what execution saw AWS do, so the executor only carries out calls and reports facts.

use std::collections::{BTreeMap, BTreeSet};

use super::{DeletedBy, ImageAction, ImagePlan, SnapshotPlan};
use crate::model::SnapshotReturnCode;

/// What AWS did with one requested image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFate {
    /// Deregistered, and AWS's answer said what it did with the snapshots.
    Deregistered,
    /// Gone, but the answer to our call was lost (a retry found it gone): what AWS did with its
    /// snapshots is not known and must be looked up, never guessed.
    GoneAnswerLost,
    /// Gone before this run: a retirement an interrupted run left unfinished.
    AlreadyGone,
    /// Still registered: refused, failed, blocked, or never attempted.
    Stays,
}

/// The facts of a deregistration run, as execution saw them.
#[derive(Debug, Default)]
pub struct Deregistration {
    /// Every requested image's fate, by image id (one not listed stays).
    pub images: BTreeMap<String, ImageFate>,
    /// What DeleteAssociatedSnapshots did with each snapshot; a success anywhere wins (images
    /// sharing a snapshot report it skipped until the last of them goes).
    pub with_image: BTreeMap<String, SnapshotReturnCode>,
}

impl Deregistration {
    pub fn record_snapshot_results(&mut self, results: Vec<(String, SnapshotReturnCode)>) {
        for (id, code) in results {
            self.with_image
                .entry(id)
                .and_modify(|seen| {
                    if *seen != SnapshotReturnCode::Success {
                        *seen = code.clone();
                    }
                })
                .or_insert(code);
        }
    }

    fn gone(&self, image_id: &str) -> bool {
        matches!(
            self.images.get(image_id),
            Some(ImageFate::Deregistered | ImageFate::GoneAnswerLost | ImageFate::AlreadyGone)
        )
    }
}

/// What to do next with a planned snapshot, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotNext {
    /// Its own DeleteSnapshot: it ends deleted, or failed with AWS's reason.
    Delete,
    /// AWS deleted it with its image.
    Done { note: Option<String> },
    /// An image that uses it is still registered: it stays.
    Skipped(String),
    /// Whether AWS deleted it could not be checked.
    Failed(String),
}

/// The planned snapshots whose fate is unknown: one of their images went by an attempt whose
/// answer never arrived, and no answer reported them deleted. Execution looks them up.
pub fn fate_unknown(
    images: &[&ImagePlan],
    snapshots: &[&SnapshotPlan],
    facts: &Deregistration,
) -> BTreeSet<String> {
    let lost: Vec<&&ImagePlan> = images
        .iter()
        .filter(|image| facts.images.get(&image.image_id) == Some(&ImageFate::GoneAnswerLost))
        .collect();
    snapshots
        .iter()
        .filter(|s| s.deleted_by == DeletedBy::DeregisterImage)
        .filter(|s| facts.with_image.get(&s.snapshot_id) != Some(&SnapshotReturnCode::Success))
        .filter(|s| {
            lost.iter()
                .any(|image| image.snapshot_ids.contains(&s.snapshot_id))
        })
        .map(|s| s.snapshot_id.clone())
        .collect()
}

/// A planned snapshot's next step. `images` are every requested image; `still_there` is what
/// the look-up of `fate_unknown` found (the snapshots that still exist), or why it failed.
pub fn after_deregistration(
    snapshot: &SnapshotPlan,
    images: &[&ImagePlan],
    facts: &Deregistration,
    fate_unknown: &BTreeSet<String>,
    still_there: &Result<BTreeSet<String>, String>,
) -> SnapshotNext {
    let id = &snapshot.snapshot_id;
    // Every requested image that uses a snapshot must be gone before it can be.
    let holder = images
        .iter()
        .filter(|image| image.action == ImageAction::Deregister && !facts.gone(&image.image_id))
        .rfind(|image| image.snapshot_ids.contains(id))
        .map(|image| image.image_id.clone());
    if !facts.gone(&snapshot.image_id) || holder.is_some() {
        let holder = holder.unwrap_or_else(|| snapshot.image_id.clone());
        return SnapshotNext::Skipped(format!("{holder} was not deregistered"));
    }
    if fate_unknown.contains(id) {
        return match still_there {
            // Still there: delete it as planned; if an image the plan did not know of uses it,
            // AWS refuses and the snapshot is reported failed, never "deleted".
            Ok(existing) if existing.contains(id) => SnapshotNext::Delete,
            Ok(_) => SnapshotNext::Done {
                note: Some("deleted with its image".into()),
            },
            Err(err) => SnapshotNext::Failed(format!(
                "could not check whether AWS deleted it with its image ({err}); a re-run will"
            )),
        };
    }
    // Anything but success (skipped, client-error, internal-error, no entry) leaves the
    // snapshot to its own DeleteSnapshot: it ends deleted, or failed with AWS's reason.
    match facts.with_image.get(id) {
        Some(SnapshotReturnCode::Success) => SnapshotNext::Done { note: None },
        _ => SnapshotNext::Delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ItemAction;

    fn image(id: &str, snapshots: &[&str]) -> ImagePlan {
        ImagePlan {
            image_id: id.into(),
            name: None,
            state: None,
            action: ImageAction::Deregister,
            reason: String::new(),
            users: Vec::new(),
            snapshot_ids: snapshots.iter().map(|s| s.to_string()).collect(),
            delete_associated_snapshots: false,
            recycle_bin: None,
        }
    }

    fn snapshot(id: &str, image_id: &str, deleted_by: DeletedBy) -> SnapshotPlan {
        SnapshotPlan {
            snapshot_id: id.into(),
            image_id: image_id.into(),
            size_gib: Some(8),
            action: ItemAction::Delete,
            reason: String::new(),
            deleted_by,
            used_by_staying: false,
            recycle_bin: None,
        }
    }

    #[test]
    fn a_snapshot_goes_only_once_every_image_using_it_is_gone() {
        let (a, b) = (image("ami-a", &["snap-1"]), image("ami-b", &["snap-1"]));
        let images = [&a, &b];
        let shared = snapshot("snap-1", "ami-a", DeletedBy::DeleteSnapshot);
        let mut facts = Deregistration::default();
        facts.images.insert("ami-a".into(), ImageFate::Deregistered);
        facts.images.insert("ami-b".into(), ImageFate::Stays);
        let none = BTreeSet::new();
        let next = after_deregistration(&shared, &images, &facts, &none, &Ok(none.clone()));
        assert_eq!(
            next,
            SnapshotNext::Skipped("ami-b was not deregistered".into())
        );
        facts.images.insert("ami-b".into(), ImageFate::Deregistered);
        let next = after_deregistration(&shared, &images, &facts, &none, &Ok(none.clone()));
        assert_eq!(next, SnapshotNext::Delete);
        facts.images.insert("ami-a".into(), ImageFate::Stays);
        let next = after_deregistration(&shared, &images, &facts, &none, &Ok(none.clone()));
        assert_eq!(
            next,
            SnapshotNext::Skipped("ami-a was not deregistered".into())
        );
    }

    #[test]
    fn an_unfinished_retirement_is_finished() {
        let mut gone = image("ami-gone", &["snap-1"]);
        gone.action = ImageAction::AlreadyGone;
        let images = [&gone];
        let marked = snapshot("snap-1", "ami-gone", DeletedBy::DeleteSnapshot);
        let none = BTreeSet::new();
        let mut facts = Deregistration::default();
        let next = after_deregistration(&marked, &images, &facts, &none, &Ok(none.clone()));
        assert!(
            matches!(next, SnapshotNext::Skipped(_)),
            "not known gone: kept"
        );
        facts
            .images
            .insert("ami-gone".into(), ImageFate::AlreadyGone);
        let next = after_deregistration(&marked, &images, &facts, &none, &Ok(none.clone()));
        assert_eq!(next, SnapshotNext::Delete);
    }

    #[test]
    fn only_a_success_counts_as_deleted_with_the_image() {
        let a = image("ami-a", &["snap-1"]);
        let images = [&a];
        let planned = snapshot("snap-1", "ami-a", DeletedBy::DeregisterImage);
        let none = BTreeSet::new();
        let table = [
            (
                vec![SnapshotReturnCode::Success],
                SnapshotNext::Done { note: None },
            ),
            (vec![SnapshotReturnCode::Skipped], SnapshotNext::Delete),
            (vec![SnapshotReturnCode::ClientError], SnapshotNext::Delete),
            (vec![], SnapshotNext::Delete),
            // Images sharing it: one success is enough, whatever order the answers come in.
            (
                vec![SnapshotReturnCode::Success, SnapshotReturnCode::Skipped],
                SnapshotNext::Done { note: None },
            ),
            (
                vec![SnapshotReturnCode::Skipped, SnapshotReturnCode::Success],
                SnapshotNext::Done { note: None },
            ),
        ];
        for (codes, expected) in table {
            let mut facts = Deregistration::default();
            facts.images.insert("ami-a".into(), ImageFate::Deregistered);
            for code in codes.clone() {
                facts.record_snapshot_results(vec![("snap-1".into(), code)]);
            }
            let next = after_deregistration(&planned, &images, &facts, &none, &Ok(none.clone()));
            assert_eq!(next, expected, "{codes:?}");
        }
    }

    #[test]
    fn a_lost_answer_is_settled_by_looking_never_by_guessing() {
        let a = image("ami-a", &["snap-1"]);
        let images = [&a];
        let planned = snapshot("snap-1", "ami-a", DeletedBy::DeregisterImage);
        let mut facts = Deregistration::default();
        facts
            .images
            .insert("ami-a".into(), ImageFate::GoneAnswerLost);
        let unknown = fate_unknown(&images, &[&planned], &facts);
        assert_eq!(unknown, BTreeSet::from(["snap-1".to_string()]));
        let found = |ids: &[&str]| Ok(ids.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            after_deregistration(&planned, &images, &facts, &unknown, &found(&["snap-1"])),
            SnapshotNext::Delete
        );
        assert_eq!(
            after_deregistration(&planned, &images, &facts, &unknown, &found(&[])),
            SnapshotNext::Done {
                note: Some("deleted with its image".into())
            }
        );
        assert!(matches!(
            after_deregistration(&planned, &images, &facts, &unknown, &Err("AccessDenied".into())),
            SnapshotNext::Failed(why) if why.contains("AccessDenied")
        ));
        // A snapshot its own DeleteSnapshot removes is never in doubt.
        let own = snapshot("snap-1", "ami-a", DeletedBy::DeleteSnapshot);
        assert!(fate_unknown(&images, &[&own], &facts).is_empty());
    }
}
