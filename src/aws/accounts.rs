//! Other accounts: assuming a role (credentials cached and refreshed by the SDK's provider), and
//! the organization's active accounts.

use anyhow::{Result, anyhow};
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use std::time::Duration;

use super::Aws;
use super::error::AwsError;

/// The role ARN in the region's partition (`super::partition`).
pub fn role_arn(region: &str, account_id: &str, role_name: &str) -> String {
    format!(
        "arn:{}:iam::{account_id}:role/{role_name}",
        super::partition::partition(region)
    )
}

/// STS's own code and message when it answered (AccessDenied: ... not authorized ...), else the
/// credential error's text.
fn sts_reason(err: &aws_credential_types::provider::error::CredentialsError) -> String {
    use aws_sdk_sts::error::ProvideErrorMetadata;
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(sdk) =
            current.downcast_ref::<aws_sdk_sts::error::SdkError<
                AssumeRoleError,
                aws_smithy_runtime_api::http::Response,
            >>()
            && let Some(code) = sdk.code()
        {
            return format!("{code}: {}", sdk.message().unwrap_or_default());
        }
        cause = current.source();
    }
    crate::error::one_line(&anyhow::anyhow!(err.to_string()))
}

impl Aws {
    /// The same configuration, acting as `role_arn`. STS is called in this configuration's
    /// region through its regional endpoint, whose session tokens work in opt-in regions too.
    /// The role is assumed once here, so a role that cannot be assumed fails now, naming it.
    pub async fn assume(&self, role_arn: &str) -> Result<Aws> {
        let cached = self.assumed().get(role_arn).cloned();
        if let Some(base) = cached {
            return Ok(Aws {
                base,
                read_only: self.read_only,
                consumers: self.consumers.clone(),
                // Another account: buckets of its own.
                pacing: Default::default(),
                rate_scale: self.rate_scale,
                consistency_timeout: self.consistency_timeout,
            });
        }
        let provider = AssumeRoleProvider::builder(role_arn)
            .session_name("ami")
            .configure(&self.base)
            .build()
            .await;
        match tokio::time::timeout(Duration::from_secs(30), provider.provide_credentials()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::debug!("assuming {role_arn}: {err:?}");
                return Err(anyhow!("cannot assume {role_arn}: {}", sts_reason(&err)));
            }
            Err(_) => return Err(anyhow!("cannot assume {role_arn}: timed out")),
        }
        let base = self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
        // Not locked across the STS call, so accounts are assumed concurrently; two tasks
        // racing for the same role both succeed and the first one's configuration is kept.
        let base = self
            .assumed()
            .entry(role_arn.to_string())
            .or_insert(base)
            .clone();
        Ok(Aws {
            base,
            read_only: self.read_only,
            consumers: self.consumers.clone(),
            pacing: Default::default(),
            rate_scale: self.rate_scale,
            consistency_timeout: self.consistency_timeout,
        })
    }

    fn assumed(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, aws_config::SdkConfig>> {
        // A panic elsewhere cannot leave the cache half-written: entries are inserted whole.
        self.consumers
            .assumed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The organization's active accounts (run from its management or a delegated account).
    pub async fn organization_accounts(&self) -> Result<Vec<String>> {
        let client = aws_sdk_organizations::Client::new(&self.base);
        let mut pages = client.list_accounts().into_paginator().send();
        let region = self
            .base
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| AwsError::from_sdk("ListAccounts", &region, &err))?;
            for account in page.accounts() {
                let active = account
                    .state()
                    .map(|s| s.as_str() == "ACTIVE")
                    .or_else(|| {
                        #[allow(deprecated)]
                        account.status().map(|s| s.as_str() == "ACTIVE")
                    })
                    .unwrap_or(false);
                if active && let Some(id) = account.id() {
                    ids.push(id.to_string());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }
}
