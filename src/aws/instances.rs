//! Instances launched from an image: RunInstances, waiting until running or terminated, and
//! finding the test instances a release left behind.

use anyhow::{Result, anyhow};
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{Filter, InstanceType, Placement, ResourceType};
use serde::Serialize;
use std::time::Duration;

use super::Ec2;
use super::error::{AwsError, Operation, dry_run_answer, service_code};
use super::lifecycle::tag_spec;
use super::settle::Fresh;
use crate::model::DryRunCheck;

/// What `ami launch` asks for.
#[derive(Debug, Clone, Default)]
pub struct LaunchRequest {
    pub image_id: String,
    pub instance_type: String,
    pub subnet_id: Option<String>,
    pub availability_zone: Option<String>,
    pub key_name: Option<String>,
    pub security_group_ids: Vec<String>,
    /// Raw user data (base64-encoded here).
    pub user_data: Option<Vec<u8>>,
    pub tags: Vec<(String, String)>,
    pub count: i32,
    /// Ask AWS whether the launch would succeed (permissions, parameters) without launching.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceInfo {
    pub instance_id: String,
    pub availability_zone: Option<String>,
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
}

fn info(instance: &aws_sdk_ec2::types::Instance) -> Option<InstanceInfo> {
    Some(InstanceInfo {
        instance_id: instance.instance_id()?.to_string(),
        availability_zone: instance
            .placement()
            .and_then(|p| p.availability_zone())
            .map(str::to_string),
        state: instance
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_else(|| "unknown".into()),
        private_ip: instance.private_ip_address().map(str::to_string),
        public_ip: instance.public_ip_address().map(str::to_string),
    })
}

impl Ec2 {
    /// The RunInstances of a launch request, for the launch and its DryRun check alike.
    fn run_request(
        &self,
        request: &LaunchRequest,
    ) -> aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder {
        let mut call = self
            .client
            .run_instances()
            .image_id(&request.image_id)
            .instance_type(InstanceType::from(request.instance_type.as_str()))
            .min_count(request.count)
            .max_count(request.count)
            .set_subnet_id(request.subnet_id.clone())
            .set_key_name(request.key_name.clone());
        if let Some(zone) = &request.availability_zone {
            call = call.placement(Placement::builder().availability_zone(zone).build());
        }
        if !request.security_group_ids.is_empty() {
            call = call.set_security_group_ids(Some(request.security_group_ids.clone()));
        }
        if let Some(data) = &request.user_data {
            call = call.user_data(aws_smithy_types::base64::encode(data));
        }
        if !request.tags.is_empty() {
            call = call
                .tag_specifications(tag_spec(ResourceType::Instance, &request.tags))
                .tag_specifications(tag_spec(ResourceType::Volume, &request.tags));
        }
        call
    }

    /// AWS's DryRun answer for this launch: allowed, denied, or an error for anything else.
    pub async fn check_run_instances(&self, request: &LaunchRequest) -> Result<DryRunCheck> {
        let result = self.run_request(request).dry_run(true).send().await;
        Ok(dry_run_answer(
            Operation::RunInstances,
            &self.region,
            result,
        )?)
    }

    pub async fn run_instances(&self, request: &LaunchRequest) -> Result<Vec<InstanceInfo>> {
        let call = self.run_request(request).dry_run(request.dry_run);
        let output = match call.send().await {
            Ok(output) => output,
            Err(err) if request.dry_run && service_code(&err) == Some("DryRunOperation") => {
                return Ok(Vec::new());
            }
            Err(err) => {
                return Err(AwsError::from_sdk(Operation::RunInstances, &self.region, err).into());
            }
        };
        let instances: Vec<InstanceInfo> = output.instances().iter().filter_map(info).collect();
        if instances.is_empty() {
            return Err(anyhow!(
                "RunInstances in {} returned no instance for {}",
                self.region,
                request.image_id
            ));
        }
        Ok(instances)
    }

    pub async fn describe_instances(&self, ids: &[String]) -> Result<Vec<InstanceInfo>> {
        let output = self
            .client
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(Operation::DescribeInstances, &self.region, err))?;
        Ok(output
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(info)
            .collect())
    }

    /// Instances carrying `key=value`, not yet terminated (every page).
    pub async fn live_instances_tagged(&self, key: &str, value: &str) -> Result<Vec<InstanceInfo>> {
        let mut pages = self
            .client
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{key}"))
                    .values(value)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .values("stopping")
                    .values("stopped")
                    .build(),
            )
            .max_results(1000)
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                AwsError::from_sdk(Operation::DescribeInstances, &self.region, err)
            })?;
            found.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter_map(info),
            );
        }
        Ok(found)
    }

    /// The SDK's waiter until every instance runs; then their state as AWS reports it. The
    /// instances were just launched: first until AWS knows them (`settle`), since the SDK's
    /// waiter answers an unknown id with its longest pauses.
    pub async fn wait_running(
        &self,
        ids: &[String],
        timeout: Duration,
    ) -> Result<Vec<InstanceInfo>> {
        self.once_caught_up(Fresh::Instance, || self.describe_instances(ids))
            .await?;
        let waited = self
            .client
            .wait_until_instance_running()
            .set_instance_ids(Some(ids.to_vec()))
            .wait(timeout)
            .await;
        self.after_wait(
            ids,
            timeout,
            "reach running",
            waited.map(|_| ()).map_err(anyhow::Error::new),
        )
        .await
    }

    pub async fn wait_terminated(
        &self,
        ids: &[String],
        timeout: Duration,
    ) -> Result<Vec<InstanceInfo>> {
        let waited = self
            .client
            .wait_until_instance_terminated()
            .set_instance_ids(Some(ids.to_vec()))
            .wait(timeout)
            .await;
        self.after_wait(
            ids,
            timeout,
            "terminate",
            waited.map(|_| ()).map_err(anyhow::Error::new),
        )
        .await
    }

    async fn after_wait(
        &self,
        ids: &[String],
        timeout: Duration,
        what: &str,
        waited: Result<()>,
    ) -> Result<Vec<InstanceInfo>> {
        waited.map_err(|err| {
            anyhow!(
                "{} in {} did not {what} within {}: {}",
                ids.join(", "),
                self.region,
                crate::duration::format(timeout),
                crate::error::one_line(&err)
            )
        })?;
        self.describe_instances(ids).await
    }
}
