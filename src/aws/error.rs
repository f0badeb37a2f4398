//! A failed AWS call as a typed error: which action, in which region, on which resource, what
//! AWS answered (its error code and message, kept apart), with the SDK's error as `source()`.
//! Its one-line rendering is the AWS code and message for service errors, the underlying cause
//! (connection refused, DNS, timeout) for transport failures.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use std::error::Error as StdError;
use std::fmt;

macro_rules! operations {
    ($($name:ident,)+) => {
        /// The AWS actions `ami` calls, by their API names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Operation {
            $($name,)+
        }

        impl Operation {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Operation::$name => stringify!($name),)+
                }
            }
        }
    };
}

operations!(
    CopyImage,
    CreateImage,
    CreateImageUsageReport,
    CreateTags,
    DeleteBucket,
    DeleteObjects,
    DeleteSnapshot,
    DeleteTags,
    DeregisterImage,
    DescribeImageAttribute,
    DescribeImageReferences,
    DescribeImageUsageReportEntries,
    DescribeImageUsageReports,
    DescribeImages,
    DescribeInstances,
    DescribeLaunchConfigurations,
    DescribeLaunchTemplateVersions,
    DescribeLaunchTemplates,
    DescribeLockedSnapshots,
    DescribeRegions,
    DescribeSnapshotAttribute,
    DescribeSnapshots,
    DisableImage,
    EnableImageDeprecation,
    EnableImageDeregistrationProtection,
    GetAllowedImagesSettings,
    GetBucketLocation,
    GetCallerIdentity,
    GetImageAncestry,
    GetImageBlockPublicAccessState,
    GetObject,
    GetParameter,
    GetRule,
    ListAccounts,
    ListImagesInRecycleBin,
    ListObjectsV2,
    ListRules,
    ListSnapshotsInRecycleBin,
    ModifyImageAttribute,
    ModifySnapshotAttribute,
    PutParameter,
    RegisterImage,
    RestoreImageFromRecycleBin,
    RestoreSnapshotFromRecycleBin,
    RunInstances,
    TerminateInstances,
);

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed AWS call, with the action, region and (where there is one) resource it was about.
#[derive(Debug)]
pub struct AwsError {
    pub operation: Operation,
    pub region: String,
    /// The image, snapshot, S3 key, parameter or account the call was about.
    pub resource: Option<String>,
    /// The AWS error code (`InvalidAMIID.NotFound`), when the service answered with one.
    pub code: Option<String>,
    /// AWS's message, or what went wrong on the way (a timeout, a refused connection).
    pub message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.operation)?;
        if let Some(resource) = &self.resource {
            write!(f, " of {resource}")?;
        }
        write!(f, " in {} failed: ", self.region)?;
        match &self.code {
            Some(code) if self.message.is_empty() => write!(f, "{code}"),
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl StdError for AwsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

impl AwsError {
    /// A failure AWS did not send: the endpoint misbehaved in a way the SDK does not report.
    pub fn new(operation: Operation, region: &str, message: impl Into<String>) -> AwsError {
        AwsError {
            operation,
            region: region.to_string(),
            resource: None,
            code: None,
            message: message.into(),
            source: None,
        }
    }

    /// As AWS answered: a service error with this code (for tests of what decides on codes).
    #[cfg(test)]
    pub fn answered(operation: Operation, region: &str, code: &str) -> AwsError {
        AwsError {
            code: Some(code.to_string()),
            ..AwsError::new(operation, region, "")
        }
    }

    /// The resource the failed call was about.
    pub fn on(mut self, resource: impl Into<String>) -> AwsError {
        self.resource = Some(resource.into());
        self
    }

    /// The endpoint does not offer this action at all (an older partition or region): the only
    /// failure of a safety read that may become a note instead of keeping what it protects.
    pub fn not_offered(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("InvalidAction" | "UnsupportedOperation")
        )
    }

    pub fn from_sdk<E>(
        operation: Operation,
        region: &str,
        err: SdkError<E, HttpResponse>,
    ) -> AwsError
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let (code, message) = match &err {
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
                let cause = causes(&err);
                let message = if failure.is_io() || failure.is_timeout() {
                    format!("cannot reach the endpoint: {cause}")
                } else {
                    cause
                };
                (None, message)
            }
            _ => (None, causes(&err)),
        };
        AwsError {
            operation,
            region: region.to_string(),
            resource: None,
            code,
            message,
            source: Some(Box::new(err)),
        }
    }
}

/// AWS's answer to a request sent with `DryRun=true`: DryRunOperation means the call would be
/// allowed, UnauthorizedOperation that it would be refused; anything else is an error.
pub fn dry_run_answer<O, E>(
    operation: Operation,
    region: &str,
    result: Result<O, SdkError<E, HttpResponse>>,
) -> Result<crate::model::DryRunCheck, AwsError>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    use crate::model::DryRunCheck;
    let err = match result {
        Ok(_) => {
            return Err(AwsError::new(
                operation,
                region,
                "the endpoint carried out a DryRun request instead of only checking it",
            ));
        }
        Err(err) => err,
    };
    match service_code(&err) {
        Some("DryRunOperation") => Ok(DryRunCheck::Allowed),
        Some("UnauthorizedOperation" | "AccessDenied") => Ok(DryRunCheck::Denied(
            AwsError::from_sdk(operation, region, err).to_string(),
        )),
        _ => Err(AwsError::from_sdk(operation, region, err)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::operation::describe_images::DescribeImagesError;

    #[test]
    fn names_the_call_the_resource_and_keeps_the_sdk_error_as_its_source() {
        let sdk: SdkError<DescribeImagesError, HttpResponse> = SdkError::timeout_error("slow");
        let err = AwsError::from_sdk(Operation::DescribeImages, "us-east-1", sdk).on("ami-1");
        assert_eq!(
            err.to_string(),
            "DescribeImages of ami-1 in us-east-1 failed: the request timed out"
        );
        assert!(
            err.source()
                .is_some_and(|source| source.is::<SdkError<DescribeImagesError, HttpResponse>>())
        );
        assert_eq!(err.code, None);
        let answered = AwsError::answered(
            Operation::DeleteSnapshot,
            "eu-west-1",
            "InvalidSnapshot.InUse",
        );
        assert_eq!(
            answered.to_string(),
            "DeleteSnapshot in eu-west-1 failed: InvalidSnapshot.InUse"
        );
        assert!(!answered.not_offered());
        assert!(
            AwsError::answered(Operation::GetImageAncestry, "x", "InvalidAction").not_offered()
        );
    }
}
