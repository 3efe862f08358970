//! Attention of a decoder over the encoder's states: at each output step,
//! a score per source position, a softmax over the real positions, and the
//! weighted sum of the encoder states (the context). Bahdanau, Cho & Bengio
//! (2015) score additively; Luong, Pham & Manning (2015) by a dot product,
//! plain or through a learned matrix ("general").

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{softmax, tanh};
use serde::{Deserialize, Serialize};

use crate::cell_ops::linear_3d;

/// Scores of padded positions before the softmax: `exp` underflows to
/// exactly 0, so padding gets no weight (as in attention pooling).
const MASKED_SCORE: f32 = -1.0e9;

/// How a decoder state is scored against each encoder state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlignmentKind {
    /// vᵀ tanh(W_q s + W_k h): Bahdanau's additive score.
    Bahdanau,
    /// sᵀ h: Luong's dot (needs states of equal size).
    Dot,
    /// sᵀ W h: Luong's general.
    General,
}

impl std::fmt::Display for AlignmentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlignmentKind::Bahdanau => "bahdanau",
            AlignmentKind::Dot => "dot",
            AlignmentKind::General => "general",
        })
    }
}

#[derive(Config, Debug)]
pub struct AlignmentConfig {
    pub kind: AlignmentKind,
    /// Size of a decoder state.
    pub d_query: usize,
    /// Size of an encoder state.
    pub d_key: usize,
    /// Size of the additive score's hidden layer.
    #[config(default = 128)]
    pub d_attention: usize,
}

/// The learned parts of the score; which are present says the kind.
#[derive(Module, Debug)]
pub struct Alignment<B: Backend> {
    /// W_q (Bahdanau). `H_dec -> A`
    query: Option<Linear<B>>,
    /// W_k (Bahdanau: `D -> A`; general: `D -> H_dec`).
    key: Option<Linear<B>>,
    /// v (Bahdanau). `A -> 1`
    score: Option<Linear<B>>,
}

/// The encoder states prepared for attention: projected once per sentence.
#[derive(Debug, Clone)]
pub struct Keys<B: Backend> {
    /// The encoder states `[B, S, D]`, summed into the context.
    pub values: Tensor<B, 3>,
    /// What each query is scored against `[B, S, K]` (W_k h, or h itself).
    pub keys: Tensor<B, 3>,
    /// True at real source positions `[B, S]`.
    pub mask: Tensor<B, 2, Bool>,
}

impl AlignmentConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Alignment<B> {
        let linear =
            |d_in, d_out, bias| LinearConfig::new(d_in, d_out).with_bias(bias).init(device);
        match self.kind {
            AlignmentKind::Bahdanau => Alignment {
                query: Some(linear(self.d_query, self.d_attention, false)),
                key: Some(linear(self.d_key, self.d_attention, true)),
                score: Some(linear(self.d_attention, 1, false)),
            },
            AlignmentKind::Dot => {
                assert_eq!(
                    self.d_query, self.d_key,
                    "dot attention needs decoder and encoder states of one size"
                );
                Alignment {
                    query: None,
                    key: None,
                    score: None,
                }
            }
            AlignmentKind::General => Alignment {
                query: None,
                key: Some(linear(self.d_key, self.d_query, false)),
                score: None,
            },
        }
    }
}

impl<B: Backend> Alignment<B> {
    pub fn kind(&self) -> AlignmentKind {
        match (&self.query, &self.key) {
            (Some(_), _) => AlignmentKind::Bahdanau,
            (None, Some(_)) => AlignmentKind::General,
            (None, None) => AlignmentKind::Dot,
        }
    }

    /// Projects the encoder states `[B, S, D]` once for every step to come.
    pub fn keys(&self, values: Tensor<B, 3>, mask: Tensor<B, 2, Bool>) -> Keys<B> {
        let keys = match &self.key {
            Some(key) => linear_3d(key, values.clone()),
            None => values.clone(),
        };
        Keys { values, keys, mask }
    }

    /// Attends from decoder states `query` `[B, H_dec]`: returns the context
    /// `[B, D]` and the weights `[B, S]` (each row sums to 1 over the real
    /// positions, exactly 0 at padding).
    pub fn forward(&self, query: Tensor<B, 2>, keys: &Keys<B>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let [batch, source, d] = keys.values.dims();
        let scores = match (&self.query, &self.score) {
            (Some(w_query), Some(v)) => {
                let q = w_query.forward(query).unsqueeze_dim::<3>(1); // [B, 1, A]
                let hidden = tanh(keys.keys.clone() + q); // [B, S, A]
                linear_3d(v, hidden).reshape([batch, source]) // [B, S]
            }
            _ => {
                let q = query.unsqueeze_dim::<3>(2); // [B, K, 1]
                keys.keys.clone().matmul(q).reshape([batch, source]) // [B, S]
            }
        };
        let scores = scores.mask_fill(keys.mask.clone().bool_not(), MASKED_SCORE);
        let weights = softmax(scores, 1); // [B, S]
        let context = weights
            .clone()
            .unsqueeze_dim::<3>(1)
            .matmul(keys.values.clone())
            .reshape([batch, d]); // [B, D]
        (context, weights)
    }
}
