//! The artifact directory and how it is written.
//!
//! ```text
//! artifacts/mr/
//!   config.json     ArtifactConfig: model config, labels, max_seq_len, training options
//!   tokenizer.json  the vocabulary, in the `tokenizers` crate's format
//!   model.mpk       the weights (Burn's named MessagePack record, full precision)
//!   metrics.json    Metrics of the run that produced it
//! ```
//!
//! Invariant: a directory at the artifact path is always complete. Files are
//! written into a hidden staging directory beside it, which replaces the old
//! artifact with a rename only once everything is on disk; an interrupted run
//! leaves the previous artifact (or nothing) in place.

use anyhow::{Context, Result, bail};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use model::TextClassifierConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The recorder adds the `.mpk` extension to this stem.
pub const WEIGHTS_STEM: &str = "model";
pub const WEIGHTS_FILE: &str = "model.mpk";
pub const METRICS_FILE: &str = "metrics.json";

/// The recorder of the weights: named fields, so a mismatch says which one.
pub type WeightsRecorder = NamedMpkFileRecorder<FullPrecisionSettings>;

/// Everything needed to rebuild the model and its input pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArtifactConfig {
    pub model: TextClassifierConfig,
    /// Class names, in the order of the model's outputs.
    pub labels: Vec<String>,
    /// Longer inputs are truncated to this many tokens.
    pub max_seq_len: usize,
    /// The options of the training run, kept for the record.
    #[serde(default)]
    pub training: serde_json::Value,
}

/// What the run that produced the artifact measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    pub test_accuracy: f64,
    pub valid_accuracy: f64,
    /// The epoch whose weights were kept (see `selected_by`), 1-based.
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub train_seconds: f64,
    pub backend: String,
    /// Cargo profile of the binary that trained (`release` or `debug`).
    pub profile: String,
    /// Accuracy on the training split with the kept weights (dropout off).
    #[serde(default)]
    pub train_accuracy: Option<f64>,
    /// How the kept epoch was chosen: `loss` (lowest validation loss),
    /// `accuracy` (highest validation accuracy) or `last`.
    #[serde(default)]
    pub selected_by: String,
    /// The mean loss and accuracy of every epoch on both splits.
    #[serde(default)]
    pub history: History,
    /// What a `train compress` step did to the model, if one made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
}

/// Per-epoch means over the batches, as burn-train logged them (the training
/// split with dropout on).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub train_loss: Vec<f64>,
    pub valid_loss: Vec<f64>,
    /// Percent.
    pub train_accuracy: Vec<f64>,
    /// Percent.
    pub valid_accuracy: Vec<f64>,
}

/// How a compressed artifact was made from another one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Compression {
    /// `quantize`, `prune` or `distill`.
    pub method: String,
    /// The artifact it was made from.
    pub from: String,
    /// The fraction of exactly-zero weights among all parameters.
    pub sparsity: f64,
    pub parameters: usize,
    pub nonzero_parameters: usize,
    /// The method's own settings (scheme, target sparsity, temperature…).
    pub settings: serde_json::Value,
}

impl ArtifactConfig {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid artifact config", path.display()))?;
        migrate(&mut value);
        serde_json::from_value(value)
            .with_context(|| format!("{} is not a valid artifact config", path.display()))
    }
}

/// Reads configs written before the classifier's single `dropout` became
/// `embedding_dropout` and `output_dropout` (it applied to both) and
/// `recurrent_dropout` was added (there was none).
fn migrate(config: &mut serde_json::Value) {
    let Some(model) = config.get_mut("model").and_then(|m| m.as_object_mut()) else {
        return;
    };
    if let Some(dropout) = model.remove("dropout") {
        for field in ["embedding_dropout", "output_dropout"] {
            model.entry(field).or_insert_with(|| dropout.clone());
        }
        model
            .entry("recurrent_dropout")
            .or_insert(serde_json::json!(0.0));
    }
}

/// The files every artifact has; each kind of model adds its own (the
/// classifier its tokenizer, the language model its character vocabulary).
pub const COMMON_FILES: [&str; 2] = [CONFIG_FILE, WEIGHTS_FILE];

/// Checks that `dir` looks like an artifact with `files` before anything is
/// loaded, so that the error names what is missing. `train_command` is how
/// a user makes one (for the message).
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

/// Loads weights into a model built from `config`, and checks that every
/// parameter has the shape the config implies.
pub fn load_weights<B: Backend, M: Module<B>>(
    dir: &Path,
    fresh: M,
    device: &B::Device,
) -> Result<M> {
    let path = dir.join(WEIGHTS_FILE);
    let expected = ParamShapes::of(&fresh);
    // Burn's record loading panics, rather than erroring, when the weights
    // hold a different variant of an enum module (an LSTM's weights under a
    // GRU config): turn that into an error too, without the panic message.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fresh.load_file(dir.join(WEIGHTS_STEM), &WeightsRecorder::new(), device)
    }));
    std::panic::set_hook(hook);
    let loaded = match attempt {
        Ok(loaded) => {
            loaded.with_context(|| format!("cannot load weights from {}", path.display()))?
        }
        Err(payload) => {
            let reason = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            bail!(
                "{} does not match {}: the weights are of a different model ({reason})",
                path.display(),
                dir.join(CONFIG_FILE).display()
            );
        }
    };
    let found = ParamShapes::of(&loaded);
    for ((name, want), (_, got)) in expected.shapes.iter().zip(&found.shapes) {
        if want != got {
            bail!(
                "{} does not match {}: parameter `{name}` has shape {got:?} in the weights but {want:?} in the config",
                path.display(),
                dir.join(CONFIG_FILE).display()
            );
        }
    }
    check_quantized_backend(found.quantized, &B::name(device), &path)?;
    Ok(loaded)
}

/// int8 weights (from `train compress quantize`) run correctly on ndarray
/// only: with Burn 0.21, an int8 record made on ndarray loads on wgpu but
/// gives other logits (measured: 0.17 apart on a test model), and quantizing
/// on wgpu itself fails. So a quantized artifact on another backend is an
/// error rather than silently wrong predictions.
pub fn check_quantized_backend(quantized: bool, backend: &str, weights: &Path) -> Result<()> {
    if quantized && !backend.to_lowercase().contains("ndarray") {
        bail!(
            "{} holds int8 weights, which Burn 0.21 runs correctly on the ndarray backend only, not on {backend}: use the default (ndarray) build",
            weights.display()
        );
    }
    Ok(())
}

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
        check_dir(&self.staging, &COMMON_FILES, "cargo run --release -p train")?;
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

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// The dotted path and shape of every float parameter, in visiting order,
/// and whether any of them is quantized.
struct ParamShapes {
    shapes: Vec<(String, Vec<usize>)>,
    quantized: bool,
}

impl ParamShapes {
    fn of<B: Backend, M: Module<B>>(module: &M) -> Self {
        let mut visitor = ShapeVisitor {
            path: Vec::new(),
            shapes: ParamShapes {
                shapes: Vec::new(),
                quantized: false,
            },
        };
        module.visit(&mut visitor);
        visitor.shapes
    }
}

struct ShapeVisitor {
    path: Vec<String>,
    shapes: ParamShapes,
}

impl<B: Backend> ModuleVisitor<B> for ShapeVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        self.shapes.quantized |= matches!(value.dtype(), burn::tensor::DType::QFloat(_));
        self.shapes
            .shapes
            .push((self.path.join("."), value.dims().to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::module::Quantizer;
    use burn::tensor::ops::QuantizedTensor;
    use burn::tensor::quantization::{Calibration, QTensorPrimitive, QuantParam, QuantValue};

    #[test]
    fn configs_with_the_old_single_dropout_still_load() {
        let mut old = serde_json::json!({
            "model": {"vocab_size": 10, "num_classes": 2, "d_embed": 8, "d_hidden": 8,
                      "dropout": 0.3, "cell": "lstm", "layers": 1, "bidirectional": false},
            "labels": ["neg", "pos"],
            "max_seq_len": 64
        });
        migrate(&mut old);
        let config: ArtifactConfig = serde_json::from_value(old).unwrap();
        assert_eq!(config.model.embedding_dropout, 0.3);
        assert_eq!(config.model.output_dropout, 0.3);
        assert_eq!(config.model.recurrent_dropout, 0.0);
    }

    #[test]
    fn int8_weights_are_refused_off_ndarray() {
        let weights = Path::new("artifacts/mr-int8/model.mpk");
        assert!(check_quantized_backend(true, "ndarray", weights).is_ok());
        assert!(check_quantized_backend(false, "fusion<cubecl<wgpu>>", weights).is_ok());
        let err = check_quantized_backend(true, "fusion<cubecl<wgpu>>", weights)
            .unwrap_err()
            .to_string();
        assert!(err.contains("artifacts/mr-int8/model.mpk"), "{err}");
        assert!(err.contains("ndarray"), "{err}");
        assert_eq!(NdArray::<f32>::name(&Default::default()), "ndarray");

        let device = Default::default();
        let model = TextClassifierConfig::new(10, 2).init::<NdArray>(&device);
        assert!(!ParamShapes::of(&model).quantized);
        let scheme = <QuantizedTensor<NdArray> as QTensorPrimitive>::default_scheme()
            .with_value(QuantValue::Q8S)
            .with_param(QuantParam::F32);
        let quantized = model.quantize_weights(&mut Quantizer {
            calibration: Calibration::MinMax,
            scheme,
        });
        assert!(ParamShapes::of(&quantized).quantized);
    }
}
