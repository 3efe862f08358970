//! The artifact: one directory that holds a trained model and everything
//! inference needs, written by `train` and read by `infer` (and by `train`
//! again, to compress a model or evaluate it).
//!
//! ```text
//! artifacts/mr/                    a classifier
//!   config.json     ClassifierConfig: model config, labels, max_seq_len, training options
//!   tokenizer.json  the vocabulary, in the `tokenizers` crate's format
//!   model.mpk       the weights (Burn's named MessagePack record, full precision)
//!   metrics.json    ClassifierMetrics of the run that produced it
//!   training/       burn-train's per-epoch logs
//!
//! artifacts/shakespeare/           a character language model
//!   config.json     LmConfig: the model config and the training options
//!   vocab.json      the character vocabulary, a JSON list in id order
//!   model.mpk       the weights
//!   metrics.json    LmMetrics
//!
//! artifacts/gettext-en-fr/         an encoder–decoder translation model
//!   config.json            TranslationConfig: model config, length limits, training options
//!   source_tokenizer.json  the English BPE vocabulary
//!   target_tokenizer.json  the French BPE vocabulary
//!   model.mpk              the weights
//!   metrics.json           TranslatorMetrics (BLEU and chrF with their signatures)
//! ```
//!
//! This crate owns every on-disk type; nothing below it (`model`, `data`)
//! knows the layout, and `train` and `infer` know it only through here.
//! Without the default `model` feature it is just the serde types of
//! [`metrics`] and [`files`], for tools that read results without Burn.
//!
//! - [`files`]: the file names and JSON reading and writing with errors that name the file.
//! - [`metrics`]: `metrics.json` of both kinds, and the training options.
//! - [`writer`]: [`ArtifactWriter`], the staging directory moved into place by rename.
//! - [`config`]: `config.json` of both kinds, with the migrations of old configs.
//! - [`weights`]: loading `model.mpk` with a check of every shape.
//! - [`memory`]: refusing a model too large for this machine before building it.
//! - [`classifier`]: [`Classifier`], a loaded classifier and the one prediction path.
//! - [`language_model`]: [`LanguageModel`], a loaded character language model.
//! - [`translation`]: [`TranslationModel`], a loaded translator and its search.
//! - [`pytorch`]: the weights in PyTorch's names and layouts, as safetensors (export and import).
//! - [`bleu`], [`chrf`]: corpus BLEU and chrF of translations, as sacreBLEU computes them.
//! - [`args`]: the command-line value parsers that `train` and `infer` share.

pub mod args;
pub mod bleu;
pub mod chrf;
pub mod files;
pub mod metrics;
pub mod options;

#[cfg(feature = "model")]
pub mod classifier;
#[cfg(feature = "model")]
pub mod config;
#[cfg(feature = "model")]
pub mod language_model;
#[cfg(feature = "model")]
pub mod memory;
#[cfg(feature = "model")]
pub mod pytorch;
#[cfg(feature = "model")]
pub mod translation;
#[cfg(feature = "model")]
pub mod weights;
#[cfg(feature = "model")]
pub mod writer;

pub use metrics::{
    ClassifierMetrics, Compression, CompressionSettings, History, LmMetrics, TranslatorMetrics,
};
pub use options::{
    ClassifierTraining, Granularity, LmTraining, LrSchedule, Pretraining, Scope, Select,
    TranslatorTraining,
};

#[cfg(feature = "model")]
pub use classifier::{Classifier, Evaluation, Prediction, PredictionPath, TokenWeight};
#[cfg(feature = "model")]
pub use config::{ClassifierConfig, LmConfig, TranslationConfig};
#[cfg(feature = "model")]
pub use language_model::LanguageModel;
#[cfg(feature = "model")]
pub use translation::{Translation, TranslationModel};
#[cfg(feature = "model")]
pub use writer::ArtifactWriter;
