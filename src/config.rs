//! The resolved configuration a command works on, built once from the flags and the environment.
//!
//! Resolution follows the AWS CLI: flag, then environment, then the profile's config file.

use anyhow::Result;
use aws_config::meta::region::ProvideRegion;
use aws_config::profile::ProfileFileRegionProvider;
use std::io::IsTerminal;

use crate::cli::{ColorChoice, GlobalArgs, OutputFormat};
use crate::error::usage;

#[derive(Debug, Clone)]
pub struct Settings {
    /// At least one, validated, in the order given, without duplicates.
    pub regions: Vec<String>,
    pub profile: Option<String>,
    /// --endpoint-url, else AWS_ENDPOINT_URL; validated.
    pub endpoint_url: Option<String>,
    pub max_attempts: Option<u32>,
    pub output: OutputFormat,
    pub yes: bool,
    pub dry_run: bool,
    /// -q: only errors on stderr.
    pub quiet: bool,
    pub progress: bool,
    pub color: bool,
    /// AMI_EC2_RATE_SCALE: how many times AWS's published EC2 request rates this account has
    /// (AWS raises them on request); `ami` paces its bulk calls to them. Default 1.
    pub rate_scale: f64,
    /// AMI_CONSISTENCY_TIMEOUT: how long AWS gets to catch up with what this run did (a new id,
    /// a snapshot freed by a deregistration, a changed permission). Default 5 minutes.
    pub consistency_timeout: std::time::Duration,
}

impl Settings {
    pub async fn resolve(global: &GlobalArgs) -> Result<Settings> {
        let profile = global
            .profile
            .clone()
            .or_else(|| env_non_empty("AWS_PROFILE"));
        let regions = resolve_regions(&global.region, profile.as_deref()).await?;
        let endpoint_url = match &global.endpoint_url {
            Some(url) => Some(validate_endpoint(url, "--endpoint-url")?),
            None => match env_non_empty("AWS_ENDPOINT_URL") {
                Some(url) => Some(validate_endpoint(&url, "AWS_ENDPOINT_URL")?),
                None => None,
            },
        };
        let terminal = terminal();
        let color = match global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal.stdout && std::env::var_os("NO_COLOR").is_none(),
        };
        let rate_scale = match env_non_empty("AMI_EC2_RATE_SCALE") {
            None => 1.0,
            Some(raw) => match raw.parse::<f64>() {
                Ok(scale) if scale.is_finite() && scale > 0.0 => scale,
                _ => {
                    return Err(usage(format!(
                        "AMI_EC2_RATE_SCALE '{raw}' is not a positive number"
                    )));
                }
            },
        };
        let consistency_timeout = match env_non_empty("AMI_CONSISTENCY_TIMEOUT") {
            None => crate::aws::settle::DEFAULT_CONSISTENCY_TIMEOUT,
            Some(raw) => crate::duration::parse(&raw)
                .map_err(|why| usage(format!("AMI_CONSISTENCY_TIMEOUT: {why}")))?,
        };
        Ok(Settings {
            rate_scale,
            consistency_timeout,
            regions,
            profile,
            endpoint_url,
            max_attempts: global.max_attempts,
            output: global.output,
            yes: global.yes,
            dry_run: global.dry_run,
            quiet: global.quiet,
            progress: terminal.stderr
                && !global.no_progress
                && !global.quiet
                && global.output == OutputFormat::Table,
            color,
        })
    }
}

impl Settings {
    /// Whether a question can be asked: table output with a person at the terminal. JSON output
    /// is for programs and never prompts.
    pub fn can_prompt(&self) -> bool {
        let terminal = terminal();
        self.output == OutputFormat::Table && terminal.stdin && terminal.stderr
    }
}

/// Which of the standard streams are terminals: what decides colour, progress and prompts.
pub struct Terminal {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

pub fn terminal() -> Terminal {
    Terminal {
        stdin: std::io::stdin().is_terminal(),
        stdout: std::io::stdout().is_terminal(),
        stderr: std::io::stderr().is_terminal(),
    }
}

pub fn env_non_empty(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

async fn resolve_regions(flags: &[String], profile: Option<&str>) -> Result<Vec<String>> {
    let mut regions: Vec<String> = Vec::new();
    if flags.is_empty() {
        let from_env = env_non_empty("AWS_REGION").or_else(|| env_non_empty("AWS_DEFAULT_REGION"));
        let region = match from_env {
            Some(region) => Some(region),
            None => profile_region(profile).await,
        };
        match region {
            Some(region) => regions.push(region),
            None => {
                return Err(usage(format!(
                    "no AWS region: pass --region, set AWS_REGION, or set `region` in profile '{}' of ~/.aws/config",
                    profile.unwrap_or("default")
                )));
            }
        }
    } else {
        for region in flags {
            if !regions.contains(region) {
                regions.push(region.clone());
            }
        }
    }
    for region in &regions {
        validate_region(region)?;
    }
    Ok(regions)
}

async fn profile_region(profile: Option<&str>) -> Option<String> {
    let mut builder = ProfileFileRegionProvider::builder();
    if let Some(name) = profile {
        builder = builder.profile_name(name);
    }
    builder
        .build()
        .region()
        .await
        .map(|region| region.as_ref().to_string())
}

/// Region names look like `us-east-1`, `us-gov-west-1`, `eu-isoe-west-1`, `eusc-de-east-1`:
/// lowercase words and a number. Only the form is checked; which regions exist is the endpoint's
/// to say (new partitions and regions appear without a new `ami`).
pub fn validate_region(region: &str) -> Result<()> {
    let parts: Vec<&str> = region.split('-').collect();
    let (number, words) = parts.split_last().unwrap_or((&"", &[]));
    let valid = words.len() >= 2
        && words[0].len() >= 2
        && words
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase()))
        && (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return Err(usage(format!(
            "invalid region '{region}': expected a region name such as us-east-1"
        )));
    }
    Ok(())
}

fn validate_endpoint(url: &str, source: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(url.to_string()),
        _ => Err(usage(format!(
            "invalid {source} '{url}': expected http://HOST[:PORT] or https://HOST[:PORT]"
        ))),
    }
}

/// The AWS CLI treats an empty AWS_* variable as unset; the SDK takes an empty AWS_ENDPOINT_URL
/// at its word and panics on it. Call before any thread starts (it edits the environment).
pub fn drop_empty_aws_env() {
    let empty: Vec<std::ffi::OsString> = std::env::vars_os()
        .filter(|(name, value)| {
            name.to_str().is_some_and(|name| name.starts_with("AWS_"))
                && value.to_str().is_some_and(|value| value.trim().is_empty())
        })
        .map(|(name, _)| name)
        .collect();
    for name in empty {
        // SAFETY: called at the start of main, before the runtime or any other thread exists.
        unsafe { std::env::remove_var(name) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names() {
        for good in [
            "us-east-1",
            "eu-west-3",
            "us-gov-west-1",
            "ap-southeast-4",
            "eu-isoe-west-1",
            "eusc-de-east-1",
        ] {
            assert!(validate_region(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "us-east",
            "useast1",
            "US-EAST-1",
            "us-east-1a",
            "us--1",
            "u-east-1",
            "us-east-123",
        ] {
            assert!(validate_region(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        assert!(validate_endpoint("http://127.0.0.1:5000", "--endpoint-url").is_ok());
        assert!(validate_endpoint("https://ec2.example.com", "--endpoint-url").is_ok());
        assert!(validate_endpoint("127.0.0.1:5000", "--endpoint-url").is_err());
        assert!(validate_endpoint("http://", "AWS_ENDPOINT_URL").is_err());
    }
}
