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

/// Prints the error (one line: the message and its causes) and returns the exit code.
pub fn report(outcome: anyhow::Result<Outcome>) -> u8 {
    if crate::interrupt::requested() {
        if let Err(err) = &outcome {
            eprintln!("ami: error: {}", one_line(err));
        }
        return crate::interrupt::EXIT_INTERRUPTED;
    }
    match outcome {
        Ok(Outcome::Success) => EXIT_OK,
        Ok(Outcome::Partial) => EXIT_PARTIAL,
        Ok(Outcome::Failed) => EXIT_FAILURE,
        Err(err) => {
            if is_broken_pipe(&err) {
                return EXIT_OK;
            }
            eprintln!("ami: error: {}", one_line(&err));
            if err.chain().any(|cause| cause.is::<UsageError>()) {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            }
        }
    }
}

/// The message and its causes on one line, without repeating a cause already quoted.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_even_when_wrapped() {
        let err = usage("bad id").context("listing images");
        assert_eq!(report(Err(err)), EXIT_USAGE);
    }

    #[test]
    fn other_errors_exit_1() {
        assert_eq!(report(Err(anyhow::anyhow!("boom"))), EXIT_FAILURE);
    }

    #[test]
    fn outcomes_map_to_documented_codes() {
        assert_eq!(report(Ok(Outcome::Success)), 0);
        assert_eq!(report(Ok(Outcome::Partial)), 3);
        assert_eq!(report(Ok(Outcome::Failed)), 1);
    }

    #[test]
    fn one_line_skips_repeated_causes() {
        let err = anyhow::anyhow!("connection refused").context("connection refused");
        assert_eq!(one_line(&err), "connection refused");
        let err = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&err), "outer: inner");
    }
}
