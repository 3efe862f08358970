//! A loaded translation model: its weights, both BPE vocabularies and its
//! config, and the one path from sentences to translations that `train`
//! (for BLEU after training) and `infer translate` share.

use crate::config::TranslationConfig;
use crate::files::{
    CONFIG_FILE, SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE, TOKENIZER_FILE, TRAIN_TRANSLATOR,
    VOCAB_FILE, WEIGHTS_FILE, check_dir,
};
use crate::weights::{check_params_fit, load_weights};
use crate::writer::ArtifactWriter;
use anyhow::{Result, bail};
use burn::prelude::*;
use data::{BOS_ID, EOS_ID, PairBatcher, SubwordTokenizer};
use model::{LstmBackend, SearchOptions, Seq2SeqModel};
use serde::Serialize;
use std::path::Path;

pub struct TranslationModel<B: Backend> {
    pub model: Seq2SeqModel<B>,
    pub source: SubwordTokenizer,
    pub target: SubwordTokenizer,
    pub config: TranslationConfig,
}

/// The translation of one sentence, with what the model did to make it.
#[derive(Debug, Clone, Serialize)]
pub struct Translation {
    pub translation: String,
    /// The source's subword pieces, as the model read them (after the cut
    /// to `max_source_len`).
    pub source_tokens: Vec<String>,
    /// The translation's pieces, then `[EOS]`.
    pub target_tokens: Vec<String>,
    /// Log-probability of the pieces and the end token.
    pub log_prob: f64,
    /// What the search ranked by (`log_prob / length^alpha`).
    pub score: f64,
    /// Weights of every target token (rows) over the source tokens
    /// (columns); each row sums to 1. Empty for the model without
    /// attention and for the Transformer (whose layers and heads each
    /// attend their own way).
    pub attention: Vec<Vec<f32>>,
    /// The translation was cut at `max_target_len`.
    pub truncated: bool,
}

impl<B: LstmBackend> TranslationModel<B> {
    /// Loads a translation artifact directory, checking its files against
    /// each other before any tensor is built.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        if !dir.join(SOURCE_TOKENIZER_FILE).exists() {
            if dir.join(TOKENIZER_FILE).is_file() {
                bail!(
                    "{} is a classifier artifact (it has {TOKENIZER_FILE}), not a translation model: classify with `infer --artifact-dir {}`, or train a translator with `{TRAIN_TRANSLATOR}`",
                    dir.display(),
                    dir.display()
                );
            }
            if dir.join(VOCAB_FILE).is_file() {
                bail!(
                    "{} is a language-model artifact (it has {VOCAB_FILE}), not a translation model: generate text with `infer generate --artifact-dir {}`",
                    dir.display(),
                    dir.display()
                );
            }
        }
        check_dir(
            dir,
            &[
                CONFIG_FILE,
                SOURCE_TOKENIZER_FILE,
                TARGET_TOKENIZER_FILE,
                WEIGHTS_FILE,
            ],
            TRAIN_TRANSLATOR,
        )?;
        let config = TranslationConfig::load(dir)?;
        let (source_vocab, target_vocab) = config.model.vocab_sizes();
        for (file, size, field) in [
            (SOURCE_TOKENIZER_FILE, source_vocab, "source_vocab"),
            (TARGET_TOKENIZER_FILE, target_vocab, "target_vocab"),
        ] {
            let tokens = SubwordTokenizer::load(&dir.join(file))?.vocab_size();
            if tokens != size {
                bail!(
                    "{} has {tokens} tokens but {} says model.{field} = {size}",
                    dir.join(file).display(),
                    dir.join(CONFIG_FILE).display(),
                );
            }
        }
        let source = SubwordTokenizer::load(&dir.join(SOURCE_TOKENIZER_FILE))?;
        let target = SubwordTokenizer::load(&dir.join(TARGET_TOKENIZER_FILE))?;
        check_params_fit(dir, config.model.num_params())?;
        let model = load_weights(dir, config.model.init::<B>(device), device)?;
        Ok(Self {
            model,
            source,
            target,
            config,
        })
    }

    /// Writes both vocabularies, the config and the weights into `writer`'s
    /// staging directory (the metrics are the caller's).
    pub fn write_into(self, writer: &ArtifactWriter) -> Result<()> {
        self.source
            .save(&writer.dir().join(SOURCE_TOKENIZER_FILE))?;
        self.target
            .save(&writer.dir().join(TARGET_TOKENIZER_FILE))?;
        writer.write_config(&self.config)?;
        writer.write_weights(self.model)
    }

    /// The search options for a beam of `beam` (1 = greedy) and length
    /// normalization `alpha`, up to the config's `max_target_len`.
    pub fn search(&self, beam: usize, alpha: f64) -> SearchOptions {
        SearchOptions {
            beam,
            max_len: self.config.max_target_len,
            alpha,
            bos: BOS_ID,
            eos: EOS_ID,
        }
    }

    /// Translates `sentences`, `batch` at a time. An empty sentence gets an
    /// empty translation without a forward pass.
    pub fn translate(
        &self,
        sentences: &[&str],
        search: &SearchOptions,
        batch: usize,
        device: &B::Device,
    ) -> Result<Vec<Translation>> {
        let batcher = PairBatcher::new(self.config.max_source_len, self.config.max_target_len);
        let attends = self.model.attention_kind().is_some();
        let mut out = Vec::with_capacity(sentences.len());
        for chunk in sentences.chunks(batch.max(1)) {
            let mut encoded = Vec::with_capacity(chunk.len());
            for sentence in chunk {
                let (mut ids, mut pieces) = self.source.encode_with_pieces(sentence)?;
                ids.truncate(self.config.max_source_len);
                pieces.truncate(self.config.max_source_len);
                encoded.push((ids, pieces));
            }
            let real: Vec<usize> = (0..chunk.len())
                .filter(|&i| !encoded[i].0.is_empty())
                .collect();
            let mut hypotheses = if real.is_empty() {
                Vec::new()
            } else {
                let ids: Vec<&[u32]> = real.iter().map(|&i| encoded[i].0.as_slice()).collect();
                let (source, mask) = batcher.sources::<B>(&ids, device);
                model::translate(&self.model, source, mask, search)
            }
            .into_iter();
            for (ids, pieces) in encoded {
                if ids.is_empty() {
                    out.push(Translation {
                        translation: String::new(),
                        source_tokens: Vec::new(),
                        target_tokens: Vec::new(),
                        log_prob: 0.0,
                        score: 0.0,
                        attention: Vec::new(),
                        truncated: false,
                    });
                    continue;
                }
                let hyp = hypotheses.next().expect("one hypothesis per sentence");
                let mut target_tokens: Vec<String> = hyp
                    .tokens
                    .iter()
                    .map(|&id| self.target.piece(id).unwrap_or_default())
                    .collect();
                target_tokens.push(data::SUBWORD_SPECIALS[EOS_ID as usize].to_string());
                out.push(Translation {
                    translation: self.target.decode(&hyp.tokens)?,
                    source_tokens: pieces,
                    target_tokens,
                    log_prob: hyp.log_prob,
                    score: hyp.score,
                    attention: if attends { hyp.attention } else { Vec::new() },
                    truncated: hyp.truncated,
                });
            }
        }
        Ok(out)
    }
}
