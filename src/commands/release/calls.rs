//! The mutating calls a release makes, typed. Each stage's plan is a list of them: a dry run
//! shows and checks that list, and the real run makes exactly the calls on it.

use anyhow::{Result, anyhow};
use std::time::Duration;

use super::TESTED_TAG;
use crate::commands::dry_run::PlannedCall;
use crate::model::DryRunCheck;

/// The image a call acts on in its region: this release's image there, or the one an earlier
/// stage makes (a dry run, before it exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSlot {
    Made(String),
    ToBeMade,
}

impl ImageSlot {
    pub fn from_id(id: Option<String>) -> ImageSlot {
        id.map_or(ImageSlot::ToBeMade, ImageSlot::Made)
    }

    fn shown(&self) -> &str {
        match self {
            ImageSlot::Made(id) => id,
            ImageSlot::ToBeMade => "(the new image)",
        }
    }

    /// The image's id, for a real run: an earlier stage made it.
    pub fn id(&self, region: &str) -> Result<&str> {
        match self {
            ImageSlot::Made(id) => Ok(id),
            ImageSlot::ToBeMade => Err(anyhow!("no image of this release in {region}")),
        }
    }
}

/// The instances a TerminateInstances acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instances {
    /// Test instances an interrupted run left running.
    LeftOver(Vec<String>),
    /// The one the test stage launches: terminated whatever happened to the test.
    TheTestInstance,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    CreateImage {
        region: String,
        instance_id: String,
        name: String,
        description: Option<String>,
        no_reboot: bool,
        tags: Vec<(String, String)>,
    },
    TerminateInstances {
        region: String,
        instances: Instances,
    },
    RunInstances {
        region: String,
        image: ImageSlot,
        instance_type: String,
    },
    /// CreateTags of the test mark on the tested image.
    MarkTested {
        region: String,
        image: ImageSlot,
    },
    CopyImage {
        region: String,
        source_region: String,
        source: ImageSlot,
        name: String,
        completion_minutes: Option<u32>,
        /// The source's tags, sent with the copy (and put back where a region drops them).
        tags: Vec<(String, String)>,
    },
    /// A copy an earlier run started: waited for, and given the tags it lacks.
    FinishCopy {
        region: String,
        image_id: String,
        missing_tags: Vec<(String, String)>,
    },
    /// ModifyImageAttribute (launch permission), and ModifySnapshotAttribute (create-volume
    /// permission) for `snapshot_accounts` when there are any.
    Share {
        region: String,
        image: ImageSlot,
        who: String,
        snapshot_accounts: Vec<String>,
    },
    EnableDeprecation {
        region: String,
        image: ImageSlot,
        after: Duration,
    },
    EnableProtection {
        region: String,
        image: ImageSlot,
    },
    PutParameter {
        region: String,
        name: String,
        image: ImageSlot,
        overwrite: bool,
    },
}

impl Call {
    pub fn region(&self) -> &str {
        match self {
            Call::CreateImage { region, .. }
            | Call::TerminateInstances { region, .. }
            | Call::RunInstances { region, .. }
            | Call::MarkTested { region, .. }
            | Call::CopyImage { region, .. }
            | Call::FinishCopy { region, .. }
            | Call::Share { region, .. }
            | Call::EnableDeprecation { region, .. }
            | Call::EnableProtection { region, .. }
            | Call::PutParameter { region, .. } => region,
        }
    }

    /// The AWS actions this call is, each with what it acts on, as a dry run lists them.
    fn actions(&self) -> Vec<(&'static str, String)> {
        match self {
            Call::CreateImage {
                instance_id, name, ..
            } => vec![(
                "ec2:CreateImage",
                format!("InstanceId={instance_id} Name={name}"),
            )],
            Call::TerminateInstances { instances, .. } => vec![(
                "ec2:TerminateInstances",
                match instances {
                    Instances::LeftOver(ids) => {
                        format!("{} (left by an interrupted run)", ids.join(", "))
                    }
                    Instances::TheTestInstance => "the test instance".to_string(),
                },
            )],
            Call::RunInstances {
                image,
                instance_type,
                ..
            } => vec![(
                "ec2:RunInstances",
                format!("ImageId={} InstanceType={instance_type}", image.shown()),
            )],
            Call::MarkTested { image, .. } => vec![(
                "ec2:CreateTags",
                format!("{TESTED_TAG} on {}", image.shown()),
            )],
            Call::CopyImage {
                source_region,
                source,
                name,
                completion_minutes,
                ..
            } => vec![(
                "ec2:CopyImage",
                format!(
                    "SourceImageId={} SourceRegion={source_region} Name={name}{}",
                    source.shown(),
                    crate::commands::copy::completion_note(*completion_minutes)
                ),
            )],
            // Only a wait, unless the copy lacks tags.
            Call::FinishCopy {
                image_id,
                missing_tags,
                ..
            } if !missing_tags.is_empty() => vec![(
                "ec2:CreateTags",
                format!(
                    "{} on {image_id} (copied by an earlier run), once available",
                    missing_tags
                        .iter()
                        .map(|(key, _)| key.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )],
            Call::FinishCopy { .. } => Vec::new(),
            Call::Share {
                image,
                who,
                snapshot_accounts,
                ..
            } => {
                let mut actions = vec![(
                    "ec2:ModifyImageAttribute",
                    format!("{} launchPermission add {who}", image.shown()),
                )];
                if !snapshot_accounts.is_empty() {
                    actions.push((
                        "ec2:ModifySnapshotAttribute",
                        format!(
                            "{}'s snapshots createVolumePermission add {}",
                            image.shown(),
                            snapshot_accounts.join(", ")
                        ),
                    ));
                }
                actions
            }
            Call::EnableDeprecation { image, after, .. } => vec![(
                "ec2:EnableImageDeprecation",
                format!(
                    "{}, {} from now",
                    image.shown(),
                    crate::duration::format(*after)
                ),
            )],
            Call::EnableProtection { image, .. } => vec![(
                "ec2:EnableImageDeregistrationProtection",
                image.shown().to_string(),
            )],
            Call::PutParameter {
                name,
                image,
                overwrite,
                ..
            } => vec![(
                "ssm:PutParameter",
                format!(
                    "Name={name} Value={} DataType=aws:ec2:image{}",
                    image.shown(),
                    if *overwrite { " Overwrite=true" } else { "" }
                ),
            )],
        }
    }

    /// Why a dry run does not ask AWS about this call; `None` when it does (the action has a
    /// DryRun form and what it acts on exists).
    pub fn unchecked_reason(&self) -> Option<&'static str> {
        let missing = "the image does not exist yet";
        match self {
            Call::CreateImage { .. } => None,
            Call::RunInstances { image, .. } | Call::CopyImage { source: image, .. } => {
                (*image == ImageSlot::ToBeMade).then_some(missing)
            }
            Call::TerminateInstances {
                instances: Instances::LeftOver(_),
                ..
            } => Some("TerminateInstances is not asked in a dry run"),
            Call::TerminateInstances {
                instances: Instances::TheTestInstance,
                ..
            }
            | Call::MarkTested { .. } => Some("the test instance does not exist yet"),
            Call::FinishCopy { .. } => {
                Some("made once the copy is available, for the tags it lacks then")
            }
            Call::Share { image, .. }
            | Call::EnableDeprecation { image, .. }
            | Call::EnableProtection { image, .. } => Some(match image {
                ImageSlot::ToBeMade => missing,
                ImageSlot::Made(_) => "not asked in a dry run",
            }),
            Call::PutParameter { .. } => Some("SSM's PutParameter has no DryRun form"),
        }
    }

    /// As a dry run lists it, with AWS's answer (or why it was not asked).
    pub fn planned(&self, check: &DryRunCheck) -> Vec<PlannedCall> {
        self.actions()
            .into_iter()
            .map(|(call, target)| PlannedCall {
                region: self.region().to_string(),
                call: call.to_string(),
                target,
                aws: check.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_on_an_image_not_made_yet_is_never_asked() {
        let region = || "us-east-1".to_string();
        let calls = [
            Call::RunInstances {
                region: region(),
                image: ImageSlot::ToBeMade,
                instance_type: "t3.micro".into(),
            },
            Call::CopyImage {
                region: "eu-west-1".into(),
                source_region: region(),
                source: ImageSlot::ToBeMade,
                name: "web".into(),
                completion_minutes: None,
                tags: Vec::new(),
            },
        ];
        for call in calls {
            assert_eq!(
                call.unchecked_reason(),
                Some("the image does not exist yet"),
                "{call:?}"
            );
            let made = match call {
                Call::RunInstances { .. } => Call::RunInstances {
                    region: region(),
                    image: ImageSlot::Made("ami-1".into()),
                    instance_type: "t3.micro".into(),
                },
                _ => Call::CopyImage {
                    region: "eu-west-1".into(),
                    source_region: region(),
                    source: ImageSlot::Made("ami-1".into()),
                    name: "web".into(),
                    completion_minutes: None,
                    tags: Vec::new(),
                },
            };
            assert_eq!(made.unchecked_reason(), None, "{made:?}");
        }
    }

    #[test]
    fn sharing_lists_the_snapshot_grant_only_for_accounts() {
        let share = |accounts: Vec<String>| Call::Share {
            region: "us-east-1".into(),
            image: ImageSlot::Made("ami-1".into()),
            who: "o-1".into(),
            snapshot_accounts: accounts,
        };
        let listed = |call: Call| -> Vec<String> {
            call.planned(&DryRunCheck::Allowed)
                .into_iter()
                .map(|c| format!("{} {}", c.call, c.target))
                .collect()
        };
        assert_eq!(
            listed(share(Vec::new())),
            ["ec2:ModifyImageAttribute ami-1 launchPermission add o-1"]
        );
        assert_eq!(
            listed(share(vec!["111122223333".into()])),
            [
                "ec2:ModifyImageAttribute ami-1 launchPermission add o-1",
                "ec2:ModifySnapshotAttribute ami-1's snapshots createVolumePermission add \
                 111122223333"
            ]
        );
    }
}
