//! The LSTM's per-step buffers (pre-activations and trace), handed from
//! one training step to the next.
//!
//! Every traced forward pass writes its pre-activations (`[B, T, 4H]`,
//! 16 MiB for the language model's 512-wide layers) and its trace
//! (`[B, T, H]` three times) in full before anything reads them, so the
//! buffers the last backward pass is done with can be taken as they are.
//! Fresh ones cost the zeroing of `vec![0.0; n]` and, for buffers this
//! large, pages the kernel must fault in and clear on every step: 3.0% and
//! 2.2% of the language model's training step in one profile, 2.8% of fresh
//! pages alone in another (`docs/perf/README.md`, its last two sections).
//! What a buffer held before is never read.

use std::sync::Mutex;

/// Most buffers kept: the pre-activations, three of the trace and Uᵀ per
/// layer, for a few layers. Beyond it the oldest is freed, so that a run of
/// changing shapes holds no more than this many.
const KEPT: usize = 16;

static FREE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of `len` floats whose contents are unspecified: a buffer that
/// [`give`] returned, or zeros. For a caller that writes every element
/// before it reads one.
pub(super) fn take(len: usize) -> Vec<f32> {
    let mut free = FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match free.iter().rposition(|buffer| buffer.len() == len) {
        Some(at) => free.swap_remove(at),
        None => vec![0.0; len],
    }
}

/// Keeps `buffer` for a later [`take`] of its length.
pub(super) fn give(buffer: Vec<f32>) {
    let mut free = FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if free.len() == KEPT {
        free.remove(0);
    }
    free.push(buffer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer given back comes out again for its length (this test's
    /// length is one no other test uses), and a length nobody gave is zeros.
    #[test]
    fn a_given_buffer_is_taken_again_by_its_length() {
        let len = 12_345;
        let mut buffer = take(len);
        assert_eq!(buffer.len(), len);
        buffer.fill(7.0);
        let at = buffer.as_ptr();
        give(buffer);
        let again = take(len);
        assert_eq!(again.as_ptr(), at);
        assert!(again.iter().all(|&v| v == 7.0));
        let fresh = take(54_321);
        assert!(fresh.len() == 54_321 && fresh.iter().all(|&v| v == 0.0));
    }
}
