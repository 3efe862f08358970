//! Writing an artifact: into a hidden staging directory beside the target,
//! moved into place by rename only once everything is on disk, so that an
//! interrupted run leaves the previous artifact (or nothing) in place.

use crate::files::{
    COMMON_FILES, CONFIG_FILE, METRICS_FILE, TRAIN_CLASSIFIER, WEIGHTS_FILE, WEIGHTS_STEM,
    check_dir, write_json,
};
use crate::weights::WeightsRecorder;
use anyhow::{Context, Result};
use burn::module::Module;
use burn::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Writes an artifact into a staging directory and moves it into place.
pub struct ArtifactWriter {
    staging: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl ArtifactWriter {
    /// Starts a new artifact to be published at `target`.
    pub fn create(target: &Path) -> Result<Self> {
        let name = target
            .file_name()
            .with_context(|| format!("artifact path {} has no directory name", target.display()))?
            .to_string_lossy()
            .into_owned();
        let parent = target.parent().map(Path::to_path_buf).unwrap_or_default();
        let parent = if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent
        };
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        Ok(Self {
            staging,
            target: target.to_path_buf(),
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

    /// Replaces whatever is at the target with the staging directory. The old
    /// artifact is moved aside first and removed only after the new one is in
    /// place, so some complete artifact exists at every moment.
    pub fn commit(mut self) -> Result<PathBuf> {
        check_dir(&self.staging, &COMMON_FILES, TRAIN_CLASSIFIER)?;
        let aside = self.staging.with_extension("old");
        if self.target.exists() {
            std::fs::rename(&self.target, &aside).with_context(|| {
                format!(
                    "cannot move the old artifact {} aside",
                    self.target.display()
                )
            })?;
        }
        std::fs::rename(&self.staging, &self.target).with_context(|| {
            format!("cannot move the new artifact to {}", self.target.display())
        })?;
        self.committed = true;
        if aside.exists() {
            std::fs::remove_dir_all(&aside)?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for ArtifactWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}
