//! Deprecation times as AWS takes them (EnableImageDeprecation): DeprecateAt is rounded to the
//! nearest minute; a time in the past is refused; the upper limit is 10 years from now, and for
//! a public image 2 years from its creation. Checked before any call, so bad input is an error
//! naming the time, not a half-made release.

use chrono::{DateTime, Duration, Months, Utc};

/// What AWS records for `at`: the nearest whole minute (whole seconds are sent).
pub fn rounded(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp();
    let within = seconds.rem_euclid(60);
    let minute = if within >= 30 {
        seconds - within + 60
    } else {
        seconds - within
    };
    DateTime::from_timestamp(minute, 0).unwrap_or(at)
}

/// `at` as AWS will record it, or why AWS would refuse it. `public_since`: the creation time of
/// an image that is public.
pub fn accepted(
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    public_since: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, String> {
    let at = rounded(at);
    let shown = |time: DateTime<Utc>| time.format("%Y-%m-%d %H:%M UTC").to_string();
    if at <= now {
        return Err(format!(
            "the deprecation time {} is not in the future (AWS rounds it to the minute and \
             refuses a time in the past)",
            shown(at)
        ));
    }
    let ten_years = now.checked_add_months(Months::new(120)).unwrap_or(now);
    if at > ten_years {
        return Err(format!(
            "the deprecation time {} is more than 10 years from now, AWS's limit",
            shown(at)
        ));
    }
    if let Some(created) = public_since {
        let two_years = created
            .checked_add_months(Months::new(24))
            .unwrap_or(created);
        if at > two_years {
            return Err(format!(
                "the deprecation time {} is more than 2 years after the public image was created \
                 ({}), AWS's limit for public images",
                shown(at),
                shown(created)
            ));
        }
    }
    Ok(at)
}

/// Margin for the clock of this machine against AWS's when a deprecation is to start now.
const CLOCK_MARGIN: Duration = Duration::minutes(2);

/// The DeprecateAt that deprecates an image as soon as AWS allows: a whole minute in the
/// future, clear of clock differences (AWS refuses "now", which rounding can put in the past).
pub fn as_soon_as_possible(now: DateTime<Utc>) -> DateTime<Utc> {
    let minute = now.timestamp() - now.timestamp().rem_euclid(60);
    DateTime::from_timestamp(minute, 0).unwrap_or(now) + CLOCK_MARGIN
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, h, m, s).unwrap()
    }

    #[test]
    fn deprecation_times_are_rounded_and_checked_as_aws_does() {
        let now = at(10, 0, 10);
        assert_eq!(rounded(at(10, 5, 29)), at(10, 5, 0));
        assert_eq!(rounded(at(10, 5, 30)), at(10, 6, 0));
        // Table: the time asked for, the public image's creation → accepted as, or refused.
        let created = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        type Time = DateTime<Utc>;
        let cases: [(Time, Option<Time>, Option<Time>); 7] = [
            (at(11, 0, 40), None, Some(at(11, 1, 0))),
            // Rounded down to 10:00, before now: refused.
            (at(10, 0, 20), None, None),
            (at(9, 0, 0), None, None),
            (
                now + Duration::days(3650),
                None,
                Some(rounded(now + Duration::days(3650))),
            ),
            (now + Duration::days(3660), None, None),
            // Public: at most 2 years after its creation (here, 2027-01-01).
            (at(12, 0, 0), Some(created), Some(at(12, 0, 0))),
            (now + Duration::days(60), Some(created), None),
        ];
        for (asked, public, expected) in cases {
            assert_eq!(
                accepted(asked, now, public).ok(),
                expected,
                "{asked} public {public:?}"
            );
        }
        assert!(
            accepted(at(9, 0, 0), now, None)
                .unwrap_err()
                .contains("not in the future")
        );
        // As soon as possible: a whole minute, in the future by more than a minute, accepted.
        let soon = as_soon_as_possible(now);
        assert_eq!(soon, at(10, 2, 0));
        assert_eq!(accepted(soon, now, Some(created)), Ok(soon));
    }
}
