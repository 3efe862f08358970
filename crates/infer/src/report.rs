//! `infer report`: parameters, size on disk, test accuracy and latency of
//! classifier artifacts, side by side (the table of the compression
//! experiment). It trains nothing: it loads, counts, evaluates and times.

use anyhow::{Context, Result, bail, ensure};
use artifact::files::{CONFIG_FILE, METRICS_FILE, TOKENIZER_FILE, WEIGHTS_FILE, read_json};
use artifact::metrics::build_profile;
use artifact::{Classifier, ClassifierMetrics};
use data::{LabelledText, read_labelled_tsv};
use model::{LstmBackend, ParamCounts};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    /// The code predictions went through (`artifact::PredictionPath`).
    pub predicts_through: &'static str,
    /// Mean milliseconds to predict one sentence alone.
    pub latency_batch_1_ms: f64,
    /// Mean milliseconds to predict a batch of 256 test sentences.
    pub latency_batch_256_ms: f64,
}

/// What to report on.
pub struct ReportRequest<'a> {
    pub artifacts: &'a [PathBuf],
    /// The labelled file evaluated and timed (a dataset's test split).
    pub test: &'a Path,
    /// Sentences predicted one at a time for the batch-1 latency.
    pub sentences: usize,
}

/// Loads, evaluates and times every artifact of `request`.
pub fn report<B: LstmBackend>(
    request: &ReportRequest,
    device: &B::Device,
) -> Result<Vec<ReportRow>> {
    let mut rows = Vec::new();
    // The test split is read once, with the first artifact's labels; the
    // others must name the same classes.
    let mut test: Option<(Vec<String>, Vec<LabelledText>)> = None;
    for dir in request.artifacts {
        let classifier = Classifier::<B>::load(dir, device)?;
        let labels = &classifier.config.labels;
        let (read_with, test) = match &mut test {
            Some(read) => read,
            None => {
                let names: Vec<&str> = labels.iter().map(String::as_str).collect();
                test.insert((labels.clone(), read_labelled_tsv(request.test, &names)?))
            }
        };
        if read_with != labels {
            bail!(
                "{} has the labels {labels:?} but {} has {read_with:?}: report on artifacts of one dataset",
                dir.display(),
                request.artifacts[0].display()
            );
        }
        let method =
            read_json::<ClassifierMetrics>(&dir.join(METRICS_FILE), "a classifier's metrics")
                .ok()
                .and_then(|metrics| metrics.compression)
                .map_or("none (the trained model)".to_string(), |c| c.method);
        let counts = ParamCounts::of(classifier.model());
        let size = |file: &str| -> Result<u64> {
            Ok(std::fs::metadata(dir.join(file))
                .with_context(|| format!("cannot read {}", dir.join(file).display()))?
                .len())
        };
        let weights_bytes = size(WEIGHTS_FILE)?;
        let artifact_bytes = weights_bytes + size(CONFIG_FILE)? + size(TOKENIZER_FILE)?;
        let test_accuracy = classifier.evaluate(test, 256)?.accuracy;
        let texts: Vec<&str> = test.iter().map(|t| t.text.as_str()).collect();
        rows.push(ReportRow {
            artifact: dir.display().to_string(),
            method,
            parameters: counts.total,
            nonzero_parameters: counts.nonzero,
            weights_bytes,
            artifact_bytes,
            test_accuracy,
            predicts_through: classifier.path().name(),
            latency_batch_1_ms: latency(&classifier, &texts, 1, request.sentences)?,
            latency_batch_256_ms: latency(&classifier, &texts, 256, texts.len())?,
        });
    }
    Ok(rows)
}

/// The rows as a markdown table, accuracy changes against the first row.
pub fn markdown(rows: &[ReportRow], backend: &str, sentences: usize) -> String {
    let mut out = format!(
        "| artifact | method | parameters (non-zero / total) | weights | artifact | test accuracy | vs {} | predicts through | batch 1 | batch 256 |\n|---|---|---:|---:|---:|---:|---:|---|---:|---:|\n",
        rows[0].artifact
    );
    let reference = rows[0].test_accuracy;
    for row in rows {
        out += &format!(
            "| {} | {} | {} / {} | {:.2} MB | {:.2} MB | {:.2}% | {:+.2} | {} | {:.2} ms | {:.0} ms |\n",
            row.artifact,
            row.method,
            row.nonzero_parameters,
            row.parameters,
            row.weights_bytes as f64 / 1e6,
            row.artifact_bytes as f64 / 1e6,
            100.0 * row.test_accuracy,
            100.0 * (row.test_accuracy - reference),
            row.predicts_through,
            row.latency_batch_1_ms,
            row.latency_batch_256_ms,
        );
    }
    out += &format!(
        "\nlatency on {backend} ({} build), {} threads available; batch 1 is the mean over {sentences} test sentences, batch 256 over the full batches of the test split\n",
        build_profile(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    out
}

/// Mean milliseconds per call of `predict` on `batch` texts, over the full
/// batches among the first `count` texts, after one warm-up call.
fn latency<B: LstmBackend>(
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
