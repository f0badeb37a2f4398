//! Other accounts: assuming a role (credentials cached and refreshed by the SDK's provider), and
//! the organization's active accounts.

use anyhow::{Result, anyhow};
use aws_config::SdkConfig;
use aws_config::identity::IdentityCache;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::Aws;
use super::error::{AwsError, Operation};

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

/// Whether an assumed role's session was kept up for the whole run: the SDK asks STS again
/// before each session ends, and a refresh that fails (the trust policy changed, the caller's own
/// session ended, STS kept refusing) is remembered here, why included, so the account's run can
/// be reported failed as a whole. Shared by every clone of the account's `Aws`.
#[derive(Debug, Clone, Default)]
pub struct Session(Arc<OnceLock<String>>);

impl Session {
    /// Why this account's credentials could not be refreshed, if they could not.
    pub fn lost(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// An assumed role's credentials: the first session (from `Aws::assume`, which has to call STS
/// anyway to find out whether the role can be assumed) is handed out once, so starting in an
/// account costs one AssumeRole; the refreshes come from the SDK's provider. Once a refresh
/// fails, every later request fails at once, naming the role, instead of asking STS again.
#[derive(Debug)]
struct RoleCredentials {
    role_arn: String,
    provider: AssumeRoleProvider,
    first: Mutex<Option<Credentials>>,
    session: Session,
}

impl ProvideCredentials for RoleCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let first = self
                .first
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(credentials) = first {
                return Ok(credentials);
            }
            if let Some(reason) = self.session.lost() {
                return Err(CredentialsError::provider_error(reason.to_string()));
            }
            match self.provider.provide_credentials().await {
                Ok(credentials) => Ok(credentials),
                Err(err) => {
                    tracing::debug!("refreshing {}: {err:?}", self.role_arn);
                    let reason = format!(
                        "the credentials for {} could not be refreshed: {}",
                        self.role_arn,
                        sts_reason(&err)
                    );
                    let _ = self.session.0.set(reason.clone());
                    Err(CredentialsError::provider_error(reason))
                }
            }
        })
    }
}

/// The caller's credentials as the role providers use them: the SDK's AssumeRoleProvider
/// resolves its base credentials afresh for every AssumeRole (it has no cache of its own), which
/// with 64 accounts starting at once would be 64 web-identity or SSO calls. Kept until a minute
/// before they end.
#[derive(Debug)]
struct CallerCredentials {
    inner: SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

/// How long before the caller's credentials end they are fetched again.
const CALLER_RENEWAL_MARGIN: Duration = Duration::from_secs(60);

impl ProvideCredentials for CallerCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            // Held across the load: concurrent AssumeRoles wait for one resolution.
            let mut cached = self.cached.lock().await;
            let fresh = cached.as_ref().is_some_and(|credentials| {
                credentials.expiry().is_none_or(|expiry| {
                    expiry
                        .duration_since(std::time::SystemTime::now())
                        .is_ok_and(|left| left > CALLER_RENEWAL_MARGIN)
                })
            });
            if !fresh {
                *cached = Some(self.inner.provide_credentials().await?);
            }
            cached
                .clone()
                .ok_or_else(|| CredentialsError::not_loaded("no credentials"))
        })
    }
}

/// The configuration roles are assumed from: the caller's, its credentials cached.
pub(super) fn caller_config(base: &SdkConfig) -> SdkConfig {
    match base.credentials_provider() {
        Some(inner) => base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(CallerCredentials {
                inner,
                cached: Default::default(),
            }))
            .build(),
        None => base.clone(),
    }
}

impl Aws {
    /// The same configuration, acting as `role_arn`, assumed with the caller's own credentials
    /// whichever account asks (a consumer check inside an assumed account too). STS is called in
    /// the first region through its regional endpoint, whose session tokens work in opt-in
    /// regions too. The role is assumed once here, so a role that cannot be assumed fails now,
    /// naming it.
    pub async fn assume(&self, role_arn: &str) -> Result<Aws> {
        let cached = self.assumed().get(role_arn).cloned();
        let (base, session) = match cached {
            Some(cached) => cached,
            None => {
                let provider = AssumeRoleProvider::builder(role_arn)
                    .session_name("ami")
                    .configure(&self.caller)
                    .build()
                    .await;
                let first = match tokio::time::timeout(
                    Duration::from_secs(30),
                    provider.provide_credentials(),
                )
                .await
                {
                    Ok(Ok(credentials)) => credentials,
                    Ok(Err(err)) => {
                        tracing::debug!("assuming {role_arn}: {err:?}");
                        return Err(anyhow!("cannot assume {role_arn}: {}", sts_reason(&err)));
                    }
                    Err(_) => return Err(anyhow!("cannot assume {role_arn}: timed out")),
                };
                let session = Session::default();
                let credentials = RoleCredentials {
                    role_arn: role_arn.to_string(),
                    provider,
                    first: Mutex::new(Some(first)),
                    session: session.clone(),
                };
                let base = self
                    .caller
                    .to_builder()
                    .credentials_provider(SharedCredentialsProvider::new(credentials))
                    // A cache of the account's own: the shared one holds 64 providers, and
                    // an account evicted from it would assume its role again.
                    .identity_cache(IdentityCache::lazy().build())
                    .build();
                // Not locked across the STS call, so accounts are assumed concurrently; two
                // tasks racing for the same role both succeed and the first one's is kept.
                self.assumed()
                    .entry(role_arn.to_string())
                    .or_insert((base, session))
                    .clone()
            }
        };
        Ok(Aws {
            base,
            caller: self.caller.clone(),
            read_only: self.read_only,
            consumers: self.consumers.clone(),
            // Another account: buckets of its own.
            pacing: Default::default(),
            rate_scale: self.rate_scale,
            consistency_timeout: self.consistency_timeout,
            session,
        })
    }

    /// Whether this account's role session is kept up (never lost for the caller's own
    /// credentials, which the SDK refreshes on its own).
    pub fn session(&self) -> Session {
        self.session.clone()
    }

    fn assumed(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, (SdkConfig, Session)>> {
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
            let page =
                page.map_err(|err| AwsError::from_sdk(Operation::ListAccounts, &region, err))?;
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
