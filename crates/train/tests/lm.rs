//! `train lm` end to end: a small model learns a short repeated sentence,
//! its artifact's weights reproduce the validation loss its metrics report,
//! and greedy decoding then continues a prompt with that sentence exactly.
//! And the errors a user gets for bad input.

use artifact::{LanguageModel, LmMetrics};
use burn::backend::NdArray;
use burn::prelude::*;
use std::path::Path;
use std::process::Output;
use train::lm::{LmData, mean_loss};

mod common;

const SENTENCE: &str = "the quick brown fox jumps over the lazy dog. ";

/// Runs `train lm` with `args`.
fn train(args: &[&str]) -> Output {
    common::train(&[&["lm"], args].concat())
}

/// The artifact's `metrics.json`.
fn read_metrics(artifact: &Path) -> LmMetrics {
    serde_json::from_str(&std::fs::read_to_string(artifact.join("metrics.json")).unwrap()).unwrap()
}

/// Trains a one-layer model on `SENTENCE` repeated into `dir`.
fn train_on_repeated_sentence(dir: &Path) -> Output {
    let text_path = dir.join("text.txt");
    std::fs::write(&text_path, SENTENCE.repeat(200)).unwrap();
    let artifact = dir.join("lm");
    train(&[
        "--data",
        text_path.to_str().unwrap(),
        "--artifact-dir",
        artifact.to_str().unwrap(),
        "--d-embed",
        "16",
        "--d-hidden",
        "64",
        "--layers",
        "1",
        "--dropout",
        "0",
        "--batch-size",
        "8",
        "--seq-len",
        "32",
        "--lr",
        "0.01",
        "--epochs",
        "15",
        "--patience",
        "0",
        "--minutes",
        "0",
    ])
}

#[test]
fn a_small_model_learns_a_repeated_sentence_and_generates_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = train_on_repeated_sentence(tmp.path());
    common::check(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bits/char"), "{stdout}");

    let artifact = tmp.path().join("lm");
    for file in ["config.json", "vocab.json", "model.mpk", "metrics.json"] {
        assert!(artifact.join(file).is_file(), "{file} missing");
    }
    let metrics = read_metrics(&artifact);
    assert_eq!(metrics.epochs_run, 15);
    assert_eq!(metrics.valid_loss_per_epoch.len(), 15);
    assert_eq!(metrics.train_loss_per_epoch.len(), 15);
    // The text is deterministic after its first few characters: a model
    // that learned it is nearly certain of every next character.
    assert!(
        metrics.valid_loss < 0.05,
        "valid loss {}",
        metrics.valid_loss
    );
    let kept = metrics.valid_loss_per_epoch[metrics.best_epoch - 1];
    assert!((metrics.valid_loss - kept).abs() < 1e-9, "{metrics:?}");
    let best = metrics
        .valid_loss_per_epoch
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    assert!(metrics.valid_loss < best + 0.01, "{metrics:?}");
    assert!((metrics.valid_bits_per_char - metrics.valid_loss / 2f64.ln()).abs() < 1e-9);

    // The kept epoch is the first with the lowest logged validation loss...
    let first_lowest = (0..metrics.valid_loss_per_epoch.len())
        .min_by(|&a, &b| {
            metrics.valid_loss_per_epoch[a].total_cmp(&metrics.valid_loss_per_epoch[b])
        })
        .unwrap()
        + 1;
    assert_eq!(metrics.best_epoch, first_lowest, "{metrics:?}");

    // ...and the artifact holds that epoch's weights: evaluated on the same
    // validation windows, they give the loss metrics.json reports.
    let device = Default::default();
    let lm = LanguageModel::<NdArray>::load(&artifact, &device).unwrap();
    let data = LmData::read(&tmp.path().join("text.txt"), None, 0.1, 8, 32).unwrap();
    assert_eq!(data.vocab, lm.vocab);
    let reloaded = mean_loss(lm.model.clone(), &data.valid, &device);
    assert!(
        (reloaded - metrics.valid_loss).abs() < 1e-4 * metrics.valid_loss.max(1e-3),
        "reloaded weights give {reloaded}, metrics.json says {}",
        metrics.valid_loss
    );

    // Greedy decoding continues the prompt with the sentence.
    let prompt = "the quick";
    let mut ids = lm.vocab.encode(prompt).unwrap();
    let mut text = String::new();
    for _ in 0..2 * SENTENCE.len() {
        let n = ids.len();
        let input: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        let chars = Tensor::<NdArray, 2, Int>::from_data(TensorData::new(input, [1, n]), &device);
        let logits = lm.model.forward(chars, None).logits; // [1, n, V]
        let next = logits
            .slice([0..1, n - 1..n])
            .argmax(2)
            .into_scalar()
            .elem::<i64>() as u32;
        text.push(lm.vocab.chars()[next as usize]);
        ids.push(next);
    }
    let expected: String = SENTENCE
        .repeat(3)
        .chars()
        .skip(prompt.len())
        .take(2 * SENTENCE.len())
        .collect();
    assert_eq!(text, expected);
}

#[test]
fn bad_input_gets_an_error_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.txt");
    let out = train(&["--data", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read") && err.contains("nope.txt"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "too short").unwrap();
    let out = train(&["--data", short.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("short.txt") && err.contains("--batch-size") && err.contains("--seq-len"),
        "{err}"
    );

    let binary = tmp.path().join("binary.txt");
    std::fs::write(&binary, b"line one\nline \xff two\n").unwrap();
    let out = train(&["--data", binary.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("binary.txt:2: not valid UTF-8"), "{err}");

    let out = train(&["--valid-fraction", "1.5"]);
    assert_eq!(out.status.code(), Some(2), "a command-line error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--valid-fraction"));
}

/// A cosine or a cooldown under a time budget fixes its horizon after the
/// first epoch (and lowers it if the epochs slow), says so, records it, and
/// the run stops by then: the rate is zero after.
#[test]
fn a_schedule_under_a_budget_ends_at_the_horizon_the_epochs_pace_fixes() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("text.txt");
    std::fs::write(&text, SENTENCE.repeat(40)).unwrap();
    for schedule in ["cosine", "cooldown:0.5"] {
        let artifact = tmp.path().join(schedule.replace(':', "-"));
        let out = train(&[
            "--data",
            text.to_str().unwrap(),
            "--artifact-dir",
            artifact.to_str().unwrap(),
            "--d-embed",
            "8",
            "--d-hidden",
            "16",
            "--layers",
            "1",
            "--batch-size",
            "4",
            "--seq-len",
            "16",
            "--epochs",
            "500",
            "--patience",
            "0",
            "--lr-schedule",
            schedule,
            "--minutes",
            "0.02",
        ]);
        common::check(&out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let metrics = read_metrics(&artifact);
        let horizon = metrics.lr_horizon.expect("a budget fixes the horizon");
        assert!((1..=500).contains(&horizon), "{schedule}: {horizon}");
        assert!(
            stdout.contains(&format!(
                "reaches zero at the end of epoch {horizon} (`--epochs {horizon} --minutes 0` repeats this run)"
            )),
            "{schedule}: {stdout}"
        );
        assert!(metrics.epochs_run <= horizon, "{schedule}: {metrics:?}");
    }
}
