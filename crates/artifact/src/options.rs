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

/// How the learning rate moves over a run, from the `--lr` it starts at.
///
/// On the command line (`--lr-schedule`): `constant`, `cosine`,
/// `exponential:G` with G in (0, 1], or `cooldown:F` with F in (0, 1].
/// The curves themselves are `train::schedule`'s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The same rate at every step.
    #[default]
    Constant,
    /// Half a cosine from the rate down to zero over all the planned
    /// epochs' steps (Loshchilov & Hutter 2017, without restarts).
    Cosine,
    /// Multiplied by this factor per epoch, smoothly (a fraction of it per
    /// step): it needs no planned length, so it suits a time budget.
    Exponential(f64),
    /// The same rate, then a straight line down to zero over this fraction
    /// of the run's last steps (the "warmup-stable-decay" schedule without
    /// warm-up; Hägele et al. 2024 find a cooldown of 20% matches a cosine
    /// over the same steps). The rate stays high while the model is still
    /// learning fast, and falls only at the end.
    Cooldown(f64),
}

impl LrSchedule {
    /// Parses `--lr-schedule`'s value.
    pub fn parse(value: &str) -> Result<Self, String> {
        let not_one = || {
            format!("{value:?} is not a schedule: constant, cosine, exponential:G or cooldown:F")
        };
        match value {
            "constant" => return Ok(Self::Constant),
            "cosine" => return Ok(Self::Cosine),
            _ => {}
        }
        let (name, number) = value.split_once(':').ok_or_else(not_one)?;
        let number = number.parse::<f64>().ok().filter(|x| *x > 0.0 && *x <= 1.0);
        match (name, number) {
            ("exponential", Some(g)) => Ok(Self::Exponential(g)),
            ("cooldown", Some(f)) => Ok(Self::Cooldown(f)),
            ("exponential", None) => Err(format!(
                "{value}: the factor per epoch must be a number in (0, 1]"
            )),
            ("cooldown", None) => Err(format!(
                "{value}: the fraction of the run that cools down must be a number in (0, 1]"
            )),
            _ => Err(not_one()),
        }
    }

    /// Whether the curve needs to know where the run ends: under a time
    /// budget the epochs' pace tells that (`train::schedule::Horizon`).
    pub fn needs_horizon(self) -> bool {
        matches!(self, Self::Cosine | Self::Cooldown(_))
    }
}

impl std::fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Constant => write!(f, "constant"),
            Self::Cosine => write!(f, "cosine"),
            Self::Exponential(g) => write!(f, "exponential:{g}"),
            Self::Cooldown(fraction) => write!(f, "cooldown:{fraction}"),
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
    /// All matrices ranked together by their LAMP score (Lee et al. 2021,
    /// "Layer-adaptive sparsity for the magnitude-based pruning"): a
    /// weight's square over the sum of the squares of the weights of its
    /// matrix at least as large. Scale-free, so unlike `global` it does not
    /// empty a matrix whose weights are merely smaller; each matrix keeps at
    /// least its largest weight.
    Lamp,
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
    /// Absent before schedules existed: constant.
    pub lr_schedule: LrSchedule,
    pub weight_decay: f64,
    /// Absent before label smoothing existed: 0 (off).
    pub label_smoothing: f64,
    pub clip_norm: f64,
    pub seed: u64,
    pub select: Select,
    pub patience: usize,
    pub bucket: bool,
    pub min_freq: u64,
    pub max_vocab: usize,
    /// Only the first this many training examples were used.
    pub limit: Option<usize>,
    /// Checkpoint averaging: the mean of this many epochs' weights was kept
    /// (0 where written before averaging existed, which kept one).
    pub average: usize,
    /// The embedding and encoder were first trained as a word language
    /// model (absent: they started from random weights).
    pub pretraining: Option<Pretraining>,
    /// The word embedding started from these pretrained vectors (absent:
    /// from random ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<PathBuf>,
}

/// Language-model pretraining of a classifier's embedding and encoder
/// (`train --pretrain-epochs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pretraining {
    pub epochs: usize,
    pub lr: f64,
    /// Gradual unfreezing in the classifier's first epochs.
    pub unfreeze: bool,
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
    /// Absent before schedules existed: constant.
    pub lr_schedule: LrSchedule,
    /// Decoupled weight decay (AdamW); absent before it existed: 0.
    pub weight_decay: f64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_print_back() {
        for text in ["constant", "cosine", "exponential:0.85", "cooldown:0.2"] {
            assert_eq!(LrSchedule::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "linear",
            "exponential:0",
            "exponential:1.5",
            "exponential:x",
            "cooldown:0",
            "cooldown:1.2",
            "cooldown:",
        ] {
            let err = LrSchedule::parse(bad).unwrap_err();
            assert!(err.contains(bad.split(':').next_back().unwrap()), "{err}");
        }
    }

    /// Training records written before schedules existed read as constant;
    /// each schedule round-trips through JSON.
    #[test]
    fn schedules_on_disk() {
        let old: ClassifierTraining = serde_json::from_str(r#"{"lr": 0.002}"#).unwrap();
        assert_eq!(old.lr_schedule, LrSchedule::Constant);
        for schedule in [
            LrSchedule::Cosine,
            LrSchedule::Exponential(0.9),
            LrSchedule::Cooldown(0.2),
        ] {
            let json = serde_json::to_string(&schedule).unwrap();
            assert_eq!(serde_json::from_str::<LrSchedule>(&json).unwrap(), schedule);
        }
    }
}
