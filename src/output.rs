//! The one path to the user: results to stdout (a table for people, one JSON document for
//! programs), logs and progress to stderr.

use anyhow::Result;
use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::{IsTerminal, Write};
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
}

impl TableStyle {
    pub fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        table.load_style(presets::NOTHING);
        if self.color {
            // The decision was made from --color and the terminal; don't let the table second-guess it.
            table.enforce_styling();
        }
        table.set_content_arrangement(if std::io::stdout().is_terminal() {
            ContentArrangement::Dynamic
        } else {
            ContentArrangement::Disabled
        });
        table.set_header(header.iter().map(Cell::new));
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
    pub fn new(settings: &Settings) -> Printer {
        Printer {
            format: settings.output,
            style: TableStyle {
                color: settings.color,
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
