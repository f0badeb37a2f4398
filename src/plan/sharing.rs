//! What a grant or revoke changes, computed once from what AWS shows now: the dry run lists
//! these very changes with AWS's DryRun answer, the real run makes them.

use crate::model::{Grantees, LaunchPermissions};

/// Which way a share goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Grant,
    Revoke,
}

impl Direction {
    pub fn revokes(self) -> bool {
        self == Direction::Revoke
    }
}

/// Who may create volumes from one snapshot now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeAccess {
    pub snapshot_id: String,
    pub accounts: Vec<String>,
    pub public: bool,
}

/// What one image is shared with now: its launch permissions and, when its snapshots are part
/// of the share, their create-volume permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub image_id: String,
    pub launch: LaunchPermissions,
    pub volumes: Vec<VolumeAccess>,
}

/// One modification, as the call that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// ModifyImageAttribute, launchPermission.
    Launch {
        image_id: String,
        grantees: Grantees,
    },
    /// ModifySnapshotAttribute, createVolumePermission (accounts and the public only).
    Volume {
        snapshot_id: String,
        grantees: Grantees,
    },
}

/// Whether a share reaches the snapshots: organizations and OUs cannot be given create-volume
/// permission, so only accounts and the public do.
pub fn reaches_snapshots(grantees: &Grantees, with_snapshots: bool) -> bool {
    with_snapshots && (!grantees.accounts.is_empty() || grantees.public)
}

/// The changes, in the order they must be made: granting gives the snapshots first, revoking
/// takes the image first, so the image is never launchable without its volumes. A re-run
/// changes nothing: only what is missing is granted.
pub fn changes(direction: Direction, wanted: &Grantees, access: &Access) -> Vec<Change> {
    let launch = to_send(wanted, &access.launch, direction);
    let launch = (!launch.is_empty()).then(|| Change::Launch {
        image_id: access.image_id.clone(),
        grantees: launch,
    });
    let volumes = access.volumes.iter().filter_map(|volume| {
        let grantees = volume_to_send(wanted, volume, direction);
        (!grantees.is_empty()).then(|| Change::Volume {
            snapshot_id: volume.snapshot_id.clone(),
            grantees,
        })
    });
    match direction {
        Direction::Grant => volumes.chain(launch).collect(),
        Direction::Revoke => launch.into_iter().chain(volumes).collect(),
    }
}

/// What a change sends. Granting: the grantees not yet present. Revoking: every grantee named,
/// present or not (removing one that is not there changes nothing): a grant made moments ago
/// may not show in the read yet, and must not survive the revoke.
fn to_send(wanted: &Grantees, present: &LaunchPermissions, direction: Direction) -> Grantees {
    match direction {
        Direction::Revoke => wanted.clone(),
        Direction::Grant => differs(wanted, present, Direction::Grant),
    }
}

/// `to_send` for a snapshot's create-volume permission (accounts and the public only).
fn volume_to_send(wanted: &Grantees, volume: &VolumeAccess, direction: Direction) -> Grantees {
    match direction {
        Direction::Revoke => Grantees {
            accounts: wanted.accounts.clone(),
            public: wanted.public,
            ..Grantees::default()
        },
        Direction::Grant => volume_differs(wanted, volume, Direction::Grant),
    }
}

/// What still differs from what was asked. Granting: the grantees not yet present. Revoking:
/// the grantees still present. Empty once AWS shows the change made.
pub fn differs(wanted: &Grantees, present: &LaunchPermissions, direction: Direction) -> Grantees {
    let revoke = direction.revokes();
    let pick = |asked: &[String], there: &[String]| -> Vec<String> {
        asked
            .iter()
            .filter(|w| there.contains(w) == revoke)
            .cloned()
            .collect()
    };
    Grantees {
        accounts: pick(&wanted.accounts, &present.accounts),
        organizations: pick(&wanted.organizations, &present.organizations),
        organizational_units: pick(&wanted.organizational_units, &present.organizational_units),
        public: wanted.public && present.public == revoke,
    }
}

/// `differs` for a snapshot's create-volume permission.
pub fn volume_differs(wanted: &Grantees, volume: &VolumeAccess, direction: Direction) -> Grantees {
    let present = LaunchPermissions {
        public: volume.public,
        accounts: volume.accounts.clone(),
        ..Default::default()
    };
    Grantees {
        organizations: Vec::new(),
        organizational_units: Vec::new(),
        ..differs(wanted, &present, direction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "arn:aws:organizations::111111111111:organization/o-abc";

    fn grantees(accounts: &[&str], organizations: &[&str], public: bool) -> Grantees {
        Grantees {
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            organizations: organizations.iter().map(|o| o.to_string()).collect(),
            organizational_units: Vec::new(),
            public,
        }
    }

    fn volume(accounts: &[&str], public: bool) -> VolumeAccess {
        VolumeAccess {
            snapshot_id: "snap-1".into(),
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            public,
        }
    }

    #[test]
    fn grant_adds_only_what_is_missing_and_revoke_removes_only_what_is_there() {
        let present = LaunchPermissions {
            public: true,
            accounts: vec!["111111111111".into()],
            organizations: vec![ORG.into()],
            organizational_units: Vec::new(),
        };
        let asked = grantees(&["111111111111", "222222222222"], &[ORG], true);
        let cases = [
            (Direction::Grant, grantees(&["222222222222"], &[], false)),
            (Direction::Revoke, grantees(&["111111111111"], &[ORG], true)),
        ];
        for (direction, expected) in cases {
            assert_eq!(
                differs(&asked, &present, direction),
                expected,
                "{direction:?}"
            );
        }
        // Nothing shared yet: a grant is everything asked, a revoke nothing.
        let nothing = LaunchPermissions::default();
        assert_eq!(differs(&asked, &nothing, Direction::Grant), asked);
        assert!(differs(&asked, &nothing, Direction::Revoke).is_empty());
        // Snapshots: organizations and OUs are never asked of them.
        assert_eq!(
            volume_differs(&asked, &volume(&["111111111111"], false), Direction::Grant),
            grantees(&["222222222222"], &[], true)
        );
        assert!(volume_differs(&asked, &volume(&[], false), Direction::Revoke).is_empty());
        // What is sent: a revoke names every grantee, whatever the (maybe stale) read shows.
        assert_eq!(to_send(&asked, &nothing, Direction::Revoke), asked);
        assert_eq!(
            to_send(&asked, &present, Direction::Grant),
            grantees(&["222222222222"], &[], false)
        );
        assert_eq!(
            volume_to_send(&asked, &volume(&[], false), Direction::Revoke),
            grantees(&["111111111111", "222222222222"], &[], true)
        );
    }

    #[test]
    fn the_image_is_never_launchable_without_its_volumes() {
        let asked = grantees(&["222222222222"], &[], false);
        let access = Access {
            image_id: "ami-1".into(),
            launch: LaunchPermissions::default(),
            volumes: vec![volume(&[], false)],
        };
        let kinds = |changes: Vec<Change>| -> Vec<&'static str> {
            changes
                .iter()
                .map(|change| match change {
                    Change::Launch { .. } => "launch",
                    Change::Volume { .. } => "volume",
                })
                .collect()
        };
        assert_eq!(
            kinds(changes(Direction::Grant, &asked, &access)),
            ["volume", "launch"]
        );
        assert_eq!(
            kinds(changes(Direction::Revoke, &asked, &access)),
            ["launch", "volume"]
        );
        // Already shared: a grant changes nothing.
        let shared = Access {
            launch: LaunchPermissions {
                accounts: vec!["222222222222".into()],
                ..Default::default()
            },
            volumes: vec![volume(&["222222222222"], false)],
            ..access
        };
        assert!(changes(Direction::Grant, &asked, &shared).is_empty());
    }

    #[test]
    fn organizations_never_reach_the_snapshots() {
        assert!(!reaches_snapshots(&grantees(&[], &[ORG], false), true));
        assert!(reaches_snapshots(&grantees(&[], &[], true), true));
        assert!(!reaches_snapshots(
            &grantees(&["222222222222"], &[], false),
            false
        ));
    }
}
