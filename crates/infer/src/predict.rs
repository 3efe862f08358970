//! Predicting with a loaded classifier: labels, probabilities, and the
//! attention weight of every token.

use crate::artifact::{self, ArtifactConfig};
use anyhow::{Context, Result};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use data::{LabelledText, TextBatcher, UNK_TOKEN, WordTokenizer};
use model::{LstmBackend, TextClassifier};
use serde::Serialize;
use std::path::Path;

/// A model with its tokenizer and config: all inference needs.
pub struct Classifier<B: Backend> {
    pub model: TextClassifier<B>,
    pub tokenizer: WordTokenizer,
    pub config: ArtifactConfig,
    device: B::Device,
}

/// How much attention the model paid to one token.
#[derive(Debug, Clone, Serialize)]
pub struct TokenWeight {
    pub token: String,
    pub weight: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub text: String,
    pub label: String,
    /// One probability per class, in the order of `labels`.
    pub probabilities: Vec<f32>,
    pub labels: Vec<String>,
    /// The tokens the model saw (after truncation) with their attention weights.
    pub attention: Vec<TokenWeight>,
}

/// Accuracy and confusion matrix over a labelled set.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub labels: Vec<String>,
    pub total: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl<B: LstmBackend> Classifier<B> {
    /// Loads an artifact directory (see [`artifact`]).
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        if dir.join(crate::generate::VOCAB_FILE).is_file()
            && !dir.join(artifact::TOKENIZER_FILE).exists()
        {
            anyhow::bail!(
                "{} is a language-model artifact (it has {}), not a classifier: generate text with `infer generate --artifact-dir {}`",
                dir.display(),
                crate::generate::VOCAB_FILE,
                dir.display()
            );
        }
        artifact::check_dir(
            dir,
            &[
                artifact::CONFIG_FILE,
                artifact::TOKENIZER_FILE,
                artifact::WEIGHTS_FILE,
            ],
            "cargo run --release -p train",
        )?;
        let config = ArtifactConfig::load(dir)?;
        let tokenizer_path = dir.join(artifact::TOKENIZER_FILE);
        let tokenizer = WordTokenizer::load(&tokenizer_path)?;
        if tokenizer.vocab_size() != config.model.vocab_size {
            anyhow::bail!(
                "{} has {} tokens but {} says vocab_size = {}",
                tokenizer_path.display(),
                tokenizer.vocab_size(),
                dir.join(artifact::CONFIG_FILE).display(),
                config.model.vocab_size
            );
        }
        let model = artifact::load_weights(dir, config.model.init::<B>(device), device)?;
        Ok(Self::new(model, tokenizer, config, device))
    }

    pub fn new(
        model: TextClassifier<B>,
        tokenizer: WordTokenizer,
        config: ArtifactConfig,
        device: &B::Device,
    ) -> Self {
        Self {
            model,
            tokenizer,
            config,
            device: device.clone(),
        }
    }

    /// Predicts every text, `batch_size` at a time.
    pub fn predict(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Prediction>> {
        let batcher = TextBatcher::new(self.config.max_seq_len);
        let mut predictions = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(batch_size.max(1)) {
            let encoded = chunk
                .iter()
                .map(|text| self.tokenizer.encode_with_tokens(text))
                .collect::<Result<Vec<_>, _>>()
                .context("tokenizing the input")?;
            let ids: Vec<&[u32]> = encoded.iter().map(|(ids, _)| ids.as_slice()).collect();
            let (tokens, mask, lengths) = batcher.pad::<B>(&ids, &self.device);
            let out = self.model.forward(tokens, mask);
            let [_, seq_len] = out.attention.dims();
            let probs = softmax(out.logits, 1)
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("probabilities are f32");
            let attention = out
                .attention
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("attention weights are f32");
            let classes = self.config.labels.len();
            for (row, ((text, (_, words)), len)) in
                chunk.iter().zip(&encoded).zip(lengths).enumerate()
            {
                let p = probs[row * classes..(row + 1) * classes].to_vec();
                let best = argmax(&p);
                let weights = &attention[row * seq_len..row * seq_len + len];
                let words = if words.is_empty() {
                    vec![UNK_TOKEN.to_string()]
                } else {
                    words.clone()
                };
                predictions.push(Prediction {
                    text: text.to_string(),
                    label: self.config.labels[best].clone(),
                    probabilities: p,
                    labels: self.config.labels.clone(),
                    attention: words
                        .into_iter()
                        .zip(weights)
                        .map(|(token, &weight)| TokenWeight { token, weight })
                        .collect(),
                });
            }
        }
        Ok(predictions)
    }

    /// The model's raw class scores for every text, `batch_size` at a time:
    /// one row of `labels.len()` logits per text (a teacher's outputs, for
    /// distillation).
    pub fn logits(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let batcher = TextBatcher::new(self.config.max_seq_len);
        let classes = self.config.labels.len();
        let mut rows = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(batch_size.max(1)) {
            let ids = chunk
                .iter()
                .map(|text| self.tokenizer.encode(text))
                .collect::<Result<Vec<_>, _>>()
                .context("tokenizing the input")?;
            let ids: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
            let (tokens, mask, _) = batcher.pad::<B>(&ids, &self.device);
            let logits = self
                .model
                .forward(tokens, mask)
                .logits
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("logits are f32");
            rows.extend(logits.chunks(classes).map(<[f32]>::to_vec));
        }
        Ok(rows)
    }

    /// Accuracy and confusion matrix on labelled examples.
    pub fn evaluate(&self, items: &[LabelledText], batch_size: usize) -> Result<Evaluation> {
        let texts: Vec<&str> = items.iter().map(|item| item.text.as_str()).collect();
        let predictions = self.predict(&texts, batch_size)?;
        let n = self.config.labels.len();
        let mut confusion = vec![vec![0; n]; n];
        for (item, prediction) in items.iter().zip(&predictions) {
            confusion[item.label][argmax(&prediction.probabilities)] += 1;
        }
        let correct = (0..n).map(|i| confusion[i][i]).sum();
        Ok(Evaluation {
            labels: self.config.labels.clone(),
            total: items.len(),
            correct,
            accuracy: correct as f64 / items.len().max(1) as f64,
            confusion,
        })
    }
}

fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}
