//! Training the text classifier end to end: data, tokenizer, Learner, the
//! best-validation checkpoint, the test evaluation and the artifact.

use crate::TrainBackend;
use crate::checkpoints::{best_and_last, best_epoch, profile};
use crate::renderer::LineRenderer;
use crate::step::ClassifierStep;
use anyhow::{Context, Result, bail};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, MetricEarlyStoppingStrategy, StoppingCondition, SupervisedTraining};
use clap::{Args, ValueEnum};
use data::{TextBatcher, WordTokenizer, encode_all, read_labelled_tsv};
use infer::artifact::WeightsRecorder;
use infer::{ArtifactConfig, ArtifactWriter, Classifier, Metrics};
use model::{CellKind, TextClassifierConfig};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::PathBuf;
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
    /// L2 weight decay added to the gradients (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
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
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f64,
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
    /// Stop when validation accuracy has not improved for this many epochs (0 = never).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Without a terminal, print a progress line every this many batches.
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    /// Use the first N training examples only (for smoke tests).
    #[arg(long)]
    pub limit: Option<usize>,
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
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if !(0.0..1.0).contains(&args.dropout) {
        bail!("--dropout must be in [0, 1), got {}", args.dropout);
    }
    let labels: Vec<&str> = args.labels.iter().map(String::as_str).collect();
    if labels.len() < 2 {
        bail!(
            "--labels needs at least two class names, got {:?}",
            args.labels
        );
    }
    let split = |name: &str| read_labelled_tsv(&args.data_dir.join(format!("{name}.tsv")), &labels);
    let mut train = split("train")?;
    if let Some(limit) = args.limit {
        train.truncate(limit);
    }
    let valid = split("valid")?;
    let test = split("test")?;
    println!(
        "data: {} train, {} valid, {} test examples from {}",
        train.len(),
        valid.len(),
        test.len(),
        args.data_dir.display()
    );

    let tokenizer = WordTokenizer::train(
        train.iter().map(|t| t.text.as_str()),
        args.min_freq,
        args.max_vocab,
    )?;
    println!(
        "vocabulary: {} tokens (from the training split only)",
        tokenizer.vocab_size()
    );

    let config = ArtifactConfig {
        model: TextClassifierConfig::new(tokenizer.vocab_size(), labels.len())
            .with_d_embed(args.d_embed)
            .with_d_hidden(args.d_hidden)
            .with_dropout(args.dropout)
            .with_cell(args.encoder.cell())
            .with_bidirectional(args.encoder.bidirectional())
            .with_layers(args.layers as usize),
        labels: args.labels.clone(),
        max_seq_len: args.max_seq_len as usize,
        training: serde_json::to_value(args)?,
    };

    let batcher = TextBatcher::new(config.max_seq_len);
    let train_loader = DataLoaderBuilder::<B, _, _>::new(batcher.clone())
        .batch_size(args.batch_size as usize)
        .shuffle(args.seed)
        .set_device(device.clone())
        .build(InMemDataset::new(encode_all(&tokenizer, &train)?));
    let valid_loader = DataLoaderBuilder::<B::InnerBackend, _, _>::new(batcher)
        .batch_size(256)
        .set_device(device.clone())
        .build(InMemDataset::new(encode_all(&tokenizer, &valid)?));

    B::seed(device, args.seed);
    let model = ClassifierStep {
        model: config.model.init::<B>(device),
    };
    println!(
        "model: {} encoder, {} layer(s), {} parameters",
        args.encoder.to_possible_value().unwrap().get_name(),
        args.layers,
        model.num_params()
    );
    let mut optimizer = AdamConfig::new();
    if args.weight_decay > 0.0 {
        optimizer =
            optimizer.with_weight_decay(Some(WeightDecayConfig::new(args.weight_decay as f32)));
    }
    let learner = Learner::new(model, optimizer.init(), args.lr);

    let writer = ArtifactWriter::create(&args.artifact_dir)?;
    let log_dir = writer.dir().join("training");
    let accuracy = AccuracyMetric::<B>::new();
    let mut training = SupervisedTraining::new(&log_dir, train_loader, valid_loader)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(AccuracyMetric::new())
        .metric_valid_numeric(AccuracyMetric::new())
        .with_file_checkpointer(WeightsRecorder::new())
        .with_checkpointing_strategy(best_and_last(&accuracy, Direction::Highest))
        .num_epochs(args.epochs);
    if args.patience > 0 {
        training = training.early_stopping(MetricEarlyStoppingStrategy::new(
            &accuracy,
            Aggregate::Mean,
            Direction::Highest,
            Split::Valid,
            StoppingCondition::NoImprovementSince {
                n_epochs: args.patience,
            },
        ));
    }
    if !std::io::stdout().is_terminal() {
        training = training.renderer(LineRenderer::new(args.log_every));
    }

    let started = Instant::now();
    let result = training.launch(learner);
    let train_seconds = started.elapsed().as_secs_f64();
    drop(result.renderer);

    let (best_epoch, valid_accuracy, epochs_run) = best_epoch(&log_dir, "Accuracy")?;
    println!(
        "best validation accuracy {:.2}% at epoch {best_epoch} of {epochs_run}; training took {train_seconds:.1} s",
        valid_accuracy
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

    let classifier = Classifier::new(best.model, tokenizer, config, device);
    let evaluation = classifier.evaluate(&test, 256)?;
    println!(
        "test accuracy {:.2}% ({}/{}) with the weights of epoch {best_epoch}",
        100.0 * evaluation.accuracy,
        evaluation.correct,
        evaluation.total
    );

    classifier
        .tokenizer
        .save(&writer.dir().join(infer::artifact::TOKENIZER_FILE))?;
    writer.write_config(&classifier.config)?;
    writer.write_weights(classifier.model)?;
    writer.write_metrics(&Metrics {
        test_accuracy: evaluation.accuracy,
        valid_accuracy: valid_accuracy / 100.0,
        best_epoch,
        epochs_run,
        train_seconds,
        backend: backend.to_string(),
        profile: profile(),
    })?;
    std::fs::remove_dir_all(log_dir.join("checkpoint"))
        .context("removing the training checkpoints")?;
    let path = writer.commit()?;
    println!("artifact written to {}", path.display());
    Ok(())
}
