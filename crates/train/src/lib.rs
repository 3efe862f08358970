//! Training for the sequence models.
//!
//! - [`classify`]: the text classifier end to end on burn-train's Learner
//!   (the `train` binary's default command).
//! - [`mlp`]: the 2-3-1 network case study, by autodiff or by hand (`train mlp`).
//! - [`adding`]: the long-range memory experiment (`train adding`).
//! - [`step`]: the Learner glue (`TrainStep`/`InferenceStep`), kept out of `model`.
//! - [`renderer`]: short progress lines when stdout is not a terminal.
//!
//! The backend is picked by the binaries (`src/main.rs`, `src/bin/bench.rs`),
//! once each; everything here is generic over it.

pub mod adding;
pub mod classify;
pub mod mlp;
pub mod renderer;
pub mod step;
