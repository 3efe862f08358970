//! The one training loop of every model trained over epochs (the
//! classifier, its compressed variants, the language model): burn-train's
//! Learner with checkpoints, early stopping and a time budget, then the one
//! epoch-selection rule, the reload of that epoch's weights and the cleanup.
//!
//! The rule: the kept epoch is picked from the per-epoch means burn-train
//! logs (and the artifact's metrics report), never from burn-train's own
//! checkpoint ranking, which ranks epochs by another aggregate and can
//! disagree with them (it kept epoch 7 of a run whose logged validation loss
//! was lowest at epoch 8). So every epoch's checkpoint is kept until the run
//! ends, and removed once the kept one is loaded.
//!
//! The caller builds the `SupervisedTraining` with its data loaders and its
//! metrics, which must include burn-train's `LossMetric` and
//! `AccuracyMetric` on both splits (the history is read from their logs).

use crate::renderer::LineRenderer;
use anyhow::{Context, Result, ensure};
use artifact::files::TRAINING_DIR;
use artifact::weights::WeightsRecorder;
use artifact::{History, Select};
use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::metric::store::{Aggregate, Direction, EventStoreClient, Split};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    EarlyStoppingStrategy, Learner, LearnerSummary, LearningComponentsTypes,
    MetricEarlyStoppingStrategy, StoppingCondition, SupervisedTraining,
};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

/// How a run goes through its epochs and which one it keeps.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The most epochs to run.
    pub epochs: usize,
    pub lr: f64,
    pub select: Select,
    /// Stop when the `select` metric has not improved for this many epochs (0 = never).
    pub patience: usize,
    /// Start no epoch that would end past this many minutes, judged by the last one.
    pub minutes: Option<f64>,
    /// Without a terminal, print a progress line every this many batches.
    pub log_every: usize,
}

/// What a training run kept, and how it got there.
pub struct Fitted<M> {
    /// The weights of the kept epoch, without autodiff.
    pub model: M,
    pub run: RunInfo,
}

/// The part of an artifact's metrics that describes its training.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// 1-based.
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub train_seconds: f64,
    pub selected_by: String,
    pub history: History,
}

impl Plan {
    pub fn check(&self) -> Result<()> {
        ensure!(self.epochs > 0, "--epochs must be at least 1");
        ensure!(
            self.patience == 0 || self.select != Select::Last,
            "--patience needs a metric to watch: use it with --select loss or --select accuracy"
        );
        Ok(())
    }
}

/// Runs `training` with `learner` under `plan`, logging and checkpointing
/// into `log_dir`, and returns the weights of the epoch the plan keeps.
pub fn fit<LC>(
    training: SupervisedTraining<LC>,
    learner: Learner<LC>,
    plan: &Plan,
    log_dir: &Path,
    device: &burn::tensor::Device<<LC::Backend as AutodiffBackend>::InnerBackend>,
) -> Result<Fitted<LC::InferenceModel>>
where
    LC: LearningComponentsTypes + Send + 'static,
    LC::InferenceModel: Module<<LC::Backend as AutodiffBackend>::InnerBackend>,
{
    let mut training = training
        .with_file_checkpointer(WeightsRecorder::new())
        .with_checkpointing_strategy(KeepLastNCheckpoints::new(plan.epochs))
        .num_epochs(plan.epochs);
    let started = Instant::now();
    if plan.patience > 0 || plan.minutes.is_some() {
        training = training.early_stopping(Stopping::new(plan, started));
    }
    if !std::io::stdout().is_terminal() {
        training = training.renderer(LineRenderer::new(plan.log_every));
    }
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
    let best_epoch = pick_epoch(plan.select, &history);
    println!(
        "kept epoch {best_epoch} of {epochs_run} (by {}): validation loss {:.4}, accuracy {:.2}%; training took {train_seconds:.1} s",
        plan.select.name(),
        history.valid_loss[best_epoch - 1],
        history.valid_accuracy[best_epoch - 1],
    );
    let checkpoints = log_dir.join("checkpoint");
    let checkpoint = checkpoints.join(format!("model-{best_epoch}"));
    // Records are backend-agnostic: the checkpoint of the autodiff model loads
    // straight into the inference model.
    let model = result
        .model
        .load_file(checkpoint.clone(), &WeightsRecorder::new(), device)
        .with_context(|| format!("cannot load the kept checkpoint {}", checkpoint.display()))?;
    std::fs::remove_dir_all(&checkpoints).context("removing the training checkpoints")?;
    Ok(Fitted {
        model,
        run: RunInfo {
            best_epoch,
            epochs_run,
            train_seconds,
            selected_by: plan.select.name().to_string(),
            history,
        },
    })
}

/// The 1-based epoch `select` keeps, from the per-epoch means: the first
/// lowest validation loss, the first highest validation accuracy, or the
/// last epoch.
pub fn pick_epoch(select: Select, history: &History) -> usize {
    let first_best = |values: &[f64], better: fn(f64, f64) -> bool| {
        (0..values.len()).fold(0, |best, i| {
            if better(values[i], values[best]) {
                i
            } else {
                best
            }
        }) + 1
    };
    match select {
        Select::Loss => first_best(&history.valid_loss, |a, b| a < b),
        Select::Accuracy => first_best(&history.valid_accuracy, |a, b| a > b),
        Select::Last => history.valid_loss.len(),
    }
}

/// Where burn-train's logs go inside an artifact's staging directory.
pub fn log_dir(staging: &Path) -> std::path::PathBuf {
    staging.join(TRAINING_DIR)
}

/// Loss and accuracy of every epoch, from burn-train's logs.
pub fn history(log_dir: &Path) -> Result<History> {
    let (train_loss, valid_loss) = per_epoch(log_dir, "Loss")?;
    let (train_accuracy, valid_accuracy) = per_epoch(log_dir, "Accuracy")?;
    Ok(History {
        train_loss,
        valid_loss,
        train_accuracy,
        valid_accuracy,
    })
}

/// `metric` for each epoch on the training and the validation split (the
/// mean over the epoch's batches), as burn-train logged it.
fn per_epoch(log_dir: &Path, metric: &str) -> Result<(Vec<f64>, Vec<f64>)> {
    let summary = LearnerSummary::new(log_dir, &[metric])
        .map_err(|e| anyhow::anyhow!("reading the training logs in {}: {e}", log_dir.display()))?;
    let values = |splits: &[burn::train::MetricSummary]| {
        let mut entries: Vec<(usize, f64)> = splits
            .iter()
            .find(|m| m.name == metric)
            .map(|m| m.entries.iter().map(|e| (e.step, e.value)).collect())
            .unwrap_or_default();
        entries.sort_by_key(|(step, _)| *step);
        entries.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
    };
    Ok((
        values(&summary.metrics.train),
        values(&summary.metrics.valid),
    ))
}

/// Early stopping: on the `select` metric with a patience (burn-train's
/// strategy, which decides when to stop, not which epoch is kept), or before
/// an epoch that would end past the time budget (judged by how long the
/// last epoch took).
#[derive(Clone)]
struct Stopping {
    patience: Option<MetricEarlyStoppingStrategy>,
    deadline: Option<Instant>,
    /// When the last epoch ended (or training started).
    last: Instant,
}

impl Stopping {
    fn new(plan: &Plan, started: Instant) -> Self {
        let condition = StoppingCondition::NoImprovementSince {
            n_epochs: plan.patience,
        };
        // The metrics' backend only names them; any backend will do.
        type Any = burn::backend::NdArray;
        let patience = (plan.patience > 0).then(|| match plan.select {
            Select::Loss => MetricEarlyStoppingStrategy::new(
                &LossMetric::<Any>::new(),
                Aggregate::Mean,
                Direction::Lowest,
                Split::Valid,
                condition,
            ),
            _ => MetricEarlyStoppingStrategy::new(
                &AccuracyMetric::<Any>::new(),
                Aggregate::Mean,
                Direction::Highest,
                Split::Valid,
                condition,
            ),
        });
        Self {
            patience,
            deadline: plan
                .minutes
                .map(|minutes| started + Duration::from_secs_f64(minutes * 60.0)),
            last: started,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_epoch_is_the_first_best_of_the_logged_means() {
        let history = History {
            train_loss: vec![0.7, 0.5, 0.4, 0.3],
            valid_loss: vec![0.6, 0.45, 0.45, 0.5],
            train_accuracy: vec![60.0, 70.0, 80.0, 90.0],
            valid_accuracy: vec![65.0, 74.0, 76.0, 76.0],
        };
        assert_eq!(pick_epoch(Select::Loss, &history), 2);
        assert_eq!(pick_epoch(Select::Accuracy, &history), 3);
        assert_eq!(pick_epoch(Select::Last, &history), 4);
    }
}
