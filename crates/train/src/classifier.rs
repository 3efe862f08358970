//! What every classifier run shares — the plain training (`classify`) and
//! each compression method: the dataset's splits, the optimizer, the
//! training through [`crate::fit`] with loss and accuracy on both splits,
//! and the evaluation that ends in an artifact.

use crate::TrainBackend;
use crate::adamw::FusedAdamWConfig;
use crate::fit::{EpochBatches, Fitted, Plan, RunInfo, Start, fit};
use crate::loader::EpochLoader;
use crate::step::{ClassifierStep, TrainBatcher, TrainItem};
use anyhow::{Result, bail};
use artifact::metrics::build_profile;
use artifact::{ArtifactWriter, Classifier, ClassifierMetrics, Compression};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::optim::Optimizer;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use data::{
    Bucketed, LabelledText, TextBatcher, bucket_by_length, label_row, labels_of, padded_positions,
    read_labelled_tsv, read_tsv,
};
use model::{LstmBackend, TextClassifier};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// The train, valid and test splits of a `label<TAB>text` dataset directory.
pub struct Splits {
    /// The class names, in the order of the model's outputs.
    pub labels: Vec<String>,
    pub train: Vec<LabelledText>,
    pub valid: Vec<LabelledText>,
    pub test: Vec<LabelledText>,
}

impl Splits {
    /// Reads `train.tsv`, `valid.tsv` and `test.tsv`. The classes are
    /// `labels` when given (in that order), else the distinct labels of the
    /// whole training file in code-point order ([`labels_of`]); a label of
    /// valid or test that is not a class is an error naming file and line.
    /// `limit` keeps the first training examples only.
    pub fn read(data_dir: &Path, labels: Option<&[String]>, limit: Option<usize>) -> Result<Self> {
        let path = |name: &str| data_dir.join(format!("{name}.tsv"));
        let train_path = path("train");
        let train_rows = read_tsv(&train_path)?;
        let labels = match labels {
            Some(labels) => {
                for (i, label) in labels.iter().enumerate() {
                    if label.trim().is_empty() || label.trim() != label {
                        bail!(
                            "--labels: {label:?} is not a label (empty, or with surrounding spaces)"
                        );
                    }
                    if labels[..i].contains(label) {
                        bail!("--labels lists {label:?} twice");
                    }
                }
                labels.to_vec()
            }
            None => labels_of(&train_rows),
        };
        if labels.len() < 2 {
            bail!(
                "{} has only the label {:?}: a classifier needs at least two classes",
                train_path.display(),
                labels.first().map_or("", String::as_str)
            );
        }
        let names: Vec<&str> = labels.iter().map(String::as_str).collect();
        let mut train = train_rows
            .into_iter()
            .map(|row| label_row(&train_path, row, &names))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(limit) = limit {
            train.truncate(limit);
        }
        let valid = read_labelled_tsv(&path("valid"), &names)?;
        let test = read_labelled_tsv(&path("test"), &names)?;
        let splits = Self {
            labels,
            train,
            valid,
            test,
        };
        println!(
            "data: {} train, {} valid, {} test examples from {}; classes {}",
            splits.train.len(),
            splits.valid.len(),
            splits.test.len(),
            data_dir.display(),
            splits.labels.join(", ")
        );
        Ok(splits)
    }
}

/// The optimizer of a classifier run: AdamW (Adam when `weight_decay` is 0)
/// with Burn's per-tensor norm clipping when `clip_norm` > 0.
pub fn optimizer(weight_decay: f64, clip_norm: f64) -> FusedAdamWConfig {
    FusedAdamWConfig::clipped(weight_decay, clip_norm)
}

/// Validation batches: as large as memory comfortably allows (no gradients).
const VALID_BATCH: usize = 256;

/// How a classifier is fed during training, beside the [`Plan`].
#[derive(Debug, Clone)]
pub struct Batching {
    pub batch_size: usize,
    /// Seeds the shuffling.
    pub seed: u64,
    /// Length bucketing of the training batches (`--bucket`).
    pub bucket: bool,
    /// Longer texts are truncated.
    pub max_seq_len: usize,
}

/// Trains `step` on `train`, validating on `valid`, with loss and accuracy
/// on both splits, from where `start` says (logging into its directory);
/// returns the kept epoch's weights.
#[allow(clippy::too_many_arguments)]
pub fn fit_classifier<B, O>(
    mut step: ClassifierStep<B>,
    optimizer: O,
    plan: &Plan,
    batching: &Batching,
    train: Vec<TrainItem>,
    valid: Vec<TrainItem>,
    start: &Start,
    device: &B::Device,
) -> Result<Fitted<TextClassifier<B::InnerBackend>>>
where
    B: TrainBackend,
    O: Optimizer<ClassifierStep<B>, B> + 'static,
{
    let max_seq_len = batching.max_seq_len;
    let batcher = TrainBatcher {
        text: TextBatcher::new(max_seq_len),
    };
    let length = |item: &TrainItem| item.text.ids.len().clamp(1, max_seq_len);
    let real: usize = train.iter().map(length).sum();
    let done = start.done;
    let valid_batches = valid.len().div_ceil(VALID_BATCH);
    let train_batches;
    let train_loader: std::sync::Arc<dyn DataLoader<B, _>> = if batching.bucket {
        let batches = bucket_by_length(train, length, batching.batch_size, batching.seed);
        println!(
            "length bucketing: {} batches, {} real tokens in {} padded positions per epoch",
            batches.len(),
            real,
            padded_positions(&batches, length)
        );
        train_batches = batches.len();
        let bucketed = Bucketed(batcher.clone());
        let loader = EpochLoader::new(batches, bucketed, 1, true, batching.seed, done, device);
        std::sync::Arc::new(loader)
    } else {
        // What random batches pad to, for comparison: one shuffle's worth.
        let mut shuffled: Vec<usize> = train.iter().map(length).collect();
        shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(batching.seed));
        let batches: Vec<Vec<usize>> = shuffled
            .chunks(batching.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        let padded = padded_positions(&batches, |length| *length);
        println!(
            "random batches: {real} real tokens in about {padded} padded positions per epoch (--bucket to batch by length)"
        );
        train_batches = train.len().div_ceil(batching.batch_size);
        let loader = EpochLoader::new(
            train,
            batcher.clone(),
            batching.batch_size,
            true,
            batching.seed,
            done,
            device,
        );
        std::sync::Arc::new(loader)
    };
    if let Some(unfreezing) = &mut step.unfreezing {
        unfreezing.steps_per_epoch = train_batches;
        let taken = done * train_batches;
        unfreezing
            .steps
            .store(taken, std::sync::atomic::Ordering::Relaxed);
    }
    let valid_loader = DataLoaderBuilder::<B::InnerBackend, _, _>::new(batcher)
        .batch_size(VALID_BATCH)
        .set_device(device.clone())
        .build(InMemDataset::new(valid));
    let training = SupervisedTraining::new(&start.log_dir, train_loader, valid_loader)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(AccuracyMetric::new())
        .metric_valid_numeric(AccuracyMetric::new());
    let fitted = fit(
        training,
        Learner::new(step, optimizer, plan.scheduler(train_batches)),
        plan,
        start,
        EpochBatches {
            train: train_batches,
            valid: valid_batches,
        },
        device,
    )?;
    Ok(Fitted {
        model: fitted.model.model,
        run: fitted.run,
    })
}

/// Evaluates `classifier` on the test and training splits, writes the whole
/// artifact into `writer` and publishes it. Returns the test accuracy.
pub fn evaluate_and_write<B: LstmBackend>(
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
    let averaged = run.averaged_from < run.best_epoch;
    // The logged history knows single epochs only: mean weights are evaluated.
    let valid_accuracy = if averaged {
        let valid = classifier.evaluate(&splits.valid, 256)?.accuracy;
        println!(
            "validation accuracy {:.2}% with the mean weights of epochs {} to {}",
            100.0 * valid,
            run.averaged_from,
            run.best_epoch
        );
        valid
    } else {
        run.history
            .valid_accuracy
            .get(run.best_epoch.wrapping_sub(1))
            .map_or(f64::NAN, |percent| percent / 100.0)
    };
    classifier.write_into(&writer)?;
    writer.write_metrics(&ClassifierMetrics {
        test_accuracy: evaluation.accuracy,
        valid_accuracy,
        best_epoch: run.best_epoch,
        epochs_run: run.epochs_run,
        train_seconds: run.train_seconds,
        backend: backend.to_string(),
        profile: build_profile(),
        train_accuracy: Some(train_accuracy),
        selected_by: run.selected_by,
        history: run.history,
        compression,
        averaged_from: averaged.then_some(run.averaged_from),
    })?;
    let path = writer.commit()?;
    println!("artifact written to {}", path.display());
    Ok(evaluation.accuracy)
}

impl RunInfo {
    /// The training of the artifact another was made from, as its metrics tell.
    pub fn of(metrics: &ClassifierMetrics) -> Self {
        Self {
            best_epoch: metrics.best_epoch,
            averaged_from: metrics.averaged_from.unwrap_or(metrics.best_epoch),
            epochs_run: metrics.epochs_run,
            train_seconds: metrics.train_seconds,
            selected_by: metrics.selected_by.clone(),
            history: metrics.history.clone(),
        }
    }
}

impl crate::cli::FitArgs {
    /// The plan of a run of `epochs` at learning rate `lr` with these options.
    pub fn plan(&self, epochs: usize, lr: f64) -> Plan {
        Plan {
            epochs,
            lr,
            schedule: self.lr_schedule,
            select: self.select,
            patience: self.patience,
            minutes: None,
            average: self.average,
            log_every: self.log_every,
            horizon: Default::default(),
        }
    }

    /// How the run's batches are made.
    pub fn batching(&self, bucket: bool, max_seq_len: usize) -> Batching {
        Batching {
            batch_size: self.batch_size,
            seed: self.seed,
            bucket,
            max_seq_len,
        }
    }
}
