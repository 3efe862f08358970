//! Resuming an interrupted run: the progress record, the checks that a
//! resume repeats the same run, and the repairs of what a kill leaves half
//! done (a torn checkpoint, the logs of an unfinished epoch).
//!
//! After every epoch, `training/progress.json` in the staging
//! directory records how many epochs are done (with the run's options);
//! burn-train's checkpoint of that epoch holds the weights, the optimizer
//! state and the learning-rate schedule; the data order and the random
//! streams of an epoch are functions of the seed and the epoch number
//! ([`crate::loader`]); early stopping is decided from the logged epochs
//! alone. So a run killed at any moment and resumed with `--resume` ends
//! with the artifact an uninterrupted run would have written.

use anyhow::{Context, Result, bail};
use artifact::files::PROGRESS_FILE;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where a run starts: afresh, or after the epochs an interrupted run of
/// the same options finished.
#[derive(Debug, Clone)]
pub struct Start {
    /// burn-train's logs and checkpoints (inside the artifact's staging).
    pub log_dir: PathBuf,
    /// Epochs already done (0 for a new run); the loaders start after them.
    pub done: usize,
    /// Training seconds those epochs took.
    pub seconds: f64,
    /// The run's options (its artifact config), recorded after every epoch.
    pub options: serde_json::Value,
    /// The interrupted run had already stopped training (its plan or early
    /// stopping said so): only the artifact is left to write.
    pub finished: bool,
    /// The schedule's horizon the interrupted run fixed from its epochs' pace.
    pub horizon: Option<usize>,
}

/// `training/progress.json`: what a resume needs to know of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// The options of the run (its artifact config), which a resume must repeat.
    pub(crate) options: serde_json::Value,
    pub(crate) epochs_done: usize,
    seconds: f64,
    /// Training had stopped after `epochs_done`.
    #[serde(default)]
    finished: bool,
    /// The epochs a cosine spans, once fixed by a time budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    horizon: Option<usize>,
}

/// How many batches an epoch has on each split. burn-train logs one line
/// per batch and metric, from another thread: an epoch's logs are whole
/// once they hold this many lines, and only then is the epoch recorded as
/// done (a resume rebuilds the history from them).
#[derive(Debug, Clone, Copy)]
pub struct EpochBatches {
    pub train: usize,
    pub valid: usize,
}

impl Start {
    /// Prepares `log_dir` for a run with `options`. With `resume`, an
    /// interrupted run found there with the same options continues after
    /// its last epoch whose checkpoint is whole; anything it logged after
    /// that epoch is removed. Otherwise the run starts at epoch 1.
    pub fn prepare(log_dir: &Path, options: &impl Serialize, resume: bool) -> Result<Self> {
        let options = serde_json::to_value(options)?;
        let fresh = |options| Self {
            log_dir: log_dir.to_path_buf(),
            done: 0,
            seconds: 0.0,
            finished: false,
            horizon: None,
            options,
        };
        let previous = resume.then(|| read_progress(log_dir)).flatten();
        let Some(previous) = previous else {
            if resume {
                println!(
                    "--resume: no interrupted run in {}; starting at epoch 1",
                    log_dir.parent().unwrap_or(log_dir).display()
                );
            }
            clear(log_dir)?;
            write_progress(log_dir, &options, 0, 0.0, false, None)?;
            return Ok(fresh(options));
        };
        let changed = differences("", &previous.options, &options);
        if !changed.is_empty() {
            bail!(
                "--resume: the interrupted run in {} had other options ({}); resume with the same options, or run without --resume to start over",
                log_dir.parent().unwrap_or(log_dir).display(),
                changed.join("; ")
            );
        }
        restore_first_epoch(log_dir)?;
        let mut done = previous.epochs_done;
        while done > 0 && !checkpoint_is_whole(log_dir, done) {
            println!(
                "the checkpoint of epoch {done} is incomplete (the run was killed while writing it)"
            );
            done -= 1;
        }
        forget_after(log_dir, done)?;
        if done == 0 {
            println!("--resume: the interrupted run had no complete epoch; starting at epoch 1");
            clear(log_dir)?;
            write_progress(log_dir, &options, 0, 0.0, false, None)?;
            return Ok(fresh(options));
        }
        // The seconds of the epochs kept (the record may count more).
        let seconds = previous.seconds * done as f64 / previous.epochs_done.max(1) as f64;
        let finished = previous.finished && done == previous.epochs_done;
        write_progress(log_dir, &options, done, seconds, finished, previous.horizon)?;
        if !finished {
            set_first_epoch_aside(log_dir)?;
        }
        println!(
            "resuming after epoch {done} of the interrupted run in {}",
            log_dir.parent().unwrap_or(log_dir).display()
        );
        Ok(Self {
            log_dir: log_dir.to_path_buf(),
            done,
            seconds,
            finished,
            horizon: previous.horizon,
            options,
        })
    }
}

pub(crate) fn read_progress(log_dir: &Path) -> Option<Progress> {
    let bytes = std::fs::read(log_dir.join(PROGRESS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes the progress record atomically (a temporary file renamed over it).
pub(crate) fn write_progress(
    log_dir: &Path,
    options: &serde_json::Value,
    epochs_done: usize,
    seconds: f64,
    finished: bool,
    horizon: Option<usize>,
) -> Result<()> {
    std::fs::create_dir_all(log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;
    let path = log_dir.join(PROGRESS_FILE);
    let tmp = log_dir.join(format!("{PROGRESS_FILE}.tmp"));
    let progress = Progress {
        options: options.clone(),
        epochs_done,
        seconds,
        finished,
        horizon,
    };
    std::fs::write(&tmp, serde_json::to_vec_pretty(&progress)?)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Empties the log directory of a run starting afresh (it lies inside the
/// staging directory this project created).
fn clear(log_dir: &Path) -> Result<()> {
    if log_dir.exists() {
        std::fs::remove_dir_all(log_dir)
            .with_context(|| format!("cannot remove {}", log_dir.display()))?;
    }
    Ok(())
}

/// Whether the model, optimizer and scheduler checkpoints of `epoch` are
/// all there and whole (each parses to its end as MessagePack).
fn checkpoint_is_whole(log_dir: &Path, epoch: usize) -> bool {
    ["model", "optim", "scheduler"].iter().all(|name| {
        let path = log_dir
            .join("checkpoint")
            .join(format!("{name}-{epoch}.mpk"));
        std::fs::File::open(path).is_ok_and(|file| {
            let mut reader = std::io::BufReader::new(file);
            rmp_serde::from_read::<_, serde::de::IgnoredAny>(&mut reader).is_ok()
                && std::io::Read::read(&mut reader, &mut [0u8; 1]).is_ok_and(|n| n == 0)
        })
    })
}

/// burn-train's metric store numbers the epochs of each process from 1:
/// a resumed run logs its first epoch into `epoch-1` (truncating the logs
/// of the real epoch 1) and the later ones under their own numbers. So a
/// resume sets epoch 1's logs aside, and once its first epoch is logged
/// the early-stopping hook of [`crate::fit`] moves them back ([`put_first_epoch_back`]).
const ASIDE: &str = "epoch-1.aside";

fn set_first_epoch_aside(log_dir: &Path) -> Result<()> {
    for split in ["train", "valid"] {
        let first = log_dir.join(split).join("epoch-1");
        let aside = log_dir.join(split).join(ASIDE);
        std::fs::rename(&first, &aside)
            .with_context(|| format!("cannot move {} aside", first.display()))?;
    }
    Ok(())
}

/// After the first epoch of a resumed process, `epoch`, is logged (in
/// `epoch-1`): its logs take their own number and epoch 1's come back.
pub(crate) fn put_first_epoch_back(log_dir: &Path, epoch: usize) -> Result<()> {
    for split in ["train", "valid"] {
        let dir = log_dir.join(split);
        let logged = dir.join("epoch-1");
        let own = dir.join(format!("epoch-{epoch}"));
        std::fs::rename(&logged, &own)
            .with_context(|| format!("cannot rename {} to {}", logged.display(), own.display()))?;
        std::fs::rename(dir.join(ASIDE), &logged)
            .with_context(|| format!("cannot move {} back", logged.display()))?;
    }
    Ok(())
}

/// Undoes [`set_first_epoch_aside`] of a resumed process killed before its
/// first epoch was logged: what it logged into `epoch-1` is dropped.
fn restore_first_epoch(log_dir: &Path) -> Result<()> {
    for split in ["train", "valid"] {
        let dir = log_dir.join(split);
        let aside = dir.join(ASIDE);
        if aside.exists() {
            let first = dir.join("epoch-1");
            if first.exists() {
                std::fs::remove_dir_all(&first)
                    .with_context(|| format!("cannot remove {}", first.display()))?;
            }
            std::fs::rename(&aside, &first)
                .with_context(|| format!("cannot move {} back", first.display()))?;
        }
    }
    Ok(())
}

/// Waits (up to a minute) until burn-train's logger threads have written
/// every batch of `epoch` into the loss and accuracy logs of both splits.
pub(crate) fn logs_are_whole(log_dir: &Path, logged_as: usize, batches: EpochBatches) -> bool {
    let lines = |path: PathBuf| {
        std::fs::read(path).map_or(0, |bytes| bytes.iter().filter(|&&b| b == b'\n').count())
    };
    let whole = || {
        [("train", batches.train), ("valid", batches.valid)]
            .iter()
            .all(|&(split, count)| {
                ["Loss.log", "Accuracy.log"].iter().all(|name| {
                    let path = log_dir
                        .join(split)
                        .join(format!("epoch-{logged_as}"))
                        .join(name);
                    lines(path) >= count
                })
            })
    };
    let give_up = Instant::now() + Duration::from_secs(60);
    while !whole() {
        if Instant::now() > give_up {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Removes what a run logged and checkpointed after epoch `done`.
fn forget_after(log_dir: &Path, done: usize) -> Result<()> {
    let epoch_of = |name: &str, prefix: &str| -> Option<usize> {
        name.strip_prefix(prefix)?.split('.').next()?.parse().ok()
    };
    for (dir, prefixes) in [
        (log_dir.join("train"), &["epoch-"][..]),
        (log_dir.join("valid"), &["epoch-"][..]),
        (
            log_dir.join("checkpoint"),
            &["model-", "optim-", "scheduler-"][..],
        ),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let later = prefixes
                .iter()
                .any(|prefix| epoch_of(&name, prefix).is_some_and(|e| e > done));
            if later {
                let path = entry.path();
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// The fields in which two option records differ, as `path: old → new`.
fn differences(path: &str, old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|key| {
                    let field = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    let missing = Value::Null;
                    differences(
                        &field,
                        a.get(key).unwrap_or(&missing),
                        b.get(key).unwrap_or(&missing),
                    )
                })
                .collect()
        }
        _ if old == new => vec![],
        _ => vec![format!("{path}: {old} then, {new} now")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cosine's horizon survives in the progress record, and a record
    /// written before it existed reads as none fixed.
    #[test]
    fn the_progress_keeps_the_cosines_horizon() {
        let dir = tempfile::tempdir().unwrap();
        let options = serde_json::json!({"lr": 0.002});
        write_progress(dir.path(), &options, 3, 30.0, false, Some(7)).unwrap();
        let progress = read_progress(dir.path()).unwrap();
        assert_eq!((progress.epochs_done, progress.horizon), (3, Some(7)));

        let old = serde_json::json!({"options": options, "epochs_done": 3, "seconds": 30.0});
        std::fs::write(dir.path().join(PROGRESS_FILE), old.to_string()).unwrap();
        assert_eq!(read_progress(dir.path()).unwrap().horizon, None);
    }
}
