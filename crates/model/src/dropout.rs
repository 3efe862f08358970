//! Variational dropout (Gal & Ghahramani 2016, "A Theoretically Grounded
//! Application of Dropout in Recurrent Neural Networks").
//!
//! Burn's `Dropout` draws a fresh mask for every element it sees, so applied
//! inside a recurrence it would drop different units at every time step and
//! the noise would compound along the sequence. Variational dropout draws one
//! mask per sequence and reuses it at every step, on the inputs of a
//! recurrent layer and on its recurrent state; the encoder applies it (see
//! [`Encoder`](crate::Encoder)).

use burn::prelude::*;
use burn::tensor::Distribution;

/// Draws per-sequence dropout masks, during training only.
#[derive(Module, Clone, Debug)]
pub struct VariationalDropout {
    /// The probability of dropping a unit, in `[0, 1)`.
    pub prob: f64,
}

impl VariationalDropout {
    pub fn new(prob: f64) -> Self {
        assert!(
            (0.0..1.0).contains(&prob),
            "dropout probability must be in [0, 1), got {prob}"
        );
        Self { prob }
    }

    /// A mask `[batch, d]` of zeros and 1 / (1 − p), one row per sequence, to
    /// be used at every time step; `None` when nothing is dropped: with
    /// p = 0, or outside training (a backend without autodiff, as in
    /// validation and inference, like Burn's `Dropout`).
    pub fn mask<B: Backend>(
        &self,
        batch: usize,
        d: usize,
        device: &B::Device,
    ) -> Option<Tensor<B, 2>> {
        if self.prob == 0.0 || !B::ad_enabled(device) {
            return None;
        }
        let keep = 1.0 - self.prob;
        let mask = Tensor::<B, 2>::random([batch, d], Distribution::Bernoulli(keep), device);
        Some(mask * (1.0 / keep))
    }
}

/// `x` `[B, T, D]` with row b multiplied by `mask[b]` `[B, D]` at every step.
pub(crate) fn apply_per_sequence<B: Backend>(
    x: Tensor<B, 3>,
    mask: Option<Tensor<B, 2>>,
) -> Tensor<B, 3> {
    match mask {
        Some(mask) => x * mask.unsqueeze_dim::<3>(1),
        None => x,
    }
}
