//! Who is calling: the account id, to tell owned images from shared ones.

use anyhow::{Result, anyhow};

use super::Aws;
use super::error::{AwsError, Operation};
use super::retry::FailFastUntilAnswered;

impl Aws {
    pub async fn account_id(&self, region: &str) -> Result<String> {
        let config = aws_sdk_sts::config::Builder::from(&self.base)
            .region(aws_config::Region::new(region.to_string()))
            .interceptor(FailFastUntilAnswered)
            .retry_classifier(FailFastUntilAnswered)
            .build();
        let output = aws_sdk_sts::Client::from_conf(config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(Operation::GetCallerIdentity, region, err))?;
        output
            .account()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("GetCallerIdentity in {region} returned no account id"))
    }
}
