//! The names of an artifact's files, and JSON in and out with errors that
//! name the file.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

pub const CONFIG_FILE: &str = "config.json";
/// The classifier's word-level vocabulary.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The language model's character vocabulary.
pub const VOCAB_FILE: &str = "vocab.json";
/// A translation model's BPE vocabularies.
pub const SOURCE_TOKENIZER_FILE: &str = "source_tokenizer.json";
pub const TARGET_TOKENIZER_FILE: &str = "target_tokenizer.json";
/// The recorder adds the `.mpk` extension to this stem.
pub const WEIGHTS_STEM: &str = "model";
pub const WEIGHTS_FILE: &str = "model.mpk";
pub const METRICS_FILE: &str = "metrics.json";
/// Marks a directory as an artifact this project wrote (see `writer::Marker`):
/// only such a directory is ever replaced.
pub const MARKER_FILE: &str = "artifact.json";
/// burn-train's logs (and, while training runs, its checkpoints).
pub const TRAINING_DIR: &str = "training";
/// Inside [`TRAINING_DIR`] while a run is going: how far it got, for `--resume`.
pub const PROGRESS_FILE: &str = "progress.json";

/// How a user makes each kind of artifact (for messages).
pub const TRAIN_CLASSIFIER: &str = "cargo run --release -p train";
pub const TRAIN_LM: &str = "cargo run --release -p train -- lm";
pub const TRAIN_TRANSLATOR: &str = "cargo run --release -p train -- translate";

/// The files every artifact has; each kind adds its vocabulary.
pub const COMMON_FILES: [&str; 2] = [CONFIG_FILE, WEIGHTS_FILE];

/// Refuses a translation artifact given to a command for `what` (a
/// classifier, a language model), saying how to use it instead.
pub fn refuse_translator(dir: &Path, what: &str) -> Result<()> {
    if dir.join(SOURCE_TOKENIZER_FILE).is_file() {
        bail!(
            "{} is a translation model (it has {SOURCE_TOKENIZER_FILE}), not {what}: translate with `infer translate --artifact-dir {}`",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Checks that `dir` holds `files` before anything is loaded, so that the
/// error names what is missing. `train_command` is how a user makes one.
pub fn check_dir(dir: &Path, files: &[&str], train_command: &str) -> Result<()> {
    if !dir.is_dir() {
        bail!(
            "artifact directory {} does not exist (train one with `{train_command} --artifact-dir {}`)",
            dir.display(),
            dir.display()
        );
    }
    for file in files {
        if !dir.join(file).is_file() {
            bail!(
                "artifact {} is incomplete: {file} is missing",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Parses the JSON file at `path`; `what` says what it should hold, for the error.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not {what}", path.display()))
}

/// Writes `value` as pretty JSON with a final newline.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
