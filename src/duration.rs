//! Durations as operators write them (`90d`, `12h`, `1h30m`, `2w`) and as we print them back.
//! Months and years are refused: their length is ambiguous, and a retention rule must not be.

use std::time::Duration;

const UNITS: [(&str, u64); 5] = [
    ("w", 7 * 86_400),
    ("d", 86_400),
    ("h", 3_600),
    ("m", 60),
    ("s", 1),
];

/// The seconds in one `unit`, for the short and long spellings of each.
fn unit_seconds(unit: &str) -> Option<u64> {
    let short = match unit {
        "w" | "week" | "weeks" => "w",
        "d" | "day" | "days" => "d",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        _ => return None,
    };
    UNITS.iter().find(|(u, _)| *u == short).map(|(_, s)| *s)
}

/// Parses one or more `<number><unit>` parts, spaces allowed between them; zero is refused.
pub fn parse(raw: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("'{raw}' is not a duration such as 90d, 12h or 45m ({why})");
    let mut rest = raw.trim();
    if rest.is_empty() {
        return Err(invalid("empty"));
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid("expected a number"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("number too large"))?;
        rest = rest[digits..].trim_start();
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        if unit.is_empty() {
            return Err(invalid("a number needs a unit: s, m, h, d or w"));
        }
        let seconds = unit_seconds(unit)
            .ok_or_else(|| invalid(&format!("unknown unit '{unit}'; use s, m, h, d or w")))?;
        total = number
            .checked_mul(seconds)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| invalid("too large"))?;
        rest = rest[letters..].trim_start();
    }
    if total == 0 {
        return Err(format!(
            "'{raw}' is zero; give a positive duration such as 90d"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// `90d`, `1h 30m`, `45s`: whole units from days down, what `parse` reads back.
pub fn format(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let mut parts = Vec::new();
    for (unit, size) in UNITS.iter().skip(1) {
        if secs >= *size {
            parts.push(format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_operators_write() {
        let cases: [(&str, u64); 9] = [
            ("90d", 90 * 86_400),
            ("12h", 12 * 3_600),
            ("45m", 45 * 60),
            ("30s", 30),
            ("2w", 14 * 86_400),
            ("1h30m", 5_400),
            ("1h 30m", 5_400),
            ("3 days", 3 * 86_400),
            ("2hours 5mins", 2 * 3_600 + 300),
        ];
        for (raw, secs) in cases {
            assert_eq!(parse(raw), Ok(Duration::from_secs(secs)), "{raw}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_positive_duration() {
        for raw in [
            "",
            "soon",
            "90",
            "d",
            "0d",
            "0h 0m",
            "1y",
            "1M",
            "-5d",
            "5d!",
            "99999999999999999999d",
        ] {
            let err = parse(raw).unwrap_err();
            assert!(err.contains(&format!("'{raw}'")), "{raw}: {err}");
        }
        assert!(parse("0d").unwrap_err().contains("zero"));
        assert!(parse("1y").unwrap_err().contains("unknown unit 'y'"));
    }

    #[test]
    fn formats_what_parse_reads_back() {
        for (secs, shown) in [
            (0, "0s"),
            (45, "45s"),
            (5_400, "1h 30m"),
            (90 * 86_400, "90d"),
            (86_461, "1d 1m 1s"),
        ] {
            assert_eq!(format(Duration::from_secs(secs)), shown);
            if secs > 0 {
                assert_eq!(parse(shown), Ok(Duration::from_secs(secs)));
            }
        }
    }
}
