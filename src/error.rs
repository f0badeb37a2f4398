//! Exit codes and the error kinds that choose them.
//!
//! Commands return `anyhow::Result<Outcome>`; a `UsageError` anywhere in the error chain means the
//! input was refused before anything changed (exit 2).

use std::fmt;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_PARTIAL: u8 = 3;

/// How a command that returned normally ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Some items failed; the output names them.
    Partial,
    /// Nothing was done; the output already says why, item by item.
    Failed,
}

/// Invalid input or environment (bad id, no region, no credentials): nothing was changed.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The exit code, and the error's one line (the message and its causes) to end the run with.
pub fn report(outcome: anyhow::Result<Outcome>) -> (u8, Option<String>) {
    if crate::interrupt::requested() {
        let line = outcome.as_ref().err().map(one_line);
        return (crate::interrupt::EXIT_INTERRUPTED, line);
    }
    match outcome {
        Ok(Outcome::Success) => (EXIT_OK, None),
        Ok(Outcome::Partial) => (EXIT_PARTIAL, None),
        Ok(Outcome::Failed) => (EXIT_FAILURE, None),
        // A closed pipe (`| head`): the reader has what it wanted.
        Err(err) if is_broken_pipe(&err) => (EXIT_OK, None),
        Err(err) => {
            let code = if err.chain().any(|cause| cause.is::<UsageError>()) {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            };
            (code, Some(one_line(&err)))
        }
    }
}

/// The message and its causes on one line, without repeating a cause already quoted.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        // An AWS error's line already says what its SDK source would, in words for a person.
        if cause.is::<crate::aws::error::AwsError>() {
            break;
        }
    }
    line
}

/// Whether the run ended because its own output was closed (`| head`). A broken pipe under an
/// AWS error is a failed call, never this: the chain is not followed into an AWS error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    for cause in err.chain() {
        if cause.is::<crate::aws::error::AwsError>() {
            return false;
        }
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_even_when_wrapped() {
        let err = usage("bad id").context("listing images");
        assert_eq!(report(Err(err)).0, EXIT_USAGE);
    }

    #[test]
    fn other_errors_exit_1() {
        assert_eq!(
            report(Err(anyhow::anyhow!("boom"))),
            (EXIT_FAILURE, Some("boom".to_string()))
        );
    }

    #[test]
    fn outcomes_map_to_documented_codes() {
        assert_eq!(report(Ok(Outcome::Success)), (0, None));
        assert_eq!(report(Ok(Outcome::Partial)), (3, None));
        assert_eq!(report(Ok(Outcome::Failed)), (1, None));
    }

    #[test]
    fn one_line_skips_repeated_causes() {
        let err = anyhow::anyhow!("connection refused").context("connection refused");
        assert_eq!(one_line(&err), "connection refused");
        let err = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&err), "outer: inner");
    }

    #[test]
    fn only_a_closed_output_is_a_quiet_success() {
        use aws_sdk_ec2::config::http::HttpResponse;
        use aws_sdk_ec2::error::SdkError;
        use aws_sdk_ec2::operation::delete_snapshot::DeleteSnapshotError;
        let closed = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let err = anyhow::Error::new(closed()).context("writing the report");
        assert_eq!(report(Err(err)), (EXIT_OK, None));
        // A connection to AWS broken mid-call is a failed call.
        let sdk: SdkError<DeleteSnapshotError, HttpResponse> =
            SdkError::construction_failure(closed());
        let aws = crate::aws::error::AwsError::from_sdk(
            crate::aws::error::Operation::DeleteSnapshot,
            "us-east-1",
            sdk,
        );
        let (code, line) = report(Err(anyhow::Error::new(aws)));
        assert_eq!(code, EXIT_FAILURE);
        assert!(line.is_some_and(|line| line.contains("DeleteSnapshot")));
    }

    #[test]
    fn an_aws_error_ends_the_line_without_its_sdk_source() {
        use aws_sdk_ec2::config::http::HttpResponse;
        use aws_sdk_ec2::error::SdkError;
        use aws_sdk_ec2::operation::describe_images::DescribeImagesError;
        let sdk: SdkError<DescribeImagesError, HttpResponse> = SdkError::timeout_error("slow");
        let aws = crate::aws::error::AwsError::from_sdk(
            crate::aws::error::Operation::DescribeImages,
            "us-east-1",
            sdk,
        );
        let err = anyhow::Error::new(aws).context("listing images");
        assert_eq!(
            one_line(&err),
            "listing images: DescribeImages in us-east-1 failed: the request timed out"
        );
    }
}
