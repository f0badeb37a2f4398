//! Image usage reports: which other accounts use an image, without a role in each of them
//! (CreateImageUsageReport, DescribeImageUsageReports, DescribeImageUsageReportEntries).

use anyhow::{Result, anyhow};
use aws_sdk_ec2::types::{ImageUsageResourceTypeOptionRequest, ImageUsageResourceTypeRequest};
use futures::{StreamExt, stream};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Ec2;
use super::error::{AwsError, Operation};
use crate::model::{UsageReport, UsageResource};

/// A report names at most 200 accounts; with more, it covers every account.
const ACCOUNTS_PER_REPORT: usize = 200;
/// Report ids per Describe call.
const IDS_PER_CALL: usize = 100;
/// Every launch template version (AWS's limit for the option).
const VERSION_DEPTH: &str = "10000";
const FIRST_POLL: Duration = Duration::from_millis(250);
const LONGEST_POLL: Duration = Duration::from_secs(5);

/// Told how many reports are finished, of how many.
pub type ReportProgress = Arc<dyn Fn(usize, usize) + Send + Sync>;

impl Ec2 {
    async fn create_usage_report(&self, image_id: &str, accounts: &[String]) -> Result<String> {
        let types = vec![
            ImageUsageResourceTypeRequest::builder()
                .resource_type("ec2:Instance")
                .build(),
            ImageUsageResourceTypeRequest::builder()
                .resource_type("ec2:LaunchTemplate")
                .resource_type_options(
                    ImageUsageResourceTypeOptionRequest::builder()
                        .option_name("version-depth")
                        .option_values(VERSION_DEPTH)
                        .build(),
                )
                .build(),
        ];
        let accounts = (accounts.len() <= ACCOUNTS_PER_REPORT).then(|| accounts.to_vec());
        self.pacing.mutating.take().await;
        let output = self
            .client
            .create_image_usage_report()
            .image_id(image_id)
            .set_resource_types(Some(types))
            .set_account_ids(accounts)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::CreateImageUsageReport, &self.region, err)
            })?;
        output
            .report_id()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("CreateImageUsageReport for {image_id} returned no report id"))
    }

    /// Report id → (state, reason when `error`).
    async fn report_states(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, (String, Option<String>)>> {
        let mut states = BTreeMap::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let mut pages = self
                .client
                .describe_image_usage_reports()
                .set_report_ids(Some(chunk.to_vec()))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|err| {
                    AwsError::from_sdk(Operation::DescribeImageUsageReports, &self.region, err)
                })?;
                for report in page.image_usage_reports() {
                    if let Some(id) = report.report_id() {
                        states.insert(
                            id.to_string(),
                            (
                                report.state().unwrap_or("unknown").to_string(),
                                report.state_reason().map(str::to_string),
                            ),
                        );
                    }
                }
            }
        }
        Ok(states)
    }

    /// Report id → account → (resource type, count). An entry naming no report or no account
    /// makes the read fail: a use nobody can place must not be lost.
    async fn report_entries(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, Vec<(UsageResource, i64)>>>> {
        let mut found: BTreeMap<String, BTreeMap<String, Vec<(UsageResource, i64)>>> =
            ids.iter().map(|id| (id.clone(), BTreeMap::new())).collect();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let mut pages = self
                .client
                .describe_image_usage_report_entries()
                .set_report_ids(Some(chunk.to_vec()))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|err| {
                    AwsError::from_sdk(
                        Operation::DescribeImageUsageReportEntries,
                        &self.region,
                        err,
                    )
                })?;
                for entry in page.image_usage_report_entries() {
                    let (Some(report), Some(account)) = (entry.report_id(), entry.account_id())
                    else {
                        return Err(anyhow!(
                            "DescribeImageUsageReportEntries in {} returned an entry without a \
                             report or account id",
                            self.region
                        ));
                    };
                    // No count reported: a use all the same.
                    let count = entry.usage_count().unwrap_or(1);
                    if count <= 0 {
                        continue;
                    }
                    found
                        .entry(report.to_string())
                        .or_default()
                        .entry(account.to_string())
                        .or_default()
                        .push((
                            UsageResource::parse(entry.resource_type().unwrap_or("")),
                            count,
                        ));
                }
            }
        }
        Ok(found)
    }

    /// One report per image (on the accounts it is shared with), made concurrently, waited for
    /// until `timeout`, then read. Every image gets an answer: its usage, or why there is none.
    pub async fn usage_reports(
        &self,
        shares: &BTreeMap<String, Vec<String>>,
        timeout: Duration,
        progress: Option<ReportProgress>,
    ) -> BTreeMap<String, UsageReport> {
        let mut answers: BTreeMap<String, UsageReport> = BTreeMap::new();
        let created: Vec<(String, Result<String>)> = stream::iter(shares.clone())
            .map(|(image_id, accounts)| async move {
                let report = self.create_usage_report(&image_id, &accounts).await;
                (image_id, report)
            })
            .buffer_unordered(crate::concurrency::USAGE_REPORTS)
            .collect()
            .await;
        let mut pending: BTreeMap<String, String> = BTreeMap::new();
        for (image_id, report) in created {
            match report {
                Ok(report_id) => {
                    pending.insert(report_id, image_id);
                }
                Err(err) => {
                    answers.insert(
                        image_id,
                        UsageReport::Unavailable(crate::error::one_line(&err)),
                    );
                }
            }
        }
        let total = pending.len();
        let mut finished: Vec<(String, String)> = Vec::new();
        let started = Instant::now();
        let mut wait = FIRST_POLL;
        while !pending.is_empty() {
            if let Some(progress) = &progress {
                progress(finished.len(), total);
            }
            let ids: Vec<String> = pending.keys().cloned().collect();
            match self.report_states(&ids).await {
                Ok(states) => {
                    for (report_id, (state, reason)) in states {
                        let Some(image_id) = pending.get(&report_id).cloned() else {
                            continue;
                        };
                        match state.as_str() {
                            "available" => {
                                pending.remove(&report_id);
                                finished.push((report_id, image_id));
                            }
                            "pending" => {}
                            other => {
                                pending.remove(&report_id);
                                answers.insert(
                                    image_id,
                                    UsageReport::Unavailable(format!(
                                        "usage report {report_id} is {other}{}",
                                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                                    )),
                                );
                            }
                        }
                    }
                }
                // A report just made may not be visible yet (EC2 is eventually consistent):
                // ask again until the timeout.
                Err(err) if not_found_yet(&err) => {}
                Err(err) => {
                    let why = crate::error::one_line(&err);
                    for (_, image_id) in std::mem::take(&mut pending) {
                        answers.insert(image_id, UsageReport::Unavailable(why.clone()));
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
            if started.elapsed() + wait > timeout {
                for (report_id, image_id) in std::mem::take(&mut pending) {
                    answers.insert(
                        image_id,
                        UsageReport::Unavailable(format!(
                            "usage report {report_id} still pending after {} (--timeout)",
                            crate::duration::format(timeout)
                        )),
                    );
                }
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LONGEST_POLL);
        }
        if let Some(progress) = &progress {
            progress(total, total);
        }
        if finished.is_empty() {
            return answers;
        }
        let ids: Vec<String> = finished.iter().map(|(id, _)| id.clone()).collect();
        match self.report_entries(&ids).await {
            Ok(mut entries) => {
                for (report_id, image_id) in finished {
                    let usage = entries.remove(&report_id).unwrap_or_default();
                    answers.insert(image_id, UsageReport::Available { report_id, usage });
                }
            }
            Err(err) => {
                let why = crate::error::one_line(&err);
                for (_, image_id) in finished {
                    answers.insert(image_id, UsageReport::Unavailable(why.clone()));
                }
            }
        }
        answers
    }
}

fn not_found_yet(err: &anyhow::Error) -> bool {
    err.downcast_ref::<AwsError>()
        .and_then(|err| err.code.as_deref())
        .is_some_and(|code| code == "InvalidImageUsageReportId.NotFound")
}
