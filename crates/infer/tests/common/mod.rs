//! The artifacts the integration tests serve and predict with.

use artifact::{
    ArtifactWriter, Classifier, ClassifierConfig, ClassifierMetrics, LanguageModel, LmConfig,
    LmMetrics,
};
use burn::backend::NdArray;
use data::{CharVocab, WordTokenizer};
use model::{CharLmConfig, TextClassifierConfig};
use std::path::Path;

/// A small untrained artifact: predictions are arbitrary but well formed.
pub fn make_artifact(dir: &Path) {
    let texts = [
        "a good film",
        "a bad film",
        "charming and hilarious",
        "dull and long",
    ];
    let tokenizer = WordTokenizer::train(texts.into_iter(), 1, 100).unwrap();
    let config = ClassifierConfig {
        model: TextClassifierConfig::new(tokenizer.vocab_size(), 2)
            .with_d_embed(8)
            .with_d_hidden(8),
        labels: vec!["neg".into(), "pos".into()],
        max_seq_len: 16,
        training: None,
    };
    let writer = ArtifactWriter::create(dir, "classifier", &[]).unwrap();
    let device = Default::default();
    let model = config.model.init::<NdArray>(&device);
    Classifier::new(model, tokenizer, config, &device)
        .write_into(&writer)
        .unwrap();
    writer
        .write_metrics(&ClassifierMetrics {
            test_accuracy: 0.5,
            valid_accuracy: 0.5,
            best_epoch: 1,
            epochs_run: 1,
            train_seconds: 0.0,
            backend: "ndarray".into(),
            profile: "test".into(),
            train_accuracy: None,
            selected_by: "accuracy".into(),
            history: Default::default(),
            compression: None,
        })
        .unwrap();
    writer.commit().unwrap();
}

/// A small untrained character language model.
pub fn make_lm_artifact(dir: &Path) {
    let vocab = CharVocab::from_text("abc .\n");
    let config = LmConfig {
        model: CharLmConfig::new(vocab.len())
            .with_d_embed(4)
            .with_d_hidden(8)
            .with_layers(1),
        training: None,
    };
    let writer = ArtifactWriter::create(dir, "language-model", &[]).unwrap();
    LanguageModel {
        model: config.model.init::<NdArray>(&Default::default()),
        vocab,
        config,
    }
    .write_into(&writer)
    .unwrap();
    writer
        .write_metrics(&LmMetrics {
            valid_loss: 1.0,
            valid_bits_per_char: 1.0 / 2f64.ln(),
            valid_perplexity: 1f64.exp(),
            best_epoch: 1,
            epochs_run: 1,
            train_seconds: 0.0,
            chars_per_second: 0.0,
            train_loss_per_epoch: vec![1.0],
            valid_loss_per_epoch: vec![1.0],
            backend: "ndarray".into(),
            profile: "test".into(),
        })
        .unwrap();
    writer.commit().unwrap();
}
