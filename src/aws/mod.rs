//! The only module that touches AWS SDK types: client construction, paging, retries, and mapping
//! responses into `crate::model`.

pub mod accounts;
pub mod allowed;
pub mod bundles;
pub mod error;
pub mod guard;
pub mod identity;
pub mod images;
pub mod instances;
pub mod lifecycle;
pub mod pacing;
pub mod partition;
pub mod recycle_bin;
pub mod retry;
pub mod settle;
pub mod sharing;
pub mod snapshots;
pub mod ssm;
pub mod usage;
pub mod usage_reports;

use anyhow::Result;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use std::time::Duration;

use crate::config::{Settings, env_non_empty};
use crate::error::usage;
use retry::{DEFAULT_MAX_ATTEMPTS, FailFastUntilAnswered};

/// Shared AWS configuration; hands out per-region clients.
#[derive(Clone)]
pub struct Aws {
    base: SdkConfig,
    /// The caller's own configuration, which every role is assumed from (never from another
    /// assumed role: a chain would tie one account's renewals to another's).
    caller: SdkConfig,
    /// --dry-run: every client refuses calls that could change the account (see `guard`).
    read_only: bool,
    /// EC2's buckets as this run paces itself to them, per region (shared by its clients).
    pacing: std::sync::Arc<
        std::sync::Mutex<std::collections::BTreeMap<String, std::sync::Arc<pacing::Pacing>>>,
    >,
    /// AMI_EC2_RATE_SCALE: accounts whose request limits AWS raised.
    rate_scale: f64,
    /// How long AWS gets to catch up with what this run did (`settle`).
    consistency_timeout: Duration,
    /// Whether this account's role session could be kept up (`accounts::Session`); the caller's
    /// own credentials are the SDK's to refresh.
    session: accounts::Session,
    /// How accounts an image is shared with are checked before it is retired.
    pub consumers: ConsumerPolicy,
}

/// Checking the accounts an image is shared with (see `usage::consumer_usage`).
#[derive(Clone)]
pub struct ConsumerPolicy {
    /// The role to assume in each consumer account; without one they cannot be checked.
    pub role_name: Option<String>,
    /// --ignore-consumers: retire shared images without looking in the accounts using them.
    pub ignore: bool,
    /// How long to wait for image usage reports (--timeout).
    pub report_timeout: Duration,
    /// Told how the usage reports are coming along (a progress bar on a terminal).
    pub report_progress: Option<usage_reports::ReportProgress>,
    /// Roles assumed so far in this run, by ARN: each is assumed once, its credentials cached
    /// and refreshed by the SDK.
    pub assumed: std::sync::Arc<
        std::sync::Mutex<std::collections::BTreeMap<String, (SdkConfig, accounts::Session)>>,
    >,
}

/// How long image usage reports may take unless --timeout says otherwise.
pub const DEFAULT_REPORT_TIMEOUT: Duration = Duration::from_secs(600);

impl Default for ConsumerPolicy {
    fn default() -> Self {
        ConsumerPolicy {
            role_name: None,
            ignore: false,
            report_timeout: DEFAULT_REPORT_TIMEOUT,
            report_progress: None,
            assumed: Default::default(),
        }
    }
}

impl Aws {
    /// Loads credentials and settings the AWS CLI way, and fails early, on one line, when no
    /// credentials can be found.
    pub async fn connect(settings: &Settings) -> Result<Aws> {
        let first_region = settings.regions.first().cloned().unwrap_or_default();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .region(Region::new(first_region))
            .retry_config(retry_config(settings).await);
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let base = loader.load().await;
        check_credentials(&base, settings.profile.as_deref()).await?;
        let caller = accounts::caller_config(&base);
        Ok(Aws {
            base,
            caller,
            read_only: settings.dry_run,
            consumers: ConsumerPolicy::default(),
            pacing: Default::default(),
            rate_scale: settings.rate_scale,
            consistency_timeout: settings.consistency_timeout,
            session: Default::default(),
        })
    }

    pub fn with_consumers(mut self, role_name: Option<String>, ignore: bool) -> Aws {
        self.consumers.role_name = role_name;
        self.consumers.ignore = ignore;
        self
    }

    /// How long usage reports may take, and who hears about their progress.
    pub fn with_reports(
        mut self,
        timeout: Duration,
        progress: Option<usage_reports::ReportProgress>,
    ) -> Aws {
        self.consumers.report_timeout = timeout;
        self.consumers.report_progress = progress;
        self
    }

    pub fn ec2(&self, region: &str) -> Ec2 {
        let mut config = aws_sdk_ec2::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .interceptor(FailFastUntilAnswered)
            .retry_classifier(FailFastUntilAnswered);
        if self.read_only {
            config = config.interceptor(guard::ReadOnly);
        }
        let config = config.build();
        let pacing = {
            let mut regions = self
                .pacing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            regions
                .entry(region.to_string())
                .or_insert_with(|| std::sync::Arc::new(pacing::Pacing::new(self.rate_scale)))
                .clone()
        };
        Ec2 {
            client: aws_sdk_ec2::Client::from_conf(config),
            region: region.to_string(),
            pacing,
            consistency_timeout: self.consistency_timeout,
        }
    }
}

/// The SDK's default HTTPS client (hyper 1, rustls, proxy settings from the environment), on
/// ring instead of aws-lc: the same behaviour without a second large C library to build.
fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

impl Aws {
    pub fn s3(&self, region: &str) -> S3 {
        let mut config = aws_sdk_s3::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .interceptor(FailFastUntilAnswered)
            .retry_classifier(FailFastUntilAnswered);
        if self.read_only {
            config = config.interceptor(guard::ReadOnly);
        }
        let config = config.build();
        S3 {
            client: aws_sdk_s3::Client::from_conf(config),
            region: region.to_string(),
        }
    }

    pub fn autoscaling(&self, region: &str) -> aws_sdk_autoscaling::Client {
        let mut config = aws_sdk_autoscaling::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .interceptor(FailFastUntilAnswered)
            .retry_classifier(FailFastUntilAnswered);
        if self.read_only {
            config = config.interceptor(guard::ReadOnly);
        }
        let config = config.build();
        aws_sdk_autoscaling::Client::from_conf(config)
    }
}

/// An S3 client bound to one region (bundles live in the region of their image).
#[derive(Clone)]
pub struct S3 {
    client: aws_sdk_s3::Client,
    region: String,
}

/// An EC2 client bound to one region; the region names every error it returns.
#[derive(Clone)]
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    region: String,
    pacing: std::sync::Arc<pacing::Pacing>,
    consistency_timeout: Duration,
}

impl Ec2 {
    pub fn region(&self) -> &str {
        &self.region
    }
}

/// Adaptive retries (client-side rate limiting when AWS throttles) unless AWS_RETRY_MODE says
/// otherwise; attempts from --max-attempts, else AWS_MAX_ATTEMPTS / the profile, else
/// `DEFAULT_MAX_ATTEMPTS`.
async fn retry_config(settings: &Settings) -> RetryConfig {
    let mut provider = aws_config::default_provider::retry_config::default_provider();
    if let Some(profile) = &settings.profile {
        provider = provider.profile_name(profile);
    }
    let resolved = provider.retry_config().await;
    // The provider answers the SDK's default (3) when nothing is configured, so ask the profile
    // itself whether it sets max_attempts: a profile that says 3 means 3.
    let configured = env_non_empty("AWS_MAX_ATTEMPTS").is_some()
        || resolved.max_attempts() != RetryConfig::standard().max_attempts()
        || profile_sets_max_attempts(settings.profile.as_deref()).await;
    let max_attempts = settings.max_attempts.unwrap_or(if configured {
        resolved.max_attempts()
    } else {
        DEFAULT_MAX_ATTEMPTS
    });
    let base = if env_non_empty("AWS_RETRY_MODE").is_some() {
        resolved
    } else {
        RetryConfig::adaptive()
    };
    base.with_max_attempts(max_attempts)
}

/// Whether the selected profile of the AWS config files sets `max_attempts`.
async fn profile_sets_max_attempts(profile: Option<&str>) -> bool {
    let profiles = aws_config::profile::load(
        &aws_types::os_shim_internal::Fs::real(),
        &aws_types::os_shim_internal::Env::real(),
        &aws_runtime::env_config::file::EnvConfigFiles::default(),
        profile.map(|name| std::borrow::Cow::Owned(name.to_string())),
    )
    .await;
    profiles.is_ok_and(|profiles| profiles.get("max_attempts").is_some())
}

async fn check_credentials(config: &SdkConfig, profile: Option<&str>) -> Result<()> {
    let hint = || {
        format!(
            "no AWS credentials found (profile '{}'): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
             pass --profile, or run `aws configure`",
            profile.unwrap_or("default")
        )
    };
    let Some(provider) = config.credentials_provider() else {
        return Err(usage(hint()));
    };
    // Bounded: a provider that can only time out (no metadata service here) must not hang the CLI.
    match tokio::time::timeout(Duration::from_secs(20), provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => {
            // The SDK's explanation lists every provider it tried, over several lines: -vv shows it.
            tracing::debug!("credential lookup failed: {err:?}");
            Err(usage(hint()))
        }
        Err(_) => Err(usage(format!("{} (timed out looking for them)", hint()))),
    }
}
