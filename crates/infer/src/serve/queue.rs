//! A model's bounded queue: requests wait here for the model's worker
//! thread, a full queue refuses the next one at once (the handler answers
//! 429) instead of growing, and `/metrics` sees how many wait.

use prometheus::IntGauge;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

/// Why a request was not queued.
pub enum Refused {
    /// The queue holds its capacity already.
    Full,
    /// The worker has stopped.
    Stopped,
}

/// The handlers' side.
pub struct Sender<T> {
    sender: SyncSender<T>,
    depth: IntGauge,
}

/// The worker's side.
pub struct Waiting<T> {
    receiver: Receiver<T>,
    depth: IntGauge,
}

/// A queue of at most `capacity` waiting items; `depth` counts them.
pub fn bounded<T>(capacity: usize, depth: IntGauge) -> (Sender<T>, Waiting<T>) {
    let (sender, receiver) = sync_channel(capacity);
    let waiting = Waiting {
        receiver,
        depth: depth.clone(),
    };
    (Sender { sender, depth }, waiting)
}

impl<T> Sender<T> {
    pub fn push(&self, item: T) -> Result<(), Refused> {
        // Counted before the send: the worker may take the item at once.
        self.depth.inc();
        self.sender.try_send(item).map_err(|err| {
            self.depth.dec();
            match err {
                TrySendError::Full(_) => Refused::Full,
                TrySendError::Disconnected(_) => Refused::Stopped,
            }
        })
    }
}

impl<T> Waiting<T> {
    /// The next item, waiting as long as it takes; `None` once every
    /// sender is gone (the server has stopped).
    pub fn next(&self) -> Option<T> {
        let item = self.receiver.recv().ok()?;
        self.depth.dec();
        Some(item)
    }

    /// The next item if one comes before `deadline` (one already waiting
    /// is taken even past it).
    pub fn next_before(&self, deadline: Instant) -> Option<T> {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = if left.is_zero() {
            self.receiver.try_recv().ok()
        } else {
            // A timeout, or every sender gone: no item either way.
            self.receiver.recv_timeout(left).ok()
        }?;
        self.depth.dec();
        Some(item)
    }
}
