//! A loaded classifier, and the one path from texts to predictions:
//! tokenize, pad, forward. `infer` predicts through it and `train` measures
//! the test accuracy through it, so the number in `metrics.json` is the
//! number `infer --eval` prints.

use crate::config::ClassifierConfig;
use crate::files::{
    CONFIG_FILE, TOKENIZER_FILE, TRAIN_CLASSIFIER, VOCAB_FILE, WEIGHTS_FILE, check_dir,
};
use crate::weights::{check_params_fit, is_quantized, load_weights};
use crate::writer::ArtifactWriter;
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use data::{LabelledText, TextBatcher, UNK_TOKEN, WordTokenizer};
use model::{F32Classifier, Int8Classifier, LstmBackend, TextClassifier};
use serde::Serialize;
use std::path::Path;

/// A model with its tokenizer and config: all inference needs.
pub struct Classifier<B: Backend> {
    /// Read-only: the host classifier holds a copy of its weights.
    model: TextClassifier<B>,
    pub tokenizer: WordTokenizer,
    pub config: ClassifierConfig,
    /// The host classifier's copy of the weights, which every prediction
    /// then goes through (see [`path`](Self::path)).
    host: Option<Host>,
    device: B::Device,
}

/// The host classifier in the format of the model's weights.
enum Host {
    F32(F32Classifier),
    Int8(Int8Classifier),
}

/// Which code a [`Classifier`] predicts through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionPath {
    /// Burn's tensor operations on the backend (a GPU backend, or an
    /// encoder the host classifier does not run: GRU, RNN, Transformer).
    Tensors,
    /// The host classifier in f32 (`model::F32Classifier`): an LSTM
    /// classifier on a CPU backend.
    HostF32,
    /// The int8 kernels (`model::Int8Classifier`): an LSTM classifier
    /// whose weights are int8 (`train compress quantize`); Burn would
    /// dequantize every weight on every read.
    HostInt8,
}

impl PredictionPath {
    /// A short name, as `infer report` prints it.
    pub fn name(self) -> &'static str {
        match self {
            PredictionPath::Tensors => "Burn tensors",
            PredictionPath::HostF32 => "host f32",
            PredictionPath::HostInt8 => "host int8",
        }
    }
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

/// One batch after the forward pass.
struct Forwarded<'a> {
    texts: &'a [&'a str],
    /// The ids and the words of each text, after tokenization.
    encoded: Vec<(Vec<u32>, Vec<String>)>,
    /// Real tokens of each text after truncation.
    lengths: Vec<usize>,
    /// The class scores, `[B, C]` row-major.
    logits: Vec<f32>,
    /// The attention weights, `[B, T]` row-major.
    attention: Vec<f32>,
    /// T: the padded length.
    seq_len: usize,
}

impl<B: LstmBackend> Classifier<B> {
    /// Loads a classifier artifact directory, checking its files against
    /// each other before any tensor is built.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        if dir.join(VOCAB_FILE).is_file() && !dir.join(TOKENIZER_FILE).exists() {
            bail!(
                "{} is a language-model artifact (it has {VOCAB_FILE}), not a classifier: generate text with `infer generate --artifact-dir {}`",
                dir.display(),
                dir.display()
            );
        }
        crate::files::refuse_translator(dir, "a classifier")?;
        check_dir(
            dir,
            &[CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE],
            TRAIN_CLASSIFIER,
        )?;
        let config = ClassifierConfig::load(dir)?;
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer = WordTokenizer::load(&tokenizer_path)?;
        if tokenizer.vocab_size() != config.model.vocab_size {
            bail!(
                "{} has {} tokens but {} says vocab_size = {}",
                tokenizer_path.display(),
                tokenizer.vocab_size(),
                dir.join(CONFIG_FILE).display(),
                config.model.vocab_size
            );
        }
        check_params_fit(dir, config.model.num_params())?;
        let model = load_weights(dir, config.model.init::<B>(device), device)?;
        Ok(Self::new(model, tokenizer, config, device))
    }

    /// A classifier of `model`, predicting through the fastest [`PredictionPath`]
    /// that runs it: with an LSTM encoder, the int8 kernels for int8
    /// weights, the host classifier in f32 on a CPU backend; else Burn's
    /// operations.
    pub fn new(
        model: TextClassifier<B>,
        tokenizer: WordTokenizer,
        config: ClassifierConfig,
        device: &B::Device,
    ) -> Self {
        let host = if is_quantized(&model) {
            Int8Classifier::from_model(&model).ok().map(Host::Int8)
        } else if B::ON_HOST {
            F32Classifier::from_model(&model).ok().map(Host::F32)
        } else {
            None
        };
        Self {
            model,
            tokenizer,
            config,
            host,
            device: device.clone(),
        }
    }

    /// The code predictions go through.
    pub fn path(&self) -> PredictionPath {
        match self.host {
            None => PredictionPath::Tensors,
            Some(Host::F32(_)) => PredictionPath::HostF32,
            Some(Host::Int8(_)) => PredictionPath::HostInt8,
        }
    }

    /// Whether predictions go through the int8 kernels.
    pub fn runs_int8(&self) -> bool {
        self.path() == PredictionPath::HostInt8
    }

    /// The model.
    pub fn model(&self) -> &TextClassifier<B> {
        &self.model
    }

    /// The model, its tokenizer and its config.
    pub fn into_parts(self) -> (TextClassifier<B>, WordTokenizer, ClassifierConfig) {
        (self.model, self.tokenizer, self.config)
    }

    /// Writes the tokenizer, the config and the weights into `writer`'s
    /// staging directory (the metrics are the caller's).
    pub fn write_into(self, writer: &ArtifactWriter) -> Result<()> {
        self.tokenizer
            .save(&writer.dir().join(TOKENIZER_FILE))
            .context("writing the tokenizer")?;
        writer.write_config(&self.config)?;
        writer.write_weights(self.model)
    }

    /// Runs the model over `texts`, `batch_size` at a time, handing each
    /// batch to `each`.
    fn forward_batches<'a>(
        &self,
        texts: &'a [&'a str],
        batch_size: usize,
        mut each: impl FnMut(Forwarded<'a>) -> Result<()>,
    ) -> Result<()> {
        let batcher = TextBatcher::new(self.config.max_seq_len);
        for chunk in texts.chunks(batch_size.max(1)) {
            let encoded = chunk
                .iter()
                .map(|text| self.tokenizer.encode_with_tokens(text))
                .collect::<Result<Vec<_>, _>>()
                .context("tokenizing the input")?;
            let ids: Vec<&[u32]> = encoded.iter().map(|(ids, _)| ids.as_slice()).collect();
            // The host classifier answers in plain vectors; Burn's output is
            // read back once.
            let (logits, attention, seq_len, lengths) = match &self.host {
                Some(host) => {
                    let padded = batcher.pad_ids(&ids);
                    let out = match host {
                        Host::F32(host) => {
                            host.forward(&padded.ids, padded.seq_len, &padded.lengths)
                        }
                        Host::Int8(host) => {
                            host.forward(&padded.ids, padded.seq_len, &padded.lengths)
                        }
                    };
                    (out.logits, out.attention, padded.seq_len, padded.lengths)
                }
                None => {
                    let (tokens, mask, lengths) = batcher.pad::<B>(&ids, &self.device);
                    let seq_len = tokens.dims()[1];
                    let out = self.model.forward(tokens, mask);
                    (to_f32(out.logits), to_f32(out.attention), seq_len, lengths)
                }
            };
            each(Forwarded {
                texts: chunk,
                encoded,
                lengths,
                logits,
                attention,
                seq_len,
            })?;
        }
        Ok(())
    }

    /// Predicts every text, `batch_size` at a time, handing each prediction
    /// to `emit` as soon as its batch is done.
    pub fn predict_each(
        &self,
        texts: &[&str],
        batch_size: usize,
        mut emit: impl FnMut(Prediction) -> Result<()>,
    ) -> Result<()> {
        let classes = self.config.labels.len();
        self.forward_batches(texts, batch_size, |batch| {
            let (seq_len, logits, attention) = (batch.seq_len, batch.logits, batch.attention);
            // The label is the largest logit, as in `evaluate` (softmax can
            // round two close logits to one probability).
            let probs = softmax_rows(&logits, classes);
            let rows = batch.texts.iter().zip(batch.encoded).zip(batch.lengths);
            for (row, ((text, (_, words)), len)) in rows.enumerate() {
                let p = probs[row * classes..(row + 1) * classes].to_vec();
                let weights = &attention[row * seq_len..row * seq_len + len];
                // A text of unknown words only is read as one [UNK].
                let words = if words.is_empty() {
                    vec![UNK_TOKEN.to_string()]
                } else {
                    words
                };
                emit(Prediction {
                    text: text.to_string(),
                    label: self.config.labels[argmax(&logits[row * classes..(row + 1) * classes])]
                        .clone(),
                    probabilities: p,
                    labels: self.config.labels.clone(),
                    attention: words
                        .into_iter()
                        .zip(weights)
                        .map(|(token, &weight)| TokenWeight { token, weight })
                        .collect(),
                })?;
            }
            Ok(())
        })
    }

    /// Predicts every text, `batch_size` at a time.
    pub fn predict(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Prediction>> {
        let mut predictions = Vec::with_capacity(texts.len());
        self.predict_each(texts, batch_size, |p| {
            predictions.push(p);
            Ok(())
        })?;
        Ok(predictions)
    }

    /// The model's raw class scores for every text: one row of
    /// `labels.len()` logits per text (a teacher's outputs, for distillation).
    pub fn logits(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let classes = self.config.labels.len();
        let mut rows = Vec::with_capacity(texts.len());
        self.forward_batches(texts, batch_size, |batch| {
            rows.extend(batch.logits.chunks(classes).map(<[f32]>::to_vec));
            Ok(())
        })?;
        Ok(rows)
    }

    /// Accuracy and confusion matrix on labelled examples.
    pub fn evaluate(&self, items: &[LabelledText], batch_size: usize) -> Result<Evaluation> {
        self.evaluate_stream(
            items.iter().cloned().map(Ok::<_, std::convert::Infallible>),
            batch_size,
        )
    }

    /// Accuracy and confusion matrix over a stream of labelled examples,
    /// read `batch_size` at a time: memory stays bounded however long the
    /// stream. The first error of the stream ends the evaluation.
    pub fn evaluate_stream<E>(
        &self,
        items: impl Iterator<Item = Result<LabelledText, E>>,
        batch_size: usize,
    ) -> Result<Evaluation>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let n = self.config.labels.len();
        let mut confusion = vec![vec![0; n]; n];
        let mut total = 0;
        let mut items = items.peekable();
        while items.peek().is_some() {
            let batch = items
                .by_ref()
                .take(batch_size.max(1))
                .collect::<Result<Vec<_>, E>>()?;
            let texts: Vec<&str> = batch.iter().map(|item| item.text.as_str()).collect();
            let mut truths = batch.iter().map(|item| item.label);
            self.forward_batches(&texts, batch_size, |forwarded| {
                for row in forwarded.logits.chunks(n) {
                    let truth = truths.next().expect("one row of logits per text");
                    confusion[truth][argmax(row)] += 1;
                }
                Ok(())
            })?;
            total += batch.len();
        }
        let correct = (0..n).map(|i| confusion[i][i]).sum();
        Ok(Evaluation {
            labels: self.config.labels.clone(),
            total,
            correct,
            accuracy: correct as f64 / total.max(1) as f64,
            confusion,
        })
    }
}

fn to_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("converted to f32")
}

/// The softmax of each row of `logits` (`classes` wide), with the largest
/// logit subtracted first.
fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f32> {
    logits
        .chunks(classes)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
            let sum: f32 = exps.iter().sum();
            exps.into_iter().map(move |e| e / sum)
        })
        .collect()
}

/// The index of the first largest value.
fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::activation::softmax;
    use model::{CellKind, Pooling, TextClassifierConfig};

    type B = NdArray;

    const TEXTS: [&str; 4] = [
        "a moving and funny film",
        "dull",
        "the plot is thin , the acting worse , and it goes on and on",
        "funny but thin",
    ];

    fn classifier_of(cell: CellKind) -> Classifier<B> {
        classifier_pooled(cell, Pooling::Attention)
    }

    fn classifier_pooled(cell: CellKind, pooling: Pooling) -> Classifier<B> {
        let device = Default::default();
        let tokenizer = WordTokenizer::train(TEXTS.iter().copied(), 1, 100).unwrap();
        let model = TextClassifierConfig::new(tokenizer.vocab_size(), 2)
            .with_d_embed(16)
            .with_d_hidden(12)
            .with_heads(2)
            .with_cell(cell)
            .with_pooling(Some(pooling));
        let config = ClassifierConfig {
            model: model.clone(),
            labels: vec!["negative".into(), "positive".into()],
            max_seq_len: 32,
            training: None,
        };
        Classifier::new(model.init::<B>(&device), tokenizer, config, &device)
    }

    /// An LSTM classifier on a CPU backend predicts through the host
    /// classifier in f32, and gets what the model's own forward pass gives
    /// (probabilities and attention), with either pooling; another encoder
    /// uses Burn's operations.
    #[test]
    fn an_lstm_classifier_on_the_cpu_predicts_through_the_host_path() {
        for pooling in [Pooling::Attention, Pooling::Concat] {
            let classifier = classifier_pooled(CellKind::Lstm, pooling);
            assert_eq!(classifier.path(), PredictionPath::HostF32);
            let predictions = classifier.predict(&TEXTS, 3).unwrap();

            let device = Default::default();
            let ids: Vec<Vec<u32>> = TEXTS
                .iter()
                .map(|text| classifier.tokenizer.encode(text).unwrap())
                .collect();
            let ids: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
            let (tokens, mask, lengths) = TextBatcher::new(32).pad::<B>(&ids, &device);
            let out = classifier.model().forward(tokens, mask);
            let probabilities = softmax(out.logits, 1).into_data().to_vec::<f32>().unwrap();
            let attention = out.attention.into_data().to_vec::<f32>().unwrap();
            let seq = attention.len() / TEXTS.len();
            for (b, prediction) in predictions.iter().enumerate() {
                for (p, q) in prediction.probabilities.iter().zip(&probabilities[2 * b..]) {
                    assert!((p - q).abs() < 1e-5, "{pooling}, text {b}: {p} against {q}");
                }
                assert_eq!(prediction.attention.len(), lengths[b]);
                for (t, w) in prediction.attention.iter().enumerate() {
                    let reference = attention[b * seq + t];
                    assert!(
                        (w.weight - reference).abs() < 1e-5,
                        "{pooling}, text {b}, token {t}"
                    );
                }
            }
        }
        assert_eq!(classifier_of(CellKind::Gru).path(), PredictionPath::Tensors);
    }
}
