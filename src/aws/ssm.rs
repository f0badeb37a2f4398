//! SSM Parameter Store: publishing an image id (`release --ssm-parameter`).

use anyhow::{Context, Result};
use aws_config::Region;
use aws_sdk_ssm::types::ParameterType;

use super::error::{AwsError, Operation};
use super::retry::FailFastUntilAnswered;
use super::{Aws, guard};

/// The data type that makes Parameter Store check the value is an AMI of the region, and lets
/// launch templates and RunInstances use `resolve:ssm:NAME`.
pub const IMAGE_DATA_TYPE: &str = "aws:ec2:image";

/// An SSM client bound to one region.
#[derive(Clone)]
pub struct Ssm {
    client: aws_sdk_ssm::Client,
    region: String,
    consistency_timeout: std::time::Duration,
}

impl Aws {
    pub fn ssm(&self, region: &str) -> Ssm {
        let mut config = aws_sdk_ssm::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .interceptor(FailFastUntilAnswered)
            .retry_classifier(FailFastUntilAnswered);
        if self.read_only {
            config = config.interceptor(guard::ReadOnly);
        }
        Ssm {
            client: aws_sdk_ssm::Client::from_conf(config.build()),
            region: region.to_string(),
            consistency_timeout: self.consistency_timeout,
        }
    }
}

impl Ssm {
    /// The parameter's current value and data type, or None when there is no such parameter.
    pub async fn parameter_value(&self, name: &str) -> Result<Option<(String, String)>> {
        match self.client.get_parameter().name(name).send().await {
            Ok(output) => Ok(output.parameter().map(|parameter| {
                (
                    parameter.value().unwrap_or_default().to_string(),
                    parameter.data_type().unwrap_or("text").to_string(),
                )
            })),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(None)
            }
            Err(err) => {
                Err(AwsError::from_sdk(Operation::GetParameter, &self.region, err).on(name))
                    .with_context(|| format!("reading SSM parameter {name}"))
            }
        }
    }

    /// Writes `image_id` to the parameter (a String of data type `aws:ec2:image`). Without
    /// `overwrite`, an existing parameter is refused by SSM (ParameterAlreadyExists), so a
    /// parameter created meanwhile by someone else is never replaced.
    pub async fn publish_image_id(
        &self,
        name: &str,
        image_id: &str,
        overwrite: bool,
    ) -> Result<()> {
        self.client
            .put_parameter()
            .name(name)
            .value(image_id)
            .r#type(ParameterType::String)
            .data_type(IMAGE_DATA_TYPE)
            .overwrite(overwrite)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(Operation::PutParameter, &self.region, err).on(name))
            .with_context(|| format!("writing SSM parameter {name}"))?;
        Ok(())
    }

    /// What the parameter holds once SSM has caught up with a write of `image_id`: Parameter
    /// Store validates `aws:ec2:image` values asynchronously (PutParameter's answer does not
    /// mean the value was taken), so it is read until it holds the id, within the bound; then
    /// whatever it holds.
    pub async fn read_back_image_id(&self, name: &str, image_id: &str) -> Result<Option<String>> {
        let held = super::settle::read_back(
            &self.region,
            self.consistency_timeout,
            || self.parameter_value(name),
            |held| held.as_ref().is_some_and(|(value, _)| value == image_id),
        )
        .await?;
        Ok(held.map(|(value, _)| value))
    }

    /// How long SSM gets to catch up.
    pub fn consistency_timeout(&self) -> std::time::Duration {
        self.consistency_timeout
    }
}
