//! Helpers the `train` binary's tests share.
#![allow(dead_code)] // each test file uses its own subset

use artifact::{Classifier, ClassifierMetrics};
use burn::backend::NdArray;
use data::LabelledText;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// datasets/mr, from the crate's directory.
pub fn mr_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mr")
}

/// One split of datasets/mr (`train`, `valid` or `test`).
pub fn mr_split(name: &str) -> Vec<LabelledText> {
    data::read_labelled_tsv(&mr_dir().join(format!("{name}.tsv")), &data::MR_LABELS).unwrap()
}

/// Runs the `train` binary. A classifier run (no subcommand, or
/// `classify`) starts from a random embedding unless the test names
/// `--embeddings`: the default vectors lie under the workspace root, not
/// the crate directory tests run in, and fix --d-embed at 100, where the
/// tests' tiny models choose their own width.
pub fn train(args: &[&str]) -> Output {
    let classifier = args
        .first()
        .is_none_or(|first| *first == "classify" || first.starts_with("--"));
    let random_embedding = (classifier && !args.contains(&"--embeddings"))
        .then_some(["--embeddings", "none"])
        .into_iter()
        .flatten();
    Command::new(env!("CARGO_BIN_EXE_train"))
        .args(args)
        .args(random_embedding)
        .output()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Panics with both streams unless the run succeeded.
pub fn check(output: &Output) {
    assert!(
        output.status.success(),
        "train failed:\n{}\n{}",
        stdout(output),
        stderr(output)
    );
}

/// The classifier artifact at `dir`, loaded as `infer` loads it.
pub fn load(dir: &Path) -> Classifier<NdArray> {
    Classifier::<NdArray>::load(dir, &Default::default()).unwrap()
}

/// The `metrics.json` of a classifier artifact.
pub fn metrics(dir: &Path) -> ClassifierMetrics {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}
