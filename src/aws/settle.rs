//! Waiting for AWS to catch up with what this run just did. EC2 is eventually consistent ("Eventual
//! consistency in the Amazon EC2 API"): an id just returned is unknown for a while to the next
//! calls, a snapshot stays "in use" for a while after its image is deregistered, and a read right
//! after a change can show the old value. Such answers mean "not yet", not "no": they are asked
//! again, with growing pauses, within one bound (`AMI_CONSISTENCY_TIMEOUT`, docs/aws.md). Past it,
//! AWS's last answer stands, and the caller reports it.
//!
//! This is the one place that knows which answers mean "not caught up yet". It only retries
//! calls about something this run made or changed (the caller says which, as a `Fresh`): an id
//! the user typed that AWS does not know is an error at once.

use std::future::Future;
use std::time::Duration;

use super::Ec2;
use super::error::AwsError;

/// How long AWS gets to catch up unless `AMI_CONSISTENCY_TIMEOUT` says otherwise. AWS speaks of
/// seconds for new ids; a deregistered image's snapshots have been seen in use for minutes.
pub const DEFAULT_CONSISTENCY_TIMEOUT: Duration = Duration::from_secs(300);

/// The first pause before asking again; each pause doubles, up to `LONGEST_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// Long enough not to spend the read budget on one resource, short enough to notice soon.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// Something this run made or changed, that AWS may not have caught up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// An image this run made, copied or restored: `InvalidAMIID.NotFound` for a while.
    Image,
    /// A snapshot this run made (a copy's): `InvalidSnapshot.NotFound` for a while.
    Snapshot,
    /// Instances this run launched: `InvalidInstanceID.NotFound` for a while (TerminateInstances
    /// right after RunInstances too: the instance is not gone, AWS does not know it yet).
    Instance,
    /// A snapshot whose image is gone now (this run deregistered it, or an interrupted run this
    /// one finishes did): `InvalidSnapshot.InUse` for a while.
    FreedSnapshot,
}

impl Fresh {
    /// Whether this answer means AWS has not caught up with the resource yet.
    pub fn lags(self, err: &AwsError) -> bool {
        let code = err.code.as_deref();
        match self {
            Fresh::Image => code == Some("InvalidAMIID.NotFound"),
            Fresh::Snapshot => code == Some("InvalidSnapshot.NotFound"),
            Fresh::Instance => code == Some("InvalidInstanceID.NotFound"),
            Fresh::FreedSnapshot => code == Some("InvalidSnapshot.InUse"),
        }
    }
}

/// The AWS error inside a call's error, whichever error type the call returns.
pub trait AwsAnswer {
    fn aws(&self) -> Option<&AwsError>;
}

impl AwsAnswer for AwsError {
    fn aws(&self) -> Option<&AwsError> {
        Some(self)
    }
}

impl AwsAnswer for anyhow::Error {
    fn aws(&self) -> Option<&AwsError> {
        self.downcast_ref::<AwsError>()
    }
}

/// Growing pauses until a deadline (wall-clock: the calls' own time counts too): `next` is
/// false once it has passed. Ctrl-C does not cut a wait short: what is in flight finishes (a
/// smoke test's instance must still be terminated); a second Ctrl-C stops at once.
struct Pauses {
    pause: Duration,
    deadline: tokio::time::Instant,
}

impl Pauses {
    fn within(bound: Duration) -> Pauses {
        Pauses {
            pause: FIRST_PAUSE,
            deadline: tokio::time::Instant::now() + bound,
        }
    }

    async fn next(&mut self) -> bool {
        let left = self
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        tokio::time::sleep(self.pause.min(left)).await;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        true
    }
}

/// Makes `call` again while AWS answers that it has not caught up with `fresh`, until `bound`
/// has passed; any other answer, or the last one past the bound, is returned as it is.
pub async fn until_caught_up<T, E, F, Fut>(
    region: &str,
    bound: Duration,
    fresh: Fresh,
    mut call: F,
) -> Result<T, E>
where
    E: AwsAnswer,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut pauses = Pauses::within(bound);
    loop {
        match call().await {
            Err(err) if err.aws().is_some_and(|aws| fresh.lags(aws)) => {
                tracing::debug!(
                    "{region}: AWS has not caught up yet ({}); asking again",
                    err.aws().map(|aws| aws.to_string()).unwrap_or_default()
                );
                if !pauses.next().await {
                    return Err(err);
                }
            }
            answer => return answer,
        }
    }
}

impl Ec2 {
    /// Makes `call` again while AWS answers that it has not caught up with `fresh`, within the
    /// bound; any other answer (or the last one past the bound) is returned as it is.
    pub async fn once_caught_up<T, E, F, Fut>(&self, fresh: Fresh, call: F) -> Result<T, E>
    where
        E: AwsAnswer,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        until_caught_up(&self.region, self.consistency_timeout, fresh, call).await
    }

    /// Reads again while what AWS answers is not `settled` yet (a read right after a change may
    /// show the old value), within the bound; the last answer, settled or not.
    pub async fn read_back<T, F, Fut>(
        &self,
        read: F,
        settled: impl Fn(&T) -> bool,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        read_back(&self.region, self.consistency_timeout, read, settled).await
    }

    /// An image this run just made, copied or restored, once DescribeImages knows it.
    pub async fn new_image(&self, image_id: &str) -> anyhow::Result<crate::model::Image> {
        let found = self
            .read_back(|| self.describe_image(image_id), Option::is_some)
            .await?;
        found.ok_or_else(|| {
            anyhow::anyhow!(
                "{image_id} in {} is still unknown to DescribeImages after {} (AWS has not caught \
                 up; AMI_CONSISTENCY_TIMEOUT waits longer)",
                self.region,
                crate::duration::format(self.consistency_timeout)
            )
        })
    }
}

/// `Ec2::read_back` for any client: reads until `settled` holds of the answer, within `bound`.
pub async fn read_back<T, F, Fut>(
    region: &str,
    bound: Duration,
    mut read: F,
    settled: impl Fn(&T) -> bool,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut pauses = Pauses::within(bound);
    loop {
        let value = read().await?;
        if settled(&value) || !pauses.next().await {
            return Ok(value);
        }
        tracing::debug!("{region}: the read-back shows the old value; reading again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pauses_grow_and_stop_at_the_bound() {
        let mut pauses = Pauses::within(Duration::from_secs(12));
        let start = tokio::time::Instant::now();
        let mut waits = Vec::new();
        while pauses.next().await {
            waits.push(start.elapsed().as_millis());
        }
        // 0.25, 0.5, 1, 2, 4, then what is left of the 12 s (4.25).
        assert_eq!(waits, [250, 750, 1750, 3750, 7750, 12000]);
        // The calls' own time counts: a bound spent in one slow call leaves no pause.
        let mut pauses = Pauses::within(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!pauses.next().await);
    }

    fn aws(code: &str) -> AwsError {
        AwsError::answered(
            super::super::error::Operation::DeleteSnapshot,
            "us-east-1",
            code,
        )
    }

    /// Asked again only while AWS lags: another answer comes back at once; past the bound, the
    /// last lagging answer.
    #[tokio::test(start_paused = true)]
    async fn only_a_lagging_answer_is_asked_again_and_only_within_the_bound() {
        let bound = Duration::from_secs(10);
        let calls = std::cell::Cell::new(0);
        // In use twice, then deleted.
        let answer = until_caught_up("us-east-1", bound, Fresh::FreedSnapshot, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(aws("InvalidSnapshot.InUse"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(answer.ok(), Some(3));
        // Any other answer at once.
        calls.set(0);
        let start = tokio::time::Instant::now();
        let answer: Result<(), AwsError> =
            until_caught_up("us-east-1", bound, Fresh::FreedSnapshot, || {
                calls.set(calls.get() + 1);
                async { Err(aws("SnapshotLocked")) }
            })
            .await;
        assert_eq!(answer.unwrap_err().code.as_deref(), Some("SnapshotLocked"));
        assert_eq!((calls.get(), start.elapsed()), (1, Duration::ZERO));
        // Never caught up: AWS's last answer once the bound has passed.
        let start = tokio::time::Instant::now();
        let answer: Result<(), AwsError> =
            until_caught_up("us-east-1", bound, Fresh::FreedSnapshot, || async {
                Err(aws("InvalidSnapshot.InUse"))
            })
            .await;
        assert_eq!(
            answer.unwrap_err().code.as_deref(),
            Some("InvalidSnapshot.InUse")
        );
        assert_eq!(start.elapsed(), bound);
    }

    #[test]
    fn only_the_answers_of_a_lagging_aws_are_asked_again() {
        let err = |code: &str| {
            AwsError::answered(
                super::super::error::Operation::DescribeImages,
                "us-east-1",
                code,
            )
        };
        // Table: what was made → the answers that mean "not yet".
        let cases = [
            (Fresh::Image, "InvalidAMIID.NotFound", true),
            (Fresh::Image, "InvalidAMIID.Malformed", false),
            (Fresh::Image, "InvalidInstanceID.NotFound", false),
            (Fresh::Instance, "InvalidInstanceID.NotFound", true),
            (Fresh::Snapshot, "InvalidSnapshot.NotFound", true),
            (Fresh::FreedSnapshot, "InvalidSnapshot.InUse", true),
            (Fresh::FreedSnapshot, "InvalidSnapshot.NotFound", false),
            (Fresh::FreedSnapshot, "SnapshotLocked", false),
        ];
        for (fresh, code, lags) in cases {
            assert_eq!(fresh.lags(&err(code)), lags, "{fresh:?} {code}");
        }
    }
}
