//! Retry policy: ride out throttling and transient faults (a cron cleanup that gives up half way
//! leaves work for the next run), but fail fast on an endpoint that has never answered.
//!
//! The SDK's adaptive mode paces requests on the client when AWS throttles (its rate limiter is
//! shared by every client of a service in the process); these attempts are its budget per call.

use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, InterceptorContext,
};
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Attempts per call unless --max-attempts, AWS_MAX_ATTEMPTS or the profile say otherwise. The
/// SDK's 3 lets about 1 call in 125 fail outright at a 20% fault rate: too many for thousands.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// Attempts for a call whose connection fails while the endpoint has not answered once in this
/// run: a wrong or unreachable endpoint is reported in seconds, not after ten backoffs.
const ATTEMPTS_BEFORE_FIRST_ANSWER: u32 = 3;

static ANSWERED: AtomicBool = AtomicBool::new(false);
static CONNECT_FAILURES: AtomicU32 = AtomicU32::new(0);

/// Registered on every client, as interceptor (it notes that the endpoint answered) and as retry
/// classifier (it forbids further retries of connection failures until it has).
#[derive(Debug, Default, Clone, Copy)]
pub struct FailFastUntilAnswered;

impl Intercept for FailFastUntilAnswered {
    fn name(&self) -> &'static str {
        "FailFastUntilAnswered"
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        ANSWERED.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl ClassifyRetry for FailFastUntilAnswered {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        if ctx.response().is_some() {
            ANSWERED.store(true, Ordering::Relaxed);
            return RetryAction::NoActionIndicated;
        }
        let connection_failed = matches!(
            ctx.output_or_error(),
            Some(Err(err)) if err.is_connector_error()
        );
        if !connection_failed || ANSWERED.load(Ordering::Relaxed) {
            return RetryAction::NoActionIndicated;
        }
        let failures = CONNECT_FAILURES.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= ATTEMPTS_BEFORE_FIRST_ANSWER {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "FailFastUntilAnswered"
    }
}
