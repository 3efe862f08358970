//! Writing an artifact without losing anything.
//!
//! - Files go into a hidden staging directory beside the target
//!   (`.NAME.partial`), which replaces the target only once everything is on
//!   disk and synced: by an atomic exchange of the two directories on Linux
//!   (`renameat2(RENAME_EXCHANGE)`), so a crash at any moment leaves the old
//!   artifact or the new one in place, never neither.
//! - Only an artifact this project wrote is ever replaced (it carries
//!   [`MARKER_FILE`]; artifacts of older code are recognized by their
//!   files). Anything else at the target — a file, a directory of notes — is
//!   refused with a message, as is a target that is, holds or lies inside
//!   one of the run's inputs (the dataset, the artifact being compressed),
//!   compared after canonicalization.
//! - A lock file beside the target (`.NAME.lock`, an OS lock released when
//!   the process ends, however it ends) refuses a second run writing the same
//!   artifact at once.
//! - A run that stops without publishing (killed, Ctrl-C, an error) after
//!   finishing an epoch leaves its staging directory, with the progress
//!   record and checkpoints a `--resume` continues from; the next run of the
//!   same artifact either resumes it (`--resume`) or removes it, and says
//!   which.

use crate::files::{
    COMMON_FILES, CONFIG_FILE, MARKER_FILE, METRICS_FILE, PROGRESS_FILE, TOKENIZER_FILE,
    TRAIN_CLASSIFIER, TRAINING_DIR, VOCAB_FILE, WEIGHTS_FILE, WEIGHTS_STEM, check_dir, write_json,
};
use crate::weights::WeightsRecorder;
use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Component, Path, PathBuf};

/// What [`MARKER_FILE`] holds: who wrote the directory, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Always [`Marker::WRITER`].
    pub written_by: String,
    /// `classifier` or `language-model`.
    pub kind: String,
    pub format_version: u32,
}

impl Marker {
    pub const WRITER: &'static str = "burn-seq";

    pub fn new(kind: &str) -> Self {
        Self {
            written_by: Self::WRITER.into(),
            kind: kind.into(),
            format_version: 1,
        }
    }
}

/// Writes an artifact into a staging directory and moves it into place.
pub struct ArtifactWriter {
    staging: PathBuf,
    target: PathBuf,
    lock_path: PathBuf,
    /// Held until the writer is dropped; the OS releases it if the process dies.
    _lock: File,
    committed: bool,
}

impl ArtifactWriter {
    /// Starts a new artifact of `kind` to be published at `target`, from a
    /// run that reads `inputs`. A staging directory left by an interrupted
    /// run is removed (and the user told).
    pub fn create(target: &Path, kind: &str, inputs: &[&Path]) -> Result<Self> {
        Self::open(target, kind, inputs, false)
    }

    /// As [`create`](Self::create), but with `resume` the staging directory
    /// of an interrupted run of the same kind is kept for the run to
    /// continue from.
    pub fn create_or_resume(
        target: &Path,
        kind: &str,
        inputs: &[&Path],
        resume: bool,
    ) -> Result<Self> {
        Self::open(target, kind, inputs, resume)
    }

    fn open(target: &Path, kind: &str, inputs: &[&Path], resume: bool) -> Result<Self> {
        let name = target
            .file_name()
            .filter(|_| !matches!(target.components().next_back(), Some(Component::ParentDir)))
            .with_context(|| format!("artifact path {} has no directory name", target.display()))?
            .to_string_lossy()
            .into_owned();
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        check_apart_from_inputs(target, inputs)?;
        check_replaceable(target)?;
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;

        let lock_path = parent.join(format!(".{name}.lock"));
        let lock = File::create(&lock_path)
            .with_context(|| format!("cannot create {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            bail!(
                "another run is writing {} right now (it holds {}): wait for it, or choose another --artifact-dir",
                target.display(),
                lock_path.display()
            );
        }
        remove_legacy_staging(&parent, &name)?;

        let staging = parent.join(format!(".{name}.partial"));
        let same_kind = crate::files::read_json::<Marker>(&staging.join(MARKER_FILE), "a marker")
            .is_ok_and(|m| m.written_by == Marker::WRITER && m.kind == kind);
        if staging.is_dir() && resume && same_kind {
            return Ok(Self {
                staging,
                target: target.to_path_buf(),
                lock_path,
                _lock: lock,
                committed: false,
            });
        }
        if staging.is_dir() {
            let resumable = resumable(&staging);
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("cannot remove {}", staging.display()))?;
            if resumable && !resume {
                println!(
                    "removed {}, left by an interrupted run (--resume would have continued it)",
                    staging.display()
                );
            } else {
                println!("removed {}, left by an interrupted run", staging.display());
            }
        } else if staging.exists() {
            bail!(
                "{} exists and is not a staging directory: remove it, or choose another --artifact-dir",
                staging.display()
            );
        }
        std::fs::create_dir(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        write_json(&staging.join(MARKER_FILE), &Marker::new(kind))?;
        Ok(Self {
            staging,
            target: target.to_path_buf(),
            lock_path,
            _lock: lock,
            committed: false,
        })
    }

    /// The directory to write into until [`commit`](Self::commit).
    pub fn dir(&self) -> &Path {
        &self.staging
    }

    pub fn write_config<C: Serialize>(&self, config: &C) -> Result<()> {
        write_json(&self.staging.join(CONFIG_FILE), config)
    }

    pub fn write_metrics<M: Serialize>(&self, metrics: &M) -> Result<()> {
        write_json(&self.staging.join(METRICS_FILE), metrics)
    }

    /// Any other JSON file of the artifact (the language model's vocabulary).
    pub fn write_json<T: Serialize>(&self, file: &str, value: &T) -> Result<()> {
        write_json(&self.staging.join(file), value)
    }

    pub fn write_weights<B: Backend, M: Module<B>>(&self, model: M) -> Result<()> {
        model
            .save_file(self.staging.join(WEIGHTS_STEM), &WeightsRecorder::new())
            .with_context(|| format!("cannot write {}", self.staging.join(WEIGHTS_FILE).display()))
    }

    /// Syncs the staging directory and puts it in the target's place; the
    /// old artifact, if any, is removed after the swap.
    pub fn commit(mut self) -> Result<PathBuf> {
        check_dir(&self.staging, &COMMON_FILES, TRAIN_CLASSIFIER)?;
        sync_tree(&self.staging)?;
        // The target is checked again: something else may have appeared
        // there while training ran.
        check_replaceable(&self.target)?;
        if self.target.exists() {
            swap(&self.staging, &self.target)?;
            // The staging path now holds the old artifact.
            std::fs::remove_dir_all(&self.staging).with_context(|| {
                format!(
                    "cannot remove the old artifact at {}",
                    self.staging.display()
                )
            })?;
        } else {
            std::fs::rename(&self.staging, &self.target).with_context(|| {
                format!("cannot move the new artifact to {}", self.target.display())
            })?;
        }
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for ArtifactWriter {
    fn drop(&mut self) {
        // A run that finished an epoch keeps what `--resume` needs.
        if !self.committed && !resumable(&self.staging) {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
        // Removed while still held, so nothing is left beside the artifact.
        // (A run that opened the file just before may then lock an unlinked
        // file; the window is the length of this call.)
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Whether a staging directory holds a run that `--resume` can continue.
/// (It has a progress record of at least one finished epoch.)
fn resumable(staging: &Path) -> bool {
    let path = staging.join(TRAINING_DIR).join(PROGRESS_FILE);
    crate::files::read_json::<serde_json::Value>(&path, "a progress record")
        .is_ok_and(|p| p["epochs_done"].as_u64().is_some_and(|n| n > 0))
}

/// Whether `dir` is an artifact this project wrote: it has the marker, or
/// (written by older code, before the marker) it holds the files of an
/// artifact and nothing else.
pub fn is_artifact(dir: &Path) -> bool {
    if dir.join(MARKER_FILE).is_file() {
        return crate::files::read_json::<Marker>(&dir.join(MARKER_FILE), "a marker")
            .is_ok_and(|m| m.written_by == Marker::WRITER);
    }
    let known = [
        CONFIG_FILE,
        TOKENIZER_FILE,
        VOCAB_FILE,
        WEIGHTS_FILE,
        METRICS_FILE,
        TRAINING_DIR,
    ];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    COMMON_FILES.iter().all(|f| names.iter().any(|n| n == f))
        && dir.join(METRICS_FILE).is_file()
        && names.iter().all(|n| known.contains(&n.as_str()))
}

/// Refuses a target that exists and is not an artifact of ours.
fn check_replaceable(target: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(target) else {
        return Ok(());
    };
    if !meta.is_dir() {
        bail!(
            "{} exists and is not a directory: the artifact would replace it; choose another --artifact-dir",
            target.display()
        );
    }
    if !is_artifact(target) {
        bail!(
            "{} exists and is not an artifact written by this project (it has no {MARKER_FILE}): nothing there is replaced; choose another --artifact-dir, or move it away yourself",
            target.display()
        );
    }
    Ok(())
}

/// Refuses a target that is, holds or lies inside one of `inputs`.
fn check_apart_from_inputs(target: &Path, inputs: &[&Path]) -> Result<()> {
    let target_abs = absolute(target)?;
    for input in inputs {
        let input_abs = absolute(input)?;
        if target_abs == input_abs {
            bail!(
                "--artifact-dir {} is the input {}: writing the artifact would replace it",
                target.display(),
                input.display()
            );
        }
        if input_abs.starts_with(&target_abs) {
            bail!(
                "--artifact-dir {} holds the input {}: writing the artifact would delete it",
                target.display(),
                input.display()
            );
        }
        if target_abs.starts_with(&input_abs) && input_abs.is_dir() {
            bail!(
                "--artifact-dir {} lies inside the input directory {}: write the artifact elsewhere",
                target.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// `path` made absolute with symbolic links and `..` resolved as far as it
/// exists (the part that does not exist yet is appended as written).
fn absolute(path: &Path) -> Result<PathBuf> {
    let path =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut out = canonical;
            for part in rest.iter().rev() {
                match part {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return Ok(out);
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return Ok(path.clone()),
        }
    }
}

/// Exchanges two directories atomically where the OS can (Linux); elsewhere
/// moves the target aside first (a crash in between leaves it beside).
fn swap(staging: &Path, target: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let a = CString::new(staging.as_os_str().as_bytes())?;
        let b = CString::new(target.as_os_str().as_bytes())?;
        // SAFETY: two valid NUL-terminated paths relative to the working directory.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        // Filesystems without the flag fall back to two renames.
        if !matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
            return Err(err).with_context(|| {
                format!(
                    "cannot put the new artifact in place of {}",
                    target.display()
                )
            });
        }
    }
    let aside = staging.with_extension("old");
    std::fs::rename(target, &aside)
        .with_context(|| format!("cannot move the old artifact {} aside", target.display()))?;
    std::fs::rename(staging, target)
        .with_context(|| format!("cannot move the new artifact to {}", target.display()))?;
    std::fs::rename(&aside, staging)
        .with_context(|| format!("cannot move {} back", aside.display()))
}

/// Flushes every file under `dir`, and the directories, to the disk.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot sync {}", path.display()))?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// Staging directories of older code were named `.NAME.partial-PID`; none can
/// be resumed, so they go (with a note).
fn remove_legacy_staging(parent: &Path, name: &str) -> Result<()> {
    let prefix = format!(".{name}.partial-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = pid.strip_suffix(".old").unwrap_or(pid);
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || !entry.path().is_dir() {
            continue;
        }
        std::fs::remove_dir_all(entry.path())
            .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        println!(
            "removed {}, left by an interrupted run of older code",
            entry.path().display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished artifact at `target` holding `note` in its config.
    fn publish(target: &Path, inputs: &[&Path], note: &str) -> Result<PathBuf> {
        let writer = ArtifactWriter::create(target, "classifier", inputs)?;
        std::fs::write(writer.dir().join(CONFIG_FILE), note)?;
        std::fs::write(writer.dir().join(WEIGHTS_FILE), "weights")?;
        writer.commit()
    }

    #[test]
    fn a_previous_artifact_is_replaced_and_nothing_is_left_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("mr");
        publish(&target, &[], "one").unwrap();
        publish(&target, &[], "two").unwrap();
        assert_eq!(
            std::fs::read_to_string(target.join(CONFIG_FILE)).unwrap(),
            "two"
        );
        assert!(is_artifact(&target));
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["mr"]);
    }

    #[test]
    fn what_the_project_did_not_write_is_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        // A directory of the user's notes.
        let notes = tmp.path().join("notes");
        std::fs::create_dir(&notes).unwrap();
        std::fs::write(notes.join("todo.txt"), "keep me").unwrap();
        let err = publish(&notes, &[], "x").unwrap_err().to_string();
        assert!(
            err.contains("is not an artifact written by this project"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(notes.join("todo.txt")).unwrap(),
            "keep me"
        );
        // A file.
        let file = tmp.path().join("file");
        std::fs::write(&file, "data").unwrap();
        let err = publish(&file, &[], "x").unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");
        // The dataset itself, a directory inside it, one holding it, and the
        // same place spelled another way.
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("train.tsv"), "pos\tfine\n").unwrap();
        for (target, message) in [
            (data.clone(), "is the input"),
            (data.join("out"), "lies inside the input directory"),
            (tmp.path().to_path_buf(), "holds the input"),
            (tmp.path().join(".").join("data"), "is the input"),
        ] {
            let err = publish(&target, &[&data], "x").unwrap_err().to_string();
            assert!(err.contains(message), "{}: {err}", target.display());
        }
        assert!(data.join("train.tsv").is_file());
        assert!(!data.join("out").exists());
    }

    #[test]
    fn a_second_writer_of_the_same_artifact_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("mr");
        let first = ArtifactWriter::create(&target, "classifier", &[]).unwrap();
        let err = ArtifactWriter::create(&target, "classifier", &[])
            .err()
            .expect("the second writer must be refused")
            .to_string();
        assert!(err.contains("another run is writing"), "{err}");
        assert!(first.dir().is_dir(), "the first run's staging is untouched");
        drop(first);
        assert!(ArtifactWriter::create(&target, "classifier", &[]).is_ok());
    }
}
