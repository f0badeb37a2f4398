//! One verb over many accounts: `--role-arn` (one role, assumed once), `--accounts ID,...` or
//! `--accounts-from-org` with `--role-name` (assumed in each). Accounts run concurrently, each
//! with the verb's own per-region concurrency; every account's outcome is reported, and one
//! whose role cannot be assumed does not stop the others.

use anyhow::Result;
use futures::{StreamExt, stream};
use serde::Serialize;
use std::future::Future;

use crate::aws::Aws;
use crate::aws::accounts::role_arn;
use crate::cli::AccountArgs;
use crate::config::Settings;
use crate::error::{Outcome, one_line, usage};
use crate::output::{Printer, Render, TableStyle};

/// Accounts worked on at once (each then runs its regions concurrently).
const ACCOUNT_CONCURRENCY: usize = 4;

#[derive(Debug, Serialize)]
pub struct FleetOutput<T> {
    /// In the order given (by id for --accounts-from-org).
    pub accounts: Vec<AccountResult<T>>,
}

#[derive(Debug, Serialize)]
pub struct AccountResult<T> {
    pub account_id: String,
    pub role_arn: String,
    /// Why nothing (or not everything) could be done in this account.
    pub error: Option<String>,
    /// The verb's own document for this account (regions inside).
    pub result: Option<T>,
}

impl AccountArgs {
    pub fn validate(&self) -> Result<()> {
        if let Some(arn) = &self.role_arn {
            crate::ids::role_arn(arn)?;
        }
        for account in &self.accounts {
            crate::ids::account_id(account)?;
        }
        if let Some(name) = &self.role_name {
            crate::ids::role_name(name)?;
        }
        Ok(())
    }

    /// Many accounts in one run (not one role).
    pub fn is_fleet(&self) -> bool {
        !self.accounts.is_empty() || self.accounts_from_org
    }
}

/// Runs `work` in every account the flags name and prints one document: the verb's own for a
/// single account, `{"accounts": [...]}` for many.
pub async fn run<T, F, Fut>(settings: &Settings, accounts: &AccountArgs, work: F) -> Result<Outcome>
where
    T: Serialize + Render,
    F: Fn(Aws) -> Fut,
    Fut: Future<Output = Result<(T, Outcome)>>,
{
    accounts.validate()?;
    let base = Aws::connect(settings).await?;
    if !accounts.is_fleet() {
        let aws = match &accounts.role_arn {
            Some(arn) => base.assume(arn).await?,
            None => base,
        };
        let (output, outcome) = work(aws).await?;
        Printer::new(settings).emit(&output)?;
        return Ok(outcome);
    }
    let Some(role_name) = accounts.role_name.as_deref() else {
        return Err(usage("--accounts and --accounts-from-org need --role-name"));
    };
    let ids = if accounts.accounts_from_org {
        base.organization_accounts().await?
    } else {
        let mut ids: Vec<String> = Vec::new();
        for id in &accounts.accounts {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    };
    let region = settings.regions.first().cloned().unwrap_or_default();
    let work = &work;
    let base = &base;
    let results: Vec<(AccountResult<T>, Outcome)> = stream::iter(ids)
        .map(|account_id| {
            let arn = role_arn(&region, &account_id, role_name);
            async move {
                let done = match base.assume(&arn).await {
                    Ok(aws) => work(aws).await,
                    Err(err) => Err(err),
                };
                match done {
                    Ok((result, outcome)) => (
                        AccountResult {
                            account_id,
                            role_arn: arn,
                            error: None,
                            result: Some(result),
                        },
                        outcome,
                    ),
                    Err(err) => (
                        AccountResult {
                            account_id,
                            role_arn: arn,
                            error: Some(one_line(&err)),
                            result: None,
                        },
                        Outcome::Failed,
                    ),
                }
            }
        })
        .buffered(ACCOUNT_CONCURRENCY)
        .collect()
        .await;
    let total = results.len();
    let succeeded = results
        .iter()
        .filter(|(_, outcome)| *outcome == Outcome::Success)
        .count();
    let failed = results
        .iter()
        .filter(|(_, outcome)| *outcome == Outcome::Failed)
        .count();
    Printer::new(settings).emit(&FleetOutput {
        accounts: results.into_iter().map(|(result, _)| result).collect(),
    })?;
    Ok(if succeeded == total {
        Outcome::Success
    } else if failed == total {
        Outcome::Failed
    } else {
        Outcome::Partial
    })
}

impl<T: Render> Render for FleetOutput<T> {
    fn render(&self, style: &TableStyle) -> String {
        self.accounts
            .iter()
            .map(|account| {
                let head = format!("=== account {} ({})", account.account_id, account.role_arn);
                match (&account.result, &account.error) {
                    (Some(result), _) => format!("{head}\n{}", result.render(style)),
                    (None, Some(error)) => format!("{head}\nFAILED: {error}"),
                    (None, None) => head,
                }
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}
