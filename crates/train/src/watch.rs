//! What can stop a training run from outside burn-train's loop: Ctrl-C (or
//! SIGTERM), and a training loss that is no longer a finite number.
//!
//! Both reach the loop through its `Interrupter`, which burn-train checks
//! after every batch. The watch is process-wide because a signal handler
//! can be installed once per process, and because the train step that sees
//! the loss is a module burn-train clones, not a value the loop hands us.

use burn::train::Interrupter;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Why a run stopped before its plan said so.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// The training loss of this (1-based) epoch and batch was not finite.
    NonFinite {
        epoch: usize,
        batch: usize,
        loss: f64,
    },
}

struct Watch {
    interrupter: Mutex<Option<Interrupter>>,
    stop: Mutex<Option<Stop>>,
    signalled: AtomicBool,
    epoch: AtomicUsize,
    batch: AtomicUsize,
}

static WATCH: Watch = Watch {
    interrupter: Mutex::new(None),
    stop: Mutex::new(None),
    signalled: AtomicBool::new(false),
    epoch: AtomicUsize::new(1),
    batch: AtomicUsize::new(0),
};

static HANDLER: std::sync::Once = std::sync::Once::new();

/// Watches a run that starts at `epoch`, stopping it through `interrupter`.
pub fn arm(interrupter: Interrupter, epoch: usize) {
    HANDLER.call_once(|| {
        // Without a handler (another one is installed), Ctrl-C kills the
        // process: the run is still resumable from its last epoch.
        let _ = ctrlc::set_handler(|| {
            if WATCH.signalled.swap(true, Ordering::SeqCst) {
                eprintln!("\nstopped at once; the last completed epoch is kept for --resume");
                std::process::exit(130);
            }
            eprintln!("\nstopping after this batch (press Ctrl-C again to stop at once)");
            stopping(Stop::Signal);
        });
    });
    *WATCH.stop.lock().unwrap() = None;
    WATCH.signalled.store(false, Ordering::SeqCst);
    *WATCH.interrupter.lock().unwrap() = Some(interrupter);
    epoch_started(epoch);
}

/// Ends the watch of a run: why it stopped early, if it did.
pub fn disarm() -> Option<Stop> {
    *WATCH.interrupter.lock().unwrap() = None;
    WATCH.stop.lock().unwrap().take()
}

/// Whether something has asked the run to stop (an epoch that ends now may
/// have been cut short).
pub fn stopping_requested() -> bool {
    WATCH.stop.lock().unwrap().is_some()
}

/// The training epoch `epoch` (1-based) begins: batches count from 1 again.
pub fn epoch_started(epoch: usize) {
    WATCH.epoch.store(epoch, Ordering::SeqCst);
    WATCH.batch.store(0, Ordering::SeqCst);
}

/// Called with every training batch's loss; a loss that is not finite stops
/// the run after this batch.
pub fn check_loss(loss: f64) {
    let batch = WATCH.batch.fetch_add(1, Ordering::SeqCst) + 1;
    if !loss.is_finite() {
        stopping(Stop::NonFinite {
            epoch: WATCH.epoch.load(Ordering::SeqCst),
            batch,
            loss,
        });
    }
}

fn stopping(stop: Stop) {
    let mut slot = WATCH.stop.lock().unwrap();
    if slot.is_none() {
        *slot = Some(stop);
    }
    if let Some(interrupter) = WATCH.interrupter.lock().unwrap().as_ref() {
        interrupter.stop(Some("stopped by the watch"));
    }
}
