//! Retiring images, shared by `ami deregister` and `ami cleanup` (one deletion path): gather the
//! region's facts (`gather`), report the plan (`report`), ask, and act (`execute`) in the order
//! that never strands anything: terminate instances (if asked) → mark snapshots → deregister →
//! delete bundles → delete snapshots.
//!
//! Nothing an image needs goes before the image: a refused or failed deregistration leaves a
//! whole image. Snapshots are tagged first, so a run killed after the deregistration is finished
//! by the next one; the tag is removed again from an image that stays.

mod execute;
mod gather;
mod report;
mod stream;

use anyhow::{Result, anyhow};

use crate::config::Settings;
use crate::error::usage;
use crate::output::{Printer, Render};

pub use execute::{ExecuteOptions, deletion_status, execute};
pub use gather::{
    ReadAhead, RegionFacts, complete_inventory, consumer_usage_of, load_region, usage_of,
};
pub use report::{RetireReport, Status};
pub(crate) use report::{status_cell, with_error};
pub use stream::{Reader, Streaming, absorb, stream};

/// Shows the plan and asks once, `summary` first; without a terminal to ask on, refuses.
pub fn confirm<T: Render>(
    settings: &Settings,
    printer: &Printer,
    plan: &T,
    summary: &str,
) -> Result<()> {
    let interactive = settings.can_prompt();
    if !interactive {
        return Err(usage(
            "refusing to change anything without confirmation: pass --yes (or --dry-run to see the plan)",
        ));
    }
    printer.emit(plan)?;
    ask(&format!("{summary} Proceed?"))
}

/// Asks once on the terminal; anything but yes cancels with nothing changed.
pub fn ask(question: &str) -> Result<()> {
    let answer = crate::output::prompt(&format!("\n{question} [y/N]"))?;
    if matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(anyhow!("cancelled at the prompt; nothing was changed"))
    }
}
