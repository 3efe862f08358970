//! `train lm`: the character language model on Shakespeare, trained through
//! the same loop as the classifier ([`crate::fit`]) with truncated
//! backpropagation through time.
//!
//! The text is cut into B contiguous streams ([`CharStreams`]); batch k holds
//! window k of every stream. [`LmStep`] keeps the LSTM state each batch ends
//! with and starts the next batch from it, detached: gradients flow back
//! `seq_len` characters, while the state carries memory across the whole
//! stream. Training and validation each keep their own state, and window 0
//! (the start of an epoch) starts from zeros. Each epoch cuts the training
//! text at a new offset ([`StreamLoader`]), so that counting steps from the
//! start of a stream does not tell the model where in the text it is. The
//! kept epoch is the first with the lowest logged validation loss.

mod bits;
mod loader;
mod step;

pub use bits::BitsPerCharMetric;
pub use loader::StreamLoader;
pub use step::{LmOutput, LmStep, Pass};

use crate::TrainBackend;
use crate::adamw::FusedAdamWConfig;
use crate::fit::{EpochBatches, Plan, Start, fit, log_dir};
use anyhow::{Context, Result};
use artifact::args::{dropout, non_negative_f64, open_unit_interval, positive_f64, positive_usize};
use artifact::metrics::build_profile;
use artifact::{
    ArtifactWriter, LanguageModel, LmConfig, LmMetrics, LmTraining, LrSchedule, Select,
};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::prelude::*;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use clap::Args;
use data::{CharStreams, CharVocab};
use model::{CharLm, CharLmConfig, LstmBackend};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Train the character-level LSTM language model and write an artifact.
#[derive(Args, Debug, Clone)]
pub struct LmArgs {
    /// A UTF-8 text file; the model learns to continue it one character at a time.
    #[arg(long, default_value = "datasets/shakespeare/input.txt")]
    pub data: PathBuf,
    /// Where the artifact goes (replaced only once training has finished).
    #[arg(long, default_value = "artifacts/shakespeare")]
    pub artifact_dir: PathBuf,
    /// The last this fraction of the text is the validation text.
    #[arg(long, default_value_t = 0.1, value_parser = open_unit_interval)]
    pub valid_fraction: f64,
    /// Most epochs (passes over the training text).
    #[arg(long, default_value_t = 50, value_parser = positive_usize)]
    pub epochs: usize,
    /// Start no epoch that would end past this many minutes of training, judging by the last one (0 = no limit).
    #[arg(long, default_value_t = 30.0, value_parser = non_negative_f64)]
    pub minutes: f64,
    /// Contiguous streams the text is cut into (the rows of a batch).
    #[arg(long, default_value_t = 32, value_parser = positive_usize)]
    pub batch_size: usize,
    /// Characters per window: gradients flow back this far.
    #[arg(long, default_value_t = 64, value_parser = positive_usize)]
    pub seq_len: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 2e-3, value_parser = positive_f64)]
    pub lr: f64,
    /// How the learning rate moves from --lr: constant, cosine (down to zero
    /// at the end of --epochs or, under --minutes, of the epochs the budget
    /// holds at the epochs' pace), exponential:G (times G per epoch) or
    /// cooldown:F (constant, then a line down to zero over the last
    /// fraction F of that run). A cooldown over the last 20%: the rate
    /// stays high while the model is still learning fast, and its fall at
    /// the end lowers the loss the constant rate left noisy; the cosine,
    /// which falls from the start, ended 0.03 nats above the constant rate
    /// (docs/generation.md).
    #[arg(long, default_value = "cooldown:0.2", value_parser = LrSchedule::parse)]
    pub lr_schedule: LrSchedule,
    /// Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): every step
    /// shrinks each weight by lr × this fraction of itself (0 = off, Adam).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative_f64)]
    pub weight_decay: f64,
    /// Rescale each parameter tensor's gradient to at most this L2 norm
    /// (Burn's norm clipping, per tensor; 0 = off). char-rnn clips at 5.
    #[arg(long, alias = "clip", default_value_t = 5.0, value_parser = non_negative_f64)]
    pub clip_norm: f64,
    #[arg(long, default_value_t = 64, value_parser = positive_usize)]
    pub d_embed: usize,
    /// Each LSTM layer's width. 512 (with dropout 0.3, before the recurrent dropout) reached a lower
    /// validation loss in the 30-minute budget than 256 (with 0.2), the
    /// default before: 1.530 against 1.570 nats (docs/generation.md).
    #[arg(long, default_value_t = 512, value_parser = positive_usize)]
    pub d_hidden: usize,
    #[arg(long, default_value_t = 2, value_parser = positive_usize)]
    pub layers: usize,
    /// Dropout on the output of every LSTM layer. 0.2 beside the recurrent
    /// dropout: 0.3 was chosen without it, and with it the model underfit
    /// the budget (1.5007 against 1.5139 nats at 17 and 16 epochs;
    /// docs/generation.md).
    #[arg(long, default_value_t = 0.2, value_parser = dropout)]
    pub dropout: f64,
    /// Variational dropout on each layer's recurrent state: one mask per
    /// stream and window, the same at every step (Gal & Ghahramani 2016).
    /// 0.25 narrows the gap between training and validation loss, which
    /// without it is 0.3 nats by the budget's end (docs/generation.md).
    #[arg(long, default_value_t = 0.25, value_parser = dropout)]
    pub recurrent_dropout: f64,
    /// Stop when validation loss has not improved for this many epochs (0 =
    /// never, the default: the budget ends the run, and with recurrent
    /// dropout the validation loss stalled for three epochs mid-run and
    /// fell again after; docs/generation.md).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Seeds the weights and dropout: same seed, same result on ndarray.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Without a terminal, print a progress line every this many batches.
    #[arg(long, default_value_t = 100, value_parser = positive_usize)]
    pub log_every: usize,
    /// Use the first N characters of the text only (for smoke tests).
    #[arg(long, value_parser = positive_usize)]
    pub limit_chars: Option<usize>,
    /// Continue the interrupted run of the same options (killed, Ctrl-C)
    /// after its last completed epoch.
    #[arg(long)]
    pub resume: bool,
}

impl LmArgs {
    /// Adam as one pass over memory (AdamW, without decay by default):
    /// Burn's Adam makes a dozen passes, and equals it to about 1e-6.
    fn optimizer(&self) -> FusedAdamWConfig {
        FusedAdamWConfig::clipped(self.weight_decay, self.clip_norm)
    }

    /// The options as the artifact records them.
    fn record(&self) -> LmTraining {
        LmTraining {
            data: self.data.clone(),
            valid_fraction: self.valid_fraction,
            epochs: self.epochs,
            minutes: self.minutes,
            batch_size: self.batch_size,
            seq_len: self.seq_len,
            lr: self.lr,
            lr_schedule: self.lr_schedule,
            weight_decay: self.weight_decay,
            clip_norm: self.clip_norm,
            patience: self.patience,
            seed: self.seed,
            limit_chars: self.limit_chars,
        }
    }
}

/// The text of a language-model run, cut into what it trains and validates on.
pub struct LmData {
    /// Covers the whole text, as char-rnn's does: the validation text may
    /// use a character the training text lacks.
    pub vocab: CharVocab,
    pub train: CharStreams,
    pub valid: CharStreams,
    /// Characters in the text.
    pub chars: usize,
}

impl LmData {
    /// Reads `path` (the first `limit` characters), keeps its last
    /// `valid_fraction` for validation and cuts both into `batch` streams
    /// of `seq_len`-character windows.
    pub fn read(
        path: &Path,
        limit: Option<usize>,
        valid_fraction: f64,
        batch: usize,
        seq_len: usize,
    ) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut text = String::from_utf8(bytes).map_err(|e| {
            let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            anyhow::anyhow!("{}:{line}: not valid UTF-8", path.display())
        })?;
        if let Some(limit) = limit {
            if let Some((cut, _)) = text.char_indices().nth(limit) {
                text.truncate(cut);
            }
        }
        let vocab = CharVocab::from_text(&text);
        let mut ids = vocab
            .encode(&text)
            .expect("the vocabulary was built from this text");
        let valid_len = (ids.len() as f64 * valid_fraction).round() as usize;
        let valid_ids = ids.split_off(ids.len() - valid_len);
        let streams = |ids: Vec<u32>, name: &str| {
            CharStreams::new(ids, batch, seq_len).with_context(|| {
                format!(
                    "{}: the {name} text is too short for --batch-size {batch} and --seq-len {seq_len}",
                    path.display()
                )
            })
        };
        Ok(Self {
            train: streams(ids, "training")?,
            valid: streams(valid_ids, "validation")?,
            chars: text.chars().count(),
            vocab,
        })
    }
}

/// The mean cross-entropy (nats per character) of `model` over every window
/// of `streams`, carrying the state from window to window as validation
/// does. Reproduces the validation loss a run logs for the same weights.
pub fn mean_loss<B: LstmBackend>(
    model: CharLm<B>,
    streams: &CharStreams,
    device: &B::Device,
) -> f64 {
    mean_loss_of_windows(model, streams, streams.len(), device)
}

/// [`mean_loss`] over the first `windows` windows of `streams`.
pub fn mean_loss_of_windows<B: LstmBackend>(
    model: CharLm<B>,
    streams: &CharStreams,
    windows: usize,
    device: &B::Device,
) -> f64 {
    let step = LmStep::new(model);
    let windows = windows.min(streams.len());
    let total: f64 = (0..windows)
        .map(|k| {
            let loss = step
                .forward_window(streams.batch::<B>(k, device), Pass::Valid)
                .loss;
            loss.into_scalar().elem::<f64>()
        })
        .sum();
    total / windows as f64
}

pub fn run<B: TrainBackend>(args: &LmArgs, device: &B::Device, backend: &str) -> Result<()> {
    let (batch, seq_len) = (args.batch_size, args.seq_len);
    let data = LmData::read(
        &args.data,
        args.limit_chars,
        args.valid_fraction,
        batch,
        seq_len,
    )?;
    let train_chars_per_epoch = data.train.len() * batch * seq_len;
    println!(
        "data: {} characters ({} distinct) from {}: {} windows of {batch}×{seq_len} to train on, {} to validate",
        data.chars,
        data.vocab.len(),
        args.data.display(),
        data.train.len(),
        data.valid.len()
    );

    let config = LmConfig {
        model: CharLmConfig::new(data.vocab.len())
            .with_d_embed(args.d_embed)
            .with_d_hidden(args.d_hidden)
            .with_layers(args.layers)
            .with_dropout(args.dropout)
            .with_recurrent_dropout(args.recurrent_dropout),
        training: Some(args.record()),
    };
    let valid_windows = Dataset::len(&data.valid);
    let valid_loader = DataLoaderBuilder::<B::InnerBackend, _, _>::new(data::CharBatcher)
        .batch_size(batch)
        .set_device(device.clone())
        .build(data.valid);

    artifact::memory::check_fits(
        config.model.num_params(),
        true,
        &format!(
            "the model of these options ({} characters, --d-embed {}, --d-hidden {}, --layers {})",
            config.model.vocab_size, args.d_embed, args.d_hidden, args.layers
        ),
    )?;
    B::seed(device, args.seed);
    let model = LmStep::new(config.model.init::<B>(device));
    println!(
        "model: embedding {} -> {}×LSTM {} -> {} characters, {} parameters",
        args.d_embed,
        args.layers,
        args.d_hidden,
        data.vocab.len(),
        model.num_params()
    );
    let optimizer = args.optimizer();
    let plan = Plan {
        epochs: args.epochs,
        lr: args.lr,
        schedule: args.lr_schedule,
        select: Select::Loss,
        patience: args.patience,
        minutes: (args.minutes > 0.0).then_some(args.minutes),
        average: 1,
        log_every: args.log_every,
        horizon: Default::default(),
    };
    plan.check()?;

    let writer = ArtifactWriter::create_or_resume(
        &args.artifact_dir,
        "language-model",
        &[&args.data],
        args.resume,
    )?;
    let start = Start::prepare(&log_dir(writer.dir()), &config, args.resume)?;
    // Batch k is window k, so that the state carries; the text is cut at a
    // new offset every epoch (lm/loader.rs says why).
    let train_windows = data.train.len();
    let train_loader = StreamLoader::<B>::new(data.train, args.seed, start.done, device);
    let training = SupervisedTraining::new(&start.log_dir, Arc::new(train_loader), valid_loader)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(BitsPerCharMetric::default())
        .metric_valid_numeric(BitsPerCharMetric::default())
        .metric_train_numeric(AccuracyMetric::new())
        .metric_valid_numeric(AccuracyMetric::new());
    let batches = EpochBatches {
        train: train_windows,
        valid: valid_windows.div_ceil(batch),
    };
    let learner = Learner::new(model, optimizer.init(), plan.scheduler(batches.train));
    let fitted = fit(training, learner, &plan, &start, batches, device)?;

    let run = fitted.run;
    let valid_loss = run.history.valid_loss[run.best_epoch - 1];
    let chars_per_second = (run.epochs_run * train_chars_per_epoch) as f64 / run.train_seconds;
    let metrics = LmMetrics {
        valid_loss,
        valid_bits_per_char: valid_loss / std::f64::consts::LN_2,
        valid_perplexity: valid_loss.exp(),
        best_epoch: run.best_epoch,
        epochs_run: run.epochs_run,
        train_seconds: run.train_seconds,
        chars_per_second,
        lr_horizon: plan.horizon.fixed(),
        train_loss_per_epoch: run.history.train_loss,
        valid_loss_per_epoch: run.history.valid_loss,
        backend: backend.to_string(),
        profile: build_profile(),
    };
    println!(
        "best validation loss {:.4} nats/char = {:.4} bits/char (perplexity {:.2}) at epoch {} of {}",
        metrics.valid_loss,
        metrics.valid_bits_per_char,
        metrics.valid_perplexity,
        metrics.best_epoch,
        metrics.epochs_run
    );
    println!(
        "training took {:.1} s: {chars_per_second:.0} training characters per second (validation passes included in the time)",
        metrics.train_seconds
    );
    LanguageModel {
        model: fitted.model.model,
        vocab: data.vocab,
        config,
    }
    .write_into(&writer)?;
    writer.write_metrics(&metrics)?;
    let path = writer.commit()?;
    println!("artifact written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        lm: LmArgs,
    }

    /// `--weight-decay` reaches the optimizer and the artifact's record, and
    /// a record written before the option existed reads as no decay.
    #[test]
    fn weight_decay_reaches_the_optimizer_and_the_record() {
        let args = Cli::parse_from(["lm", "--weight-decay", "0.05"]).lm;
        assert_eq!(args.optimizer().weight_decay, 0.05);
        assert_eq!(args.record().weight_decay, 0.05);
        let default = Cli::parse_from(["lm"]).lm;
        assert_eq!(default.optimizer().weight_decay, 0.0);
        let old: LmTraining = serde_json::from_str(r#"{"lr": 0.002, "clip_norm": 5.0}"#).unwrap();
        assert_eq!(old.weight_decay, 0.0);
        assert!(Cli::try_parse_from(["lm", "--weight-decay", "-1"]).is_err());
    }
}
