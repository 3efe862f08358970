//! `train compress`: smaller classifiers made from a trained artifact, each
//! written as an artifact that `infer` loads like any other.
//!
//! - `quantize`: post-training int8 weight quantization with Burn's
//!   quantization API (symmetric, min–max calibrated, per tensor or per
//!   block). The weights file stores the int8 values and their scales.
//! - `prune`: magnitude pruning of the weight matrices to a target sparsity
//!   (per layer or global), then fine-tuning with the mask re-applied after
//!   every optimizer step ([`Masked`]), so pruned weights stay exactly zero.
//! - `distill`: a small student trained on the teacher's temperature-softened
//!   outputs mixed with the labels ([`crate::step::distillation_loss`]);
//!   `--alpha 0` trains the same student on the labels alone.
//! - `report`: parameters, sizes, test accuracy and latency of artifacts.

use crate::TrainBackend;
use crate::adamw::FusedAdamWConfig;
use crate::checkpoints::profile;
use crate::classify::{RunInfo, Schedule, Select, Splits, finish, fit};
use crate::step::{ClassifierStep, Distillation, TrainItem};
use anyhow::{Context, Result, bail, ensure};
use burn::module::{
    AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId, Quantizer,
};
use burn::optim::{GradientsParams, MultiGradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::QuantizedTensor;
use burn::tensor::quantization::{
    BlockSize, Calibration, QTensorPrimitive, QuantLevel, QuantParam, QuantScheme, QuantValue,
};
use clap::{Args, Subcommand, ValueEnum};
use data::{WordTokenizer, encode_all};
use infer::artifact::{self, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use infer::{ArtifactConfig, ArtifactWriter, Classifier, Compression, Metrics};
use model::TextClassifier;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct CompressArgs {
    #[command(subcommand)]
    pub method: Method,
}

#[derive(Subcommand, Debug)]
pub enum Method {
    /// Post-training int8 weight quantization (Burn's quantization API).
    Quantize(QuantizeArgs),
    /// Magnitude pruning to a target sparsity, then fine-tuning that keeps pruned weights at zero.
    Prune(PruneArgs),
    /// A small student trained on the teacher's softened outputs and the labels.
    Distill(DistillArgs),
    /// Parameters, size on disk, test accuracy and latency of artifacts (a markdown table).
    Report(ReportArgs),
}

/// What every method reads and writes.
#[derive(Args, Debug, Clone, Serialize)]
pub struct Io {
    /// The trained artifact to compress.
    #[arg(long, default_value = "artifacts/mr")]
    pub from: PathBuf,
    /// Where the compressed artifact goes.
    #[arg(long)]
    pub to: PathBuf,
    /// The dataset the artifact was trained on (for evaluation and fine-tuning).
    #[arg(long, default_value = "datasets/mr")]
    pub data_dir: PathBuf,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct QuantizeArgs {
    #[command(flatten)]
    pub io: Io,
    /// One scale per tensor, or one per block of --block-size values.
    #[arg(long, value_enum, default_value_t = Granularity::Tensor)]
    pub granularity: Granularity,
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u8).range(1..))]
    pub block_size: u8,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Tensor,
    Block,
}

/// How long and how a compressed model is (re)trained.
#[derive(Args, Debug, Clone, Serialize)]
pub struct Training {
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Which epoch's weights are kept (by validation loss or accuracy, or the last).
    #[arg(long, value_enum, default_value_t = Select::Accuracy)]
    pub select: Select,
    /// Stop when the --select metric has not improved for this many epochs (0 = never).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Without a terminal, print a progress line every this many batches.
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    /// Use the first N training examples only (for smoke tests).
    #[arg(long)]
    pub limit: Option<usize>,
}

impl Training {
    fn schedule(&self, epochs: usize, lr: f64) -> Schedule {
        Schedule {
            epochs,
            batch_size: self.batch_size as usize,
            lr,
            seed: self.seed,
            select: self.select,
            patience: self.patience,
            log_every: self.log_every,
            bucket: false,
        }
    }
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct PruneArgs {
    #[command(flatten)]
    pub io: Io,
    /// The fraction of weights set to zero, in [0, 1).
    #[arg(long, default_value_t = 0.8)]
    pub sparsity: f64,
    /// Prune each weight matrix to the sparsity, or rank all of them together.
    #[arg(long, value_enum, default_value_t = Scope::Layer)]
    pub scope: Scope,
    /// Gradual pruning: reach the sparsity in this many rounds (the cubic
    /// schedule of Zhu & Gupta 2017), fine-tuning after each; 1 prunes at once.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Fine-tuning epochs after each round of pruning (0 = none).
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
    /// The fine-tuning learning rate (AdamW).
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    #[command(flatten)]
    pub training: Training,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every weight matrix loses the same fraction of its weights.
    Layer,
    /// The smallest weights of all matrices together go, wherever they are.
    Global,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct DistillArgs {
    #[command(flatten)]
    pub io: Io,
    /// The student's embedding size.
    #[arg(long, default_value_t = 32)]
    pub d_embed: usize,
    /// The student's LSTM size.
    #[arg(long, default_value_t = 32)]
    pub d_hidden: usize,
    /// The student's vocabulary, special tokens included: the embedding is
    /// most of a small model's parameters.
    #[arg(long, default_value_t = 3000)]
    pub max_vocab: usize,
    #[arg(long, default_value_t = 2)]
    pub min_freq: u64,
    /// Softens the teacher's and the student's outputs (Hinton et al. use 2–20).
    #[arg(long, default_value_t = 4.0)]
    pub temperature: f64,
    /// The weight of the teacher's soft targets; the labels get 1 − alpha
    /// (0 trains the student on the labels alone).
    #[arg(long, default_value_t = 0.7)]
    pub alpha: f64,
    #[arg(long, default_value_t = 0.25)]
    pub embedding_dropout: f64,
    #[arg(long, default_value_t = 0.25)]
    pub output_dropout: f64,
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    #[command(flatten)]
    pub training: Training,
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The artifacts to compare; the first is the reference for the accuracy change.
    #[arg(required = true)]
    pub artifacts: Vec<PathBuf>,
    /// The dataset whose test split is evaluated.
    #[arg(long, default_value = "datasets/mr")]
    pub data_dir: PathBuf,
    /// Test sentences predicted one at a time for the batch-1 latency.
    #[arg(long, default_value_t = 200)]
    pub sentences: usize,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run<B: TrainBackend>(args: &CompressArgs, device: &B::Device, backend: &str) -> Result<()> {
    match &args.method {
        Method::Quantize(args) => quantize::<B>(args, device, backend),
        Method::Prune(args) => prune::<B>(args, device, backend),
        Method::Distill(args) => distill::<B>(args, device, backend),
        Method::Report(args) => report::<B::InnerBackend>(args, device, backend),
    }
}

/// The source artifact: the classifier, its metrics and its dataset.
struct Source<B: Backend> {
    classifier: Classifier<B>,
    metrics: Metrics,
    splits: Splits,
}

fn load_source<B: model::LstmBackend>(
    io: &Io,
    limit: Option<usize>,
    device: &B::Device,
) -> Result<Source<B>> {
    if io.from == io.to {
        bail!(
            "--to must differ from --from ({}): compression writes a new artifact",
            io.from.display()
        );
    }
    let classifier = Classifier::<B>::load(&io.from, device)?;
    let metrics_path = io.from.join(artifact::METRICS_FILE);
    let metrics: Metrics = serde_json::from_str(
        &std::fs::read_to_string(&metrics_path)
            .with_context(|| format!("cannot read {}", metrics_path.display()))?,
    )
    .with_context(|| format!("{} is not a classifier's metrics", metrics_path.display()))?;
    if metrics
        .compression
        .as_ref()
        .is_some_and(|c| c.method == "quantize")
    {
        bail!(
            "{} holds int8 weights already: compress the f32 artifact it was made from ({})",
            io.from.display(),
            metrics.compression.as_ref().map_or("", |c| c.from.as_str())
        );
    }
    let splits = Splits::read(&io.data_dir, &classifier.config.labels, limit)?;
    Ok(Source {
        classifier,
        metrics,
        splits,
    })
}

fn quantize<B: TrainBackend>(args: &QuantizeArgs, device: &B::Device, backend: &str) -> Result<()> {
    let name = B::InnerBackend::name(device);
    if !name.contains("ndarray") {
        bail!(
            "int8 quantization runs on the ndarray backend only (Burn 0.21 on {name} gives wrong results or fails): run `train compress quantize` from the default build"
        );
    }
    let source = load_source::<B::InnerBackend>(&args.io, None, device)?;
    let scheme = <QuantizedTensor<B::InnerBackend> as QTensorPrimitive>::default_scheme()
        .with_value(QuantValue::Q8S)
        .with_level(QuantLevel::Tensor)
        .with_param(QuantParam::F32);
    let block = (args.granularity == Granularity::Block).then_some(args.block_size);
    let mut quantizer = Int8 {
        scheme,
        block,
        blocked: 0,
        whole: 0,
    };
    let classifier = source.classifier;
    let model = classifier.model.map(&mut quantizer);
    println!(
        "quantized every parameter tensor to int8: {} with a scale per block of {}, {} with one scale per tensor ({scheme:?})",
        quantizer.blocked, args.block_size, quantizer.whole
    );
    let compression = compression("quantize", &args.io, &model, serde_json::to_value(args)?);
    let quantized = Classifier::new(model, classifier.tokenizer, classifier.config, device);
    let writer = ArtifactWriter::create(&args.io.to)?;
    finish(
        writer,
        quantized,
        &source.splits,
        RunInfo::of(&source.metrics),
        backend,
        Some(compression),
    )?;
    Ok(())
}

fn prune<B: TrainBackend>(args: &PruneArgs, device: &B::Device, backend: &str) -> Result<()> {
    if !(0.0..1.0).contains(&args.sparsity) {
        bail!("--sparsity must be in [0, 1), got {}", args.sparsity);
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let schedule = args.training.schedule(args.epochs, args.lr);
    if args.epochs > 0 {
        schedule.check()?;
    }
    let source = load_source::<B::InnerBackend>(&args.io, args.training.limit, device)?;
    let config = source.classifier.config.clone();
    let tokenizer = source.classifier.tokenizer.clone();
    let encode = |items| -> Result<Vec<TrainItem>> {
        Ok(encode_all(&tokenizer, items)?
            .into_iter()
            .map(TrainItem::from)
            .collect())
    };
    let (train, valid) = (encode(&source.splits.train)?, encode(&source.splits.valid)?);
    // The same weights, on the training backend.
    let mut model = artifact::load_weights(&args.io.from, config.model.init::<B>(device), device)?;
    let writer = ArtifactWriter::create(&args.io.to)?;
    let mut masks = None;
    let mut before_fine_tuning = Vec::new();
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        // Zhu & Gupta (2017): the sparsity rises fast, then levels off at the target.
        let progress = round as f64 / args.rounds as f64;
        let target = args.sparsity * (1.0 - (1.0 - progress).powi(3));
        // Weights pruned in earlier rounds are zero, the smallest of all, so
        // each round's mask contains the previous one.
        let round_masks = PruningMasks::new(&model, target, args.scope);
        model = model.map(&mut round_masks.mapper::<B>(device));
        let counts = ParamCounts::of(&model);
        let accuracy = Classifier::new(model.valid(), tokenizer.clone(), config.clone(), device)
            .evaluate(&source.splits.valid, 256)?
            .accuracy;
        println!(
            "round {round} of {}: pruned {} of {} weights in {} matrices ({} scope), {} of {} parameters are zero; validation accuracy {:.2}% (before pruning: {:.2}%)",
            args.rounds,
            round_masks.pruned(),
            round_masks.prunable(),
            round_masks.masks.len(),
            match args.scope {
                Scope::Layer => "per-layer",
                Scope::Global => "global",
            },
            counts.total - counts.nonzero,
            counts.total,
            100.0 * accuracy,
            100.0 * source.metrics.valid_accuracy
        );
        before_fine_tuning.push(accuracy);
        if args.epochs > 0 {
            B::seed(device, args.training.seed);
            let optimizer = Masked {
                inner: FusedAdamWConfig::new(0.0).init(),
                masks: round_masks.mapper::<B>(device),
            };
            let log_dir = if args.rounds == 1 {
                writer.dir().join("training")
            } else {
                writer.dir().join("training").join(format!("round-{round}"))
            };
            let fitted = fit(
                ClassifierStep::new(model),
                optimizer,
                &schedule,
                train.clone(),
                valid.clone(),
                config.max_seq_len,
                &log_dir,
                device,
            )?;
            // Back on the training backend, with every parameter tracked
            // again (`from_inner` alone leaves them untracked, and the next
            // round would not train).
            model = TextClassifier::<B>::from_inner(fitted.model).map(&mut Track);
            runs.push(fitted.run);
        }
        masks = Some(round_masks);
    }
    let masks = masks.expect("at least one round");
    let model = model.valid();
    ensure!(
        masks.zeros_kept(&model),
        "a pruned weight is no longer zero after fine-tuning: the mask was not kept"
    );
    let run = match runs.pop() {
        None => RunInfo::of(&source.metrics),
        Some(last) => {
            // The rounds' epochs, one after another; the kept epoch is the
            // last round's choice.
            let mut run = RunInfo {
                best_epoch: 0,
                epochs_run: 0,
                train_seconds: 0.0,
                selected_by: last.selected_by.clone(),
                history: Default::default(),
            };
            for round in runs.iter().chain([&last]) {
                run.epochs_run += round.epochs_run;
                run.train_seconds += round.train_seconds;
                let (from, to) = (&round.history, &mut run.history);
                to.train_loss.extend(&from.train_loss);
                to.valid_loss.extend(&from.valid_loss);
                to.train_accuracy.extend(&from.train_accuracy);
                to.valid_accuracy.extend(&from.valid_accuracy);
            }
            run.best_epoch = run.epochs_run - last.epochs_run + last.best_epoch;
            run
        }
    };
    let settings = serde_json::json!({
        "options": args,
        "weight_matrix_sparsity": masks.pruned() as f64 / masks.prunable() as f64,
        "valid_accuracy_before_fine_tuning": before_fine_tuning,
    });
    let compression = compression("prune", &args.io, &model, settings);
    let classifier = Classifier::new(model, tokenizer, config, device);
    finish(
        writer,
        classifier,
        &source.splits,
        run,
        backend,
        Some(compression),
    )?;
    Ok(())
}

fn distill<B: TrainBackend>(args: &DistillArgs, device: &B::Device, backend: &str) -> Result<()> {
    if !(0.0..=1.0).contains(&args.alpha) {
        bail!("--alpha must be in [0, 1], got {}", args.alpha);
    }
    if !(args.temperature > 0.0 && args.temperature.is_finite()) {
        bail!("--temperature must be > 0, got {}", args.temperature);
    }
    for (option, value) in [
        ("--embedding-dropout", args.embedding_dropout),
        ("--output-dropout", args.output_dropout),
    ] {
        if !(0.0..1.0).contains(&value) {
            bail!("{option} must be in [0, 1), got {value}");
        }
    }
    let schedule = args.training.schedule(args.epochs, args.lr);
    schedule.check()?;
    let source = load_source::<B::InnerBackend>(&args.io, args.training.limit, device)?;
    let teacher = &source.classifier;
    let texts: Vec<&str> = source
        .splits
        .train
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    let teacher_logits = teacher.logits(&texts, 256)?;
    let teacher_parameters = ParamCounts::of(&teacher.model).total;

    let tokenizer = WordTokenizer::train(texts.iter().copied(), args.min_freq, args.max_vocab)?;
    let config = ArtifactConfig {
        model: model::TextClassifierConfig::new(
            tokenizer.vocab_size(),
            teacher.config.labels.len(),
        )
        .with_d_embed(args.d_embed)
        .with_d_hidden(args.d_hidden)
        .with_embedding_dropout(args.embedding_dropout)
        .with_output_dropout(args.output_dropout),
        labels: teacher.config.labels.clone(),
        max_seq_len: teacher.config.max_seq_len,
        training: serde_json::to_value(args)?,
    };
    B::seed(device, args.training.seed);
    let mut step = ClassifierStep::new(config.model.init::<B>(device));
    step.distillation = Some(Distillation {
        temperature: args.temperature,
        alpha: args.alpha,
    });
    let student_parameters = step.num_params();
    println!(
        "student: {} parameters ({:.1}% of the teacher's {teacher_parameters}), vocabulary {}; {}",
        student_parameters,
        100.0 * student_parameters as f64 / teacher_parameters as f64,
        tokenizer.vocab_size(),
        if args.alpha > 0.0 {
            format!(
                "distilling at T = {} with alpha = {}",
                args.temperature, args.alpha
            )
        } else {
            "alpha = 0: trained on the labels alone".to_string()
        }
    );
    let train: Vec<TrainItem> = encode_all(&tokenizer, &source.splits.train)?
        .into_iter()
        .zip(teacher_logits)
        .map(|(text, logits)| TrainItem {
            text,
            teacher_logits: Some(logits),
        })
        .collect();
    let valid = encode_all(&tokenizer, &source.splits.valid)?
        .into_iter()
        .map(TrainItem::from)
        .collect();
    let writer = ArtifactWriter::create(&args.io.to)?;
    let fitted = fit(
        step,
        FusedAdamWConfig::new(0.0).init(),
        &schedule,
        train,
        valid,
        config.max_seq_len,
        &writer.dir().join("training"),
        device,
    )?;
    let settings = serde_json::json!({
        "options": args,
        "teacher_parameters": teacher_parameters,
    });
    let compression = compression("distill", &args.io, &fitted.model, settings);
    let classifier = Classifier::new(fitted.model, tokenizer, config, device);
    finish(
        writer,
        classifier,
        &source.splits,
        fitted.run,
        backend,
        Some(compression),
    )?;
    Ok(())
}

/// What `method` made of `io.from`: the model's parameter counts and sparsity,
/// and the method's settings.
fn compression<B: Backend, M: Module<B>>(
    method: &str,
    io: &Io,
    model: &M,
    settings: serde_json::Value,
) -> Compression {
    let counts = ParamCounts::of(model);
    Compression {
        method: method.into(),
        from: io.from.display().to_string(),
        sparsity: counts.sparsity(),
        parameters: counts.total,
        nonzero_parameters: counts.nonzero,
        settings,
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub artifact: String,
    pub method: String,
    pub parameters: usize,
    pub nonzero_parameters: usize,
    /// model.mpk, in bytes.
    pub weights_bytes: u64,
    /// config.json + tokenizer.json + model.mpk: what inference needs.
    pub artifact_bytes: u64,
    pub test_accuracy: f64,
    /// Mean milliseconds to predict one sentence alone.
    pub latency_batch_1_ms: f64,
    /// Mean milliseconds to predict a batch of 256 test sentences.
    pub latency_batch_256_ms: f64,
}

fn report<B: model::LstmBackend>(
    args: &ReportArgs,
    device: &B::Device,
    backend: &str,
) -> Result<()> {
    let mut rows = Vec::new();
    let mut splits: Option<(Vec<String>, Splits)> = None;
    for dir in &args.artifacts {
        let classifier = Classifier::<B>::load(dir, device)?;
        let labels = &classifier.config.labels;
        // The dataset is read once, with the first artifact's labels; the
        // others must name the same classes.
        let (read_with, splits) = match &mut splits {
            Some(read) => read,
            None => splits.insert((labels.clone(), Splits::read(&args.data_dir, labels, None)?)),
        };
        if read_with != labels {
            bail!(
                "{} has the labels {labels:?} but {} has {read_with:?}: report on artifacts of one dataset",
                dir.display(),
                args.artifacts[0].display()
            );
        }
        let method = std::fs::read_to_string(dir.join(artifact::METRICS_FILE))
            .ok()
            .and_then(|text| serde_json::from_str::<Metrics>(&text).ok())
            .and_then(|metrics| metrics.compression)
            .map_or("none (the trained model)".to_string(), |c| c.method);
        let counts = ParamCounts::of(&classifier.model);
        let size = |file: &str| -> Result<u64> {
            Ok(std::fs::metadata(dir.join(file))
                .with_context(|| format!("cannot read {}", dir.join(file).display()))?
                .len())
        };
        let weights_bytes = size(WEIGHTS_FILE)?;
        let artifact_bytes = weights_bytes + size(CONFIG_FILE)? + size(TOKENIZER_FILE)?;
        let test_accuracy = classifier.evaluate(&splits.test, 256)?.accuracy;
        let texts: Vec<&str> = splits.test.iter().map(|t| t.text.as_str()).collect();
        let latency_batch_1_ms = latency(&classifier, &texts, 1, args.sentences)?;
        let latency_batch_256_ms = latency(&classifier, &texts, 256, texts.len())?;
        rows.push(ReportRow {
            artifact: dir.display().to_string(),
            method,
            parameters: counts.total,
            nonzero_parameters: counts.nonzero,
            weights_bytes,
            artifact_bytes,
            test_accuracy,
            latency_batch_1_ms,
            latency_batch_256_ms,
        });
    }
    println!(
        "| artifact | method | parameters (non-zero / total) | weights | artifact | test accuracy | vs {} | batch 1 | batch 256 |",
        rows[0].artifact
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let reference = rows[0].test_accuracy;
    for row in &rows {
        println!(
            "| {} | {} | {} / {} | {:.2} MB | {:.2} MB | {:.2}% | {:+.2} | {:.2} ms | {:.0} ms |",
            row.artifact,
            row.method,
            row.nonzero_parameters,
            row.parameters,
            row.weights_bytes as f64 / 1e6,
            row.artifact_bytes as f64 / 1e6,
            100.0 * row.test_accuracy,
            100.0 * (row.test_accuracy - reference),
            row.latency_batch_1_ms,
            row.latency_batch_256_ms,
        );
    }
    println!(
        "\nlatency on {backend} ({} build), {} threads available; batch 1 is the mean over {} test sentences, batch 256 over the full batches of the test split",
        profile(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.sentences
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Mean milliseconds per call of `predict` on `batch` texts, over the full
/// batches among the first `count` texts, after one warm-up call.
fn latency<B: model::LstmBackend>(
    classifier: &Classifier<B>,
    texts: &[&str],
    batch: usize,
    count: usize,
) -> Result<f64> {
    let batches: Vec<&[&str]> = texts[..count.min(texts.len())]
        .chunks_exact(batch)
        .collect();
    ensure!(
        !batches.is_empty(),
        "fewer than {batch} test sentences to time"
    );
    classifier.predict(batches[0], batch)?;
    let started = Instant::now();
    for chunk in &batches {
        classifier.predict(chunk, batch)?;
    }
    Ok(1e3 * started.elapsed().as_secs_f64() / batches.len() as f64)
}

/// Burn's `Quantizer` (min–max calibration) with the level chosen per
/// tensor: blocks of `block` values along the last dimension where that
/// dimension is a multiple of the block (Burn cannot block it otherwise),
/// one scale for the whole tensor elsewhere and when `block` is `None`.
struct Int8 {
    scheme: QuantScheme,
    block: Option<u8>,
    blocked: usize,
    whole: usize,
}

impl<B: Backend> ModuleMapper<B> for Int8 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let last = param.val().dims()[D - 1];
        let scheme = match self.block {
            Some(block) if last % block as usize == 0 => {
                self.blocked += 1;
                self.scheme
                    .with_level(QuantLevel::Block(BlockSize::new([block])))
            }
            _ => {
                self.whole += 1;
                self.scheme.with_level(QuantLevel::Tensor)
            }
        };
        Quantizer {
            calibration: Calibration::MinMax,
            scheme,
        }
        .map_float(param)
    }
}

/// Total and non-zero parameter values of a module (quantized tensors are
/// counted by their dequantized values).
#[derive(Debug, Clone, Copy, Default)]
pub struct ParamCounts {
    pub total: usize,
    pub nonzero: usize,
}

impl ParamCounts {
    pub fn of<B: Backend, M: Module<B>>(module: &M) -> Self {
        let mut counts = Self::default();
        module.visit(&mut counts);
        counts
    }

    /// The fraction of parameters that are exactly zero.
    pub fn sparsity(&self) -> f64 {
        (self.total - self.nonzero) as f64 / self.total.max(1) as f64
    }
}

impl<B: Backend> ModuleVisitor<B> for ParamCounts {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let values = param.val().dequantize().into_data().convert::<f32>();
        let values = values.as_slice::<f32>().expect("converted to f32");
        self.total += values.len();
        self.nonzero += values.iter().filter(|v| **v != 0.0).count();
    }
}

/// Which weights magnitude pruning removes: a 0/1 mask per weight matrix
/// (every parameter of two or more dimensions: the embedding, the recurrent
/// layers' W and U, attention and output weights; biases are kept).
#[derive(Debug, Clone)]
pub struct PruningMasks {
    /// Flattened 0/1 masks, by parameter.
    pub masks: HashMap<ParamId, Vec<f32>>,
}

impl PruningMasks {
    /// Zeroes the `sparsity` fraction of smallest-magnitude weights of each
    /// matrix (`Scope::Layer`), or of all matrices ranked together
    /// (`Scope::Global`). Exactly ⌊sparsity · n⌋ weights go in each scope;
    /// ties at the threshold go by position.
    pub fn new<B: Backend, M: Module<B>>(module: &M, sparsity: f64, scope: Scope) -> Self {
        let mut collect = CollectMatrices::default();
        module.visit(&mut collect);
        let groups: Vec<Vec<usize>> = match scope {
            Scope::Layer => (0..collect.matrices.len()).map(|i| vec![i]).collect(),
            Scope::Global => vec![(0..collect.matrices.len()).collect()],
        };
        let mut masks: HashMap<ParamId, Vec<f32>> = collect
            .matrices
            .iter()
            .map(|(id, values)| (*id, vec![1.0; values.len()]))
            .collect();
        for group in groups {
            // (|w|, matrix, position) of every weight of the group.
            let mut weights: Vec<(f32, usize, usize)> = group
                .iter()
                .flat_map(|&m| {
                    collect.matrices[m]
                        .1
                        .iter()
                        .enumerate()
                        .map(move |(i, w)| (w.abs(), m, i))
                })
                .collect();
            let k = (sparsity * weights.len() as f64).floor() as usize;
            if k == 0 {
                continue;
            }
            weights.select_nth_unstable_by(k - 1, |a, b| a.partial_cmp(b).expect("finite weights"));
            for &(_, m, i) in &weights[..k] {
                let id = collect.matrices[m].0;
                masks.get_mut(&id).expect("every matrix has a mask")[i] = 0.0;
            }
        }
        Self { masks }
    }

    /// Weights that pruning may remove.
    pub fn prunable(&self) -> usize {
        self.masks.values().map(Vec::len).sum()
    }

    /// Weights that pruning removed.
    pub fn pruned(&self) -> usize {
        self.masks
            .values()
            .map(|m| m.iter().filter(|v| **v == 0.0).count())
            .sum()
    }

    /// A mapper that multiplies each pruned matrix by its mask.
    pub fn mapper<B: Backend>(&self, device: &B::Device) -> ApplyMasks<B> {
        ApplyMasks {
            masks: self
                .masks
                .iter()
                .map(|(id, mask)| (*id, Tensor::from_floats(mask.as_slice(), device)))
                .collect(),
        }
    }

    /// Whether every weight the masks removed is still exactly zero in `module`.
    pub fn zeros_kept<B: Backend, M: Module<B>>(&self, module: &M) -> bool {
        let mut collect = CollectMatrices::default();
        module.visit(&mut collect);
        collect.matrices.iter().all(|(id, values)| {
            self.masks
                .get(id)
                .is_some_and(|mask| mask.iter().zip(values).all(|(m, w)| *m != 0.0 || *w == 0.0))
        })
    }
}

/// The id and values of every parameter of two or more dimensions.
#[derive(Default)]
struct CollectMatrices {
    matrices: Vec<(ParamId, Vec<f32>)>,
}

impl<B: Backend> ModuleVisitor<B> for CollectMatrices {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if D >= 2 {
            let values = param.val().dequantize().into_data().convert::<f32>();
            self.matrices
                .push((param.id, values.to_vec::<f32>().expect("converted to f32")));
        }
    }
}

/// Multiplies the pruned matrices by their masks, leaving each a fresh
/// parameter (detached, and tracked again if it was).
#[derive(Debug, Clone)]
pub struct ApplyMasks<B: Backend> {
    masks: HashMap<ParamId, Tensor<B, 1>>,
}

impl<B: Backend> ModuleMapper<B> for ApplyMasks<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(mask) = self.masks.get(&param.id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let tracked = tensor.is_require_grad();
        let dims = tensor.dims();
        let mut masked = (tensor * mask.clone().reshape(dims)).detach();
        if tracked {
            masked = masked.require_grad();
        }
        Param::from_mapped_value(id, masked, mapper)
    }
}

/// Makes every float parameter a tracked leaf of the autodiff graph.
struct Track;

impl<B: AutodiffBackend> ModuleMapper<B> for Track {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.detach().require_grad(), mapper)
    }
}

/// An optimizer that re-applies the pruning masks after every step, so that
/// the weights pruning removed stay exactly zero while the others train.
#[derive(Clone)]
pub struct Masked<O, B: Backend> {
    pub inner: O,
    pub masks: ApplyMasks<B>,
}

impl<M, B, O> Optimizer<M, B> for Masked<O, B>
where
    M: AutodiffModule<B>,
    B: AutodiffBackend,
    O: Optimizer<M, B>,
{
    type Record = O::Record;

    fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        self.inner.step(lr, module, grads).map(&mut self.masks)
    }

    fn step_multi(&mut self, lr: f64, module: M, grads: MultiGradientsParams) -> M {
        self.inner
            .step_multi(lr, module, grads)
            .map(&mut self.masks)
    }

    fn to_record(&self) -> Self::Record {
        self.inner.to_record()
    }

    fn load_record(self, record: Self::Record) -> Self {
        Self {
            inner: self.inner.load_record(record),
            masks: self.masks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::loss::CrossEntropyLossConfig;
    use model::{TextClassifier, TextClassifierConfig};

    type A = Autodiff<NdArray>;

    fn batch<B: Backend>(device: &B::Device) -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>) {
        let tokens = Tensor::<B, 2, Int>::from_ints(
            [
                [5, 9, 14, 3, 21, 7],
                [11, 2, 30, 0, 0, 0],
                [40, 41, 42, 43, 44, 0],
            ],
            device,
        );
        let mask = tokens.clone().not_equal_elem(0);
        (tokens, mask)
    }

    /// int8 quantization, per tensor or per block, moves no logit of a fixed
    /// batch by more than 0.05 (the logits themselves are of order 1; one
    /// int8 step of a weight tensor is 1/127 of its largest magnitude).
    #[test]
    fn quantized_logits_stay_close_to_the_float_ones() {
        let device = Default::default();
        <NdArray as Backend>::seed(&device, 3);
        let model = TextClassifierConfig::new(64, 2).init::<NdArray>(&device);
        let (tokens, mask) = batch::<NdArray>(&device);
        let float = model.forward(tokens.clone(), mask.clone()).logits;
        let scheme = <QuantizedTensor<NdArray> as QTensorPrimitive>::default_scheme()
            .with_value(QuantValue::Q8S)
            .with_param(QuantParam::F32);
        // Per tensor, and per block of 32: the embedding, the LSTM's W, U
        // and bias are blocked; the attention's [128, 1] scoring weight, the
        // [128, 2] output weight and their biases keep one scale each.
        for (block, blocked) in [(None, 0), (Some(32), 4)] {
            let mut int8 = Int8 {
                scheme,
                block,
                blocked: 0,
                whole: 0,
            };
            let quantized = model.clone().map(&mut int8);
            assert_eq!(int8.blocked, blocked, "{block:?}");
            let q = quantized.forward(tokens.clone(), mask.clone()).logits;
            let scale: f32 = float.clone().abs().max().into_scalar();
            let diff: f32 = (q - float.clone()).abs().max().into_scalar();
            println!("block {block:?}: largest logit {scale}, largest change {diff}");
            assert!(scale > 0.05, "the logits should not be trivially small");
            assert!(diff < 0.05, "quantization moved a logit by {diff}");
            assert!(diff > 0.0, "the weights should actually have changed");
        }
    }

    /// After pruning and a fine-tuning step, the pruned weights are still
    /// exactly zero, each matrix has the sparsity asked for, and the other
    /// weights did train. Without the mask, the same step revives pruned weights.
    #[test]
    fn pruned_weights_stay_zero_through_fine_tuning() {
        let device = Default::default();
        A::seed(&device, 5);
        let model = TextClassifierConfig::new(50, 2)
            .with_d_embed(8)
            .with_d_hidden(8)
            .init::<A>(&device);
        let masks = PruningMasks::new(&model, 0.8, Scope::Layer);
        let mut collect = CollectMatrices::default();
        model.visit(&mut collect);
        for (id, values) in &collect.matrices {
            let zeros = masks.masks[id].iter().filter(|m| **m == 0.0).count();
            assert_eq!(zeros, (0.8 * values.len() as f64).floor() as usize);
        }
        let pruned = model.map(&mut masks.mapper::<A>(&device));
        assert!(masks.zeros_kept(&pruned));

        let step = |model: TextClassifier<A>, masked: bool| {
            let (tokens, mask) = batch::<A>(&device);
            let labels = Tensor::<A, 1, Int>::from_ints([0, 1, 1], &device);
            let logits = model.forward(tokens, mask).logits;
            let loss = CrossEntropyLossConfig::new()
                .init(&device)
                .forward(logits, labels);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let adam = burn::optim::AdamWConfig::new().init::<A, TextClassifier<A>>();
            if masked {
                let mut optimizer = Masked {
                    inner: adam,
                    masks: masks.mapper::<A>(&device),
                };
                optimizer.step(1e-2, model, grads)
            } else {
                let mut optimizer = adam;
                optimizer.step(1e-2, model, grads)
            }
        };
        let tuned = step(pruned.clone(), true);
        assert!(masks.zeros_kept(&tuned), "a pruned weight came back");
        let counts = ParamCounts::of(&tuned);
        let before = ParamCounts::of(&pruned);
        assert_eq!(counts.nonzero, before.nonzero);
        // The kept weights moved.
        let mut moved = CollectMatrices::default();
        tuned.visit(&mut moved);
        let mut start = CollectMatrices::default();
        pruned.visit(&mut start);
        assert!(
            moved
                .matrices
                .iter()
                .zip(&start.matrices)
                .any(|(a, b)| a.1 != b.1)
        );
        // The plain optimizer does not keep them at zero.
        assert!(!masks.zeros_kept(&step(pruned, false)));
    }

    #[test]
    fn global_pruning_removes_the_smallest_weights_anywhere() {
        let device = Default::default();
        let model = TextClassifierConfig::new(30, 2)
            .with_d_embed(4)
            .with_d_hidden(4)
            .init::<NdArray>(&device);
        let masks = PruningMasks::new(&model, 0.5, Scope::Global);
        assert_eq!(masks.pruned(), masks.prunable() / 2);
        // Every kept weight is at least as large as every pruned one.
        let mut collect = CollectMatrices::default();
        model.visit(&mut collect);
        let (mut largest_pruned, mut smallest_kept) = (0.0f32, f32::INFINITY);
        for (id, values) in &collect.matrices {
            for (m, w) in masks.masks[id].iter().zip(values) {
                if *m == 0.0 {
                    largest_pruned = largest_pruned.max(w.abs());
                } else {
                    smallest_kept = smallest_kept.min(w.abs());
                }
            }
        }
        assert!(largest_pruned <= smallest_kept);
    }
}
