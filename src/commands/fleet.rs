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
use crate::output::{Printer, Render, TableStyle, spinner};

#[derive(Debug, Serialize)]
pub struct FleetOutput<T> {
    /// In the order given (by id for --accounts-from-org).
    pub accounts: Vec<AccountResult<T>>,
}

#[derive(Debug, Serialize)]
pub struct AccountResult<T> {
    pub account_id: String,
    /// The role assumed there; null for the caller's own account, worked on with the caller's
    /// credentials (the management account has no OrganizationAccountAccessRole).
    pub role_arn: Option<String>,
    /// Why nothing (or not everything) could be done in this account: its role could not be
    /// assumed, or its credentials could not be refreshed mid-run (then `result` says what was
    /// done before).
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
        if !self.is_fleet() && (self.shard.is_some() || self.max_accounts.is_some()) {
            return Err(usage(
                "--shard and --max-accounts divide many accounts: give --accounts or --accounts-from-org",
            ));
        }
        Ok(())
    }

    /// Many accounts in one run (not one role).
    pub fn is_fleet(&self) -> bool {
        !self.accounts.is_empty() || self.accounts_from_org
    }
}

/// Which part of the accounts this run works on (`--shard K/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Where a scheduler puts a worker's index: a Kubernetes Indexed Job, an AWS Batch array job.
const SHARD_INDEX_VARIABLES: [&str; 2] = ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"];

impl Shard {
    /// `auto/N` takes K from the scheduler's variable, which must be there and below N.
    pub fn resolve(
        arg: crate::cli::ShardArg,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Shard> {
        let index = match arg.index {
            Some(index) => index,
            None => {
                let found = SHARD_INDEX_VARIABLES
                    .iter()
                    .find_map(|name| var(name).map(|value| (*name, value)));
                let (name, value) = found.ok_or_else(|| {
                    usage(format!(
                        "--shard auto/{}: neither {} is set",
                        arg.count,
                        SHARD_INDEX_VARIABLES.join(" nor ")
                    ))
                })?;
                value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|index| *index < arg.count)
                    .ok_or_else(|| {
                        usage(format!(
                            "--shard auto/{}: {name}={value} is not an index below {}",
                            arg.count, arg.count
                        ))
                    })?
            }
        };
        Ok(Shard {
            index,
            count: arg.count,
        })
    }

    /// This shard's accounts: an account's part follows from its id alone (id mod N), so the
    /// parts are disjoint, cover every account, and an account joining the organization moves
    /// no other.
    pub fn of(self, ids: Vec<String>) -> Vec<String> {
        ids.into_iter()
            .filter(|id| {
                id.parse::<u64>()
                    .is_ok_and(|n| n % u64::from(self.count) == u64::from(self.index))
            })
            .collect()
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
    let ids = account_ids(&base, accounts).await?;
    let region = settings.regions.first().cloned().unwrap_or_default();
    // The caller's own account needs no role (and may have none to assume).
    let caller = base.account_id(&region).await?;
    let concurrency = accounts
        .max_accounts
        .map_or(crate::concurrency::ACCOUNTS, usize::from);
    let work = &work;
    let base = &base;
    let caller = &caller;
    let printer = Printer::new(settings);
    let total = ids.len();
    let progress = spinner(settings, format!("accounts: 0 of {total} done"));
    let mut finished = stream::iter(ids.into_iter().enumerate())
        .map(|(index, account_id)| {
            let arn = (&account_id != caller).then(|| role_arn(&region, &account_id, role_name));
            async move {
                let (result, outcome) = in_account(base, account_id, arn, work).await;
                (index, result, outcome)
            }
        })
        .buffer_unordered(concurrency);
    // Each account as it finishes (a table, or a JSON line); one document at the end for JSON.
    let mut results: Vec<(usize, AccountResult<T>, Outcome)> = Vec::with_capacity(total);
    let mut failed_so_far = 0;
    // Output that cannot be written (a closed pipe) must not abandon the accounts in flight
    // mid-way: they finish, and the run fails afterwards.
    let mut unwritten: Option<anyhow::Error> = None;
    while let Some((index, result, outcome)) = finished.next().await {
        if printer.streams_accounts() && unwritten.is_none() {
            let line = FleetLine(&result);
            unwritten = printer.emit_above(progress.as_ref(), &line).err();
        }
        failed_so_far += usize::from(outcome == Outcome::Failed);
        results.push((index, result, outcome));
        if let Some(bar) = &progress {
            let done = results.len();
            bar.set_message(format!(
                "accounts: {done} of {total} done ({failed_so_far} failed), {} in flight",
                (total - done).min(concurrency)
            ));
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if let Some(err) = unwritten {
        return Err(err.context("the results could not be written; every account was finished"));
    }
    // In the order given, whatever order they finished in.
    results.sort_by_key(|(index, _, _)| *index);
    let results: Vec<(AccountResult<T>, Outcome)> = results
        .into_iter()
        .map(|(_, result, outcome)| (result, outcome))
        .collect();
    let outcome = overall(results.iter().map(|(_, outcome)| *outcome));
    if !printer.streams_accounts() {
        printer.emit(&FleetOutput {
            accounts: results.into_iter().map(|(result, _)| result).collect(),
        })?;
    }
    Ok(outcome)
}

/// The accounts the flags name, each once, in the order given (or the organization's), this
/// shard's only.
async fn account_ids(base: &Aws, accounts: &AccountArgs) -> Result<Vec<String>> {
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
    Ok(match &accounts.shard {
        Some(shard) => Shard::resolve(*shard, |name| std::env::var(name).ok())?.of(ids),
        None => ids,
    })
}

/// One account's run: through its role unless it is the caller's own.
async fn in_account<T, F, Fut>(
    base: &Aws,
    account_id: String,
    arn: Option<String>,
    work: &F,
) -> (AccountResult<T>, Outcome)
where
    F: Fn(Aws) -> Fut,
    Fut: Future<Output = Result<(T, Outcome)>>,
{
    let aws = match &arn {
        Some(arn) => base.assume(arn).await,
        None => Ok(base.clone()),
    };
    let (session, done) = match aws {
        Ok(aws) => (Some(aws.session()), work(aws).await),
        Err(err) => (None, Err(err)),
    };
    // Credentials that could not be refreshed stop the account, whatever step noticed first:
    // what it did before is reported, and it counts as failed.
    let lost = session.as_ref().and_then(|s| s.lost()).map(str::to_string);
    match done {
        Ok((result, outcome)) => (
            AccountResult {
                account_id,
                role_arn: arn,
                error: lost.clone(),
                result: Some(result),
            },
            if lost.is_some() {
                Outcome::Failed
            } else {
                outcome
            },
        ),
        Err(err) => (
            AccountResult {
                account_id,
                role_arn: arn,
                error: Some(lost.unwrap_or_else(|| one_line(&err))),
                result: None,
            },
            Outcome::Failed,
        ),
    }
}

/// Success when every account succeeded, failed when every one failed, else partial.
fn overall(outcomes: impl Iterator<Item = Outcome>) -> Outcome {
    let (mut total, mut succeeded, mut failed) = (0, 0, 0);
    for outcome in outcomes {
        total += 1;
        succeeded += usize::from(outcome == Outcome::Success);
        failed += usize::from(outcome == Outcome::Failed);
    }
    if succeeded == total {
        Outcome::Success
    } else if failed == total {
        Outcome::Failed
    } else {
        Outcome::Partial
    }
}

/// One account's result as it finishes: a JSON line (`--output jsonl`), or its table.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct FleetLine<'a, T>(&'a AccountResult<T>);

impl<T: Render> Render for FleetLine<'_, T> {
    fn render(&self, style: &TableStyle) -> String {
        self.0.render(style)
    }
}

impl<T: Render> AccountResult<T> {
    fn render(&self, style: &TableStyle) -> String {
        let head = format!(
            "=== account {} ({})",
            self.account_id,
            self.role_arn
                .as_deref()
                .unwrap_or("the caller's own credentials")
        );
        match (&self.result, &self.error) {
            (Some(result), Some(error)) => {
                format!("{head}\n{}\nFAILED: {error}", result.render(style))
            }
            (Some(result), None) => format!("{head}\n{}", result.render(style)),
            (None, Some(error)) => format!("{head}\nFAILED: {error}"),
            (None, None) => head,
        }
    }
}

impl<T: Render> Render for FleetOutput<T> {
    fn render(&self, style: &TableStyle) -> String {
        self.accounts
            .iter()
            .map(|account| account.render(style))
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ShardArg;

    #[test]
    fn every_account_is_in_exactly_one_shard() {
        let ids: Vec<String> = (0..500u64)
            .map(|n| format!("{:012}", 111_111_111_111 + n * 7_919))
            .collect();
        for count in [1, 2, 3, 7, 16] {
            let mut seen: Vec<String> = Vec::new();
            for index in 0..count {
                seen.extend(Shard { index, count }.of(ids.clone()));
            }
            seen.sort();
            let mut all = ids.clone();
            all.sort();
            assert_eq!(seen, all, "{count} shards");
        }
    }

    #[test]
    fn auto_takes_the_schedulers_index() {
        let auto = ShardArg {
            index: None,
            count: 4,
        };
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            Shard::resolve(auto, env(&[("JOB_COMPLETION_INDEX", "3")])).unwrap(),
            Shard { index: 3, count: 4 }
        );
        assert_eq!(
            Shard::resolve(auto, env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "0")])).unwrap(),
            Shard { index: 0, count: 4 }
        );
        assert!(Shard::resolve(auto, env(&[])).is_err());
        assert!(Shard::resolve(auto, env(&[("JOB_COMPLETION_INDEX", "4")])).is_err());
        let given = ShardArg {
            index: Some(1),
            count: 4,
        };
        assert_eq!(
            Shard::resolve(given, env(&[("JOB_COMPLETION_INDEX", "3")])).unwrap(),
            Shard { index: 1, count: 4 }
        );
    }
}
