//! Launch permissions on images and create-volume permissions on their snapshots.

use anyhow::Result;
use aws_sdk_ec2::types::{
    LaunchPermission, LaunchPermissionModifications, OperationType, PermissionGroup,
    SnapshotAttributeName,
};

use aws_sdk_ec2::operation::modify_image_attribute::builders::ModifyImageAttributeFluentBuilder;
use aws_sdk_ec2::operation::modify_snapshot_attribute::builders::ModifySnapshotAttributeFluentBuilder;

use super::Ec2;
use super::error::{AwsError, Operation, dry_run_answer, service_code};
use crate::model::{DryRunCheck, Grantees};

impl Ec2 {
    pub async fn modify_launch_permissions(
        &self,
        image_id: &str,
        grantees: &Grantees,
        revoke: bool,
    ) -> Result<(), AwsError> {
        self.launch_permissions_request(image_id, grantees, revoke)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::ModifyImageAttribute, &self.region, err).on(image_id)
            })?;
        Ok(())
    }

    /// AWS's DryRun check of the same ModifyImageAttribute.
    pub async fn check_launch_permissions(
        &self,
        image_id: &str,
        grantees: &Grantees,
        revoke: bool,
    ) -> Result<DryRunCheck, AwsError> {
        let result = self
            .launch_permissions_request(image_id, grantees, revoke)
            .dry_run(true)
            .send()
            .await;
        dry_run_answer(Operation::ModifyImageAttribute, &self.region, result)
    }

    fn launch_permissions_request(
        &self,
        image_id: &str,
        grantees: &Grantees,
        revoke: bool,
    ) -> ModifyImageAttributeFluentBuilder {
        let mut permissions: Vec<LaunchPermission> = Vec::new();
        for account in &grantees.accounts {
            permissions.push(LaunchPermission::builder().user_id(account).build());
        }
        for org in &grantees.organizations {
            permissions.push(LaunchPermission::builder().organization_arn(org).build());
        }
        for ou in &grantees.organizational_units {
            permissions.push(
                LaunchPermission::builder()
                    .organizational_unit_arn(ou)
                    .build(),
            );
        }
        if grantees.public {
            permissions.push(
                LaunchPermission::builder()
                    .group(PermissionGroup::All)
                    .build(),
            );
        }
        let modifications = if revoke {
            LaunchPermissionModifications::builder().set_remove(Some(permissions))
        } else {
            LaunchPermissionModifications::builder().set_add(Some(permissions))
        }
        .build();
        self.client
            .modify_image_attribute()
            .image_id(image_id)
            .launch_permission(modifications)
    }

    /// Create-volume permission on a snapshot: accounts and `all` only (AWS takes no
    /// organizations or OUs on snapshots).
    pub async fn modify_create_volume_permission(
        &self,
        snapshot_id: &str,
        accounts: &[String],
        public: bool,
        revoke: bool,
    ) -> Result<(), AwsError> {
        self.create_volume_permission_request(snapshot_id, accounts, public, revoke)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::ModifySnapshotAttribute, &self.region, err)
                    .on(snapshot_id)
            })?;
        Ok(())
    }

    /// AWS's DryRun check of the same ModifySnapshotAttribute.
    pub async fn check_create_volume_permission(
        &self,
        snapshot_id: &str,
        accounts: &[String],
        public: bool,
        revoke: bool,
    ) -> Result<DryRunCheck, AwsError> {
        let result = self
            .create_volume_permission_request(snapshot_id, accounts, public, revoke)
            .dry_run(true)
            .send()
            .await;
        dry_run_answer(Operation::ModifySnapshotAttribute, &self.region, result)
    }

    fn create_volume_permission_request(
        &self,
        snapshot_id: &str,
        accounts: &[String],
        public: bool,
        revoke: bool,
    ) -> ModifySnapshotAttributeFluentBuilder {
        self.client
            .modify_snapshot_attribute()
            .snapshot_id(snapshot_id)
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .operation_type(if revoke {
                OperationType::Remove
            } else {
                OperationType::Add
            })
            .set_user_ids(Some(accounts.to_vec()).filter(|ids| !ids.is_empty()))
            .set_group_names(public.then(|| vec!["all".to_string()]))
    }

    /// Accounts with create-volume permission, and whether it is public.
    pub async fn create_volume_permissions(
        &self,
        snapshot_id: &str,
    ) -> Result<(Vec<String>, bool), AwsError> {
        let output = self
            .client
            .describe_snapshot_attribute()
            .snapshot_id(snapshot_id)
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::DescribeSnapshotAttribute, &self.region, err)
                    .on(snapshot_id)
            })?;
        let mut accounts = Vec::new();
        let mut public = false;
        for permission in output.create_volume_permissions() {
            if let Some(account) = permission.user_id() {
                accounts.push(account.to_string());
            }
            if permission
                .group()
                .is_some_and(|group| group.as_str() == "all")
            {
                public = true;
            }
        }
        accounts.sort();
        Ok((accounts, public))
    }

    /// The account's image block-public-access state (`block-new-sharing` or `unblocked`), or
    /// Err with why it could not be read.
    pub async fn image_block_public_access(&self) -> Result<String, String> {
        match self
            .client
            .get_image_block_public_access_state()
            .send()
            .await
        {
            Ok(output) => Ok(output
                .image_block_public_access_state()
                .unwrap_or("unknown")
                .to_string()),
            Err(err) => Err(match service_code(&err) {
                Some(code) => code.to_string(),
                None => {
                    AwsError::from_sdk(Operation::GetImageBlockPublicAccessState, &self.region, err)
                        .to_string()
                }
            }),
        }
    }
}
