//! `train` (or `train classify`): the text classifier end to end — data,
//! tokenizer, training, the kept epoch, the test evaluation, the artifact.

use crate::TrainBackend;
use crate::classifier::{Splits, evaluate_and_write, fit_classifier, optimizer};
use crate::cli::FitArgs;
use crate::embeddings;
use crate::fit::{Start, log_dir};
use crate::pretrain::{PretrainData, pretrain};
use crate::step::{ClassifierStep, TrainItem, Unfreezing};
use anyhow::Result;
use artifact::args::{dropout, non_negative_f64, positive_f64, positive_usize};
use artifact::{ArtifactWriter, Classifier, ClassifierConfig, ClassifierTraining, Pretraining};
use burn::module::Module;
use clap::{Args, ValueEnum};
use data::{WordTokenizer, encode_all};
use model::{CellKind, Pooling, TextClassifierConfig};
use std::path::PathBuf;

/// Train the LSTM + attention sentiment classifier and write an artifact.
#[derive(Args, Debug, Clone)]
pub struct ClassifyArgs {
    /// Directory with train.tsv, valid.tsv and test.tsv (`label<TAB>text`).
    #[arg(long, default_value = "datasets/mr")]
    pub data_dir: PathBuf,
    /// Where the artifact goes (replaced only once training has finished).
    #[arg(long, default_value = "artifacts/mr")]
    pub artifact_dir: PathBuf,
    /// Class names, comma-separated, in the model's output order (default:
    /// the distinct labels of train.tsv, in code-point order).
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// The best epoch is kept. Validation accuracy on MR peaks at epochs
    /// 3–5 from GloVe's vectors (6 seeds), at 8–10 from a random embedding.
    #[arg(long, default_value_t = 10, value_parser = positive_usize)]
    pub epochs: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 2e-3, value_parser = positive_f64)]
    pub lr: f64,
    /// Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): every step
    /// shrinks each weight by lr × this fraction of itself (0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative_f64)]
    pub weight_decay: f64,
    /// Label smoothing ε (Szegedy et al. 2016): the training loss's target
    /// is 1 − ε on the label plus ε spread over the classes (0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = dropout)]
    pub label_smoothing: f64,
    /// Rescale each parameter tensor's gradient to at most this L2 norm
    /// before the update (Burn's norm clipping, per tensor; 0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative_f64)]
    pub clip_norm: f64,
    /// The encoder: a recurrent one (bi* read each sentence in both
    /// directions) or a Transformer's self-attention layers.
    #[arg(long, value_enum, default_value_t = EncoderChoice::Lstm)]
    pub encoder: EncoderChoice,
    /// Stacked encoder layers.
    #[arg(long, default_value_t = 1, value_parser = positive_usize)]
    pub layers: usize,
    /// Attention heads of --encoder transformer (--d-hidden must be a multiple).
    #[arg(long, default_value_t = 4, value_parser = positive_usize)]
    pub heads: usize,
    /// How the encoder's outputs become one vector per sentence. Concat
    /// pooling is the default: over 5 seeds its validation mean is 0.43
    /// points above attention alone (docs/generalization.md).
    #[arg(long, value_enum, default_value_t = PoolingChoice::Concat)]
    pub pooling: PoolingChoice,
    /// Width of the word embedding: 128, or that of --embeddings.
    #[arg(long, value_parser = positive_usize)]
    pub d_embed: Option<usize>,
    /// Start the word embedding from pretrained vectors in GloVe's or
    /// word2vec's text format (`word v1 v2 …` per line), or `none` for a
    /// random start. Words of the training split with a vector join the
    /// vocabulary even when seen once. The default, GloVe 6B's 100 values
    /// for MR's words, raises MR's validation accuracy by 2.60 ± 0.99
    /// points seed by seed over 5 seeds (docs/generalization.md, round 4).
    #[arg(long, default_value = DEFAULT_EMBEDDINGS)]
    pub embeddings: PathBuf,
    #[arg(long, default_value_t = 128, value_parser = positive_usize)]
    pub d_hidden: usize,
    /// Dropout on the word embeddings.
    #[arg(long, default_value_t = 0.5, value_parser = dropout)]
    pub embedding_dropout: f64,
    /// Dropout on the pooled vector (and between stacked layers).
    #[arg(long, default_value_t = 0.5, value_parser = dropout)]
    pub output_dropout: f64,
    /// Variational dropout in the encoder: one mask per sentence on each
    /// layer's input and on its recurrent state, the same at every step.
    #[arg(long, default_value_t = 0.0, value_parser = dropout)]
    pub recurrent_dropout: f64,
    /// Longer sentences are truncated (MR's longest is about 60 words).
    #[arg(long, default_value_t = 64, value_parser = positive_usize)]
    pub max_seq_len: usize,
    /// Words seen fewer times than this in the training split become [UNK]
    /// (2 halves MR's vocabulary and lets [UNK] learn from rare words).
    #[arg(long, default_value_t = 2)]
    pub min_freq: u64,
    /// Largest vocabulary, special tokens included.
    #[arg(long, default_value_t = 30_000, value_parser = positive_usize)]
    pub max_vocab: usize,
    /// Batch sentences of similar length (sorted within pools of 50
    /// batches, batches shuffled), so that less of each batch is padding.
    /// The batches are formed once per run; their order changes every epoch.
    #[arg(long)]
    pub bucket: bool,
    /// Before learning the labels, train the embedding and encoder as a
    /// word language model on the training split's sentences for this many
    /// epochs (ULMFiT's first stage; 0 = off).
    #[arg(long, default_value_t = 0)]
    pub pretrain_epochs: usize,
    /// The pretraining's Adam learning rate.
    #[arg(long, default_value_t = 2e-3, value_parser = positive_f64)]
    pub pretrain_lr: f64,
    /// With --pretrain-epochs: the first epoch trains the pooling and the
    /// output layer alone, the second adds the encoder, the third the
    /// embedding (ULMFiT's gradual unfreezing).
    #[arg(long)]
    pub unfreeze: bool,
    #[command(flatten)]
    pub fit: FitArgs,
}

/// `--embeddings`' default (`cargo xtask data glove-mr`).
pub const DEFAULT_EMBEDDINGS: &str = "datasets/glove-mr/vectors.txt";

/// The choices of `--pooling` (`model::Pooling`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingChoice {
    /// Attention pooling alone.
    Attention,
    /// Attention, max and mean pooling concatenated (Howard & Ruder 2018's
    /// concat pooling): an output layer three times as wide.
    Concat,
}

impl From<PoolingChoice> for Pooling {
    fn from(choice: PoolingChoice) -> Self {
        match choice {
            PoolingChoice::Attention => Pooling::Attention,
            PoolingChoice::Concat => Pooling::Concat,
        }
    }
}

/// The encoder choices of `--encoder`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderChoice {
    Rnn,
    Gru,
    Lstm,
    Birnn,
    Bigru,
    Bilstm,
    /// Self-attention layers (Vaswani et al. 2017), --d-hidden wide.
    Transformer,
}

impl EncoderChoice {
    pub fn cell(self) -> CellKind {
        match self {
            EncoderChoice::Rnn | EncoderChoice::Birnn => CellKind::Rnn,
            EncoderChoice::Gru | EncoderChoice::Bigru => CellKind::Gru,
            EncoderChoice::Lstm | EncoderChoice::Bilstm => CellKind::Lstm,
            EncoderChoice::Transformer => CellKind::Transformer,
        }
    }

    pub fn bidirectional(self) -> bool {
        matches!(
            self,
            EncoderChoice::Birnn | EncoderChoice::Bigru | EncoderChoice::Bilstm
        )
    }
}

impl ClassifyArgs {
    /// The options as the artifact records them.
    fn record(&self) -> ClassifierTraining {
        ClassifierTraining {
            data_dir: self.data_dir.clone(),
            epochs: self.epochs,
            batch_size: self.fit.batch_size,
            lr: self.lr,
            lr_schedule: self.fit.lr_schedule,
            weight_decay: self.weight_decay,
            label_smoothing: self.label_smoothing,
            clip_norm: self.clip_norm,
            seed: self.fit.seed,
            select: self.fit.select,
            patience: self.fit.patience,
            average: self.fit.average,
            bucket: self.bucket,
            min_freq: self.min_freq,
            max_vocab: self.max_vocab,
            limit: self.fit.limit,
            pretraining: self.pretraining(),
            embeddings: self.embeddings().map(PathBuf::from),
        }
    }

    /// The vectors file of `--embeddings`, unless it is `none`.
    pub fn embeddings(&self) -> Option<&std::path::Path> {
        (self.embeddings.as_os_str() != "none").then_some(self.embeddings.as_path())
    }

    fn pretraining(&self) -> Option<Pretraining> {
        (self.pretrain_epochs > 0).then_some(Pretraining {
            epochs: self.pretrain_epochs,
            lr: self.pretrain_lr,
            unfreeze: self.unfreeze,
        })
    }
}

pub fn run<B: TrainBackend>(args: &ClassifyArgs, device: &B::Device, backend: &str) -> Result<()> {
    let plan = args.fit.plan(args.epochs, args.lr);
    plan.check()?;
    if args.encoder == EncoderChoice::Transformer {
        anyhow::ensure!(
            model::transformer_width_fits(args.d_hidden, args.heads),
            "--d-hidden {} must be even and a multiple of --heads {} for --encoder transformer",
            args.d_hidden,
            args.heads
        );
        anyhow::ensure!(
            args.recurrent_dropout == 0.0,
            "--recurrent-dropout needs a recurrent encoder, not --encoder transformer"
        );
    }
    if args.pretrain_epochs > 0 {
        anyhow::ensure!(
            args.encoder.cell() != CellKind::Transformer && !args.encoder.bidirectional(),
            "--pretrain-epochs needs an encoder that reads left to right (lstm, gru or rnn): \
             a language model must not see the word it predicts"
        );
    }
    anyhow::ensure!(
        !args.unfreeze || args.pretrain_epochs > 0,
        "--unfreeze unfreezes pretrained layers: it needs --pretrain-epochs"
    );
    let vectors = match args.embeddings() {
        Some(path) => Some(embeddings::read(path, args.d_embed)?),
        None => None,
    };
    let d_embed = match &vectors {
        Some(vectors) => vectors.dim(),
        None => args.d_embed.unwrap_or(128),
    };
    let splits = Splits::read(&args.data_dir, args.labels.as_deref(), args.fit.limit)?;

    let texts: Vec<&str> = splits.train.iter().map(|t| t.text.as_str()).collect();
    let tokenizer = match &vectors {
        Some(vectors) => {
            WordTokenizer::train_keeping(&texts, args.min_freq, args.max_vocab, |w| {
                vectors.contains(w)
            })?
        }
        None => WordTokenizer::train(texts.iter().copied(), args.min_freq, args.max_vocab)?,
    };
    println!(
        "vocabulary: {} tokens (from the training split only{})",
        tokenizer.vocab_size(),
        if vectors.is_some() {
            format!(
                ": the words seen at least {} times, and those seen less that have a vector",
                args.min_freq
            )
        } else {
            String::new()
        }
    );

    let config = ClassifierConfig {
        model: TextClassifierConfig::new(tokenizer.vocab_size(), splits.labels.len())
            .with_d_embed(d_embed)
            .with_d_hidden(args.d_hidden)
            .with_embedding_dropout(args.embedding_dropout)
            .with_output_dropout(args.output_dropout)
            .with_recurrent_dropout(args.recurrent_dropout)
            .with_cell(args.encoder.cell())
            .with_bidirectional(args.encoder.bidirectional())
            .with_layers(args.layers)
            .with_heads(args.heads)
            .with_pooling(Some(args.pooling.into())),
        labels: splits.labels.clone(),
        max_seq_len: args.max_seq_len,
        training: Some(args.record()),
    };

    artifact::memory::check_fits(
        config.model.num_params(),
        true,
        &format!(
            "the model of these options (vocabulary {}, --d-embed {}, --d-hidden {}, --layers {})",
            config.model.vocab_size, d_embed, args.d_hidden, args.layers
        ),
    )?;
    B::seed(device, args.fit.seed);
    let mut init = config.model.init::<B>(device);
    if let (Some(vectors), Some(path)) = (&vectors, args.embeddings()) {
        let found;
        (init, found) = embeddings::start_from(init, &tokenizer, vectors);
        println!(
            "embeddings: {found} of {} words start from the {} vectors of {} ({d_embed} values each); the others are random at their scale",
            tokenizer.vocab_size(),
            vectors.len(),
            path.display()
        );
    }
    let mut model = ClassifierStep::new(init);
    model.label_smoothing = args.label_smoothing as f32;
    println!(
        "model: {} encoder, {} layer(s), {} pooling, {} parameters",
        args.encoder.to_possible_value().unwrap().get_name(),
        args.layers,
        config.model.pooling(),
        model.num_params()
    );
    let train = encode_all(&tokenizer, &splits.train)?;
    let valid = encode_all(&tokenizer, &splits.valid)?;
    // The files the run reads, which the artifact directory must not hold.
    let inputs: Vec<&std::path::Path> = std::iter::once(args.data_dir.as_path())
        .chain(args.embeddings())
        .collect();
    let writer = ArtifactWriter::create_or_resume(
        &args.artifact_dir,
        "classifier",
        &inputs,
        args.fit.resume,
    )?;
    let start = Start::prepare(&log_dir(writer.dir()), &config, args.fit.resume)?;
    if let Some(pretraining) = args.pretraining() {
        // A resumed run's weights come from its checkpoint.
        if start.done == 0 {
            model.model = pretrain(
                model.model,
                &config.model,
                &PretrainData {
                    train: &train,
                    valid: &valid,
                    batch_size: args.fit.batch_size,
                    max_seq_len: config.max_seq_len,
                    seed: args.fit.seed,
                },
                &pretraining,
                device,
            );
        }
        if pretraining.unfreeze {
            model.unfreezing = Some(Unfreezing::default());
        }
    }
    let batching = args.fit.batching(args.bucket, config.max_seq_len);
    let fitted = fit_classifier(
        model,
        optimizer(args.weight_decay, args.clip_norm).init(),
        &plan,
        &batching,
        train.into_iter().map(TrainItem::from).collect(),
        valid.into_iter().map(TrainItem::from).collect(),
        &start,
        device,
    )?;
    let classifier = Classifier::new(fitted.model, tokenizer, config, device);
    evaluate_and_write(writer, classifier, &splits, fitted.run, backend, None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::optim::{GradientsParams, Optimizer};
    use burn::prelude::*;
    use clap::Parser;
    use model::TextClassifier;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ClassifyArgs,
    }

    fn values<B: Backend>(model: &TextClassifier<B>) -> Vec<f32> {
        let mut all = Vec::new();
        struct Collect<'a>(&'a mut Vec<f32>);
        impl<B: Backend> burn::module::ModuleVisitor<B> for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
                self.0.extend(
                    param
                        .val()
                        .into_data()
                        .convert::<f32>()
                        .to_vec::<f32>()
                        .unwrap(),
                );
            }
        }
        model.visit(&mut Collect(&mut all));
        all
    }

    #[test]
    fn options_out_of_range_are_refused_when_parsed() {
        for bad in [
            ["--lr", "nan"],
            ["--batch-size", "0"],
            ["--d-hidden", "0"],
            ["--embedding-dropout", "1"],
            ["--weight-decay", "=-1"],
            ["--batch-size", "18446744073709551616"],
        ] {
            // `=` joins a negative value to its option (`--weight-decay=-1`).
            let args: Vec<String> = match bad[1].strip_prefix('=') {
                Some(value) => vec![format!("{}={value}", bad[0])],
                None => vec![bad[0].to_string(), bad[1].to_string()],
            };
            let parsed = Cli::try_parse_from(std::iter::once("train".to_string()).chain(args));
            let err = parsed
                .err()
                .unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert!(err.to_string().contains(bad[0]), "{bad:?}: {err}");
        }
    }

    /// Pretraining an encoder that sees the word it would predict, or
    /// unfreezing layers that were never pretrained, is refused before
    /// any data is read.
    #[test]
    fn pretraining_options_that_cannot_work_are_refused() {
        for (options, expected) in [
            (
                &["--pretrain-epochs", "1", "--encoder", "bilstm"][..],
                "--pretrain-epochs",
            ),
            (
                &["--pretrain-epochs", "1", "--encoder", "transformer"],
                "--pretrain-epochs",
            ),
            (&["--unfreeze"], "--unfreeze"),
        ] {
            let args = Cli::parse_from(
                ["train", "--data-dir", "/nonexistent"]
                    .iter()
                    .chain(options),
            )
            .args;
            let err = run::<Autodiff<NdArray>>(&args, &Default::default(), "ndarray")
                .expect_err(&format!("{options:?} was accepted"));
            assert!(err.to_string().contains(expected), "{options:?}: {err}");
        }
    }

    /// An `--embeddings` file that is missing, malformed or of another
    /// width than --d-embed is refused, naming it, before any data is read.
    #[test]
    fn embeddings_that_cannot_be_used_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, "film 1 2\ngood 3\n").unwrap();
        let good = dir.path().join("good.txt");
        std::fs::write(&good, "film 1 2\ngood 3 4\n").unwrap();
        let missing = dir.path().join("missing.txt");
        let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
        for (options, expected) in [
            (
                vec!["--embeddings".into(), path(&missing)],
                "--embeddings none".to_string(),
            ),
            (
                vec!["--embeddings".into(), path(&bad)],
                format!("{}:2: the word \"good\" has 1 values", path(&bad)),
            ),
            (
                vec![
                    "--embeddings".into(),
                    path(&good),
                    "--d-embed".into(),
                    "64".into(),
                ],
                "--d-embed 64 differs from the 2 values per word".to_string(),
            ),
        ] {
            let args = Cli::parse_from(
                ["train", "--data-dir", "/nonexistent"]
                    .map(String::from)
                    .into_iter()
                    .chain(options.iter().cloned()),
            )
            .args;
            let err = run::<Autodiff<NdArray>>(&args, &Default::default(), "ndarray")
                .expect_err(&format!("{options:?} was accepted"));
            assert!(err.to_string().contains(&expected), "{options:?}: {err}");
        }
        // `none` is no file: the run goes on to the data.
        let args = Cli::parse_from([
            "train",
            "--data-dir",
            "/nonexistent",
            "--embeddings",
            "none",
            "--d-embed",
            "64",
        ])
        .args;
        assert_eq!(args.embeddings(), None);
        let err = run::<Autodiff<NdArray>>(&args, &Default::default(), "ndarray").unwrap_err();
        assert!(err.to_string().contains("/nonexistent"), "{err}");
    }

    /// With a zero loss gradient, AdamW's decoupled decay is all that moves
    /// the weights: each shrinks by exactly the factor 1 − lr · decay.
    #[test]
    fn weight_decay_shrinks_weights_when_the_loss_gradient_is_zero() {
        type A = Autodiff<NdArray>;
        let device = Default::default();
        let args = Cli::parse_from(["train", "--weight-decay", "0.1"]).args;
        let model = TextClassifierConfig::new(20, 2)
            .with_d_embed(4)
            .with_d_hidden(4)
            .init::<A>(&device);
        let tokens = Tensor::<A, 2, Int>::from_ints([[3, 4, 5]], &device);
        let mask = tokens.clone().not_equal_elem(0);
        let zero_loss = model.forward(tokens, mask).logits.sum() * 0.0;
        let grads = GradientsParams::from_grads(zero_loss.backward(), &model);
        let before = values(&model);
        let mut optimizer =
            optimizer(args.weight_decay, args.clip_norm).init::<A, TextClassifier<A>>();
        let after = values(&optimizer.step(0.01, model, grads));
        let factor = 1.0 - 0.01 * 0.1;
        let mut shrunk = 0;
        for (b, a) in before.iter().zip(&after) {
            assert!(
                (a - b * factor).abs() <= 1e-7 * b.abs().max(1.0),
                "{b} -> {a}"
            );
            shrunk += usize::from(a.abs() < b.abs());
        }
        assert!(shrunk > before.len() / 2, "only {shrunk} weights shrank");
    }
}
