//! Training for the sequence models.
//!
//! - [`classify`]: the text classifier end to end on burn-train's Learner
//!   (the `train` binary's default command).
//! - [`mlp`]: the 2-3-1 network case study, by autodiff or by hand (`train mlp`).
//! - [`adding`]: the long-range memory experiment (`train adding`).
//! - [`lm`]: the character language model with truncated BPTT (`train lm`).
//! - [`compress`]: quantization, pruning and distillation of a trained
//!   classifier, and their report (`train compress`).
//! - [`checkpoints`]: the best checkpoint and per-epoch metrics of a run.
//! - [`step`]: the Learner glue (`TrainStep`/`InferenceStep`), kept out of `model`.
//! - [`renderer`]: short progress lines when stdout is not a terminal.
//!
//! The backend is picked by the binaries (`src/main.rs`, `src/bin/bench.rs`),
//! once each; everything here is generic over it.

pub mod adamw;
pub mod adding;
pub mod checkpoints;
pub mod classify;
pub mod compress;
pub mod lm;
pub mod mlp;
pub mod renderer;
pub mod step;

use adamw::AdamWKernel;
use burn::tensor::backend::AutodiffBackend;
use model::LstmBackend;

/// What training runs on: autodiff over a backend with the fused LSTM, both
/// for the trained model and for the validation model without autodiff.
pub trait TrainBackend:
    AutodiffBackend<InnerBackend: LstmBackend + AdamWKernel> + LstmBackend
{
}

impl<B> TrainBackend for B where
    B: AutodiffBackend<InnerBackend: LstmBackend + AdamWKernel> + LstmBackend
{
}
