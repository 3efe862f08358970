//! The options of the run that made an artifact, as `config.json` records
//! them under `training`: typed, so that a reader knows what each one is,
//! and limited to what the model config does not already say (sizes,
//! dropouts and the cell are in the model config).
//!
//! The enums here are on disk and on the command line alike, so they derive
//! clap's `ValueEnum` beside serde.

use clap::ValueEnum;
use serde::{Deserialize, Deserializer, Serialize};
use std::path::PathBuf;

/// Which epoch's weights an artifact keeps.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    /// The lowest validation loss.
    Loss,
    /// The highest validation accuracy.
    #[default]
    Accuracy,
    /// The last epoch that ran.
    Last,
}

impl Select {
    pub fn name(self) -> &'static str {
        match self {
            Select::Loss => "loss",
            Select::Accuracy => "accuracy",
            Select::Last => "last",
        }
    }
}

/// How int8 quantization scales the weights.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One scale per tensor.
    Tensor,
    /// One scale per block of values along the last dimension.
    Block,
}

/// Which weights magnitude pruning ranks together.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every weight matrix loses the same fraction of its weights.
    Layer,
    /// The smallest weights of all matrices together go, wherever they are.
    Global,
}

/// How a classifier was trained (a trained, distilled or fine-tuned one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ClassifierTraining {
    /// The dataset directory (train.tsv, valid.tsv, test.tsv).
    pub data_dir: PathBuf,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub clip_norm: f64,
    pub seed: u64,
    pub select: Select,
    pub patience: usize,
    pub bucket: bool,
    pub min_freq: u64,
    pub max_vocab: usize,
    /// Only the first this many training examples were used.
    pub limit: Option<usize>,
}

/// How a character language model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LmTraining {
    /// The text file.
    pub data: PathBuf,
    pub valid_fraction: f64,
    pub epochs: usize,
    /// The time budget (0 = none).
    pub minutes: f64,
    pub batch_size: usize,
    pub seq_len: usize,
    pub lr: f64,
    /// Per-tensor gradient norm clipping (0 = off).
    #[serde(alias = "clip")]
    pub clip_norm: f64,
    pub patience: usize,
    pub seed: u64,
    /// Only the first this many characters of the text were used.
    pub limit_chars: Option<usize>,
}

/// How a translation model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranslatorTraining {
    /// The dataset directory (train.tsv, valid.tsv, test.tsv of `source<TAB>target`).
    pub data_dir: PathBuf,
    /// BPE vocabulary size of each side.
    pub vocab_size: usize,
    pub epochs: usize,
    /// The time budget (0 = none).
    pub minutes: f64,
    pub batch_size: usize,
    pub lr: f64,
    /// Global gradient norm clipping (0 = off).
    pub clip_norm: f64,
    pub patience: usize,
    pub seed: u64,
    /// Only the first this many training pairs were used.
    pub limit: Option<usize>,
}

/// Reads a record that is informative only (the training options): one
/// that does not fit the current type (an artifact from older code) reads
/// as absent instead of making the artifact unloadable.
pub(crate) fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}
