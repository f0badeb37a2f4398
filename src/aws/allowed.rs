//! GetAllowedImagesSettings: which images an account lets itself discover and launch in a region,
//! mapped into `model`.

use super::Ec2;
use super::error::{AwsError, Operation};
use crate::model::{AllowedImages, AllowedState, ImageCriterion};

impl Ec2 {
    /// The account's Allowed AMIs settings here. An endpoint without the action is `Err` with
    /// [`AwsError::not_offered`].
    pub async fn allowed_images(&self) -> Result<AllowedImages, AwsError> {
        let output = self
            .client
            .get_allowed_images_settings()
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::GetAllowedImagesSettings, &self.region, err)
            })?;
        let state = match output.state() {
            None | Some("disabled") => AllowedState::Disabled,
            Some("audit-mode") => AllowedState::AuditMode,
            Some("enabled") => AllowedState::Enabled,
            Some(other) => AllowedState::Other(other.to_string()),
        };
        let criteria = output
            .image_criteria()
            .iter()
            .map(|criterion| {
                let mut unchecked = Vec::new();
                if !criterion.image_watermarks().is_empty() {
                    unchecked.push("image watermarks");
                }
                if criterion.scan_result_condition().is_some() {
                    unchecked.push("Amazon Inspector scan results");
                }
                ImageCriterion {
                    providers: criterion.image_providers().to_vec(),
                    names: criterion.image_names().to_vec(),
                    product_codes: criterion.marketplace_product_codes().to_vec(),
                    max_days_since_created: criterion
                        .creation_date_condition()
                        .and_then(|c| c.maximum_days_since_created()),
                    max_days_since_deprecated: criterion
                        .deprecation_time_condition()
                        .and_then(|c| c.maximum_days_since_deprecated()),
                    unchecked,
                }
            })
            .collect();
        Ok(AllowedImages { state, criteria })
    }
}
