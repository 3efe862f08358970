//! A training run killed at any moment and resumed with `--resume` ends
//! with the artifact an uninterrupted run of the same seed writes; Ctrl-C
//! stops a run cleanly and says how to resume it; a diverging run writes
//! nothing. These tests kill and interrupt a real `train` process.

mod common;

use common::{check, mr_dir, stderr, stdout, train};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A run of a few seconds with four one-second epochs, so that a poll of
/// its progress record finds it between epochs and in the middle of one.
fn args(artifact: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--epochs",
        "4",
        "--limit",
        "4000",
        "--embeddings",
        "none",
        "--d-embed",
        "32",
        "--d-hidden",
        "32",
        "--seed",
        "11",
        "--select",
        "loss",
        "--patience",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "--data-dir".to_string(),
        mr_dir().display().to_string(),
        "--artifact-dir".to_string(),
        artifact.display().to_string(),
    ]);
    args
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `train` with `args` to its end.
fn run(args: &[String]) -> std::process::Output {
    train(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// [`run`], which must succeed.
fn run_to_end(args: &[String]) {
    check(&run(args));
}

/// Epochs done, as the staging directory of `artifact` records them.
fn epochs_done(artifact: &Path) -> Option<usize> {
    let staging = artifact.with_file_name(format!(
        ".{}.partial",
        artifact.file_name().unwrap().to_string_lossy()
    ));
    let text = std::fs::read_to_string(staging.join("training/progress.json")).ok()?;
    let progress: serde_json::Value = serde_json::from_str(&text).ok()?;
    progress["epochs_done"].as_u64().map(|n| n as usize)
}

/// Waits until `child` has recorded at least `epochs` epochs (then waits
/// `extra` longer, to land inside the next one), or panics if it ended.
fn wait_for_epochs(child: &mut Child, artifact: &Path, epochs: usize, extra: Duration) {
    let give_up = Instant::now() + Duration::from_secs(300);
    while epochs_done(artifact).is_none_or(|done| done < epochs) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("train ended ({status}) before epoch {epochs} was recorded");
        }
        assert!(Instant::now() < give_up, "no progress after 300 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(extra);
}

/// `model.mpk` with burn's parameter ids blanked: burn draws each
/// parameter's id at random when the module is built, so two runs of one
/// seed store the same weights under different ids.
fn weights_without_ids(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(dir.join("model.mpk")).unwrap();
    // MessagePack: the key "id" (fixstr 2) and a 13-character fixstr value.
    let key = b"\xa2id\xad";
    let mut blanked = 0;
    let mut i = 0;
    while i + key.len() + 13 <= bytes.len() {
        if &bytes[i..i + key.len()] == key {
            bytes[i + key.len()..i + key.len() + 13].fill(b'_');
            blanked += 1;
            i += key.len() + 13;
        } else {
            i += 1;
        }
    }
    assert!(
        blanked > 0,
        "no parameter ids found: has the record format changed?"
    );
    bytes
}

/// metrics.json without the one field that measures time.
fn metrics_without_time(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("metrics.json")).unwrap();
    let mut metrics: serde_json::Value = serde_json::from_str(&text).unwrap();
    metrics.as_object_mut().unwrap().remove("train_seconds");
    metrics
}

fn assert_same_artifact(a: &Path, b: &Path) {
    assert_eq!(metrics_without_time(a), metrics_without_time(b));
    assert!(
        weights_without_ids(a) == weights_without_ids(b),
        "the resumed run's weights differ from the uninterrupted run's"
    );
    for dir in [a, b] {
        assert!(
            !dir.join("training/checkpoint").exists(),
            "checkpoints left in {}",
            dir.display()
        );
        assert!(!dir.join("training/progress.json").exists());
    }
}

#[test]
fn a_run_killed_twice_and_resumed_writes_the_uninterrupted_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    run_to_end(&args(&straight));

    let resumed = tmp.path().join("resumed");
    let mut resume_args = args(&resumed);
    // Killed (as by the OOM killer) in the middle of epoch 2.
    let mut child = spawn(&resume_args);
    wait_for_epochs(&mut child, &resumed, 1, Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!resumed.exists(), "a killed run published an artifact");

    // Resumed, then killed again right after epoch 3 is recorded, while its
    // checkpoint may still be being written.
    resume_args.push("--resume".to_string());
    let mut child = spawn(&resume_args);
    wait_for_epochs(&mut child, &resumed, 3, Duration::ZERO);
    child.kill().unwrap();
    child.wait().unwrap();

    let output = run(&resume_args);
    check(&output);
    assert!(
        stdout(&output).contains("resuming after epoch"),
        "{}",
        stdout(&output)
    );
    assert_same_artifact(&straight, &resumed);
}

#[test]
fn ctrl_c_stops_after_a_batch_and_says_how_to_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    run_to_end(&args(&straight));

    let resumed = tmp.path().join("resumed");
    let mut resume_args = args(&resumed);
    let mut child = spawn(&resume_args);
    wait_for_epochs(&mut child, &resumed, 2, Duration::from_millis(200));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    assert!(
        !output.status.success(),
        "an interrupted run must not exit 0"
    );
    let err = stderr(&output);
    assert!(err.contains("--resume"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
    assert!(!resumed.exists());

    resume_args.push("--resume".to_string());
    run_to_end(&resume_args);
    assert_same_artifact(&straight, &resumed);
}

#[test]
fn resume_refuses_other_options_and_names_them() {
    let tmp = tempfile::tempdir().unwrap();
    let artifact = tmp.path().join("a");
    let mut run_args = args(&artifact);
    let mut child = spawn(&run_args);
    wait_for_epochs(&mut child, &artifact, 1, Duration::ZERO);
    child.kill().unwrap();
    child.wait().unwrap();

    run_args.extend(["--resume", "--lr", "0.01"].map(String::from));
    let output = run(&run_args);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("training.lr"), "{err}");
    assert!(err.contains("0.002") && err.contains("0.01"), "{err}");
    // The interrupted run is still there to resume with its own options.
    assert_eq!(epochs_done(&artifact), Some(1));
}

#[test]
fn a_diverging_run_names_epoch_and_batch_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let artifact = tmp.path().join("a");
    let dir = mr_dir().display().to_string();
    let path = artifact.display().to_string();
    let output = train(&[
        "--data-dir",
        &dir,
        "--artifact-dir",
        &path,
        "--epochs",
        "2",
        "--limit",
        "500",
        "--d-embed",
        "16",
        "--d-hidden",
        "16",
        "--lr",
        "1e38",
    ]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("epoch 1, batch "), "{err}");
    assert!(err.contains("lower --lr"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_killed_language_model_run_resumes_to_the_uninterrupted_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let shakespeare = mr_dir()
        .join("../shakespeare/input.txt")
        .display()
        .to_string();
    let lm_args = |artifact: &Path| -> Vec<String> {
        let mut args: Vec<String> = [
            "lm",
            "--limit-chars",
            "200000",
            "--epochs",
            "4",
            "--d-hidden",
            "64",
            "--layers",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend([
            "--data".to_string(),
            shakespeare.clone(),
            "--artifact-dir".to_string(),
            artifact.display().to_string(),
        ]);
        args
    };
    let straight = tmp.path().join("straight");
    run_to_end(&lm_args(&straight));

    let resumed = tmp.path().join("resumed");
    let mut resume_args = lm_args(&resumed);
    let mut child = spawn(&resume_args);
    wait_for_epochs(&mut child, &resumed, 2, Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    resume_args.push("--resume".to_string());
    run_to_end(&resume_args);

    let without = |dir: &Path| {
        let mut metrics = metrics_without_time(dir);
        metrics.as_object_mut().unwrap().remove("chars_per_second");
        metrics
    };
    assert_eq!(without(&straight), without(&resumed));
    assert!(weights_without_ids(&straight) == weights_without_ids(&resumed));
}
