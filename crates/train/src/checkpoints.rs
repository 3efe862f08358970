//! Reading back what burn-train kept: the best checkpoint and the per-epoch
//! metrics of its logs.

use anyhow::{Context, Result};
use burn::train::LearnerSummary;
use std::path::Path;

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
