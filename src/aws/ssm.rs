//! SSM Parameter Store: publishing an image id (`release --ssm-parameter`).

use anyhow::{Context, Result};
use aws_config::Region;
use aws_sdk_ssm::types::ParameterType;

use super::error::AwsError;
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
            Err(err) => Err(AwsError::from_sdk("GetParameter", &self.region, &err))
                .with_context(|| format!("reading SSM parameter {name}")),
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
            .map_err(|err| AwsError::from_sdk("PutParameter", &self.region, &err))
            .with_context(|| format!("writing SSM parameter {name}"))?;
        Ok(())
    }
}
