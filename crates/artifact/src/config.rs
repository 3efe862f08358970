//! `config.json`: everything needed to rebuild a model and its input
//! pipeline, with the migrations that keep configs of older code loading.

use crate::files::{CONFIG_FILE, read_json};
use crate::options::{ClassifierTraining, LmTraining, lenient};
use anyhow::{Result, bail};
use model::{CellKind, CharLmConfig, Seq2SeqConfig, TextClassifierConfig, transformer_width_fits};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A classifier's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierConfig {
    pub model: TextClassifierConfig,
    /// Class names, in the order of the model's outputs.
    pub labels: Vec<String>,
    /// Longer inputs are truncated to this many tokens.
    pub max_seq_len: usize,
    /// The options of the training run, kept for the record.
    #[serde(default, deserialize_with = "lenient")]
    pub training: Option<ClassifierTraining>,
}

/// A character language model's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmConfig {
    pub model: CharLmConfig,
    /// The options of the training run, kept for the record.
    #[serde(default, deserialize_with = "lenient")]
    pub training: Option<LmTraining>,
}

/// A translation model's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranslationConfig {
    /// Either architecture, tagged by `"arch"`.
    pub model: Seq2SeqConfig,
    /// Longer sources are cut to this many subword tokens.
    pub max_source_len: usize,
    /// Translations stop at this many subword tokens.
    pub max_target_len: usize,
    /// The options of the training run, kept for the record.
    #[serde(default, deserialize_with = "lenient")]
    pub training: Option<crate::TranslatorTraining>,
}

impl TranslationConfig {
    /// Reads and checks `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let what = format!(
            "a translation model's config (train one with `{}`)",
            crate::files::TRAIN_TRANSLATOR
        );
        // Configs written before the Transformer have no "arch": the LSTM.
        let config: Self = read_migrated(&path, &what, |model| {
            model.entry("arch").or_insert(serde_json::json!("lstm"));
        })?;
        let (mut sizes, dropout) = config.model.sizes();
        sizes.push(("max_source_len", config.max_source_len));
        sizes.push(("max_target_len", config.max_target_len));
        positive(&path, &sizes)?;
        dropouts(&path, &[("model.dropout", dropout)])?;
        if let Seq2SeqConfig::Transformer(t) = &config.model {
            if !transformer_width_fits(t.d_model, t.n_heads) {
                bail!(
                    "{}: model.d_model ({}) must be even and a multiple of model.n_heads ({})",
                    path.display(),
                    t.d_model,
                    t.n_heads
                );
            }
        }
        Ok(config)
    }
}

impl ClassifierConfig {
    /// Reads and checks `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let what = "a classifier's artifact config";
        let config: Self = read_migrated(&path, what, migrate)?;
        config.check(&path)?;
        Ok(config)
    }

    /// The checks that keep a hand-edited or corrupted config from building
    /// a model that cannot run.
    fn check(&self, path: &Path) -> Result<()> {
        let model = &self.model;
        positive(
            path,
            &[
                ("model.vocab_size", model.vocab_size),
                ("model.num_classes", model.num_classes),
                ("model.d_embed", model.d_embed),
                ("model.d_hidden", model.d_hidden),
                ("model.layers", model.layers),
                ("max_seq_len", self.max_seq_len),
            ],
        )?;
        dropouts(
            path,
            &[
                ("model.embedding_dropout", model.embedding_dropout),
                ("model.output_dropout", model.output_dropout),
                ("model.recurrent_dropout", model.recurrent_dropout),
            ],
        )?;
        if model.cell == CellKind::Transformer {
            if !transformer_width_fits(model.d_hidden, model.heads) {
                bail!(
                    "{}: model.d_hidden ({}) of a Transformer must be even and a multiple of model.heads ({})",
                    path.display(),
                    model.d_hidden,
                    model.heads
                );
            }
            if model.bidirectional || model.recurrent_dropout != 0.0 {
                bail!(
                    "{}: a Transformer encoder has no direction and no recurrence: model.bidirectional must be false and model.recurrent_dropout 0",
                    path.display()
                );
            }
        }
        for (i, label) in self.labels.iter().enumerate() {
            if label.trim().is_empty() || self.labels[..i].contains(label) {
                bail!(
                    "{}: labels[{i}] is {label:?}: labels must be distinct and not blank",
                    path.display()
                );
            }
        }
        if self.labels.len() != model.num_classes {
            bail!(
                "{}: {} labels for a model of {} classes (model.num_classes)",
                path.display(),
                self.labels.len(),
                model.num_classes
            );
        }
        Ok(())
    }
}

impl LmConfig {
    /// Reads and checks `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let what = format!(
            "a language-model config (train one with `{}`)",
            crate::files::TRAIN_LM
        );
        // Configs written before the recurrent dropout have none.
        let config: Self = read_migrated(&path, &what, |model| {
            model
                .entry("recurrent_dropout")
                .or_insert(serde_json::json!(0.0));
        })?;
        let model = &config.model;
        positive(
            &path,
            &[
                ("model.vocab_size", model.vocab_size),
                ("model.d_embed", model.d_embed),
                ("model.d_hidden", model.d_hidden),
                ("model.layers", model.layers),
            ],
        )?;
        dropouts(
            &path,
            &[
                ("model.dropout", model.dropout),
                ("model.recurrent_dropout", model.recurrent_dropout),
            ],
        )?;
        Ok(config)
    }
}

/// Refuses a size of zero, naming the file and the field.
fn positive(path: &Path, fields: &[(&str, usize)]) -> Result<()> {
    for (field, value) in fields {
        if *value == 0 {
            bail!("{}: {field} must be at least 1", path.display());
        }
    }
    Ok(())
}

/// Refuses a dropout probability outside [0, 1), naming the file and the field.
fn dropouts(path: &Path, fields: &[(&str, f64)]) -> Result<()> {
    for (field, value) in fields {
        if !(0.0..1.0).contains(value) {
            bail!(
                "{}: {field} is {value}, but a dropout probability must be in [0, 1)",
                path.display()
            );
        }
    }
    Ok(())
}

/// Reads configs written before the classifier's single `dropout` became
/// `embedding_dropout` and `output_dropout` (it applied to both) and
/// `recurrent_dropout` was added (there was none), and before the
/// Transformer encoder brought `heads` (which recurrent encoders ignore).
/// Reads the config at `path` (`what` names it in errors), letting
/// `migrate` fill in its `"model"` what older code did not write.
fn read_migrated<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    migrate: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> Result<T> {
    let mut value: serde_json::Value = read_json(path, what)?;
    if let Some(model) = value.get_mut("model").and_then(|m| m.as_object_mut()) {
        migrate(model);
    }
    serde_json::from_value(value)
        .map_err(|e| anyhow::anyhow!("{} is not {what}: {e}", path.display()))
}

/// A classifier's `"model"` as older code wrote it, brought up to date.
fn migrate(model: &mut serde_json::Map<String, serde_json::Value>) {
    model
        .entry("heads")
        .or_insert(serde_json::json!(TextClassifierConfig::new(1, 1).heads));
    if let Some(dropout) = model.remove("dropout") {
        for field in ["embedding_dropout", "output_dropout"] {
            model.entry(field).or_insert_with(|| dropout.clone());
        }
        model
            .entry("recurrent_dropout")
            .or_insert(serde_json::json!(0.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_with_the_old_single_dropout_and_untyped_training_still_load() {
        let mut old = serde_json::json!({
            "model": {"vocab_size": 10, "num_classes": 2, "d_embed": 8, "d_hidden": 8,
                      "dropout": 0.3, "cell": "lstm", "layers": 1, "bidirectional": false},
            "labels": ["neg", "pos"],
            "max_seq_len": 64,
            "training": {"epochs": "ten", "dropout": 0.3}
        });
        migrate(old["model"].as_object_mut().unwrap());
        let config: ClassifierConfig = serde_json::from_value(old).unwrap();
        assert_eq!(config.model.embedding_dropout, 0.3);
        assert_eq!(config.model.output_dropout, 0.3);
        assert_eq!(config.model.recurrent_dropout, 0.0);
        assert_eq!(config.model.heads, 4, "configs from before the Transformer");
        assert_eq!(config.training, None);
    }

    /// A language model's config from before the recurrent dropout loads
    /// with none; a recurrent dropout that cannot be is refused, named.
    #[test]
    fn lm_configs_without_recurrent_dropout_load_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let write = |recurrent: Option<f64>| {
            let mut model = serde_json::json!(
                {"vocab_size": 76, "d_embed": 64, "d_hidden": 512, "layers": 2, "dropout": 0.3}
            );
            if let Some(p) = recurrent {
                model["recurrent_dropout"] = serde_json::json!(p);
            }
            let config = serde_json::json!({"model": model});
            std::fs::write(dir.path().join(CONFIG_FILE), config.to_string()).unwrap();
        };
        write(None);
        assert_eq!(
            LmConfig::load(dir.path()).unwrap().model.recurrent_dropout,
            0.0
        );
        write(Some(0.25));
        assert_eq!(
            LmConfig::load(dir.path()).unwrap().model.recurrent_dropout,
            0.25
        );
        write(Some(1.0));
        let err = LmConfig::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with("config.json: model.recurrent_dropout is 1, but a dropout probability must be in [0, 1)"),
            "{err}"
        );
    }

    #[test]
    fn a_config_that_cannot_run_is_refused_naming_the_field() {
        let config = |labels: &[&str], max_seq_len: usize| ClassifierConfig {
            model: TextClassifierConfig::new(10, 2),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            max_seq_len,
            training: None,
        };
        let path = Path::new("a/config.json");
        assert!(config(&["neg", "pos"], 64).check(path).is_ok());
        let err = config(&["neg", "pos"], 0).check(path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a/config.json: max_seq_len must be at least 1"
        );
        let err = config(&["neg", "pos", "mixed"], 64)
            .check(path)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("3 labels for a model of 2 classes"),
            "{err}"
        );

        let transformer = |d_hidden: usize, heads: usize, bidirectional: bool| ClassifierConfig {
            model: TextClassifierConfig::new(10, 2)
                .with_cell(CellKind::Transformer)
                .with_d_hidden(d_hidden)
                .with_heads(heads)
                .with_bidirectional(bidirectional),
            ..config(&["neg", "pos"], 64)
        };
        assert!(transformer(8, 4, false).check(path).is_ok());
        for (bad, field) in [
            (transformer(10, 4, false), "model.heads (4)"),
            (transformer(8, 0, false), "model.heads (0)"),
            (transformer(8, 4, true), "model.bidirectional"),
        ] {
            let err = bad.check(path).unwrap_err().to_string();
            assert!(
                err.starts_with("a/config.json: ") && err.contains(field),
                "{err}"
            );
        }
    }
}
