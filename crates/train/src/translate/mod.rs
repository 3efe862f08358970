//! `train translate`: the encoder–decoder translator (the LSTM with
//! attention by default, `--arch transformer` for the Transformer) on a parallel corpus
//! (`datasets/gettext-en-fr` by default), trained through the same loop as
//! the other models ([`crate::fit`]) with teacher forcing.
//!
//! A BPE vocabulary is learned for each side from the training split only.
//! Batches hold pairs of similar length (length bucketing: short sentences
//! dominate software messages, and a batch padded to its longest pair
//! would mostly compute padding). The kept epoch is the first with the
//! lowest logged validation loss; the artifact's metrics then give BLEU and
//! chrF of greedy translations of the validation and test splits.

mod step;

pub use step::{TranslateOutput, TranslateStep};

use crate::TrainBackend;
use crate::fit::{EpochBatches, Plan, Start, adam, fit, log_dir};
use crate::loader::EpochLoader;
use anyhow::{Context, Result};
use artifact::args::{dropout, non_negative_f64, positive_f64, positive_usize};
use artifact::bleu::{Bleu, corpus_bleu};
use artifact::chrf::{CHRF_SIGNATURE, corpus_chrf};
use artifact::metrics::build_profile;
use artifact::{
    ArtifactWriter, LrSchedule, Select, TranslationConfig, TranslationModel, TranslatorMetrics,
    TranslatorTraining,
};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use clap::{Args, ValueEnum};
use data::{
    Bucketed, EncodedPair, PairBatcher, SentencePair, SubwordTokenizer, bucket_by_length,
    encode_pairs, read_pairs,
};
use model::{
    AlignmentKind, LstmBackend, Seq2SeqConfig, TransformerTranslatorConfig, TranslatorConfig,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Validation and evaluation batches: as large as memory comfortably allows.
const EVAL_BATCH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    /// The bidirectional LSTM encoder and the LSTM decoder with attention.
    Lstm,
    /// The Transformer encoder–decoder (burn::nn::transformer).
    Transformer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Attention {
    /// Additive: vᵀ tanh(W_q s + W_k h) (Bahdanau et al. 2015).
    Bahdanau,
    /// sᵀ h (Luong et al. 2015).
    Dot,
    /// sᵀ W h (Luong et al. 2015).
    General,
}

impl From<Attention> for AlignmentKind {
    fn from(a: Attention) -> Self {
        match a {
            Attention::Bahdanau => AlignmentKind::Bahdanau,
            Attention::Dot => AlignmentKind::Dot,
            Attention::General => AlignmentKind::General,
        }
    }
}

/// Train the encoder–decoder translator (LSTM with attention, or the
/// Transformer) and write an artifact.
#[derive(Args, Debug, Clone)]
pub struct TranslateArgs {
    /// train.tsv, valid.tsv and test.tsv of `source<TAB>target` lines.
    #[arg(long, default_value = "datasets/gettext-en-fr")]
    pub data_dir: PathBuf,
    /// Where the artifact goes (replaced only once training has finished).
    #[arg(long, default_value = "artifacts/gettext-en-fr")]
    pub artifact_dir: PathBuf,
    /// The recurrent encoder–decoder, or the Transformer.
    #[arg(long, value_enum, default_value_t = Arch::Lstm)]
    pub arch: Arch,
    /// How the LSTM decoder scores the source positions at every step.
    #[arg(long, value_enum, default_value_t = Attention::Bahdanau)]
    pub attention: Attention,
    /// No attention: the LSTM decoder sees only the encoder's final state
    /// (Sutskever et al. 2014), for comparison.
    #[arg(long, conflicts_with = "attention")]
    pub no_attention: bool,
    /// BPE vocabulary size of each side (the special tokens and every
    /// character included). 8,000 pieces for 16,000 short pairs leaves most
    /// pieces seen a handful of times; 4,000 keeps frequent words whole and
    /// spells the rest.
    #[arg(long, default_value_t = 4000, value_parser = positive_usize)]
    pub vocab_size: usize,
    /// LSTM: the embeddings' size.
    #[arg(long, default_value_t = 128, value_parser = positive_usize)]
    pub d_embed: usize,
    /// LSTM: each direction of the encoder; the decoder's state is twice this.
    #[arg(long, default_value_t = 128, value_parser = positive_usize)]
    pub d_hidden: usize,
    /// Transformer: the model's width (a multiple of --heads).
    #[arg(long, default_value_t = 256, value_parser = positive_usize)]
    pub d_model: usize,
    /// Transformer: the feed-forward layers' width.
    #[arg(long, default_value_t = 1024, value_parser = positive_usize)]
    pub d_ff: usize,
    /// Transformer: attention heads.
    #[arg(long, default_value_t = 4, value_parser = positive_usize)]
    pub heads: usize,
    /// Transformer: encoder layers, and as many decoder layers.
    #[arg(long, default_value_t = 3, value_parser = positive_usize)]
    pub layers: usize,
    /// LSTM: on the embeddings and before the output layer (default 0.3).
    /// Transformer: on the embeddings and in every layer (default 0.1, the paper's).
    #[arg(long, value_parser = dropout)]
    pub dropout: Option<f64>,
    /// Sources are cut to this many pieces.
    #[arg(long, default_value_t = 48, value_parser = positive_usize)]
    pub max_source_len: usize,
    /// Targets are cut to this many pieces in training, and translations stop there.
    #[arg(long, default_value_t = 64, value_parser = positive_usize)]
    pub max_target_len: usize,
    /// Most epochs.
    #[arg(long, default_value_t = 40, value_parser = positive_usize)]
    pub epochs: usize,
    /// Start no epoch that would end past this many minutes of training (0 = no limit).
    #[arg(long, default_value_t = 30.0, value_parser = non_negative_f64)]
    pub minutes: f64,
    #[arg(long, default_value_t = 64, value_parser = positive_usize)]
    pub batch_size: usize,
    /// Adam's learning rate (default 2e-3 for the LSTM; 5e-4 for the
    /// Transformer, which has no warm-up here and diverges sooner).
    #[arg(long, value_parser = positive_f64)]
    pub lr: Option<f64>,
    /// Rescale each parameter tensor's gradient to at most this L2 norm (0 = off).
    #[arg(long, default_value_t = 5.0, value_parser = non_negative_f64)]
    pub clip_norm: f64,
    /// Stop when validation loss has not improved for this many epochs (0 = never).
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// Seeds the weights, the batches and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Use the first N training pairs only (for smoke tests).
    #[arg(long, value_parser = positive_usize)]
    pub limit: Option<usize>,
    /// Without a terminal, print a progress line every this many batches.
    #[arg(long, default_value_t = 50, value_parser = positive_usize)]
    pub log_every: usize,
    /// Continue the interrupted run of the same options after its last completed epoch.
    #[arg(long)]
    pub resume: bool,
}

impl TranslateArgs {
    fn record(&self) -> TranslatorTraining {
        TranslatorTraining {
            data_dir: self.data_dir.clone(),
            vocab_size: self.vocab_size,
            epochs: self.epochs,
            minutes: self.minutes,
            batch_size: self.batch_size,
            lr: self.lr(),
            clip_norm: self.clip_norm,
            patience: self.patience,
            seed: self.seed,
            limit: self.limit,
        }
    }

    fn attention(&self) -> Option<AlignmentKind> {
        (!self.no_attention).then(|| self.attention.into())
    }

    fn lr(&self) -> f64 {
        self.lr.unwrap_or(match self.arch {
            Arch::Lstm => 2e-3,
            Arch::Transformer => 5e-4,
        })
    }

    /// The model these options describe, or what is wrong with them.
    fn model(&self, source_vocab: usize, target_vocab: usize) -> Result<Seq2SeqConfig> {
        Ok(match self.arch {
            Arch::Lstm => Seq2SeqConfig::Lstm(
                TranslatorConfig::new(source_vocab, target_vocab)
                    .with_d_embed(self.d_embed)
                    .with_d_hidden(self.d_hidden)
                    .with_attention(self.attention())
                    .with_dropout(self.dropout.unwrap_or(0.3)),
            ),
            Arch::Transformer => {
                anyhow::ensure!(
                    !self.no_attention,
                    "--no-attention is for --arch lstm: the Transformer is made of attention"
                );
                anyhow::ensure!(
                    model::transformer_width_fits(self.d_model, self.heads),
                    "--d-model ({}) must be even and a multiple of --heads ({})",
                    self.d_model,
                    self.heads
                );
                Seq2SeqConfig::Transformer(
                    TransformerTranslatorConfig::new(source_vocab, target_vocab)
                        .with_d_model(self.d_model)
                        .with_d_ff(self.d_ff)
                        .with_n_heads(self.heads)
                        .with_n_layers(self.layers)
                        .with_dropout(self.dropout.unwrap_or(0.1)),
                )
            }
        })
    }

    /// What the model is, in a few words.
    fn describe(&self) -> String {
        match (self.arch, self.attention()) {
            (Arch::Transformer, _) => format!(
                "Transformer, {} encoder and {} decoder layers of width {} ({} heads, feed-forward {})",
                self.layers, self.layers, self.d_model, self.heads, self.d_ff
            ),
            (Arch::Lstm, attention) => format!(
                "BiLSTM {} encoder, LSTM {} decoder with {}",
                self.d_hidden,
                2 * self.d_hidden,
                attention.map_or("no attention".to_string(), |k| format!("{k} attention"))
            ),
        }
    }
}

/// BLEU and chrF of the greedy translations of `pairs`, and the seconds
/// the translating took.
pub struct Scores {
    pub bleu: f64,
    pub chrf: f64,
    pub seconds: f64,
}

/// Translates the sources of `pairs` greedily and scores them against the targets.
pub fn score<B: LstmBackend>(
    model: &TranslationModel<B>,
    pairs: &[SentencePair],
    device: &B::Device,
) -> Result<Scores> {
    let sources: Vec<&str> = pairs.iter().map(|p| p.source.as_str()).collect();
    let started = Instant::now();
    let translations = model.translate(&sources, &model.search(1, 1.0), EVAL_BATCH, device)?;
    let seconds = started.elapsed().as_secs_f64();
    let hypotheses: Vec<&str> = translations
        .iter()
        .map(|t| t.translation.as_str())
        .collect();
    let references: Vec<&str> = pairs.iter().map(|p| p.target.as_str()).collect();
    Ok(Scores {
        bleu: corpus_bleu(&hypotheses, &references).score,
        chrf: corpus_chrf(&hypotheses, &references),
        seconds,
    })
}

pub fn run<B: TrainBackend>(args: &TranslateArgs, device: &B::Device, backend: &str) -> Result<()> {
    let split =
        |name: &str| -> Result<Vec<SentencePair>> { Ok(read_pairs(&args.data_dir.join(name))?) };
    let mut train = split("train.tsv")?;
    if let Some(limit) = args.limit {
        train.truncate(limit);
    }
    let valid = split("valid.tsv")?;
    let test = split("test.tsv")?;

    let vocab = |side: &str, texts: Vec<&str>| {
        SubwordTokenizer::train(texts.into_iter(), args.vocab_size, 2)
            .with_context(|| format!("learning the {side} BPE vocabulary"))
    };
    let source = vocab("source", train.iter().map(|p| p.source.as_str()).collect())?;
    let target = vocab("target", train.iter().map(|p| p.target.as_str()).collect())?;
    let encode = |pairs: &[SentencePair]| encode_pairs(&source, &target, pairs);
    let (train_ids, valid_ids) = (encode(&train)?, encode(&valid)?);
    let pieces = |ids: &[EncodedPair], side: fn(&EncodedPair) -> usize| {
        ids.iter().map(side).sum::<usize>() as f64 / ids.len() as f64
    };
    println!(
        "data: {} training, {} validation, {} test pairs from {}; BPE vocabularies of {} source and {} target pieces; {:.1} source and {:.1} target pieces per training sentence",
        train.len(),
        valid.len(),
        test.len(),
        args.data_dir.display(),
        source.vocab_size(),
        target.vocab_size(),
        pieces(&train_ids, |p| p.source.len()),
        pieces(&train_ids, |p| p.target.len()),
    );

    let config = TranslationConfig {
        model: args.model(source.vocab_size(), target.vocab_size())?,
        max_source_len: args.max_source_len,
        max_target_len: args.max_target_len,
        training: Some(args.record()),
    };
    artifact::memory::check_fits(
        config.model.num_params(),
        true,
        &format!("the model of these options ({})", args.describe()),
    )?;
    B::seed(device, args.seed);
    let model = TranslateStep {
        model: config.model.init::<B>(device),
    };
    println!(
        "model: {}, {} parameters",
        args.describe(),
        model.num_params()
    );
    let optimizer = adam(args.clip_norm);
    let plan = Plan {
        epochs: args.epochs,
        lr: args.lr(),
        schedule: LrSchedule::Constant,
        select: Select::Loss,
        patience: args.patience,
        minutes: (args.minutes > 0.0).then_some(args.minutes),
        average: 1,
        log_every: args.log_every,
        horizon: Default::default(),
    };
    plan.check()?;

    let inputs: Vec<PathBuf> = ["train.tsv", "valid.tsv", "test.tsv"]
        .iter()
        .map(|f| args.data_dir.join(f))
        .collect();
    let input_refs: Vec<&std::path::Path> = inputs.iter().map(PathBuf::as_path).collect();
    let writer = ArtifactWriter::create_or_resume(
        &args.artifact_dir,
        "translator",
        &input_refs,
        args.resume,
    )?;
    let start = Start::prepare(&log_dir(writer.dir()), &config, args.resume)?;

    let batcher = PairBatcher::new(args.max_source_len, args.max_target_len);
    let length = |p: &EncodedPair| p.source.len().max(p.target.len());
    let batches = bucket_by_length(train_ids, length, args.batch_size, args.seed);
    let train_batches = batches.len();
    let train_loader = EpochLoader::new(
        batches,
        Bucketed(batcher.clone()),
        1,
        true,
        args.seed,
        start.done,
        device,
    );
    let valid_batches = valid_ids.len().div_ceil(EVAL_BATCH);
    let valid_loader = DataLoaderBuilder::<B::InnerBackend, _, _>::new(batcher)
        .batch_size(EVAL_BATCH)
        .set_device(device.clone())
        .build(InMemDataset::new(valid_ids));
    let training = SupervisedTraining::new(&start.log_dir, Arc::new(train_loader), valid_loader)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(AccuracyMetric::new())
        .metric_valid_numeric(AccuracyMetric::new());
    let learner = Learner::new(model, optimizer.init(), plan.lr);
    let batches = EpochBatches {
        train: train_batches,
        valid: valid_batches,
    };
    let fitted = fit(training, learner, &plan, &start, batches, device)?;

    let run = fitted.run;
    let parameters = fitted.model.num_params();
    let translator = TranslationModel {
        model: fitted.model.model,
        source,
        target,
        config,
    };
    let valid_scores = score(&translator, &valid, device)?;
    let test_scores = score(&translator, &test, device)?;
    let metrics = TranslatorMetrics {
        test_bleu: test_scores.bleu,
        test_chrf: test_scores.chrf,
        valid_bleu: valid_scores.bleu,
        valid_chrf: valid_scores.chrf,
        bleu_signature: Bleu::SIGNATURE.to_string(),
        chrf_signature: CHRF_SIGNATURE.to_string(),
        valid_loss: run.history.valid_loss[run.best_epoch - 1],
        valid_token_accuracy: run.history.valid_accuracy[run.best_epoch - 1],
        best_epoch: run.best_epoch,
        epochs_run: run.epochs_run,
        train_seconds: run.train_seconds,
        selected_by: run.selected_by,
        parameters,
        test_sentences_per_second: test.len() as f64 / test_scores.seconds,
        history: run.history,
        backend: backend.to_string(),
        profile: build_profile(),
    };
    println!(
        "greedy translations of the kept weights: validation BLEU {:.2}, chrF {:.2}; test BLEU {:.2}, chrF {:.2} ({:.0} sentences/s)",
        metrics.valid_bleu,
        metrics.valid_chrf,
        metrics.test_bleu,
        metrics.test_chrf,
        metrics.test_sentences_per_second
    );
    println!(
        "BLEU signature: {}; chrF signature: {CHRF_SIGNATURE}",
        Bleu::SIGNATURE
    );
    translator.write_into(&writer)?;
    writer.write_metrics(&metrics)?;
    let path = writer.commit()?;
    println!("artifact written to {}", path.display());
    Ok(())
}
