//! Training for the sequence models.
//!
//! The commands:
//! - [`classify`]: the text classifier end to end (the `train` binary's
//!   default command).
//! - [`lm`]: the character language model with truncated BPTT (`train lm`).
//! - [`translate`]: the LSTM encoder–decoder translator with attention (`train translate`).
//! - [`compress`]: quantization, pruning and distillation of a trained
//!   classifier (`train compress`).
//! - [`mlp`]: the 2-3-1 network case study, by autodiff or by hand (`train mlp`).
//! - [`adding`]: the long-range memory experiment (`train adding`).
//! - [`import`]: a classifier artifact from PyTorch-trained weights (`train import`).
//!
//! What they share:
//! - [`fit`]: the one training loop over epochs (burn-train's Learner,
//!   checkpoints, early stopping, a time budget) and the one rule that
//!   picks the kept epoch.
//! - [`resume`]: continuing an interrupted run (`--resume`): the progress
//!   record and the repairs of what a kill leaves half done.
//! - [`schedule`]: the learning rate of every step (`--lr-schedule`).
//! - [`loader`]: the training loader whose epochs depend on (seed, epoch) alone.
//! - [`watch`]: Ctrl-C and a non-finite loss, stopping the loop from outside.
//! - [`classifier`]: what every classifier run shares (splits, optimizer,
//!   the training with loss and accuracy, the evaluation into an artifact).
//! - [`cli`]: the argument groups several commands share.
//! - [`step`]: the classifier's Learner glue (`TrainStep`/`InferenceStep`), kept out of `model`.
//! - [`average`]: checkpoint averaging (`--average K`).
//! - [`adamw`]: AdamW as one pass over memory on the CPU backends.
//! - [`token_output`]: the loss, logits and targets the token-predicting steps hand the metrics.
//! - [`renderer`]: short progress lines when stdout is not a terminal.
//!
//! The artifact format is the `artifact` crate's; `train` writes artifacts
//! through it and does not depend on `infer`.
//!
//! The backend is picked by the binaries (`src/main.rs`, `src/bin/bench.rs`),
//! once each; everything here is generic over it.

pub mod adamw;
pub mod adding;
pub mod average;
pub mod classifier;
pub mod classify;
pub mod cli;
pub mod compress;
pub mod embeddings;
pub mod fit;
pub mod import;
pub mod lm;
pub mod loader;
pub mod mlp;
pub mod pretrain;
pub mod renderer;
pub mod resume;
pub mod schedule;
pub mod step;
pub mod token_output;
pub mod translate;
pub mod watch;

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
