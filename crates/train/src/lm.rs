//! `train lm`: the character language model on Shakespeare, trained through
//! burn-train's Learner with truncated backpropagation through time.
//!
//! The text is cut into B contiguous streams ([`CharStreams`]); batch k holds
//! window k of every stream. [`LmStep`] keeps the LSTM state each batch ends
//! with and starts the next batch from it, detached: gradients flow back
//! `seq_len` characters, while the state carries memory across the whole
//! stream. Training and validation each keep their own state, and window 0
//! (the start of an epoch) starts from zeros.

use crate::TrainBackend;
use crate::checkpoints::{best_and_last, best_epoch, per_epoch, profile};
use crate::renderer::LineRenderer;
use anyhow::{Context, Result, bail};
use burn::data::dataloader::DataLoaderBuilder;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::Transaction;
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::store::{Aggregate, Direction, EventStoreClient, Split};
use burn::train::metric::{
    AccuracyInput, AccuracyMetric, Adaptor, ItemLazy, LossInput, LossMetric, Metric,
    MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};
use burn::train::{
    EarlyStoppingStrategy, InferenceStep, Learner, MetricEarlyStoppingStrategy, StoppingCondition,
    SupervisedTraining, TrainOutput, TrainStep,
};
use clap::Args;
use data::{CharBatch, CharBatcher, CharStreams, CharVocab};
use infer::generate::VOCAB_FILE;
use infer::{ArtifactWriter, LmArtifactConfig, LmMetrics};
use model::{CharLm, CharLmConfig, LstmBackend, LstmState};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Train the character-level LSTM language model and write an artifact.
#[derive(Args, Debug, Clone, Serialize)]
pub struct LmArgs {
    /// A UTF-8 text file; the model learns to continue it one character at a time.
    #[arg(long, default_value = "datasets/shakespeare/input.txt")]
    pub data: PathBuf,
    /// Where the artifact goes (replaced only once training has finished).
    #[arg(long, default_value = "artifacts/shakespeare")]
    pub artifact_dir: PathBuf,
    /// The last this fraction of the text is the validation text.
    #[arg(long, default_value_t = 0.1)]
    pub valid_fraction: f64,
    /// Most epochs (passes over the training text).
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Start no epoch that would end past this many minutes of training, judging by the last one (0 = no limit).
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Contiguous streams the text is cut into (the rows of a batch).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Characters per window: gradients flow back this far.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub seq_len: u64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Clip the gradient's global norm to this (0 = off); char-rnn clips at 5.
    #[arg(long, default_value_t = 5.0)]
    pub clip: f32,
    #[arg(long, default_value_t = 64)]
    pub d_embed: usize,
    #[arg(long, default_value_t = 256)]
    pub d_hidden: usize,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub layers: u64,
    /// Dropout on the output of every LSTM layer.
    #[arg(long, default_value_t = 0.2)]
    pub dropout: f64,
    /// Stop when validation loss has not improved for this many epochs (0 = never).
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// Seeds the weights and dropout: same seed, same result on ndarray.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Without a terminal, print a progress line every this many batches.
    #[arg(long, default_value_t = 100)]
    pub log_every: usize,
    /// Use the first N characters of the text only (for smoke tests).
    #[arg(long)]
    pub limit_chars: Option<usize>,
}

/// The state a split's last batch ended with, as plain data: holding it
/// outside the autodiff graph is what detaches it.
#[derive(Debug, Default)]
struct Carried {
    train: Option<Vec<[TensorData; 2]>>,
    valid: Option<Vec<[TensorData; 2]>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Train,
    Valid,
}

/// The language model as the Learner sees it, with the carried state.
#[derive(Module, Debug)]
pub struct LmStep<B: Backend> {
    pub model: CharLm<B>,
    #[module(skip)]
    carried: Arc<Mutex<Carried>>,
}

/// Loss, logits and targets of one window, flattened to characters.
pub struct LmOutput<B: Backend> {
    /// Mean cross-entropy, nats per character. `[1]`
    pub loss: Tensor<B, 1>,
    /// `[B·T, V]`
    pub logits: Tensor<B, 2>,
    /// `[B·T]`
    pub targets: Tensor<B, 1, Int>,
}

impl<B: LstmBackend> LmStep<B> {
    pub fn new(model: CharLm<B>) -> Self {
        Self {
            model,
            carried: Arc::default(),
        }
    }

    /// Runs one window from the state the previous window of `pass` ended
    /// with (zeros at window 0), and keeps the state it ends with.
    pub fn forward_window(&self, batch: CharBatch<B>, pass: Pass) -> LmOutput<B> {
        let device = batch.inputs.device();
        let start = if batch.window == 0 {
            None
        } else {
            self.take_state(pass, &device)
        };
        let out = self.model.forward(batch.inputs, start);
        self.keep_state(pass, out.state);
        let [b, t, v] = out.logits.dims();
        let logits = out.logits.reshape([b * t, v]);
        let targets = batch.targets.reshape([b * t]);
        let loss = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), targets.clone());
        LmOutput {
            loss,
            logits,
            targets,
        }
    }

    /// The state `pass` carries now, if any.
    pub fn take_state(&self, pass: Pass, device: &B::Device) -> Option<Vec<LstmState<B>>> {
        let mut carried = self.carried.lock().unwrap();
        let slot = match pass {
            Pass::Train => &mut carried.train,
            Pass::Valid => &mut carried.valid,
        };
        slot.take().map(|layers| {
            layers
                .into_iter()
                .map(|[hidden, cell]| LstmState {
                    hidden: Tensor::from_data(hidden, device),
                    cell: Tensor::from_data(cell, device),
                })
                .collect()
        })
    }

    fn keep_state(&self, pass: Pass, state: Vec<LstmState<B>>) {
        let layers = state
            .into_iter()
            .map(|s| {
                let [hidden, cell] = Transaction::default()
                    .register(s.hidden)
                    .register(s.cell)
                    .execute()
                    .try_into()
                    .expect("two tensors registered");
                [hidden, cell]
            })
            .collect();
        let mut carried = self.carried.lock().unwrap();
        match pass {
            Pass::Train => carried.train = Some(layers),
            Pass::Valid => carried.valid = Some(layers),
        }
    }
}

impl<B: TrainBackend> TrainStep for LmStep<B> {
    type Input = CharBatch<B>;
    type Output = LmOutput<B>;

    fn step(&self, batch: CharBatch<B>) -> TrainOutput<LmOutput<B>> {
        let output = self.forward_window(batch, Pass::Train);
        let grads = output.loss.backward();
        TrainOutput::new(self, grads, output)
    }
}

impl<B: LstmBackend> InferenceStep for LmStep<B> {
    type Input = CharBatch<B>;
    type Output = LmOutput<B>;

    fn step(&self, batch: CharBatch<B>) -> LmOutput<B> {
        self.forward_window(batch, Pass::Valid)
    }
}

/// Metrics run on the CPU copy, as burn-train's own outputs do.
type MetricBackend = burn::backend::NdArray;

impl<B: Backend> ItemLazy for LmOutput<B> {
    type ItemSync = LmOutput<MetricBackend>;

    fn sync(self) -> LmOutput<MetricBackend> {
        let [loss, logits, targets] = Transaction::default()
            .register(self.loss)
            .register(self.logits)
            .register(self.targets)
            .execute()
            .try_into()
            .expect("three tensors registered");
        let device = Default::default();
        LmOutput {
            loss: Tensor::from_data(loss, &device),
            logits: Tensor::from_data(logits, &device),
            targets: Tensor::from_data(targets.convert::<i64>(), &device),
        }
    }
}

impl<B: Backend> Adaptor<LossInput<B>> for LmOutput<B> {
    fn adapt(&self) -> LossInput<B> {
        LossInput::new(self.loss.clone())
    }
}

impl<B: Backend> Adaptor<AccuracyInput<B>> for LmOutput<B> {
    fn adapt(&self) -> AccuracyInput<B> {
        AccuracyInput::new(self.logits.clone(), self.targets.clone())
    }
}

/// The input of [`BitsPerCharMetric`]: a batch's mean loss in nats and its
/// number of characters.
pub struct BitsInput {
    nats: f64,
    chars: usize,
}

impl<B: Backend> Adaptor<BitsInput> for LmOutput<B> {
    fn adapt(&self) -> BitsInput {
        BitsInput {
            nats: self.loss.clone().into_scalar().elem(),
            chars: self.targets.dims()[0],
        }
    }
}

/// Cross-entropy in bits per character: the loss (nats) divided by ln 2.
#[derive(Clone)]
pub struct BitsPerCharMetric {
    name: MetricName,
    state: NumericMetricState,
}

impl Default for BitsPerCharMetric {
    fn default() -> Self {
        Self {
            name: MetricName::new("BitsPerChar".to_string()),
            state: NumericMetricState::default(),
        }
    }
}

impl Metric for BitsPerCharMetric {
    type Input = BitsInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, input: &BitsInput, _metadata: &MetricMetadata) -> SerializedEntry {
        self.state.update(
            input.nats / std::f64::consts::LN_2,
            input.chars,
            FormatOptions::new(self.name()).precision(3),
        )
    }

    fn clear(&mut self) {
        self.state.reset()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: Some("bits".to_string()),
            higher_is_better: false,
        }
        .into()
    }
}

impl Numeric for BitsPerCharMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}

/// Stops on validation loss with a patience, or before an epoch that would
/// end past the time budget (judged by how long the last epoch took).
#[derive(Clone)]
struct Stopping {
    patience: Option<MetricEarlyStoppingStrategy>,
    deadline: Option<Instant>,
    /// When the last epoch ended (or training started).
    last: Instant,
}

impl EarlyStoppingStrategy for Stopping {
    fn should_stop(&mut self, epoch: usize, store: &EventStoreClient) -> bool {
        let stalled = self
            .patience
            .as_mut()
            .is_some_and(|p| p.should_stop(epoch, store));
        let now = Instant::now();
        let epoch_time = now - self.last;
        self.last = now;
        let out_of_time = self.deadline.is_some_and(|d| now + epoch_time > d);
        if out_of_time && !stalled {
            println!(
                "epoch {epoch} took {:.0} s: another would end past --minutes; stopping",
                epoch_time.as_secs_f64()
            );
        }
        stalled || out_of_time
    }
}

/// The training and validation ids of `text`.
pub fn split_text(vocab: &CharVocab, text: &str, valid_fraction: f64) -> (Vec<u32>, Vec<u32>) {
    let mut ids = vocab
        .encode(text)
        .expect("the vocabulary was built from this text");
    let valid_len = (ids.len() as f64 * valid_fraction).round() as usize;
    let valid = ids.split_off(ids.len() - valid_len);
    (ids, valid)
}

pub fn run<B: TrainBackend>(args: &LmArgs, device: &B::Device, backend: &str) -> Result<()> {
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if !(0.0..1.0).contains(&args.dropout) {
        bail!("--dropout must be in [0, 1), got {}", args.dropout);
    }
    if !(args.valid_fraction > 0.0 && args.valid_fraction < 1.0) {
        bail!(
            "--valid-fraction must be between 0 and 1, got {}",
            args.valid_fraction
        );
    }
    if !(args.minutes >= 0.0) {
        bail!("--minutes must be at least 0, got {}", args.minutes);
    }
    let bytes = std::fs::read(&args.data)
        .with_context(|| format!("cannot read {}", args.data.display()))?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        anyhow::anyhow!("{}:{line}: not valid UTF-8", args.data.display())
    })?;
    if let Some(limit) = args.limit_chars {
        if let Some((cut, _)) = text.char_indices().nth(limit) {
            text.truncate(cut);
        }
    }
    // The vocabulary covers the whole text, as char-rnn's does: the
    // validation text may use a character the training text lacks.
    let vocab = CharVocab::from_text(&text);
    let (train_ids, valid_ids) = split_text(&vocab, &text, args.valid_fraction);
    let (batch, seq_len) = (args.batch_size as usize, args.seq_len as usize);
    let streams = |ids: Vec<u32>, name: &str| {
        CharStreams::new(ids, batch, seq_len).with_context(|| {
            format!(
                "{}: the {name} text is too short for --batch-size {batch} and --seq-len {seq_len}",
                args.data.display()
            )
        })
    };
    let train = streams(train_ids, "training")?;
    let valid = streams(valid_ids, "validation")?;
    let train_chars_per_epoch = train.len() * batch * seq_len;
    println!(
        "data: {} characters ({} distinct) from {}: {} windows of {batch}×{seq_len} to train on, {} to validate",
        text.chars().count(),
        vocab.len(),
        args.data.display(),
        train.len(),
        valid.len()
    );

    let config = LmArtifactConfig {
        model: CharLmConfig::new(vocab.len())
            .with_d_embed(args.d_embed)
            .with_d_hidden(args.d_hidden)
            .with_layers(args.layers as usize)
            .with_dropout(args.dropout),
        training: serde_json::to_value(args)?,
    };
    // Not shuffled: batch k must be window k, so that the state carries.
    let train_loader = DataLoaderBuilder::<B, _, _>::new(CharBatcher)
        .batch_size(batch)
        .set_device(device.clone())
        .build(train);
    let valid_loader = DataLoaderBuilder::<B::InnerBackend, _, _>::new(CharBatcher)
        .batch_size(batch)
        .set_device(device.clone())
        .build(valid);

    B::seed(device, args.seed);
    let model = LmStep::new(config.model.init::<B>(device));
    println!(
        "model: embedding {} -> {}×LSTM {} -> {} characters, {} parameters",
        args.d_embed,
        args.layers,
        args.d_hidden,
        vocab.len(),
        model.num_params()
    );
    let mut optimizer = AdamConfig::new();
    if args.clip > 0.0 {
        optimizer = optimizer.with_grad_clipping(Some(GradientClippingConfig::Norm(args.clip)));
    }
    let learner = Learner::new(model, optimizer.init(), args.lr);

    let writer = ArtifactWriter::create(&args.artifact_dir)?;
    let log_dir = writer.dir().join("training");
    let loss = LossMetric::<B>::new();
    let patience = (args.patience > 0).then(|| {
        MetricEarlyStoppingStrategy::new(
            &loss,
            Aggregate::Mean,
            Direction::Lowest,
            Split::Valid,
            StoppingCondition::NoImprovementSince {
                n_epochs: args.patience,
            },
        )
    });
    let started = Instant::now();
    let deadline =
        (args.minutes > 0.0).then(|| started + Duration::from_secs_f64(args.minutes * 60.0));
    let mut training = SupervisedTraining::new(&log_dir, train_loader, valid_loader)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(BitsPerCharMetric::default())
        .metric_valid_numeric(BitsPerCharMetric::default())
        .metric_train_numeric(AccuracyMetric::new())
        .metric_valid_numeric(AccuracyMetric::new())
        .with_file_checkpointer(infer::artifact::WeightsRecorder::new())
        .with_checkpointing_strategy(best_and_last(&loss, Direction::Lowest))
        .early_stopping(Stopping {
            patience,
            deadline,
            last: started,
        })
        .num_epochs(args.epochs);
    if !std::io::stdout().is_terminal() {
        training = training.renderer(LineRenderer::new(args.log_every));
    }

    let result = training.launch(learner);
    let train_seconds = started.elapsed().as_secs_f64();
    drop(result.renderer);

    let (best_epoch, valid_loss, epochs_run) = best_epoch(&log_dir, "Loss")?;
    let (train_loss_per_epoch, valid_loss_per_epoch, _) = per_epoch(&log_dir, "Loss")?;
    let chars_per_second = (epochs_run * train_chars_per_epoch) as f64 / train_seconds;
    let metrics = LmMetrics {
        valid_loss,
        valid_bits_per_char: valid_loss / std::f64::consts::LN_2,
        valid_perplexity: valid_loss.exp(),
        best_epoch,
        epochs_run,
        train_seconds,
        chars_per_second,
        train_loss_per_epoch,
        valid_loss_per_epoch,
        backend: backend.to_string(),
        profile: profile(),
    };
    println!(
        "best validation loss {:.4} nats/char = {:.4} bits/char (perplexity {:.2}) at epoch {best_epoch} of {epochs_run}",
        metrics.valid_loss, metrics.valid_bits_per_char, metrics.valid_perplexity
    );
    println!(
        "training took {train_seconds:.1} s: {chars_per_second:.0} training characters per second (validation passes included in the time)"
    );

    let checkpoint = log_dir
        .join("checkpoint")
        .join(format!("model-{best_epoch}"));
    let best: LmStep<B::InnerBackend> = result
        .model
        .load_file(
            checkpoint.clone(),
            &infer::artifact::WeightsRecorder::new(),
            device,
        )
        .with_context(|| format!("cannot load the best checkpoint {}", checkpoint.display()))?;
    writer.write_json(VOCAB_FILE, &vocab)?;
    writer.write_config(&config)?;
    writer.write_weights(best.model)?;
    writer.write_metrics(&metrics)?;
    std::fs::remove_dir_all(log_dir.join("checkpoint"))
        .context("removing the training checkpoints")?;
    let path = writer.commit()?;
    println!("artifact written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::backend::AutodiffBackend;

    type B = Autodiff<NdArray>;

    fn max_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// The gradient of `loss` for every parameter of `model`, flattened in
    /// visiting order.
    fn all_grads(model: &CharLm<B>, loss: Tensor<B, 1>) -> Vec<f32> {
        struct Collect<'a> {
            grads: &'a <B as AutodiffBackend>::Gradients,
            values: Vec<f32>,
        }
        impl burn::module::ModuleVisitor<B> for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
                let grad = param
                    .val()
                    .grad(self.grads)
                    .expect("every parameter has a gradient");
                self.values.extend(grad.into_data().iter::<f32>());
            }
        }
        let grads = loss.backward();
        let mut collect = Collect {
            grads: &grads,
            values: Vec::new(),
        };
        model.visit(&mut collect);
        collect.values
    }

    #[test]
    fn the_step_carries_the_state_from_window_to_window_and_restarts_at_window_0() {
        let device = Default::default();
        let ids: Vec<u32> = (0..=120).map(|i| (i * 7 % 11) as u32).collect();
        let streams = CharStreams::new(ids, 2, 5).unwrap();
        // Parameters are initialized lazily, so a clone of a fresh model
        // would draw other weights: use the step's own model.
        let step = LmStep::new(
            CharLmConfig::new(11)
                .with_d_embed(4)
                .with_d_hidden(6)
                .with_dropout(0.0)
                .init::<B>(&device),
        );
        let model = &step.model;

        let w0 = streams.batch::<B>(0, &device);
        let w1 = streams.batch::<B>(1, &device);
        let out0 = step.forward_window(w0.clone(), Pass::Train);
        let expected0 = model.forward(w0.inputs.clone(), None);
        // Window 1 through the step equals window 1 from window 0's end state.
        let out1 = step.forward_window(w1.clone(), Pass::Train);
        let expected1 = model.forward(w1.inputs.clone(), Some(expected0.state.clone()));
        let [b, t, v] = expected1.logits.dims();
        assert!(max_diff(out1.logits, expected1.logits.clone().reshape([b * t, v])) < 1e-5);
        // Validation keeps its own state: its window 1 has none carried yet.
        assert!(step.take_state(Pass::Valid, &device).is_none());
        // Back at window 0 the state starts from zeros again.
        let again = step.forward_window(w0.clone(), Pass::Train);
        assert!(max_diff(again.logits, out0.logits) < 1e-6);

        // The carried state holds the values of the state after window 0
        // (the last window run)...
        let carried = step
            .take_state(Pass::Train, &device)
            .expect("a carried state");
        assert_eq!(carried.len(), 2);
        assert!(max_diff(carried[1].cell.clone(), expected0.state[1].cell.clone()) < 1e-6);

        // ...and it is detached: window 1's gradient through the step equals
        // the gradient from a state rebuilt from plain data, and differs from
        // the gradient with window 0's graph still attached (which also
        // flows back into window 0's computation).
        step.forward_window(w0.clone(), Pass::Train);
        let through_step = all_grads(
            model,
            step.forward_window(w1.clone(), Pass::Train).logits.sum(),
        );
        let from_data = expected0
            .state
            .iter()
            .map(|s| LstmState {
                hidden: Tensor::from_data(s.hidden.to_data(), &device),
                cell: Tensor::from_data(s.cell.to_data(), &device),
            })
            .collect();
        let rebuilt = all_grads(
            model,
            model
                .forward(w1.inputs.clone(), Some(from_data))
                .logits
                .sum(),
        );
        let attached = all_grads(
            model,
            model.forward(w1.inputs, Some(expected0.state)).logits.sum(),
        );
        let largest = |a: &[f32], b: &[f32]| {
            assert_eq!(a.len(), b.len());
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        };
        assert!(largest(&through_step, &rebuilt) < 1e-5);
        assert!(largest(&through_step, &attached) > 1e-4);
    }
}
