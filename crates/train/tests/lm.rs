//! `train lm` end to end: a small model learns a short repeated sentence, and
//! generation then continues a prompt with that sentence exactly. And the
//! errors a user gets for bad input.

use burn::backend::NdArray;
use infer::{Generator, LmMetrics, Sampling};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::process::{Command, Output};

const SENTENCE: &str = "the quick brown fox jumps over the lazy dog. ";

fn train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .arg("lm")
        .args(args)
        .output()
        .unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
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
    assert!(out.status.success(), "train lm failed:\n{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bits/char"), "{stdout}");

    let artifact = tmp.path().join("lm");
    for file in ["config.json", "vocab.json", "model.mpk", "metrics.json"] {
        assert!(artifact.join(file).is_file(), "{file} missing");
    }
    let metrics: LmMetrics =
        serde_json::from_str(&std::fs::read_to_string(artifact.join("metrics.json")).unwrap())
            .unwrap();
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
    // The kept weights are those of the epoch the metrics name. (burn-train's
    // checkpointer ranks epochs itself and, when the loss is still falling
    // by tiny amounts, can keep one a little before the lowest in its logs.)
    let kept = metrics.valid_loss_per_epoch[metrics.best_epoch - 1];
    assert!((metrics.valid_loss - kept).abs() < 1e-9, "{metrics:?}");
    let best = metrics
        .valid_loss_per_epoch
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    assert!(metrics.valid_loss < best + 0.01, "{metrics:?}");
    assert!((metrics.valid_bits_per_char - metrics.valid_loss / 2f64.ln()).abs() < 1e-9);

    let device = Default::default();
    let generator = Generator::<NdArray>::load(&artifact, &device).unwrap();
    let prompt = generator.vocab.encode("the quick").unwrap();
    let greedy = Sampling {
        temperature: 0.0,
        top_k: None,
    };
    let mut streamed = String::new();
    let text = generator
        .generate(
            &prompt,
            2 * SENTENCE.len(),
            greedy,
            &mut ChaCha8Rng::seed_from_u64(0),
            |c| streamed.push(c),
        )
        .unwrap();
    let expected: String = SENTENCE
        .repeat(3)
        .chars()
        .skip("the quick".len())
        .take(2 * SENTENCE.len())
        .collect();
    assert_eq!(text, expected);
    assert_eq!(
        streamed, text,
        "every character is handed out as it is drawn"
    );
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
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--valid-fraction"));
}
