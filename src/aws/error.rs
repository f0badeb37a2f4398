//! Turns SDK errors into one readable line: the AWS error code and message for service errors,
//! the underlying cause (connection refused, DNS, timeout) for transport failures.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use std::error::Error as StdError;
use std::fmt;

/// A failed AWS call, with the operation and region it was made in.
#[derive(Debug)]
pub struct AwsError {
    pub operation: &'static str,
    pub region: String,
    /// The AWS error code (`InvalidAMIID.NotFound`), when the service answered.
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {} failed: ", self.operation, self.region)?;
        match &self.code {
            Some(code) if self.message.is_empty() => write!(f, "{code}"),
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl StdError for AwsError {}

impl AwsError {
    /// The endpoint does not offer this action at all (an older partition or region): the only
    /// failure of a safety read that may become a note instead of keeping what it protects.
    pub fn not_offered(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("InvalidAction" | "UnsupportedOperation")
        )
    }

    pub fn from_sdk<E>(
        operation: &'static str,
        region: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> AwsError
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        let (code, message) = match err {
            SdkError::ServiceError(service) => {
                let inner = service.err();
                let message = inner.message().unwrap_or_default().to_string();
                match inner.code() {
                    Some(code) => (Some(code.to_string()), message),
                    // No AWS error code: an endpoint that is not EC2, or a server fault.
                    None => (
                        None,
                        format!(
                            "the endpoint answered HTTP {} without an AWS error{}",
                            service.raw().status().as_u16(),
                            if message.is_empty() {
                                String::new()
                            } else {
                                format!(": {message}")
                            }
                        ),
                    ),
                }
            }
            SdkError::TimeoutError(_) => (None, "the request timed out".to_string()),
            SdkError::DispatchFailure(failure) => {
                let cause = causes(err);
                let message = if failure.is_io() || failure.is_timeout() {
                    format!("cannot reach the endpoint: {cause}")
                } else {
                    cause
                };
                (None, message)
            }
            _ => (None, causes(err)),
        };
        AwsError {
            operation,
            region: region.to_string(),
            code,
            message,
        }
    }
}

/// AWS's answer to a request sent with `DryRun=true`: DryRunOperation means the call would be
/// allowed, UnauthorizedOperation that it would be refused; anything else is an error.
pub fn dry_run_answer<O, E>(
    operation: &'static str,
    region: &str,
    result: Result<O, SdkError<E, HttpResponse>>,
) -> Result<crate::model::DryRunCheck, AwsError>
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    use crate::model::DryRunCheck;
    let err = match result {
        Ok(_) => {
            return Err(AwsError {
                operation,
                region: region.to_string(),
                code: None,
                message: "the endpoint carried out a DryRun request instead of only checking it"
                    .into(),
            });
        }
        Err(err) => err,
    };
    match service_code(&err) {
        Some("DryRunOperation") => Ok(DryRunCheck::Allowed),
        Some("UnauthorizedOperation" | "AccessDenied") => Ok(DryRunCheck::Denied(
            AwsError::from_sdk(operation, region, &err).to_string(),
        )),
        _ => Err(AwsError::from_sdk(operation, region, &err)),
    }
}

/// The AWS error code of a service error, if the service answered with one.
pub fn service_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// The distinct messages of an error's source chain, innermost last, on one line.
fn causes(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(cause) = current {
        let text = cause.to_string();
        if !text.is_empty() && !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        current = cause.source();
    }
    // The SDK's outer layers ("dispatch failure", "io error") add nothing for a person.
    let useful: Vec<&String> = parts
        .iter()
        .filter(|part| !matches!(part.as_str(), "dispatch failure" | "io error" | "other"))
        .collect();
    if useful.is_empty() {
        parts.join(": ")
    } else {
        useful
            .iter()
            .map(|part| part.as_str())
            .collect::<Vec<_>>()
            .join(": ")
    }
}
