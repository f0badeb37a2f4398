//! Images an AWS service made and keeps its own books on: retiring them behind the service's
//! back either fails (EC2 refuses to deregister AWS Backup's) or leaves the service wrong. Every
//! plan keeps them, naming the service and what to do instead.

use crate::model::Image;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// A recovery point of AWS Backup (tag `aws:backup:source-resource`, or an image of a
    /// logically air-gapped vault, owner alias `aws-backup-vault`).
    Backup,
    /// Made by a Data Lifecycle Manager policy (tag `aws:dlm:lifecycle-policy-id`).
    LifecycleManager,
    /// Distributed by EC2 Image Builder (tag `Ec2ImageBuilderArn`, or `CreatedBy` = `EC2 Image
    /// Builder`).
    ImageBuilder,
}

impl Service {
    /// Which service made `image`, from the marks the services put on theirs.
    pub fn of(image: &Image) -> Option<Service> {
        let tag = |key: &str| image.tags.get(key).map(String::as_str);
        if tag("aws:backup:source-resource").is_some()
            || image.image_owner_alias.as_deref() == Some("aws-backup-vault")
        {
            Some(Service::Backup)
        } else if tag("aws:dlm:lifecycle-policy-id").is_some() {
            Some(Service::LifecycleManager)
        } else if tag("Ec2ImageBuilderArn").is_some()
            || tag("CreatedBy") == Some("EC2 Image Builder")
        {
            Some(Service::ImageBuilder)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Backup => "AWS Backup",
            Service::LifecycleManager => "Data Lifecycle Manager",
            Service::ImageBuilder => "EC2 Image Builder",
        }
    }

    /// Why a plan keeps what this service made, and what to do instead.
    fn keeps(self) -> String {
        format!("made and managed by {}: {}", self.name(), self.instead())
    }

    /// What retires such an image properly.
    pub fn instead(self) -> &'static str {
        match self {
            Service::Backup => {
                "delete its recovery point in AWS Backup (or shorten the backup plan's retention)"
            }
            Service::LifecycleManager => {
                "change the retention of its lifecycle policy (aws dlm update-lifecycle-policy)"
            }
            Service::ImageBuilder => {
                "delete the image version in Image Builder, or retire it with an Image Builder lifecycle policy"
            }
        }
    }
}

/// Which service made a snapshot, from its tags: AWS Backup's and Data Lifecycle Manager's
/// snapshots are theirs to delete (EC2 refuses DeleteSnapshot on AWS Backup's).
pub fn snapshot_block(tags: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let service = if tags.contains_key("aws:backup:source-resource") {
        Service::Backup
    } else if tags.contains_key("aws:dlm:lifecycle-policy-id") {
        Service::LifecycleManager
    } else {
        return None;
    };
    Some(service.keeps())
}

/// Why a plan keeps `image`, when a service owns it.
pub fn managed_block(image: &Image) -> Option<String> {
    Service::of(image).map(Service::keeps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixture::image;

    #[test]
    fn each_service_is_told_by_its_own_mark() {
        let cases = [
            (
                image("ami-1")
                    .tag("aws:backup:source-resource", "i-1:x")
                    .build(),
                Some(Service::Backup),
            ),
            (
                image("ami-2").owner_alias("aws-backup-vault").build(),
                Some(Service::Backup),
            ),
            (
                image("ami-3")
                    .tag("aws:dlm:lifecycle-policy-id", "policy-1")
                    .build(),
                Some(Service::LifecycleManager),
            ),
            (
                image("ami-4")
                    .tag("Ec2ImageBuilderArn", "arn:aws:imagebuilder:x")
                    .build(),
                Some(Service::ImageBuilder),
            ),
            (
                image("ami-5").tag("CreatedBy", "EC2 Image Builder").build(),
                Some(Service::ImageBuilder),
            ),
            (image("ami-6").tag("CreatedBy", "packer").build(), None),
            (image("ami-7").owner_alias("amazon").build(), None),
        ];
        for (image, service) in cases {
            assert_eq!(Service::of(&image), service, "{}", image.image_id);
        }
        let reason = managed_block(
            &image("ami-8")
                .tag("aws:dlm:lifecycle-policy-id", "p")
                .build(),
        );
        assert!(reason.unwrap().contains("Data Lifecycle Manager"));
    }
}
