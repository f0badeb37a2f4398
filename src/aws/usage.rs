//! Who uses an image: instances (any state but terminated), launch templates (every version),
//! launch configurations, and whatever DescribeImageReferences knows where the endpoint has it;
//! and, for images shared with other accounts, the same reads in each of them. Facts only:
//! `plan::users` decides who counts as a user (an unresolved alias, a failed read, an
//! organization).

use anyhow::Result;
use aws_sdk_ec2::types::Filter;
use futures::{StreamExt, TryStreamExt, stream};
use std::collections::{BTreeMap, BTreeSet};

use super::accounts::role_arn;
use super::error::{AwsError, Operation};
use super::{Aws, Ec2};
use crate::model::{
    ConsumerCheck, ConsumerChecks, ConsumerFacts, ImageUser, LaunchPermissions, UnresolvedAlias,
    UsageFacts, UsageReport, UserKind,
};

const FILTER_VALUES: usize = 200;
/// DescribeImageReferences takes 1 to 10 image ids per call (AWS API reference).
const IMAGE_REFERENCE_IDS: usize = 10;
impl Ec2 {
    pub async fn image_usage(
        &self,
        autoscaling: &aws_sdk_autoscaling::Client,
        image_ids: &[String],
    ) -> Result<UsageFacts> {
        let wanted: BTreeSet<&str> = image_ids.iter().map(String::as_str).collect();
        let mut usage = UsageFacts::default();
        if wanted.is_empty() {
            return Ok(usage);
        }
        // Four independent reads, at once; their findings are put together in this order.
        let (mut instances, mut templates, mut configurations, mut references) = (
            UsageFacts::default(),
            UsageFacts::default(),
            UsageFacts::default(),
            UsageFacts::default(),
        );
        let (found_instances, found_templates, found_configurations, ()) = tokio::join!(
            self.instances_using(image_ids, &mut instances),
            self.launch_templates_using(&wanted, &mut templates),
            self.launch_configurations_using(autoscaling, &wanted, &mut configurations),
            self.image_references(image_ids, &mut references),
        );
        found_instances?;
        found_templates?;
        found_configurations?;
        for found in [instances, templates, configurations, references] {
            usage.append(found);
        }
        Ok(usage)
    }

    async fn instances_using(&self, image_ids: &[String], usage: &mut UsageFacts) -> Result<()> {
        for chunk in image_ids.chunks(FILTER_VALUES) {
            let mut pages = self
                .client
                .describe_instances()
                .filters(
                    Filter::builder()
                        .name("image-id")
                        .set_values(Some(chunk.to_vec()))
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .set_values(Some(
                            ["pending", "running", "shutting-down", "stopping", "stopped"]
                                .map(String::from)
                                .to_vec(),
                        ))
                        .build(),
                )
                .max_results(1000)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|err| {
                    AwsError::from_sdk(Operation::DescribeInstances, &self.region, err)
                })?;
                for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                    let (Some(image_id), Some(instance_id)) =
                        (instance.image_id(), instance.instance_id())
                    else {
                        continue;
                    };
                    let state = instance
                        .state()
                        .and_then(|state| state.name())
                        .map(|name| name.as_str().to_string());
                    usage.add(
                        image_id,
                        ImageUser::new(UserKind::Instance, instance_id, state),
                    );
                }
            }
        }
        Ok(())
    }

    async fn launch_templates_using(
        &self,
        wanted: &BTreeSet<&str>,
        usage: &mut UsageFacts,
    ) -> Result<()> {
        let mut template_ids = Vec::new();
        let mut pages = self
            .client
            .describe_launch_templates()
            .max_results(200)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                AwsError::from_sdk(Operation::DescribeLaunchTemplates, &self.region, err)
            })?;
            template_ids.extend(
                page.launch_templates()
                    .iter()
                    .filter_map(|template| template.launch_template_id())
                    .map(str::to_string),
            );
        }
        // Every version, not only $Default/$Latest: any version can be launched by id.
        type Found = (Vec<(String, ImageUser)>, Vec<UnresolvedAlias>);
        let found: Vec<Found> = stream::iter(template_ids)
            .map(|template_id| async move {
                let mut hits = Vec::new();
                let mut unresolved = Vec::new();
                let mut pages = self
                    .client
                    .describe_launch_template_versions()
                    .launch_template_id(&template_id)
                    .max_results(200)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|err| {
                        AwsError::from_sdk(
                            Operation::DescribeLaunchTemplateVersions,
                            &self.region,
                            err,
                        )
                    })?;
                    for version in page.launch_template_versions() {
                        let number = version.version_number().unwrap_or_default();
                        let written = version
                            .launch_template_data()
                            .and_then(|data| data.image_id());
                        // `resolve:ssm:NAME`: ask AWS which AMI the parameter names now, one
                        // version at a time (ResolveAlias).
                        let resolved = match written {
                            Some(alias) if alias.starts_with("resolve:ssm:") => {
                                match self.resolve_alias(&template_id, number).await {
                                    Ok(Some(image)) => Some(image),
                                    Ok(None) => None,
                                    Err(err) => Some(format!("{alias} ({err})")),
                                }
                            }
                            other => other.map(str::to_string),
                        };
                        let image = resolved.as_deref().or(written);
                        match image {
                            Some(image) if wanted.contains(image) => {
                                hits.push((
                                    image.to_string(),
                                    ImageUser::new(
                                        UserKind::LaunchTemplate,
                                        template_id.clone(),
                                        Some(format!("version {number}")),
                                    ),
                                ));
                            }
                            Some(alias) if alias.starts_with("resolve:ssm:") => {
                                unresolved.push(UnresolvedAlias {
                                    template_id: template_id.clone(),
                                    version: number,
                                    alias: alias.to_string(),
                                });
                            }
                            _ => {}
                        }
                    }
                }
                Ok::<_, anyhow::Error>((hits, unresolved))
            })
            .buffer_unordered(crate::concurrency::LAUNCH_TEMPLATES)
            .try_collect()
            .await?;
        for (hits, unresolved) in found {
            for (image, user) in hits {
                usage.add(&image, user);
            }
            usage.unresolved_aliases.extend(unresolved);
        }
        Ok(())
    }

    /// The AMI a version's `resolve:ssm:` image id names now; None when AWS did not resolve it.
    async fn resolve_alias(
        &self,
        template_id: &str,
        version: i64,
    ) -> Result<Option<String>, AwsError> {
        let output = self
            .client
            .describe_launch_template_versions()
            .launch_template_id(template_id)
            .versions(version.to_string())
            .resolve_alias(true)
            .send()
            .await
            .map_err(|err| {
                AwsError::from_sdk(Operation::DescribeLaunchTemplateVersions, &self.region, err)
            })?;
        Ok(output
            .launch_template_versions()
            .iter()
            .filter_map(|v| v.launch_template_data().and_then(|data| data.image_id()))
            .find(|image| !image.starts_with("resolve:ssm:"))
            .map(str::to_string))
    }

    async fn launch_configurations_using(
        &self,
        autoscaling: &aws_sdk_autoscaling::Client,
        wanted: &BTreeSet<&str>,
        usage: &mut UsageFacts,
    ) -> Result<()> {
        let mut pages = autoscaling
            .describe_launch_configurations()
            .max_records(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                AwsError::from_sdk(Operation::DescribeLaunchConfigurations, &self.region, err)
            })?;
            for configuration in page.launch_configurations() {
                let (Some(image), Some(name)) = (
                    configuration.image_id(),
                    configuration.launch_configuration_name(),
                ) else {
                    continue;
                };
                if wanted.contains(image) {
                    usage.add(
                        image,
                        ImageUser::new(UserKind::LaunchConfiguration, name, None),
                    );
                }
            }
        }
        Ok(())
    }

    /// DescribeImageReferences also knows SSM parameters and Image Builder recipes. It takes at
    /// most 10 image ids per call, so the ids go in chunks. An endpoint that does not offer the
    /// action (InvalidAction, UnsupportedOperation: older partitions) is noted, since the checks
    /// above still ran; any other failure (access denied, throttled past the retries, a bad
    /// parameter, a timeout) is recorded for every image of its chunk.
    async fn image_references(&self, image_ids: &[String], usage: &mut UsageFacts) {
        let chunks: Vec<Result<Vec<(String, ImageUser)>, AwsError>> =
            stream::iter(image_ids.chunks(IMAGE_REFERENCE_IDS))
                .map(|chunk| self.image_references_of(chunk))
                .buffered(crate::concurrency::IMAGE_REFERENCES)
                .collect()
                .await;
        let mut not_offered = None;
        for (chunk, result) in image_ids.chunks(IMAGE_REFERENCE_IDS).zip(chunks) {
            match result {
                Ok(found) => {
                    for (image, user) in found {
                        usage.add(&image, user);
                    }
                }
                Err(err) if err.not_offered() => not_offered = Some(err),
                Err(err) => usage
                    .unchecked_references
                    .extend(chunk.iter().map(|image| (image.clone(), err.to_string()))),
            }
        }
        usage.references_not_offered = not_offered.map(|err| err.to_string());
    }

    async fn image_references_of(
        &self,
        image_ids: &[String],
    ) -> Result<Vec<(String, ImageUser)>, AwsError> {
        let mut found = Vec::new();
        let mut pages = self
            .client
            .describe_image_references()
            .set_image_ids(Some(image_ids.to_vec()))
            .include_all_resource_types(true)
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                AwsError::from_sdk(Operation::DescribeImageReferences, &self.region, err)
            })?;
            for reference in page.image_references() {
                let (Some(image), Some(kind)) = (reference.image_id(), reference.resource_type())
                else {
                    continue;
                };
                // Instances and launch templates were found above, by id.
                if matches!(kind.as_str(), "ec2:Instance" | "ec2:LaunchTemplate") {
                    continue;
                }
                found.push((
                    image.to_string(),
                    ImageUser::new(
                        UserKind::Reference(kind.as_str().to_string()),
                        reference.arn().unwrap_or_default(),
                        None,
                    ),
                ));
            }
        }
        Ok(found)
    }
}

impl Aws {
    /// Who may launch these images besides us, and in each account they are shared with the same
    /// reads as at home (instances, every launch template version, launch configurations,
    /// references), with `--role-name` assumed there. A launch permission that cannot be read is
    /// recorded with the reason (the planner keeps that image: nobody can tell who else uses it).
    pub async fn consumer_facts(
        &self,
        region: &str,
        own_account: &str,
        image_ids: &[String],
    ) -> ConsumerFacts {
        let ec2 = self.ec2(region);
        let read: Vec<(String, Result<LaunchPermissions>)> = stream::iter(image_ids.to_vec())
            .map(|image_id| ec2.permissions_of(image_id))
            .buffer_unordered(crate::concurrency::IMAGE_ATTRIBUTES)
            .collect()
            .await;
        let mut facts = ConsumerFacts::default();
        for (image_id, permissions) in read {
            facts.record(
                image_id,
                permissions.map_err(|err| crate::error::one_line(&err)),
            );
        }
        let checks = self.check_consumers(region, own_account, &facts).await;
        facts.add_checks(checks);
        facts
    }

    /// The second half of `consumer_facts`: for the images in `facts` shared with other
    /// accounts, their usage reports and (with `--role-name`) the reads in each account.
    pub async fn check_consumers(
        &self,
        region: &str,
        own_account: &str,
        facts: &ConsumerFacts,
    ) -> ConsumerChecks {
        let mut shares: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (image_id, permissions) in &facts.permissions {
            let accounts: Vec<String> = permissions
                .accounts
                .iter()
                .filter(|a| *a != own_account)
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if !accounts.is_empty() {
                shares.insert(image_id.clone(), accounts);
            }
        }
        ConsumerChecks {
            reports: self.usage_reports_of(region, &shares).await,
            accounts: self.account_checks(region, &shares).await,
        }
    }

    /// One usage report per image shared with other accounts (`shares`: image → accounts): who
    /// uses it there, without a role in each. CreateImageUsageReport is a write, so a dry run
    /// makes none.
    pub async fn usage_reports_of(
        &self,
        region: &str,
        shares: &BTreeMap<String, Vec<String>>,
    ) -> BTreeMap<String, UsageReport> {
        if shares.is_empty() {
            return BTreeMap::new();
        }
        if self.read_only {
            return shares
                .keys()
                .map(|image_id| {
                    (
                        image_id.clone(),
                        UsageReport::Unavailable(
                            "not made in a dry run (CreateImageUsageReport is a write); the \
                             real run makes one"
                                .into(),
                        ),
                    )
                })
                .collect();
        }
        self.ec2(region)
            .usage_reports(
                shares,
                self.consumers.report_timeout,
                self.consumers.report_progress.clone(),
            )
            .await
    }

    /// Each account the images are shared with (`shares`: image → accounts), looked into with
    /// `--role-name` (or not, without one).
    pub async fn account_checks(
        &self,
        region: &str,
        shares: &BTreeMap<String, Vec<String>>,
    ) -> BTreeMap<String, ConsumerCheck> {
        let mut by_account: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (image_id, accounts) in shares {
            for account in accounts {
                by_account
                    .entry(account.clone())
                    .or_default()
                    .push(image_id.clone());
            }
        }
        let role_name = self.consumers.role_name.clone();
        stream::iter(by_account)
            .map(|(account, images)| {
                let role_name = role_name.clone();
                async move {
                    let check = match role_name {
                        None => ConsumerCheck::NoRole,
                        Some(name) => {
                            let found = match self.assume(&role_arn(region, &account, &name)).await
                            {
                                Ok(consumer) => {
                                    consumer
                                        .ec2(region)
                                        .image_usage(&consumer.autoscaling(region), &images)
                                        .await
                                }
                                Err(err) => Err(err),
                            };
                            match found {
                                Ok(usage) => ConsumerCheck::Checked(usage),
                                Err(err) => ConsumerCheck::Failed(crate::error::one_line(&err)),
                            }
                        }
                    };
                    (account, check)
                }
            })
            .buffer_unordered(crate::concurrency::CONSUMER_ACCOUNTS)
            .collect()
            .await
    }
}

impl Ec2 {
    /// One image's launch permissions, with its id: what `consumer_facts` reads per image.
    pub async fn permissions_of(&self, image_id: String) -> (String, Result<LaunchPermissions>) {
        let permissions = self.launch_permissions(&image_id).await;
        (image_id, permissions)
    }
}
