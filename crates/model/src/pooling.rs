//! How the classifier turns the encoder's outputs `[B, T, D]` into one
//! vector per sentence.
//!
//! - `Attention`: attention pooling alone (`[B, D]`, see
//!   [`AttentionPooling`](crate::AttentionPooling)).
//! - `Concat`: attention pooling, the maximum and the mean over the real
//!   steps, concatenated (`[B, 3D]`): Howard & Ruder's "concat pooling"
//!   (ULMFiT, 2018), with attention in the place of the last state. The
//!   maximum keeps the strongest evidence of each feature wherever it
//!   occurs, the mean all of it; attention picks its own steps.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Below any encoder output (an LSTM's lie in (-1, 1), a Transformer's are
/// layer-normalized), so a padded step never wins the maximum.
const PADDING_FOR_MAX: f32 = -1.0e9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Attention pooling alone: `[B, D]`.
    #[default]
    Attention,
    /// Attention, max and mean pooling concatenated: `[B, 3D]`.
    Concat,
}

impl Pooling {
    /// The pooled vector's size for encoder outputs of size `d`.
    pub fn d_output(self, d: usize) -> usize {
        match self {
            Pooling::Attention => d,
            Pooling::Concat => 3 * d,
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pooling::Attention => "attention",
            Pooling::Concat => "concat",
        })
    }
}

/// The maximum and the mean of `hidden` `[B, T, D]` over the steps where
/// `mask` `[B, T]` is true (every row needs one), each `[B, D]`.
pub fn max_and_mean<B: Backend>(
    hidden: Tensor<B, 3>,
    mask: Tensor<B, 2, Bool>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let [batch, _, d] = hidden.dims();
    let mask = mask.unsqueeze_dim::<3>(2); // [B, T, 1]
    let real = mask.clone().float(); // [B, T, 1]
    let lengths = real.clone().sum_dim(1).reshape([batch, 1]); // [B, 1]
    let mean = (hidden.clone() * real).sum_dim(1).reshape([batch, d]) / lengths; // [B, D]
    let max = hidden
        .mask_fill(mask.bool_not().repeat_dim(2, d), PADDING_FOR_MAX)
        .max_dim(1)
        .reshape([batch, d]); // [B, D]
    (max, mean)
}
