//! `--dry-run` made structural: with it, every client refuses, before sending, any call that
//! could change the account, unless it is an EC2 request with `DryRun=true` (AWS's own
//! permission check, which changes nothing). A verb that forgot to honour `--dry-run` then fails
//! loudly instead of changing anything.

use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Calls that only read: the AWS naming convention, plus AssumeRole (it hands out credentials
/// and changes nothing in any account).
pub fn reads_only(operation: &str) -> bool {
    ["Describe", "Get", "List", "Head"]
        .iter()
        .any(|prefix| operation.starts_with(prefix))
        || operation == "AssumeRole"
}

/// The interceptor installed on every client of a `--dry-run` invocation.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadOnly;

impl Intercept for ReadOnly {
    fn name(&self) -> &'static str {
        "ReadOnly"
    }

    fn read_before_signing(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|metadata| metadata.name().to_string())
            .unwrap_or_else(|| "an unnamed call".into());
        if reads_only(&operation) || asks_dry_run(context.request().body().bytes()) {
            return Ok(());
        }
        Err(format!(
            "--dry-run: refused to send {operation}, which would change the account; nothing was changed"
        )
        .into())
    }
}

/// An EC2 query-protocol body carrying `DryRun=true`.
fn asks_dry_run(body: Option<&[u8]>) -> bool {
    body.is_some_and(|body| {
        body.split(|b| *b == b'&')
            .any(|pair| pair == b"DryRun=true")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_pass_without_a_dry_run_flag() {
        for read in [
            "DescribeImages",
            "GetBucketLocation",
            "ListObjectsV2",
            "HeadObject",
            "AssumeRole",
        ] {
            assert!(reads_only(read), "{read}");
        }
        for write in [
            "CreateImage",
            "DeregisterImage",
            "DeleteObjects",
            "PutParameter",
            "ModifyImageAttribute",
        ] {
            assert!(!reads_only(write), "{write}");
        }
    }

    #[test]
    fn the_dry_run_flag_must_be_a_parameter_of_its_own() {
        assert!(asks_dry_run(Some(b"Action=CreateImage&DryRun=true&Name=x")));
        assert!(!asks_dry_run(Some(
            b"Action=CreateImage&Name=DryRun%3Dtrue"
        )));
        assert!(!asks_dry_run(Some(b"Action=CreateImage&DryRun=false")));
        assert!(!asks_dry_run(None));
    }
}
