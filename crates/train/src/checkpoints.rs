//! Reading back what burn-train kept: the best checkpoint and the per-epoch
//! metrics of its logs.

use anyhow::{Context, Result};
use burn::train::LearnerSummary;
use burn::train::checkpoint::{
    ComposedCheckpointingStrategy, KeepLastNCheckpoints, MetricCheckpointingStrategy,
};
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{Metric, Numeric};
use std::path::Path;

/// Keep the last epoch's checkpoint (to resume) and the best one by `metric`
/// on the validation split (to ship); [`best_epoch`] finds the latter.
pub fn best_and_last<M: Metric + Numeric>(
    metric: &M,
    direction: Direction,
) -> ComposedCheckpointingStrategy {
    ComposedCheckpointingStrategy::builder()
        .add(KeepLastNCheckpoints::new(1))
        .add(MetricCheckpointingStrategy::new(
            metric,
            Aggregate::Mean,
            direction,
            Split::Valid,
        ))
        .build()
}

/// The Cargo profile of this binary, for the artifact's metrics.
pub fn profile() -> String {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
    .to_string()
}

/// The epoch whose checkpoint burn-train kept as the best by `metric` on the
/// validation split, that metric's value there, and the number of epochs that
/// ran.
///
/// The checkpointer keeps the best epoch and the last one, so the best is the
/// earliest checkpoint left. (Its "best" is the mean of per-batch values,
/// which can rank two close epochs differently from a value over all examples;
/// asking the checkpoints keeps the two in agreement.)
pub fn best_epoch(log_dir: &Path, metric: &str) -> Result<(usize, f64, usize)> {
    let checkpoints = log_dir.join("checkpoint");
    let best = std::fs::read_dir(&checkpoints)
        .with_context(|| format!("reading {}", checkpoints.display()))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("model-")?
                .strip_suffix(".mpk")?
                .parse::<usize>()
                .ok()
        })
        .min()
        .with_context(|| format!("no model checkpoint in {}", checkpoints.display()))?;
    let (_, valid, epochs) = per_epoch(log_dir, metric)?;
    let value = valid
        .get(best - 1)
        .copied()
        .with_context(|| format!("no validation {metric} was logged for epoch {best}"))?;
    Ok((best, value, epochs))
}

/// `metric` for each epoch on the training and the validation split (the
/// mean over the epoch's batches), and the number of epochs that ran.
pub fn per_epoch(log_dir: &Path, metric: &str) -> Result<(Vec<f64>, Vec<f64>, usize)> {
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
        summary.epochs,
    ))
}
