//! Ctrl-C during execution: start nothing new, let calls in flight finish, report what was done,
//! exit 130. A second Ctrl-C stops at once (still safe: every step can be finished by a re-run).
//!
//! Only execution listens; before it (reading, planning, the prompt) Ctrl-C ends the process as
//! usual, since nothing has changed yet.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

pub const EXIT_INTERRUPTED: u8 = 130;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static WATCH: Once = Once::new();
static NOTIFY: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// What `ami` says when Ctrl-C comes during execution.
pub const NOTICE: &str = "\nami: interrupted: finishing what is in flight, starting nothing new \
     (Ctrl-C again to stop at once; a re-run finishes the rest)";

/// Starts listening for Ctrl-C (once per process; later calls do nothing); `notice` tells the
/// person at the terminal (`output::message(NOTICE)`).
pub fn watch(notice: fn()) {
    WATCH.call_once(move || {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            REQUESTED.store(true, Ordering::SeqCst);
            NOTIFY.notify_waiters();
            notice();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
        });
    });
}

/// Records a Ctrl-C a command saw itself (its child died of SIGINT), so the exit code says 130.
pub fn mark() {
    REQUESTED.store(true, Ordering::SeqCst);
    NOTIFY.notify_waiters();
}

/// Resolves once Ctrl-C was pressed (after `watch`).
pub async fn wait() {
    loop {
        let notified = NOTIFY.notified();
        if requested() {
            return;
        }
        notified.await;
    }
}

/// Whether Ctrl-C was pressed: work not yet started must not start.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
