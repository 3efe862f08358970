//! Training for the sequence models, on burn-train's Learner.
//!
//! - [`classify`]: the text classifier end to end (the `train` binary).
//! - [`step`]: the Learner glue (`TrainStep`/`InferenceStep`), kept out of `model`.
//! - [`renderer`]: short progress lines when stdout is not a terminal.
//!
//! The backend is picked by the binaries (`src/main.rs`, `src/bin/bench.rs`),
//! once each; everything here is generic over it.

pub mod classify;
pub mod renderer;
pub mod step;
