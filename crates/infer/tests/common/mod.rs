//! The artifacts the integration tests serve and predict with, and a
//! running `infer serve`.
#![allow(dead_code)] // each test file uses its own subset

use artifact::{
    ArtifactWriter, Classifier, ClassifierConfig, ClassifierMetrics, LanguageModel, LmConfig,
    LmMetrics, TranslationConfig, TranslationModel,
};
use burn::backend::NdArray;
use data::{CharVocab, SubwordTokenizer, WordTokenizer};
use model::{
    AlignmentKind, CharLmConfig, Seq2SeqConfig, TextClassifierConfig, TransformerTranslatorConfig,
    TranslatorConfig,
};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
            averaged_from: None,
        })
        .unwrap();
    writer.commit().unwrap();
}

/// A small untrained character language model.
/// A small untrained LSTM translation artifact (`attention` None: the
/// model without); its translations are arbitrary but well formed.
pub fn make_translation_artifact(dir: &Path, attention: Option<AlignmentKind>) {
    write_translation_artifact(dir, |source, target| {
        Seq2SeqConfig::Lstm(
            TranslatorConfig::new(source, target)
                .with_d_embed(8)
                .with_d_hidden(6)
                .with_attention(attention),
        )
    });
}

/// A small untrained Transformer translation artifact.
pub fn make_transformer_artifact(dir: &Path) {
    write_translation_artifact(dir, |source, target| {
        Seq2SeqConfig::Transformer(
            TransformerTranslatorConfig::new(source, target)
                .with_d_model(8)
                .with_d_ff(16)
                .with_n_heads(2)
                .with_n_layers(1),
        )
    });
}

/// Both vocabularies from three sentence pairs, the model of `model`
/// (given the vocabulary sizes), no metrics: `infer translate` does not
/// read them.
fn write_translation_artifact(dir: &Path, model: impl Fn(usize, usize) -> Seq2SeqConfig) {
    let english = ["open the file", "save the file as", "close the window"];
    let french = [
        "ouvrir le fichier",
        "enregistrer le fichier sous",
        "fermer la fenêtre",
    ];
    let source = SubwordTokenizer::train(english.into_iter(), 60, 1).unwrap();
    let target = SubwordTokenizer::train(french.into_iter(), 60, 1).unwrap();
    let config = TranslationConfig {
        model: model(source.vocab_size(), target.vocab_size()),
        max_source_len: 12,
        max_target_len: 10,
        training: None,
    };
    let writer = ArtifactWriter::create(dir, "translator", &[]).unwrap();
    TranslationModel {
        model: config.model.init::<NdArray>(&Default::default()),
        source,
        target,
        config,
    }
    .write_into(&writer)
    .unwrap();
    writer.commit().unwrap();
}

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
            lr_horizon: None,
            train_loss_per_epoch: vec![1.0],
            valid_loss_per_epoch: vec![1.0],
            backend: "ndarray".into(),
            profile: "test".into(),
        })
        .unwrap();
    writer.commit().unwrap();
}

/// `infer serve` on a free loopback port, killed if the test ends without
/// [`Server::terminate`].
pub struct Server {
    pub child: Child,
    url: String,
}

impl Server {
    pub fn start(artifacts: &[&Path], args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_infer"));
        command.arg("serve").args(["--port", "0"]);
        for dir in artifacts {
            command.arg("--artifact-dir").arg(dir);
        }
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {line:?}"))
            .to_string();
        Self { child, url }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
