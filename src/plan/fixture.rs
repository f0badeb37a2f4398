//! One way for the planner's tests to make an `Image`: an available EBS image of the test
//! account, without snapshots, unless the builder says otherwise.

use chrono::{DateTime, Utc};

use crate::model::{BlockDevice, Image, ImageState};

pub const ACCOUNT: &str = "111122223333";

pub struct ImageBuilder(Image);

/// The retention tests' image: named, `days_old` days before `now`.
pub fn aged(id: &str, name: &str, days_old: i64, now: DateTime<Utc>) -> Image {
    image(id)
        .name(name)
        .created(now - chrono::Duration::days(days_old))
        .build()
}

pub fn image(id: &str) -> ImageBuilder {
    ImageBuilder(Image {
        region: "us-east-1".into(),
        image_id: id.into(),
        name: None,
        description: None,
        owner_id: Some(ACCOUNT.into()),
        state: ImageState::Available,
        state_reason: None,
        root_device_type: "ebs".into(),
        root_device_name: Some("/dev/xvda".into()),
        architecture: None,
        creation_date: None,
        block_devices: Vec::new(),
        image_location: None,
        public: false,
        tags: Default::default(),
        deprecation_time: None,
        deregistration_protection: Some("disabled".into()),
        last_launched_time: None,
        source_instance_id: None,
        source_image_id: None,
        source_image_region: None,
        image_owner_alias: None,
    })
}

impl ImageBuilder {
    pub fn name(mut self, name: &str) -> Self {
        self.0.name = Some(name.into());
        self
    }

    pub fn owner(mut self, owner: Option<&str>) -> Self {
        self.0.owner_id = owner.map(String::from);
        self
    }

    pub fn state(mut self, state: &str) -> Self {
        self.0.state = ImageState::from(state);
        self
    }

    pub fn created(mut self, at: DateTime<Utc>) -> Self {
        self.0.creation_date = Some(at);
        self
    }

    /// EBS volumes `/dev/xvda`, `/dev/xvdb`, ... of 8 GiB from these snapshots.
    pub fn snapshots(mut self, snapshots: &[&str]) -> Self {
        self.0.block_devices = snapshots
            .iter()
            .enumerate()
            .map(|(i, snapshot)| BlockDevice {
                device_name: format!("/dev/xvd{}", (b'a' + i as u8) as char),
                snapshot_id: Some(snapshot.to_string()),
                volume_size_gib: Some(8),
                volume_type: Some("gp3".into()),
                virtual_name: None,
            })
            .collect();
        self
    }

    /// An instance-store image registered from `bucket/prefix/name.manifest.xml`.
    pub fn bundle(mut self, location: &str) -> Self {
        self.0.root_device_type = "instance-store".into();
        self.0.image_location = Some(location.into());
        self
    }

    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.tags.insert(key.into(), value.into());
        self
    }

    pub fn protection(mut self, value: &str) -> Self {
        self.0.deregistration_protection = Some(value.into());
        self
    }

    pub fn region(mut self, region: &str) -> Self {
        self.0.region = region.into();
        self
    }

    /// Made by CopyImage from `source` in `region`.
    pub fn copied_from(mut self, region: &str, source: &str) -> Self {
        self.0.source_image_region = Some(region.into());
        self.0.source_image_id = Some(source.into());
        self
    }

    /// Made by CreateImage from `instance`, which was launched from `source` in `region`.
    pub fn built_from(mut self, region: &str, source: &str, instance: &str) -> Self {
        self.0.source_instance_id = Some(instance.into());
        self.copied_from(region, source)
    }

    pub fn owner_alias(mut self, alias: &str) -> Self {
        self.0.image_owner_alias = Some(alias.into());
        self
    }

    pub fn build(self) -> Image {
        self.0
    }
}
