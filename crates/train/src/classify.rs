//! Training the text classifier end to end: data, tokenizer, Learner, the
//! best-validation checkpoint, the test evaluation and the artifact.

use crate::TrainBackend;
use crate::adamw::FusedAdamWConfig;
use crate::checkpoints::{per_epoch, profile};
use crate::renderer::LineRenderer;
use crate::step::{ClassifierStep, TrainBatcher, TrainItem};
use anyhow::{Context, Result, bail, ensure};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::InMemDataset;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::Optimizer;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, MetricEarlyStoppingStrategy, StoppingCondition, SupervisedTraining};
use clap::{Args, ValueEnum};
use data::{
    Bucketed, LabelledText, TextBatcher, WordTokenizer, bucket_by_length, encode_all,
    padded_positions, read_labelled_tsv,
};
use infer::artifact::WeightsRecorder;
use infer::{ArtifactConfig, ArtifactWriter, Classifier, Compression, History, Metrics};
use model::{CellKind, LstmBackend, TextClassifier, TextClassifierConfig};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Train the LSTM + attention sentiment classifier and write an artifact.
#[derive(Args, Debug, Clone, Serialize)]
pub struct ClassifyArgs {
    /// Directory with train.tsv, valid.tsv and test.tsv (`label<TAB>text`).
    #[arg(long, default_value = "datasets/mr")]
    pub data_dir: PathBuf,
    /// Where the artifact goes (replaced only once training has finished).
    #[arg(long, default_value = "artifacts/mr")]
    pub artifact_dir: PathBuf,
    /// Class names in the files, comma-separated, in the model's output order.
    #[arg(long, default_value = "neg,pos", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Validation accuracy on MR peaks around epochs 6–8; the best epoch is kept.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): every step
    /// shrinks each weight by lr × this fraction of itself (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Rescale each parameter tensor's gradient to at most this L2 norm
    /// before the update (Burn's norm clipping, per tensor; 0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub clip_norm: f64,
    /// Seeds the weights, dropout and the shuffling: same seed, same result on ndarray.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The recurrent encoder; bi* read each sentence in both directions.
    #[arg(long, value_enum, default_value_t = EncoderChoice::Lstm)]
    pub encoder: EncoderChoice,
    /// Stacked recurrent layers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub layers: u64,
    #[arg(long, default_value_t = 128)]
    pub d_embed: usize,
    #[arg(long, default_value_t = 128)]
    pub d_hidden: usize,
    /// Dropout on the word embeddings.
    #[arg(long, default_value_t = 0.5)]
    pub embedding_dropout: f64,
    /// Dropout on the pooled vector (and between stacked layers).
    #[arg(long, default_value_t = 0.5)]
    pub output_dropout: f64,
    /// Variational dropout in the encoder: one mask per sentence on each
    /// layer's input and on its recurrent state, the same at every step.
    #[arg(long, default_value_t = 0.0)]
    pub recurrent_dropout: f64,
    /// Longer sentences are truncated (MR's longest is about 60 words).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_seq_len: u64,
    /// Words seen fewer times than this in the training split become [UNK]
    /// (2 halves MR's vocabulary and lets [UNK] learn from rare words: +2 points on MR).
    #[arg(long, default_value_t = 2)]
    pub min_freq: u64,
    /// Largest vocabulary, special tokens included.
    #[arg(long, default_value_t = 30_000)]
    pub max_vocab: usize,
    /// Which epoch's weights the artifact keeps: the lowest validation loss,
    /// the highest validation accuracy, or the last epoch.
    #[arg(long, value_enum, default_value_t = Select::Accuracy)]
    pub select: Select,
    /// Early stopping: stop when the --select metric has not improved for
    /// this many epochs (0 = never; needs --select loss or accuracy).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Batch sentences of similar length (sorted within pools of 50
    /// batches, batches shuffled), so that less of each batch is padding.
    /// The batches are formed once per run; their order changes every epoch.
    #[arg(long)]
    pub bucket: bool,
    /// Without a terminal, print a progress line every this many batches.
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    /// Use the first N training examples only (for smoke tests).
    #[arg(long)]
    pub limit: Option<usize>,
}

/// The choices of `--select`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    Loss,
    Accuracy,
    Last,
}

impl Select {
    /// The 1-based epoch this choice keeps, from the per-epoch means: the
    /// first lowest validation loss, the first highest validation accuracy,
    /// or the last epoch.
    pub fn pick(self, history: &History) -> usize {
        let epochs = history.valid_loss.len();
        let first_best = |values: &[f64], better: fn(f64, f64) -> bool| {
            (0..values.len()).fold(0, |best, i| {
                if better(values[i], values[best]) {
                    i
                } else {
                    best
                }
            }) + 1
        };
        match self {
            Select::Loss => first_best(&history.valid_loss, |a, b| a < b),
            Select::Accuracy => first_best(&history.valid_accuracy, |a, b| a > b),
            Select::Last => epochs,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Select::Loss => "loss",
            Select::Accuracy => "accuracy",
            Select::Last => "last",
        }
    }
}

/// The optimizer of a classifier run: AdamW with the run's decay and clipping.
pub fn optimizer(args: &ClassifyArgs) -> FusedAdamWConfig {
    let clipping =
        (args.clip_norm > 0.0).then(|| GradientClippingConfig::Norm(args.clip_norm as f32));
    FusedAdamWConfig::new(args.weight_decay as f32).with_grad_clipping(clipping)
}

/// Loss and accuracy of every epoch, from burn-train's logs.
pub fn history(log_dir: &Path) -> Result<History> {
    let (train_loss, valid_loss, _) = per_epoch(log_dir, "Loss")?;
    let (train_accuracy, valid_accuracy, _) = per_epoch(log_dir, "Accuracy")?;
    Ok(History {
        train_loss,
        valid_loss,
        train_accuracy,
        valid_accuracy,
    })
}

/// The encoder choices of `--encoder`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderChoice {
    Rnn,
    Gru,
    Lstm,
    Birnn,
    Bigru,
    Bilstm,
}

impl EncoderChoice {
    pub fn cell(self) -> CellKind {
        match self {
            EncoderChoice::Rnn | EncoderChoice::Birnn => CellKind::Rnn,
            EncoderChoice::Gru | EncoderChoice::Bigru => CellKind::Gru,
            EncoderChoice::Lstm | EncoderChoice::Bilstm => CellKind::Lstm,
        }
    }

    pub fn bidirectional(self) -> bool {
        matches!(
            self,
            EncoderChoice::Birnn | EncoderChoice::Bigru | EncoderChoice::Bilstm
        )
    }
}

pub fn run<B: TrainBackend>(args: &ClassifyArgs, device: &B::Device, backend: &str) -> Result<()> {
    for (option, value) in [
        ("--embedding-dropout", args.embedding_dropout),
        ("--output-dropout", args.output_dropout),
        ("--recurrent-dropout", args.recurrent_dropout),
    ] {
        if !(0.0..1.0).contains(&value) {
            bail!("{option} must be in [0, 1), got {value}");
        }
    }
    for (option, value) in [
        ("--weight-decay", args.weight_decay),
        ("--clip-norm", args.clip_norm),
    ] {
        if !(value >= 0.0 && value.is_finite()) {
            bail!("{option} must be a number ≥ 0, got {value}");
        }
    }
    let schedule = Schedule::from(args);
    schedule.check()?;
    let splits = Splits::read(&args.data_dir, &args.labels, args.limit)?;

    let tokenizer = WordTokenizer::train(
        splits.train.iter().map(|t| t.text.as_str()),
        args.min_freq,
        args.max_vocab,
    )?;
    println!(
        "vocabulary: {} tokens (from the training split only)",
        tokenizer.vocab_size()
    );

    let config = ArtifactConfig {
        model: TextClassifierConfig::new(tokenizer.vocab_size(), args.labels.len())
            .with_d_embed(args.d_embed)
            .with_d_hidden(args.d_hidden)
            .with_embedding_dropout(args.embedding_dropout)
            .with_output_dropout(args.output_dropout)
            .with_recurrent_dropout(args.recurrent_dropout)
            .with_cell(args.encoder.cell())
            .with_bidirectional(args.encoder.bidirectional())
            .with_layers(args.layers as usize),
        labels: args.labels.clone(),
        max_seq_len: args.max_seq_len as usize,
        training: serde_json::to_value(args)?,
    };

    B::seed(device, args.seed);
    let model = ClassifierStep::new(config.model.init::<B>(device));
    println!(
        "model: {} encoder, {} layer(s), {} parameters",
        args.encoder.to_possible_value().unwrap().get_name(),
        args.layers,
        model.num_params()
    );
    let train = encode_all(&tokenizer, &splits.train)?;
    let valid = encode_all(&tokenizer, &splits.valid)?;
    let writer = ArtifactWriter::create(&args.artifact_dir)?;
    let fitted = fit(
        model,
        optimizer(args).init(),
        &schedule,
        train.into_iter().map(TrainItem::from).collect(),
        valid.into_iter().map(TrainItem::from).collect(),
        config.max_seq_len,
        &writer.dir().join("training"),
        device,
    )?;
    let classifier = Classifier::new(fitted.model, tokenizer, config, device);
    finish(writer, classifier, &splits, fitted.run, backend, None)?;
    Ok(())
}

/// The train, valid and test splits of a `label<TAB>text` dataset directory.
pub struct Splits {
    pub train: Vec<LabelledText>,
    pub valid: Vec<LabelledText>,
    pub test: Vec<LabelledText>,
}

impl Splits {
    /// Reads `train.tsv`, `valid.tsv` and `test.tsv`; `limit` keeps the first
    /// training examples only.
    pub fn read(data_dir: &Path, labels: &[String], limit: Option<usize>) -> Result<Self> {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        if labels.len() < 2 {
            bail!("--labels needs at least two class names, got {labels:?}");
        }
        let split = |name: &str| read_labelled_tsv(&data_dir.join(format!("{name}.tsv")), &labels);
        let mut train = split("train")?;
        if let Some(limit) = limit {
            train.truncate(limit);
        }
        let splits = Self {
            train,
            valid: split("valid")?,
            test: split("test")?,
        };
        println!(
            "data: {} train, {} valid, {} test examples from {}",
            splits.train.len(),
            splits.valid.len(),
            splits.test.len(),
            data_dir.display()
        );
        Ok(splits)
    }
}

/// How a run goes through its epochs and which one it keeps.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Seeds the shuffling.
    pub seed: u64,
    pub select: Select,
    pub patience: usize,
    pub log_every: usize,
    /// Length bucketing of the training batches (`--bucket`).
    pub bucket: bool,
}

impl From<&ClassifyArgs> for Schedule {
    fn from(args: &ClassifyArgs) -> Self {
        Self {
            epochs: args.epochs,
            batch_size: args.batch_size as usize,
            lr: args.lr,
            seed: args.seed,
            select: args.select,
            patience: args.patience,
            log_every: args.log_every,
            bucket: args.bucket,
        }
    }
}

impl Schedule {
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        if self.patience > 0 && self.select == Select::Last {
            bail!(
                "--patience needs a metric to watch: use it with --select loss or --select accuracy"
            );
        }
        Ok(())
    }
}

/// What a training run kept, and how it got there.
pub struct Fitted<B: TrainBackend> {
    /// The weights of the kept epoch, without autodiff.
    pub model: TextClassifier<B::InnerBackend>,
    pub run: RunInfo,
}

/// The part of an artifact's metrics that describes its training.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub train_seconds: f64,
    pub selected_by: String,
    pub history: History,
}

impl RunInfo {
    /// The training of the artifact another was made from, as its metrics tell.
    pub fn of(metrics: &Metrics) -> Self {
        Self {
            best_epoch: metrics.best_epoch,
            epochs_run: metrics.epochs_run,
            train_seconds: metrics.train_seconds,
            selected_by: metrics.selected_by.clone(),
            history: metrics.history.clone(),
        }
    }
}

/// Trains `step` with burn-train's Learner, logging and checkpointing into
/// `log_dir`, and returns the weights of the epoch `schedule.select` picks.
#[allow(clippy::too_many_arguments)]
pub fn fit<B, O>(
    step: ClassifierStep<B>,
    optimizer: O,
    schedule: &Schedule,
    train: Vec<TrainItem>,
    valid: Vec<TrainItem>,
    max_seq_len: usize,
    log_dir: &Path,
    device: &B::Device,
) -> Result<Fitted<B>>
where
    B: TrainBackend,
    O: Optimizer<ClassifierStep<B>, B> + 'static,
{
    let batcher = TrainBatcher {
        text: TextBatcher::new(max_seq_len),
    };
    let length = |item: &TrainItem| item.text.ids.len().clamp(1, max_seq_len);
    let real: usize = train.iter().map(length).sum();
    let train_loader = if schedule.bucket {
        let batches = bucket_by_length(train, length, schedule.batch_size, schedule.seed);
        println!(
            "length bucketing: {} batches, {} real tokens in {} padded positions per epoch",
            batches.len(),
            real,
            padded_positions(&batches, length)
        );
        DataLoaderBuilder::<B, _, _>::new(Bucketed(batcher.clone()))
            .batch_size(1)
            .shuffle(schedule.seed)
            .set_device(device.clone())
            .build(InMemDataset::new(batches))
    } else {
        // What random batches pad to, for comparison: one shuffle's worth.
        let mut shuffled: Vec<usize> = train.iter().map(length).collect();
        shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(schedule.seed));
        let batches: Vec<Vec<usize>> = shuffled
            .chunks(schedule.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        let padded = padded_positions(&batches, |length| *length);
        println!(
            "random batches: {real} real tokens in about {padded} padded positions per epoch (--bucket to batch by length)"
        );
        DataLoaderBuilder::<B, _, _>::new(batcher.clone())
            .batch_size(schedule.batch_size)
            .shuffle(schedule.seed)
            .set_device(device.clone())
            .build(InMemDataset::new(train))
    };
    let valid_loader = DataLoaderBuilder::<B::InnerBackend, _, _>::new(batcher)
        .batch_size(256)
        .set_device(device.clone())
        .build(InMemDataset::new(valid));
    let learner = Learner::new(step, optimizer, schedule.lr);

    let mut training = SupervisedTraining::new(log_dir, train_loader, valid_loader)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(AccuracyMetric::new())
        .metric_valid_numeric(AccuracyMetric::new())
        .with_file_checkpointer(WeightsRecorder::new())
        .num_epochs(schedule.epochs);
    // Every epoch's checkpoint is kept until the run ends, and the epoch is
    // chosen from the logged per-epoch values below: burn-train's metric
    // checkpointing ranks epochs by its own aggregate, which can disagree with
    // the per-epoch means it logs (it kept epoch 7 of a run whose logged
    // validation loss was lowest at epoch 8).
    training = training.with_checkpointing_strategy(KeepLastNCheckpoints::new(schedule.epochs));
    let loss = LossMetric::<B>::new();
    let accuracy = AccuracyMetric::<B>::new();
    if schedule.patience > 0 {
        let condition = StoppingCondition::NoImprovementSince {
            n_epochs: schedule.patience,
        };
        let strategy = match schedule.select {
            Select::Loss => MetricEarlyStoppingStrategy::new(
                &loss,
                Aggregate::Mean,
                Direction::Lowest,
                Split::Valid,
                condition,
            ),
            _ => MetricEarlyStoppingStrategy::new(
                &accuracy,
                Aggregate::Mean,
                Direction::Highest,
                Split::Valid,
                condition,
            ),
        };
        training = training.early_stopping(strategy);
    }
    if !std::io::stdout().is_terminal() {
        training = training.renderer(LineRenderer::new(schedule.log_every));
    }

    let started = Instant::now();
    let result = training.launch(learner);
    let train_seconds = started.elapsed().as_secs_f64();
    drop(result.renderer);

    let history = history(log_dir)?;
    let epochs_run = history.valid_loss.len();
    ensure!(
        epochs_run > 0 && history.valid_accuracy.len() == epochs_run,
        "the training logs in {} hold no complete epoch",
        log_dir.display()
    );
    let best_epoch = schedule.select.pick(&history);
    println!(
        "kept epoch {best_epoch} of {epochs_run} (by {}): validation loss {:.4}, accuracy {:.2}%; training took {train_seconds:.1} s",
        schedule.select.name(),
        history.valid_loss[best_epoch - 1],
        history.valid_accuracy[best_epoch - 1],
    );
    let checkpoint = log_dir
        .join("checkpoint")
        .join(format!("model-{best_epoch}"));
    // Records are backend-agnostic: the checkpoint of the autodiff model loads
    // straight into the inference model.
    let best: ClassifierStep<B::InnerBackend> = result
        .model
        .load_file(checkpoint.clone(), &WeightsRecorder::new(), device)
        .with_context(|| format!("cannot load the best checkpoint {}", checkpoint.display()))?;
    std::fs::remove_dir_all(log_dir.join("checkpoint"))
        .context("removing the training checkpoints")?;
    Ok(Fitted {
        model: best.model,
        run: RunInfo {
            best_epoch,
            epochs_run,
            train_seconds,
            selected_by: schedule.select.name().to_string(),
            history,
        },
    })
}

/// Evaluates `classifier` on the test and training splits, writes the whole
/// artifact into `writer` and publishes it. Returns the test accuracy.
pub fn finish<B: LstmBackend>(
    writer: ArtifactWriter,
    classifier: Classifier<B>,
    splits: &Splits,
    run: RunInfo,
    backend: &str,
    compression: Option<Compression>,
) -> Result<f64> {
    let evaluation = classifier.evaluate(&splits.test, 256)?;
    let train_accuracy = classifier.evaluate(&splits.train, 256)?.accuracy;
    println!(
        "test accuracy {:.2}% ({}/{}) with the weights of epoch {} (train {:.2}%, dropout off)",
        100.0 * evaluation.accuracy,
        evaluation.correct,
        evaluation.total,
        run.best_epoch,
        100.0 * train_accuracy,
    );
    let valid_accuracy = run
        .history
        .valid_accuracy
        .get(run.best_epoch.wrapping_sub(1))
        .map_or(f64::NAN, |percent| percent / 100.0);
    classifier
        .tokenizer
        .save(&writer.dir().join(infer::artifact::TOKENIZER_FILE))?;
    writer.write_config(&classifier.config)?;
    writer.write_weights(classifier.model)?;
    writer.write_metrics(&Metrics {
        test_accuracy: evaluation.accuracy,
        valid_accuracy,
        best_epoch: run.best_epoch,
        epochs_run: run.epochs_run,
        train_seconds: run.train_seconds,
        backend: backend.to_string(),
        profile: profile(),
        train_accuracy: Some(train_accuracy),
        selected_by: run.selected_by,
        history: run.history,
        compression,
    })?;
    let path = writer.commit()?;
    println!("artifact written to {}", path.display());
    Ok(evaluation.accuracy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::optim::GradientsParams;
    use burn::prelude::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ClassifyArgs,
    }

    fn values<B: Backend>(model: &TextClassifier<B>) -> Vec<f32> {
        let mut all = Vec::new();
        struct Collect<'a>(&'a mut Vec<f32>);
        impl<B: Backend> burn::module::ModuleVisitor<B> for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
                self.0.extend(
                    param
                        .val()
                        .into_data()
                        .convert::<f32>()
                        .to_vec::<f32>()
                        .unwrap(),
                );
            }
        }
        model.visit(&mut Collect(&mut all));
        all
    }

    #[test]
    fn select_picks_the_first_best_epoch() {
        let history = History {
            train_loss: vec![0.7, 0.5, 0.4, 0.3],
            valid_loss: vec![0.6, 0.45, 0.45, 0.5],
            train_accuracy: vec![60.0, 70.0, 80.0, 90.0],
            valid_accuracy: vec![65.0, 74.0, 76.0, 76.0],
        };
        assert_eq!(Select::Loss.pick(&history), 2);
        assert_eq!(Select::Accuracy.pick(&history), 3);
        assert_eq!(Select::Last.pick(&history), 4);
    }

    /// With a zero loss gradient, AdamW's decoupled decay is all that moves
    /// the weights: each shrinks by exactly the factor 1 − lr · decay.
    #[test]
    fn weight_decay_shrinks_weights_when_the_loss_gradient_is_zero() {
        type A = Autodiff<NdArray>;
        let device = Default::default();
        let args = Cli::parse_from(["train", "--weight-decay", "0.1"]).args;
        let model = TextClassifierConfig::new(20, 2)
            .with_d_embed(4)
            .with_d_hidden(4)
            .init::<A>(&device);
        let tokens = Tensor::<A, 2, Int>::from_ints([[3, 4, 5]], &device);
        let mask = tokens.clone().not_equal_elem(0);
        let zero_loss = model.forward(tokens, mask).logits.sum() * 0.0;
        let grads = GradientsParams::from_grads(zero_loss.backward(), &model);
        let before = values(&model);
        let mut optimizer = optimizer(&args).init::<A, TextClassifier<A>>();
        let after = values(&optimizer.step(0.01, model, grads));
        let factor = 1.0 - 0.01 * 0.1;
        let mut shrunk = 0;
        for (b, a) in before.iter().zip(&after) {
            assert!(
                (a - b * factor).abs() <= 1e-7 * b.abs().max(1.0),
                "{b} -> {a}"
            );
            shrunk += usize::from(a.abs() < b.abs());
        }
        assert!(shrunk > before.len() / 2, "only {shrunk} weights shrank");
    }
}
