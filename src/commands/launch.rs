//! `ami launch AMI_ID`: instances from an image, to test it or to run it in another
//! Availability Zone; `--terminate-after` makes it a smoke test (running, --check, terminated).

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use std::time::Duration;

use crate::aws::instances::{InstanceInfo, LaunchRequest};
use crate::aws::settle::Fresh;
use crate::aws::{Aws, Ec2};
use crate::cli::{LaunchArgs, PlacementArgs};
use crate::config::Settings;
use crate::error::{Outcome, usage};
use crate::model::{Image, ImageState};
use crate::output::{Printer, Render, TableStyle, spinner};

/// AWS's limit on user data, before base64.
const MAX_USER_DATA: u64 = 16 * 1024;

#[derive(Debug, Serialize)]
pub struct LaunchOutput {
    pub region: String,
    pub image_id: String,
    pub dry_run: bool,
    pub instances: Vec<InstanceInfo>,
    pub check: Option<CheckResult>,
    pub terminated: bool,
}

#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub command: String,
    pub exit_code: Option<i32>,
    pub passed: bool,
}

/// Every id and the instance type of the placement flags, before any call.
pub fn check_placement(placement: &PlacementArgs) -> Result<()> {
    if let Some(subnet) = &placement.subnet_id {
        crate::ids::subnet_id(subnet)?;
    }
    for group in &placement.security_group_ids {
        crate::ids::security_group_id(group)?;
    }
    if placement.instance_type.trim().is_empty() || !placement.instance_type.contains('.') {
        return Err(usage(format!(
            "'{}' is not an instance type (such as t3.micro)",
            placement.instance_type
        )));
    }
    Ok(())
}

/// A launch request from the placement flags, checked first.
pub fn launch_request(
    image_id: &str,
    placement: &PlacementArgs,
    tags: &[(String, String)],
    count: i32,
) -> Result<LaunchRequest> {
    check_placement(placement)?;
    Ok(LaunchRequest {
        image_id: image_id.to_string(),
        instance_type: placement.instance_type.clone(),
        subnet_id: placement.subnet_id.clone(),
        availability_zone: placement.availability_zone.clone(),
        key_name: placement.key_name.clone(),
        security_group_ids: placement.security_group_ids.clone(),
        user_data: None,
        tags: tags.to_vec(),
        count,
        dry_run: false,
    })
}

/// Only an available image can be launched; anything else is refused with what it is.
pub fn refuse_unlaunchable(image: &Image) -> Result<()> {
    if crate::plan::state::Standing::of(&image.state).launchable() {
        return Ok(());
    }
    let why = match image.state {
        ImageState::Disabled => "it is disabled (re-enable it with EnableImage first)",
        ImageState::Deregistered => "it is deregistered",
        ImageState::Pending => "it is still pending (wait until it is available)",
        ImageState::Failed | ImageState::Error | ImageState::Invalid => "its creation failed",
        _ => "it is not available",
    };
    Err(usage(format!(
        "{} in {} cannot be launched: {why} (state {}); nothing was launched",
        image.image_id, image.region, image.state
    )))
}

/// The tag every instance `ami launch` starts carries, with a value unique to the run.
const LAUNCH_TAG: &str = "ami:launch";

pub async fn run(settings: &Settings, args: &LaunchArgs) -> Result<Outcome> {
    crate::ids::image_id(&args.image_id)?;
    let [region] = settings.regions.as_slice() else {
        return Err(usage("launch works in one region: pass a single --region"));
    };
    let mut request = launch_request(&args.image_id, &args.placement, &args.tags, args.count)?;
    if let Some(path) = &args.user_data {
        let size = std::fs::metadata(path)
            .map_err(|err| usage(format!("cannot read --user-data {}: {err}", path.display())))?
            .len();
        if size > MAX_USER_DATA {
            return Err(usage(format!(
                "--user-data {} is {size} bytes; AWS takes at most {MAX_USER_DATA}",
                path.display()
            )));
        }
        request.user_data =
            Some(std::fs::read(path).map_err(|err| {
                usage(format!("cannot read --user-data {}: {err}", path.display()))
            })?);
    }
    request.dry_run = settings.dry_run;

    let aws = Aws::connect(settings).await?;
    let ec2 = aws.ec2(region);
    let image = ec2.describe_image(&args.image_id).await?.ok_or_else(|| {
        usage(format!(
            "{} not found in {region}; nothing was launched",
            args.image_id
        ))
    })?;
    refuse_unlaunchable(&image)?;

    let mut output = LaunchOutput {
        region: region.clone(),
        image_id: args.image_id.clone(),
        dry_run: settings.dry_run,
        instances: Vec::new(),
        check: None,
        terminated: false,
    };
    if settings.dry_run {
        ec2.run_instances(&request).await?;
        Printer::new(settings).emit(&output)?;
        return Ok(Outcome::Success);
    }
    // Every instance carries this run's tag from its first moment (TagSpecifications), and
    // Ctrl-C is watched from before the call: an instance launched by a call whose answer was
    // lost, or interrupted, is still found and reported (and terminated by a smoke test).
    let token = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    request.tags.push((LAUNCH_TAG.to_string(), token.clone()));
    crate::interrupt::watch(crate::output::interrupted);
    output.instances = match ec2.run_instances(&request).await {
        Ok(instances) => instances,
        Err(err) => match ec2.live_instances_tagged(LAUNCH_TAG, &token).await {
            Ok(found) if !found.is_empty() => found,
            _ => return Err(err),
        },
    };
    let ids: Vec<String> = output
        .instances
        .iter()
        .map(|i| i.instance_id.clone())
        .collect();
    let mut outcome = Outcome::Success;
    if crate::interrupt::requested() {
        // Ctrl-C during the launch: a smoke test's instances go; others are reported.
        if args.terminate_after {
            let bar = spinner(settings, format!("{} terminating", ids.join(", ")));
            output.instances = terminate(&ec2, &ids, args.timeout, bar).await?;
            output.terminated = true;
        }
        Printer::new(settings).emit(&output)?;
        return Ok(Outcome::Failed);
    }
    if args.terminate_after {
        // A smoke test never leaves an instance behind: not when it fails to start, not when
        // the check fails, not on Ctrl-C (which stops the wait or the check, then terminates).
        let test = smoke_test(settings, &ec2, &image, &ids, args, &mut output);
        let passed = tokio::select! {
            passed = test => passed,
            _ = crate::interrupt::wait() => false,
        };
        if !passed {
            outcome = Outcome::Failed;
        }
        let bar = spinner(settings, format!("{} terminating", ids.join(", ")));
        output.instances = terminate(&ec2, &ids, args.timeout, bar).await?;
        output.terminated = true;
    } else if args.wait {
        let bar = spinner(settings, format!("{} starting", ids.join(", ")));
        // Ctrl-C stops the wait; the instances are reported as they were launched (exit 130).
        let waited = tokio::select! {
            waited = ec2.wait_running(&ids, args.timeout) => Some(waited),
            _ = crate::interrupt::wait() => None,
        };
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if let Some(waited) = waited {
            output.instances = waited?;
        }
    }
    Printer::new(settings).emit(&output)?;
    Ok(outcome)
}

/// Waits until running, then runs the check; whether it all passed. What went wrong is logged
/// and recorded in `output`.
async fn smoke_test(
    settings: &Settings,
    ec2: &Ec2,
    image: &Image,
    ids: &[String],
    args: &LaunchArgs,
    output: &mut LaunchOutput,
) -> bool {
    let bar = spinner(settings, format!("{} starting", ids.join(", ")));
    let waited = ec2.wait_running(ids, args.timeout).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match waited {
        Ok(running) => output.instances = running,
        Err(err) => {
            tracing::warn!("{}", crate::error::one_line(&err));
            return false;
        }
    }
    let Some(command) = &args.check else {
        return true;
    };
    match run_check(command, image, &output.instances).await {
        Ok(check) => {
            let passed = check.passed;
            output.check = Some(check);
            passed
        }
        Err(err) => {
            tracing::warn!("{}", crate::error::one_line(&err));
            false
        }
    }
}

/// Terminates and waits until AWS reports them terminated (with a spinner when given one).
pub async fn terminate(
    ec2: &Ec2,
    ids: &[String],
    timeout: Duration,
    bar: Option<indicatif::ProgressBar>,
) -> Result<Vec<InstanceInfo>> {
    // Launched moments ago, an instance may be unknown to AWS still (InvalidInstanceID.NotFound):
    // that does not mean it is gone, so it is asked again until AWS knows it.
    ec2.once_caught_up(Fresh::Instance, || ec2.terminate_instances(ids))
        .await?;
    let result = ec2.wait_terminated(ids, timeout).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

async fn run_check(
    command: &str,
    image: &Image,
    instances: &[InstanceInfo],
) -> Result<CheckResult> {
    let first = instances
        .first()
        .ok_or_else(|| anyhow!("no instance to check"))?;
    let ids: Vec<&str> = instances.iter().map(|i| i.instance_id.as_str()).collect();
    // The check's own output goes to our stderr: stdout carries only the one document.
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("AMI_INSTANCE_ID", &first.instance_id)
        .env("AMI_INSTANCE_IDS", ids.join(","))
        .env("AMI_IMAGE_ID", &image.image_id)
        .env("AMI_REGION", &image.region)
        .env(
            "AMI_AVAILABILITY_ZONE",
            first.availability_zone.as_deref().unwrap_or_default(),
        )
        .env(
            "AMI_PRIVATE_IP",
            first.private_ip.as_deref().unwrap_or_default(),
        )
        .env(
            "AMI_PUBLIC_IP",
            first.public_ip.as_deref().unwrap_or_default(),
        )
        .stdin(std::process::Stdio::null())
        // Ctrl-C drops the check: its process goes with it.
        .kill_on_drop(true)
        .stdout(crate::output::stderr_for_child()?)
        .status()
        .await
        .with_context(|| format!("running --check {command:?}"))?;
    // A terminal's Ctrl-C reaches the check too; it may die of it before we hear of it.
    if std::os::unix::process::ExitStatusExt::signal(&status) == Some(2) {
        crate::interrupt::mark();
    }
    Ok(CheckResult {
        command: command.to_string(),
        exit_code: status.code(),
        passed: status.success(),
    })
}

impl Render for LaunchOutput {
    fn render(&self, style: &TableStyle) -> String {
        if self.dry_run {
            return format!(
                "Dry run: AWS says launching {} in {} would succeed; nothing was launched.",
                self.image_id, self.region
            );
        }
        let mut table = style.table(&["INSTANCE", "AZ", "STATE", "PRIVATE IP", "PUBLIC IP"]);
        for instance in &self.instances {
            table.add_row(vec![
                style.cell(&instance.instance_id, None),
                style.cell(instance.availability_zone.as_deref().unwrap_or("-"), None),
                style.cell(&instance.state, None),
                style.cell(instance.private_ip.as_deref().unwrap_or("-"), None),
                style.cell(instance.public_ip.as_deref().unwrap_or("-"), None),
            ]);
        }
        let mut out = format!("{} in {}:\n{table}", self.image_id, self.region);
        if let Some(check) = &self.check {
            out.push_str(&format!(
                "\nCheck {:?}: {}",
                check.command,
                if check.passed {
                    "passed".to_string()
                } else {
                    format!(
                        "FAILED (exit {})",
                        check
                            .exit_code
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "by signal".into())
                    )
                }
            ));
        }
        if self.terminated {
            out.push_str("\nTerminated after the test.");
        }
        out
    }
}
