//! The one path to the user: results to stdout (a table for people, one JSON document for
//! programs); messages, logs, progress and prompts to stderr. Nothing else in `ami` writes to
//! the terminal.

use anyhow::Result;
use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;
use tracing_subscriber::EnvFilter;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::config::Settings;

/// A command's result document: serialised as-is for `--output json`, drawn for `table`.
pub trait Render: Serialize {
    fn render(&self, style: &TableStyle) -> String;
}

pub struct TableStyle {
    pub color: bool,
    /// The terminal's width when stdout is one: cells wrap to fit it. None (piped, redirected):
    /// each row stays on one line, for grep and awk.
    pub width: Option<u16>,
}

impl TableStyle {
    pub fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        table.load_style(presets::NOTHING);
        if self.color {
            // The decision was made from --color and the terminal; don't let the table second-guess it.
            table.enforce_styling();
        }
        match self.width {
            Some(width) => {
                table.set_content_arrangement(ContentArrangement::Dynamic);
                table.set_width(width);
            }
            None => {
                table.set_content_arrangement(ContentArrangement::Disabled);
            }
        }
        table.set_header(header.iter().map(Cell::new));
        if self.width.is_some()
            && let Some(first) = table.column_mut(0)
        {
            // The first column holds ids: never split one across lines (people copy them).
            first.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
        }
        table
    }

    /// A cell coloured by how much attention its value needs, when colour is on.
    pub fn cell(&self, text: impl ToString, color: Option<Color>) -> Cell {
        let cell = Cell::new(text.to_string());
        match (self.color, color) {
            (true, Some(color)) => cell.fg(color),
            _ => cell,
        }
    }
}

pub struct Printer {
    format: OutputFormat,
    style: TableStyle,
}

impl Printer {
    /// Whether a run across accounts prints each account as it finishes (a table or a JSON
    /// line), rather than one document at the end.
    pub fn streams_accounts(&self) -> bool {
        self.format != OutputFormat::Json
    }

    /// Prints `document` without disturbing a progress line under way.
    pub fn emit_above<T: Render>(&self, bar: Option<&ProgressBar>, document: &T) -> Result<()> {
        match bar {
            Some(bar) => bar.suspend(|| self.emit(document)),
            None => self.emit(document),
        }
    }

    pub fn new(settings: &Settings) -> Printer {
        Printer {
            format: settings.output,
            style: TableStyle {
                color: settings.color,
                width: terminal_width(),
            },
        }
    }

    pub fn emit<T: Render>(&self, document: &T) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        match self.format {
            OutputFormat::Json => {
                // As io::Error, so a closed pipe (`| head`) is recognised and not reported.
                serde_json::to_writer_pretty(&mut stdout, document)
                    .map_err(std::io::Error::from)?;
                writeln!(stdout)?;
            }
            OutputFormat::Jsonl => {
                serde_json::to_writer(&mut stdout, document).map_err(std::io::Error::from)?;
                writeln!(stdout)?;
            }
            OutputFormat::Table => {
                let text = document.render(&self.style);
                if !text.is_empty() {
                    writeln!(stdout, "{text}")?;
                }
            }
        }
        stdout.flush()?;
        Ok(())
    }
}

/// The width of the terminal stdout is, if it is one. A terminal that does not say its size
/// (some serial consoles, a fresh pty) is taken as `COLUMNS` wide, or 80.
fn terminal_width() -> Option<u16> {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    let reported = terminal_size::terminal_size_of(&stdout)
        .map(|(terminal_size::Width(width), _)| width)
        .filter(|width| *width > 0);
    Some(reported.unwrap_or_else(|| {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|columns| columns.parse().ok())
            .filter(|columns: &u16| *columns > 0)
            .unwrap_or(80)
    }))
}

/// A line for the person running `ami` (stderr): where a plan went, what a run did, that it
/// was interrupted. Never part of the document on stdout.
pub fn message(text: impl std::fmt::Display) {
    eprintln!("{text}");
}

/// That Ctrl-C came during execution (`interrupt::watch`).
pub fn interrupted() {
    message(crate::interrupt::NOTICE);
}

/// The one line an error ends a run with.
pub fn error(text: impl std::fmt::Display) {
    eprintln!("ami: error: {text}");
}

/// Asks on the terminal and returns the answer, trimmed. Only after `Settings::can_prompt`.
pub fn prompt(question: &str) -> std::io::Result<String> {
    let mut stderr = std::io::stderr();
    write!(stderr, "{question} ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim().to_string())
}

/// Raw bytes to stdout (a man page, a completion script): documents that are not ours to shape.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}

/// Stderr for a child process's stdout (a launch check's output): it reaches the person, and
/// the JSON document on stdout stays ours alone.
pub fn stderr_for_child() -> std::io::Result<std::process::Stdio> {
    Ok(std::process::Stdio::from(
        std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?,
    ))
}

/// Progress lines, one per region or stage, when progress is wanted.
pub fn progress_lines(settings: &Settings) -> Option<MultiProgress> {
    settings.progress.then(MultiProgress::new)
}

/// A spinner line in `lines` named `prefix` (a region, a stage), ticking if `ticking`.
pub fn progress_line(lines: &MultiProgress, prefix: &str, ticking: bool) -> ProgressBar {
    let bar = lines.add(ProgressBar::new_spinner());
    let template = if ticking {
        "{spinner} {prefix:12} {msg} {elapsed}"
    } else {
        "{prefix:8} {msg}"
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(prefix.to_string());
    if ticking {
        bar.enable_steady_tick(Duration::from_millis(120));
    }
    bar
}

/// A percentage bar (an image's snapshots being made), when progress is wanted.
pub fn percent_bar(settings: &Settings, message: impl Into<String>) -> Option<ProgressBar> {
    settings.progress.then(|| {
        let bar = ProgressBar::new(100);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}% {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(message.into());
        bar
    })
}

/// A spinner on stderr, only when progress is wanted (a terminal, table output, not --no-progress).
pub fn spinner(settings: &Settings, message: impl Into<String>) -> Option<ProgressBar> {
    if !settings.progress {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

/// A progress bar for image usage reports, shown once there are some to wait for.
pub fn report_progress(settings: &Settings) -> Option<crate::aws::usage_reports::ReportProgress> {
    if !settings.progress {
        return None;
    }
    let bar: std::sync::Mutex<Option<ProgressBar>> = std::sync::Mutex::new(None);
    Some(std::sync::Arc::new(move |done: usize, total: usize| {
        let Ok(mut bar) = bar.lock() else {
            return;
        };
        if total == 0 {
            return;
        }
        let shown = bar.get_or_insert_with(|| {
            let shown = ProgressBar::new(total as u64);
            shown.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} image usage reports ready {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            shown
        });
        shown.set_position(done as u64);
        if done >= total {
            shown.finish_and_clear();
        }
    }))
}

/// Logs go to stderr: warnings by default, `-v` info, `-vv` debug (SDK included), `-q` errors.
/// `AMI_LOG` (an env-filter directive) overrides.
pub fn init_logging(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        // The SDK's own warnings (a missing config file, say) are noise at the default level.
        (false, 0) => "ami=warn,error",
        (false, 1) => "ami=info,warn",
        (false, _) => "debug",
    };
    let filter = EnvFilter::try_from_env("AMI_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(global.verbose > 1)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long_reason_table(width: Option<u16>) -> String {
        let style = TableStyle {
            color: false,
            width,
        };
        let mut table = style.table(&["ID", "ACTION", "WHY"]);
        let why = "in use by instance i-0123456789abcdef0 (running), launch template lt-0123456789abcdef0 version 3, \
                   and SSM parameter /prod/web/ami; also shared with account 111122223333, which could not be checked";
        table.add_row(vec!["ami-0123456789abcdef0", "blocked", why]);
        table.add_row(vec!["ami-0fedcba9876543210", "deregister", "requested"]);
        table.to_string()
    }

    #[test]
    fn on_a_terminal_long_cells_wrap_within_its_width() {
        let text = long_reason_table(Some(60));
        for line in text.lines() {
            assert!(
                line.chars().count() <= 60,
                "{line:?} is wider than 60:\n{text}"
            );
        }
        assert!(text.contains("ami-0123456789abcdef0"), "{text}");
        assert!(
            text.lines().count() > 3,
            "the long reason should wrap:\n{text}"
        );
    }

    #[test]
    fn piped_each_row_stays_on_one_line() {
        let text = long_reason_table(None);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|row| row.contains("could not be checked"))
        );
    }
}
