//! Progress for logs and pipes: burn-train's own fallback prints a Debug dump
//! of every batch, so without a terminal we print one short line every
//! `every` batches and one at the end of each epoch and validation pass.

use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};
use std::collections::HashMap;
use std::io::Write;

pub struct LineRenderer {
    every: usize,
    names: HashMap<MetricId, String>,
    /// Running (sum, count) of each numeric metric over the current pass.
    train: Vec<(String, f64, f64)>,
    valid: Vec<(String, f64, f64)>,
    last_epoch: usize,
}

impl LineRenderer {
    pub fn new(every: usize) -> Self {
        Self {
            every: every.max(1),
            names: HashMap::new(),
            train: Vec::new(),
            valid: Vec::new(),
            last_epoch: 0,
        }
    }

    fn record(&mut self, valid: bool, state: MetricState) {
        let MetricState::Numeric(entry, value) = state else {
            return;
        };
        let name = self
            .names
            .get(&entry.metric_id)
            .cloned()
            .unwrap_or_else(|| "?".into());
        let (value, count) = match value {
            NumericEntry::Value(v) => (v, 1.0),
            NumericEntry::Aggregated {
                aggregated_value,
                count,
            } => (aggregated_value, count as f64),
        };
        let sums = if valid {
            &mut self.valid
        } else {
            &mut self.train
        };
        match sums.iter_mut().find(|(n, _, _)| *n == name) {
            Some(slot) => {
                slot.1 += value * count;
                slot.2 += count;
            }
            None => sums.push((name, value * count, count)),
        }
    }

    fn line(split: &str, item: &TrainingProgress, sums: &[(String, f64, f64)]) {
        let epoch = item.global_progress.items_processed;
        let epochs = item.global_progress.items_total;
        let batch = item
            .progress
            .as_ref()
            .map(|p| format!(" {}/{}", p.items_processed, p.items_total));
        let metrics: Vec<String> = sums
            .iter()
            .map(|(name, sum, count)| format_metric(name, sum / count.max(1.0)))
            .collect();
        println!(
            "epoch {epoch}/{epochs} {split}{} {}",
            batch.unwrap_or_default(),
            metrics.join(" ")
        );
        let _ = std::io::stdout().flush();
    }
}

fn format_metric(name: &str, value: f64) -> String {
    // "BitsPerChar" -> "bits-per-char" (metric names are also file names in
    // burn-train's logs, so they cannot hold a slash).
    let mut short = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            short.push('-');
        }
        short.extend(c.to_lowercase());
    }
    if name.contains("Accuracy") {
        format!("{short}={value:.2}%")
    } else {
        format!("{short}={value:.4}")
    }
}

fn finished(item: &TrainingProgress) -> bool {
    item.progress
        .as_ref()
        .is_some_and(|p| p.items_total > 0 && p.items_processed >= p.items_total)
}

impl MetricsRendererTraining for LineRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.record(false, state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(true, state);
    }

    fn render_train(&mut self, item: TrainingProgress, _indicators: Vec<ProgressType>) {
        let epoch = item.global_progress.items_processed;
        if epoch != self.last_epoch {
            self.last_epoch = epoch;
            self.train.clear();
            self.valid.clear();
        }
        let iteration = item.iteration.unwrap_or(0);
        if finished(&item) || iteration % self.every == 0 {
            Self::line("train", &item, &self.train);
        }
    }

    fn render_valid(&mut self, item: TrainingProgress, _indicators: Vec<ProgressType>) {
        if finished(&item) {
            Self::line("valid", &item, &self.valid);
        }
    }
}

impl MetricsRendererEvaluation for LineRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
    fn render_test(&mut self, _item: EvaluationProgress, _indicators: Vec<ProgressType>) {}
}

impl MetricsRenderer for LineRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id, definition.name);
    }
}
