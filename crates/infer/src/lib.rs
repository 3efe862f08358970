//! Loading a trained artifact and predicting with it.
//!
//! An artifact is one directory (see [`artifact`]): the config tree as JSON,
//! the tokenizer, the weights and the metrics of the run that made it. `train`
//! writes it through [`ArtifactWriter`]; everything else reads it through
//! [`Classifier::load`], which needs nothing but the directory.

pub mod artifact;
pub mod generate;
mod predict;

pub use artifact::{ArtifactConfig, ArtifactWriter, Compression, History, Metrics};
pub use generate::{Generator, LmArtifactConfig, LmMetrics, Sampling};
pub use predict::{Classifier, Evaluation, Prediction, TokenWeight};
