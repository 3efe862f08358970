//! The artifacts a server holds, each under its name: a classifier behind
//! its batching queue, a language model behind its generation queue.

use super::batcher::{BatchPolicy, BatchQueue};
use super::generation::GenerationQueue;
use super::metrics::Metrics;
use crate::Generator;
use anyhow::{Context, Result, bail};
use artifact::Classifier;
use artifact::files::{METRICS_FILE, VOCAB_FILE, read_json};
use model::LstmBackend;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where an artifact is and the name it is served under.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSource {
    pub name: String,
    pub dir: PathBuf,
}

impl ModelSource {
    /// `DIR` (served under the directory's name) or `NAME=DIR`.
    pub fn parse(arg: &str) -> Result<Self, String> {
        let (name, dir) = match arg.split_once('=') {
            Some((name, dir)) => (name.to_string(), PathBuf::from(dir)),
            None => {
                let dir = PathBuf::from(arg);
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, dir)
            }
        };
        let url_safe = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if name.is_empty() || !name.chars().all(url_safe) {
            return Err(format!(
                "{arg:?} gives the model name {name:?}: a name is letters, digits, '-', '_' and '.' (write NAME=DIR to choose one)"
            ));
        }
        Ok(Self { name, dir })
    }
}

/// What `GET /v1/models` says of each model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    /// `classifier` or `language-model`.
    pub kind: &'static str,
    /// What the model answers: `classify` or `generate`.
    pub endpoint: String,
    /// The artifact's `config.json`, as loaded.
    pub config: serde_json::Value,
    /// The artifact's `metrics.json` (null when it has none).
    pub metrics: serde_json::Value,
    /// The classes, for a classifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// The longest text a classifier reads, in tokens (the rest is cut, as the CLI does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_seq_len: Option<usize>,
}

pub enum Handle {
    Classifier(BatchQueue),
    LanguageModel {
        queue: GenerationQueue,
        /// The characters the model knows, in id order (to encode prompts).
        vocab: data::CharVocab,
    },
}

pub struct Served {
    pub info: ModelInfo,
    pub handle: Handle,
}

/// Every served model, by name.
pub type Models = BTreeMap<String, Served>;

/// Loads every artifact (each checked as the CLI checks it) and starts its
/// worker. Two artifacts under one name are refused.
pub fn load_all<B: LstmBackend>(
    sources: &[ModelSource],
    policy: BatchPolicy,
    metrics: &Arc<Metrics>,
    device: &B::Device,
) -> Result<Models> {
    let mut models = Models::new();
    for source in sources {
        if models.contains_key(&source.name) {
            bail!(
                "two artifacts are named {:?}: serve one of them as OTHER={}",
                source.name,
                source.dir.display()
            );
        }
        let served = load::<B>(source, policy, metrics.clone(), device)
            .with_context(|| format!("loading model {:?}", source.name))?;
        models.insert(source.name.clone(), served);
    }
    Ok(models)
}

fn load<B: LstmBackend>(
    source: &ModelSource,
    policy: BatchPolicy,
    metrics: Arc<Metrics>,
    device: &B::Device,
) -> Result<Served> {
    let dir = &source.dir;
    let name = &source.name;
    let recorded_metrics = read_metrics(dir)?;
    // A directory with a character vocabulary is a language model; anything
    // else is loaded as a classifier, whose checks say what is missing.
    if dir.join(VOCAB_FILE).is_file() {
        let generator = Generator::<B>::load(dir, device)?;
        let info = ModelInfo {
            name: name.clone(),
            kind: "language-model",
            endpoint: format!("/v1/models/{name}/generate"),
            config: serde_json::to_value(&generator.lm.config)?,
            metrics: recorded_metrics,
            labels: None,
            max_seq_len: None,
        };
        let vocab = generator.lm.vocab.clone();
        let queue = GenerationQueue::start(name, generator, policy.queue, &metrics)?;
        return Ok(Served {
            info,
            handle: Handle::LanguageModel { queue, vocab },
        });
    }
    let classifier = Classifier::<B>::load(dir, device)?;
    let info = ModelInfo {
        name: name.clone(),
        kind: "classifier",
        endpoint: format!("/v1/models/{name}/classify"),
        config: serde_json::to_value(&classifier.config)?,
        metrics: recorded_metrics,
        labels: Some(classifier.config.labels.clone()),
        max_seq_len: Some(classifier.config.max_seq_len),
    };
    let queue = BatchQueue::start(name, classifier, policy, metrics)?;
    Ok(Served {
        info,
        handle: Handle::Classifier(queue),
    })
}

/// `metrics.json` as it is on disk, or null when the artifact has none.
fn read_metrics(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join(METRICS_FILE);
    if !path.is_file() {
        return Ok(serde_json::Value::Null);
    }
    read_json(&path, "a JSON metrics record")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_directory_or_before_the_equals_sign() {
        let source = ModelSource::parse("artifacts/mr").unwrap();
        assert_eq!(source.name, "mr");
        assert_eq!(source.dir, PathBuf::from("artifacts/mr"));
        let source = ModelSource::parse("reviews=artifacts/mr-big").unwrap();
        assert_eq!(source.name, "reviews");
        assert_eq!(source.dir, PathBuf::from("artifacts/mr-big"));
        for bad in ["/", "a b=artifacts/mr", "=artifacts/mr", "na/me=x"] {
            let err = ModelSource::parse(bad).unwrap_err();
            assert!(err.contains("model name"), "{bad}: {err}");
        }
    }
}
