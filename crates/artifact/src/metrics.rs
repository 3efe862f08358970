//! `metrics.json`: what the run that produced an artifact measured.

use crate::options::{Granularity, LrSchedule, Scope, lenient};
use serde::{Deserialize, Serialize};

/// The metrics of a classifier artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierMetrics {
    pub test_accuracy: f64,
    pub valid_accuracy: f64,
    /// The epoch whose weights were kept (see `selected_by`), 1-based.
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub train_seconds: f64,
    /// Absent from metrics written by older code, as are the fields below.
    #[serde(default)]
    pub backend: String,
    /// Cargo profile of the binary that trained (`release` or `debug`).
    #[serde(default)]
    pub profile: String,
    /// Accuracy on the training split with the kept weights (dropout off).
    #[serde(default)]
    pub train_accuracy: Option<f64>,
    /// How the kept epoch was chosen: `loss` (lowest validation loss),
    /// `accuracy` (highest validation accuracy) or `last`.
    #[serde(default)]
    pub selected_by: String,
    /// The mean loss and accuracy of every epoch on both splits.
    #[serde(default)]
    pub history: History,
    /// What a `train compress` step did to the model, if one made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// With checkpoint averaging (`--average`), the first of the epochs
    /// whose mean weights were kept (the last is `best_epoch`); the
    /// validation accuracy is then that of the mean weights, evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub averaged_from: Option<usize>,
}

/// The metrics of a translation artifact. BLEU and chrF are corpus scores
/// of greedy translations of the kept weights, computed as sacreBLEU does
/// (the signatures say how).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranslatorMetrics {
    pub test_bleu: f64,
    pub test_chrf: f64,
    pub valid_bleu: f64,
    pub valid_chrf: f64,
    pub bleu_signature: String,
    pub chrf_signature: String,
    /// Mean cross-entropy per target token (the end token included) of the
    /// kept epoch on the validation split.
    pub valid_loss: f64,
    /// Percent of target tokens predicted right under teacher forcing.
    pub valid_token_accuracy: f64,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub train_seconds: f64,
    pub selected_by: String,
    pub parameters: usize,
    /// Test sentences translated per second by greedy search (batches of 64).
    pub test_sentences_per_second: f64,
    pub history: History,
    pub backend: String,
    pub profile: String,
}

/// Per-epoch means over the batches, as burn-train logged them (the training
/// split with dropout on).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    pub train_loss: Vec<f64>,
    pub valid_loss: Vec<f64>,
    /// Percent.
    pub train_accuracy: Vec<f64>,
    /// Percent.
    pub valid_accuracy: Vec<f64>,
}

/// How a compressed artifact was made from another one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Compression {
    /// `quantize`, `prune`, `shrink` or `distill`.
    pub method: String,
    /// The artifact it was made from.
    pub from: String,
    /// The fraction of exactly-zero weights among all parameters.
    pub sparsity: f64,
    pub parameters: usize,
    pub nonzero_parameters: usize,
    /// The method's own settings (absent when written by older code).
    #[serde(default, deserialize_with = "lenient")]
    pub settings: Option<CompressionSettings>,
}

/// The settings of each compression method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionSettings {
    Quantize {
        granularity: Granularity,
        block_size: u8,
        /// Tensors quantized with a scale per block, and with one scale.
        blocked_tensors: usize,
        whole_tensors: usize,
    },
    Prune {
        target_sparsity: f64,
        scope: Scope,
        rounds: usize,
        /// Fine-tuning epochs after each round.
        epochs: usize,
        lr: f64,
        /// The fine-tuning's schedule (absent before schedules existed: constant).
        #[serde(default)]
        lr_schedule: LrSchedule,
        /// The fraction of the prunable weights (the matrices) that are zero.
        weight_matrix_sparsity: f64,
        /// Validation accuracy after each round's pruning, before its fine-tuning.
        valid_accuracy_before_fine_tuning: Vec<f64>,
        /// The unpruned model taught the fine-tuning (`--distill-alpha`):
        /// its temperature and the weight of its soft targets (absent when
        /// the fine-tuning learned from the labels alone).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        distillation: Option<(f64, f64)>,
    },
    Distill {
        temperature: f64,
        alpha: f64,
        teacher_parameters: usize,
    },
    /// Structured pruning: whole embedding dimensions and hidden units removed.
    Shrink {
        /// The fraction of the dimensions and of the units removed.
        sparsity: f64,
        /// Embedding dimensions and hidden units (per layer): before, after.
        d_embed: (usize, usize),
        d_hidden: (usize, usize),
        teacher_parameters: usize,
        /// Fine-tuning epochs after the cut.
        epochs: usize,
        lr: f64,
        lr_schedule: LrSchedule,
        /// Validation accuracy right after the cut.
        valid_accuracy_before_fine_tuning: f64,
    },
}

/// The metrics of a language-model artifact. Losses are cross-entropies in
/// nats per character.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmMetrics {
    /// The validation loss of the kept weights.
    pub valid_loss: f64,
    pub valid_bits_per_char: f64,
    pub valid_perplexity: f64,
    /// The epoch whose weights were kept (the first lowest logged validation loss), 1-based.
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub train_seconds: f64,
    /// Training characters per second of training time (validation passes
    /// included in the time).
    pub chars_per_second: f64,
    /// The epoch at whose end a cosine or a cooldown reached zero, when the
    /// time budget fixed it from the epochs' pace (`train lm --epochs N
    /// --minutes 0` with this N repeats the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_horizon: Option<usize>,
    /// Mean training and validation loss of each epoch.
    pub train_loss_per_epoch: Vec<f64>,
    pub valid_loss_per_epoch: Vec<f64>,
    pub backend: String,
    pub profile: String,
}

/// The Cargo profile this code was built with (`release` or `debug`), for
/// the metrics.
pub fn build_profile() -> String {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
    .to_string()
}
