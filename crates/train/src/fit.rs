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
//! Resuming an interrupted run is [`crate::resume`]: after every epoch the
//! early-stopping hook below records the epoch there.
//!
//! The caller builds the `SupervisedTraining` with its data loaders and its
//! metrics, which must include burn-train's `LossMetric` and
//! `AccuracyMetric` on both splits (the history is read from their logs).

use crate::average::average;
use crate::renderer::LineRenderer;
pub use crate::resume::{EpochBatches, Start};
use crate::resume::{logs_are_whole, put_first_epoch_back, read_progress, write_progress};
use crate::schedule::{Horizon, Scheduler};
use crate::watch::{self, Stop};
use anyhow::{Context, Result, bail, ensure};
use artifact::files::{PROGRESS_FILE, TRAINING_DIR};
use artifact::weights::WeightsRecorder;
use artifact::{History, LrSchedule, Select};
use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::AutodiffBackend;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::metric::store::{Aggregate, EventStoreClient, Split};
use burn::train::metric::{AccuracyMetric, LossMetric, Metric};
use burn::train::{
    EarlyStoppingStrategy, Learner, LearnerSummary, LearningComponentsTypes, SupervisedTraining,
};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How a run goes through its epochs and which one it keeps.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The most epochs to run.
    pub epochs: usize,
    pub lr: f64,
    /// How the rate moves from `lr` over the run.
    pub schedule: LrSchedule,
    pub select: Select,
    /// Stop when the `select` metric has not improved for this many epochs (0 = never).
    pub patience: usize,
    /// Start no epoch that would end past this many minutes, judged by the last one.
    pub minutes: Option<f64>,
    /// Keep the mean of the weights of this many epochs ending at the
    /// selected one (1 = that epoch's weights alone).
    pub average: usize,
    /// Without a terminal, print a progress line every this many batches.
    pub log_every: usize,
    /// Where a cosine or a cooldown reaches zero: fixed after the first
    /// epoch when a time budget cuts the planned epochs short
    /// (`Horizon::default()` until then).
    pub horizon: Horizon,
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
    /// The weights are the mean of the epochs from this one (1-based) to
    /// `best_epoch`; equal to it when nothing was averaged.
    pub averaged_from: usize,
    pub epochs_run: usize,
    pub train_seconds: f64,
    pub selected_by: String,
    pub history: History,
}

impl Plan {
    /// The learning rate of every step, for a run of `steps_per_epoch` steps per epoch.
    pub fn scheduler(&self, steps_per_epoch: usize) -> Scheduler {
        Scheduler::new(
            self.schedule,
            self.lr,
            steps_per_epoch,
            self.epochs,
            self.horizon.clone(),
        )
    }

    pub fn check(&self) -> Result<()> {
        ensure!(self.epochs > 0, "--epochs must be at least 1");
        ensure!(
            self.patience == 0 || self.select != Select::Last,
            "--patience needs a metric to watch: use it with --select loss or --select accuracy"
        );
        Ok(())
    }
}

/// Runs `training` with `learner` under `plan` from `start`, logging and
/// checkpointing into `start.log_dir`, and returns the weights of the epoch
/// the plan keeps. Ctrl-C stops it after the current batch, keeping what a
/// resume needs; a non-finite training loss stops it with an error.
pub fn fit<LC>(
    training: SupervisedTraining<LC>,
    learner: Learner<LC>,
    plan: &Plan,
    start: &Start,
    batches: EpochBatches,
    device: &burn::tensor::Device<<LC::Backend as AutodiffBackend>::InnerBackend>,
) -> Result<Fitted<LC::InferenceModel>>
where
    LC: LearningComponentsTypes + Send + 'static,
    LC::InferenceModel: Module<<LC::Backend as AutodiffBackend>::InnerBackend>,
{
    let log_dir = start.log_dir.as_path();
    let started = Instant::now();
    if let Some(epochs) = start.horizon {
        plan.horizon.fix(epochs);
    }
    let mut training = training
        .with_file_checkpointer(WeightsRecorder::new())
        .with_checkpointing_strategy(KeepLastNCheckpoints::new(plan.epochs))
        .num_epochs(plan.epochs)
        .early_stopping(Stopping::new(plan, start, batches, started));
    if start.done > 0 {
        training = training.checkpoint(start.done);
    }
    if !std::io::stdout().is_terminal() {
        training = training.renderer(LineRenderer::new(plan.log_every));
    }
    watch::arm(training.interrupter(), start.done + 1);
    let fresh: LC::InferenceModel = if start.finished {
        // The interrupted run had finished training; only its artifact is missing.
        learner.model().valid()
    } else {
        let result = training.launch(learner);
        drop(result.renderer);
        result.model
    };
    let stopped = watch::disarm();
    let train_seconds = start.seconds + started.elapsed().as_secs_f64();
    let checkpoints = log_dir.join("checkpoint");
    match stopped {
        Some(Stop::Signal) => {
            let done = read_progress(log_dir).map_or(0, |p| p.epochs_done);
            bail!(
                "interrupted: {done} epoch(s) done and kept in {}; run the same command with --resume to continue",
                log_dir.parent().unwrap_or(log_dir).display()
            );
        }
        Some(Stop::NonFinite { epoch, batch, loss }) => {
            // Nothing of this run is worth resuming or keeping.
            let _ = std::fs::remove_file(log_dir.join(PROGRESS_FILE));
            let _ = std::fs::remove_dir_all(&checkpoints);
            bail!(
                "the training loss became {loss} at epoch {epoch}, batch {batch}: the weights diverged, so no artifact was written; lower --lr (it is {:e}) or clip the gradients (--clip-norm 1)",
                plan.lr
            );
        }
        None => {}
    }

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
    // Records are backend-agnostic: the checkpoint of the autodiff model loads
    // straight into the inference model.
    let load = |epoch: usize| {
        let checkpoint = checkpoints.join(format!("model-{epoch}"));
        fresh
            .clone()
            .load_file(checkpoint.clone(), &WeightsRecorder::new(), device)
            .with_context(|| format!("cannot load the checkpoint {}", checkpoint.display()))
    };
    let averaged_from = best_epoch.saturating_sub(plan.average.max(1) - 1).max(1);
    let model = if averaged_from < best_epoch {
        println!("the weights kept are the mean of epochs {averaged_from} to {best_epoch}");
        average(
            (averaged_from..=best_epoch)
                .map(load)
                .collect::<Result<Vec<_>>>()?,
        )
    } else {
        load(best_epoch)?
    };
    std::fs::remove_dir_all(&checkpoints).context("removing the training checkpoints")?;
    // The run is over: nothing is left to resume.
    std::fs::remove_file(log_dir.join(PROGRESS_FILE)).context("removing the progress record")?;
    Ok(Fitted {
        model,
        run: RunInfo {
            best_epoch,
            averaged_from,
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

/// Adam, with each parameter tensor's gradient rescaled to at most
/// `clip_norm` (Burn's norm clipping, per tensor; 0 = none).
pub fn adam(clip_norm: f64) -> burn::optim::AdamConfig {
    let adam = burn::optim::AdamConfig::new();
    if clip_norm > 0.0 {
        adam.with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(
            clip_norm as f32,
        )))
    } else {
        adam
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

/// After every epoch: records the progress (for a resume), then decides
/// whether to stop — on the `select` metric with a patience, judged from
/// the logged epochs alone so that a resumed run decides as the
/// uninterrupted one would, or before an epoch that would end past the time
/// budget (judged by how long the last epoch took; the budget counts the
/// interrupted run's epochs too).
#[derive(Clone)]
struct Stopping {
    log_dir: PathBuf,
    options: serde_json::Value,
    /// Seconds of the epochs done before this process.
    seconds_before: f64,
    started: Instant,
    epochs: usize,
    patience: usize,
    select: Select,
    batches: EpochBatches,
    /// The first epoch of a resumed process, whose logs go into `epoch-1`.
    first_resumed: Option<usize>,
    deadline: Option<Instant>,
    /// When the last epoch ended (or training started).
    last: Instant,
    /// The schedule's horizon, and the budget in seconds to fix it from
    /// (a cosine or a cooldown under `--minutes` only).
    horizon: Horizon,
    budget: Option<f64>,
}

impl Stopping {
    fn new(plan: &Plan, start: &Start, batches: EpochBatches, started: Instant) -> Self {
        Self {
            log_dir: start.log_dir.clone(),
            options: start.options.clone(),
            seconds_before: start.seconds,
            started,
            epochs: plan.epochs,
            patience: plan.patience,
            select: plan.select,
            batches,
            first_resumed: (start.done > 0).then_some(start.done + 1),
            // The budget counts the epochs of an interrupted run too, so
            // that a resumed run stops where the uninterrupted one would.
            deadline: plan.minutes.map(|minutes| {
                let left = (minutes * 60.0 - start.seconds).max(0.0);
                started + Duration::from_secs_f64(left)
            }),
            last: started,
            horizon: plan.horizon.clone(),
            budget: plan
                .minutes
                .filter(|_| plan.schedule.needs_horizon())
                .map(|minutes| minutes * 60.0),
        }
    }

    /// After each epoch of a cosine or a cooldown under a budget: the
    /// epochs the budget holds at the mean pace of the epochs so far (all
    /// `seconds` of them), at least the ones done and at most the planned
    /// ones. The first epoch fixes the horizon. A later one lowers it when
    /// the epochs have slowed, since a horizon too far would leave the
    /// budget to stop the run before the rate reaches zero; none raises it,
    /// so that the run ends on the curve it has followed.
    fn update_horizon(&self, epoch: usize, seconds: f64) {
        let Some(budget) = self.budget else { return };
        let done = epoch.clamp(1, self.epochs);
        let pace = seconds.max(1e-3) / done as f64;
        let held = ((budget / pace).floor() as usize).clamp(done, self.epochs);
        let repeat = format!("`--epochs {held} --minutes 0` repeats this run");
        match self.horizon.fixed() {
            None => {
                self.horizon.fix(held);
                // A resumed run whose progress has no horizon fixes it later.
                let took = match epoch {
                    1 => format!("epoch 1 took {pace:.0} s"),
                    _ => format!("the {epoch} epochs so far took {pace:.0} s each on average"),
                };
                println!(
                    "{took}: the budget holds {held} epoch(s) of {}; the rate reaches zero at the end of epoch {held} ({repeat})",
                    self.epochs
                );
            }
            Some(fixed) if held < fixed => {
                self.horizon.fix(held);
                println!(
                    "the {epoch} epochs so far took {pace:.0} s each on average: the budget holds {held}, not {fixed}; the rate now reaches zero at the end of epoch {held} ({repeat})"
                );
            }
            Some(_) => {}
        }
    }

    /// Whether the `select` metric has not improved for `patience` epochs,
    /// from the validation means of epochs 1..=`epoch` in the store.
    fn stalled(&self, epoch: usize, store: &EventStoreClient) -> bool {
        // The metrics' backend only names them; any backend will do.
        type Any = burn::backend::NdArray;
        let (name, lower_is_better) = match self.select {
            Select::Loss => (LossMetric::<Any>::new().name(), true),
            Select::Accuracy => (AccuracyMetric::<Any>::new().name(), false),
            Select::Last => return false,
        };
        if self.patience == 0 {
            return false;
        }
        let values: Vec<f64> = (1..=epoch)
            .map_while(|e| store.find_metric(&name, e, Aggregate::Mean, &Split::Valid))
            .collect();
        let best = (0..values.len()).fold(0, |best, i| {
            let better = if lower_is_better {
                values[i] < values[best]
            } else {
                values[i] > values[best]
            };
            if better { i } else { best }
        }) + 1;
        values.len() == epoch && epoch - best >= self.patience
    }
}

impl EarlyStoppingStrategy for Stopping {
    fn should_stop(&mut self, epoch: usize, store: &EventStoreClient) -> bool {
        // A stop asked for during the epoch may have cut its validation
        // short: it is not recorded as done.
        if watch::stopping_requested() {
            return true;
        }
        watch::epoch_started(epoch + 1);
        let resumed_here = self.first_resumed == Some(epoch);
        let logged_as = if resumed_here { 1 } else { epoch };
        let mut logged = logs_are_whole(&self.log_dir, logged_as, self.batches);
        if logged && resumed_here {
            if let Err(err) = put_first_epoch_back(&self.log_dir, epoch) {
                eprintln!("warning: {err:#}");
                logged = false;
            }
        }
        let stalled = self.stalled(epoch, store);
        let now = Instant::now();
        let epoch_time = now - self.last;
        self.last = now;
        self.update_horizon(
            epoch,
            self.seconds_before + self.started.elapsed().as_secs_f64(),
        );
        let out_of_time = self.deadline.is_some_and(|d| now + epoch_time > d);
        // Past the horizon the rate is zero: nothing would move.
        let schedule_done = epoch >= self.horizon.epochs(self.epochs);
        if schedule_done && epoch < self.epochs {
            println!("epoch {epoch} ends the schedule: the rate is zero now; stopping");
        } else if out_of_time && !stalled {
            println!(
                "epoch {epoch} took {:.0} s: another would end past --minutes; stopping",
                epoch_time.as_secs_f64()
            );
        }
        let stop = stalled || out_of_time || schedule_done;
        let seconds = self.seconds_before + self.started.elapsed().as_secs_f64();
        let finished = stop || epoch >= self.epochs;
        if !logged {
            eprintln!(
                "warning: the training logs of epoch {epoch} are not complete after a minute; a resume would repeat it"
            );
        } else if let Err(err) = write_progress(
            &self.log_dir,
            &self.options,
            epoch,
            seconds,
            finished,
            self.horizon.fixed(),
        ) {
            eprintln!("warning: {err:#}: a resume would repeat epoch {epoch}");
        }
        stop
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

    /// A cosine or a cooldown under a budget takes as its horizon the
    /// epochs the budget holds at the pace of the epochs so far: fixed by
    /// the first, lowered by a later one if they slowed, never raised, never
    /// past the planned epochs nor before the ones done; the other schedules
    /// and a run without a budget leave it unfixed.
    #[test]
    fn the_epochs_pace_fixes_the_horizon_from_the_budget() {
        let plan = |schedule, minutes| Plan {
            epochs: 10,
            lr: 1e-3,
            schedule,
            select: Select::Loss,
            patience: 0,
            minutes,
            average: 1,
            log_every: 100,
            horizon: Horizon::default(),
        };
        let batches = EpochBatches { train: 1, valid: 1 };
        let start = Start {
            log_dir: PathBuf::from("unused"),
            done: 0,
            seconds: 0.0,
            options: serde_json::Value::Null,
            finished: false,
            horizon: None,
        };
        let stopping = |plan: &Plan| Stopping::new(plan, &start, batches, Instant::now());

        // A budget of 60 s.
        let cosine = plan(LrSchedule::Cosine, Some(1.0));
        stopping(&cosine).update_horizon(1, 25.0);
        assert_eq!(
            cosine.horizon.fixed(),
            Some(2),
            "60 s hold two epochs of 25 s"
        );
        stopping(&cosine).update_horizon(2, 30.0);
        assert_eq!(
            cosine.horizon.fixed(),
            Some(2),
            "a faster pace does not raise it"
        );

        let cooldown = plan(LrSchedule::Cooldown(0.2), Some(1.0));
        stopping(&cooldown).update_horizon(1, 10.0);
        assert_eq!(cooldown.horizon.fixed(), Some(6));
        stopping(&cooldown).update_horizon(2, 24.0);
        assert_eq!(cooldown.horizon.fixed(), Some(5), "12 s an epoch: lowered");
        stopping(&cooldown).update_horizon(3, 36.0);
        assert_eq!(cooldown.horizon.fixed(), Some(5), "the same pace");
        stopping(&cooldown).update_horizon(4, 50.0);
        assert_eq!(
            cooldown.horizon.fixed(),
            Some(4),
            "never before the epochs done"
        );

        let short = plan(LrSchedule::Cosine, Some(1.0));
        stopping(&short).update_horizon(1, 1.0);
        assert_eq!(short.horizon.fixed(), Some(10), "never more than planned");
        let slow = plan(LrSchedule::Cosine, Some(1.0));
        stopping(&slow).update_horizon(1, 90.0);
        assert_eq!(slow.horizon.fixed(), Some(1), "at least the epoch done");

        for other in [
            plan(LrSchedule::Constant, Some(1.0)),
            plan(LrSchedule::Exponential(0.9), Some(1.0)),
            plan(LrSchedule::Cosine, None),
        ] {
            stopping(&other).update_horizon(1, 25.0);
            assert_eq!(other.horizon.fixed(), None);
        }
    }
}
