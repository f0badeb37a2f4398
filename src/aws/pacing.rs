//! Pacing: EC2 meters each action per account and region with a token bucket (AWS's published
//! capacities and refill rates). Waiting for a token here, before sending, keeps the account's
//! bucket from running dry, so calls are not refused and retried, and the SDK's adaptive retry
//! mode (which slows every call once throttled) stays a safety net instead of the brake.

use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The actions a retirement sends in bulk, each with AWS's bucket: (capacity, refill per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metered {
    DeregisterImage,
    DeleteSnapshot,
    /// CreateTags and DeleteTags share one bucket.
    Tags,
    /// Mutating actions without a bucket of their own (CreateImageUsageReport, ...).
    Mutating,
}

impl Metered {
    fn bucket(self) -> (f64, f64) {
        match self {
            Metered::DeregisterImage | Metered::DeleteSnapshot => (100.0, 5.0),
            Metered::Tags => (100.0, 10.0),
            Metered::Mutating => (50.0, 5.0),
        }
    }
}

/// A client-side copy of one of the account's buckets.
#[derive(Debug)]
pub struct Pace {
    refill: f64,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

/// Other clients of the account draw from the same buckets: start with most, not all, of the
/// burst, and refill at the published rate (times `AMI_EC2_RATE_SCALE` for raised limits).
const BURST_SHARE: f64 = 0.9;

impl Pace {
    pub fn new(action: Metered, scale: f64) -> Pace {
        let (capacity, refill) = action.bucket();
        let capacity = capacity * BURST_SHARE;
        Pace {
            refill: refill * scale,
            capacity,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    /// Waits until a call may be sent, then takes its token.
    pub async fn take(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let (tokens, at) = *state;
                let now = Instant::now();
                let tokens = (tokens + now.duration_since(at).as_secs_f64() * self.refill)
                    .min(self.capacity);
                if tokens >= 1.0 {
                    *state = (tokens - 1.0, now);
                    return;
                }
                *state = (tokens, now);
                Duration::from_secs_f64((1.0 - tokens) / self.refill)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The paced buckets of one region.
#[derive(Debug)]
pub struct Pacing {
    pub deregister: Pace,
    pub delete_snapshot: Pace,
    pub tags: Pace,
    pub mutating: Pace,
}

impl Pacing {
    pub fn new(scale: f64) -> Pacing {
        Pacing {
            deregister: Pace::new(Metered::DeregisterImage, scale),
            delete_snapshot: Pace::new(Metered::DeleteSnapshot, scale),
            tags: Pace::new(Metered::Tags, scale),
            mutating: Pace::new(Metered::Mutating, scale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn past_the_burst_calls_go_at_the_refill_rate() {
        let pace = Pace::new(Metered::DeregisterImage, 1.0);
        let start = tokio::time::Instant::now();
        for _ in 0..90 {
            pace.take().await;
        }
        // The burst (90% of 100) went at once.
        assert!(start.elapsed() < Duration::from_millis(10));
        for _ in 0..10 {
            pace.take().await;
        }
        // Ten more at 5 a second: two seconds.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((1.9..2.2).contains(&elapsed), "{elapsed}");
        // A raised limit (scale 10): ten more in a fifth of a second.
        let fast = Pace::new(Metered::DeregisterImage, 10.0);
        for _ in 0..90 {
            fast.take().await;
        }
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            fast.take().await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!((0.19..0.22).contains(&elapsed), "{elapsed}");
    }
}
