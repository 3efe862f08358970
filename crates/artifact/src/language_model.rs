//! A loaded character language model: its weights, its vocabulary and its
//! config (generation itself is `infer`'s).

use crate::config::LmConfig;
use crate::files::{
    CONFIG_FILE, TOKENIZER_FILE, TRAIN_LM, VOCAB_FILE, WEIGHTS_FILE, check_dir, read_json,
};
use crate::weights::{check_params_fit, load_weights};
use crate::writer::ArtifactWriter;
use anyhow::{Result, bail};
use burn::prelude::*;
use data::CharVocab;
use model::{CharLm, LstmBackend};
use std::path::Path;

pub struct LanguageModel<B: Backend> {
    pub model: CharLm<B>,
    pub vocab: CharVocab,
    pub config: LmConfig,
}

impl<B: LstmBackend> LanguageModel<B> {
    /// Loads a language-model artifact directory, checking its files against
    /// each other before any tensor is built.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        if dir.join(TOKENIZER_FILE).is_file() && !dir.join(VOCAB_FILE).exists() {
            bail!(
                "{} is a classifier artifact (it has {TOKENIZER_FILE}), not a language model: classify with `infer`, or train a language model with `{TRAIN_LM}`",
                dir.display(),
            );
        }
        crate::files::refuse_translator(dir, "a language model")?;
        check_dir(dir, &[CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE], TRAIN_LM)?;
        let config = LmConfig::load(dir)?;
        let vocab_path = dir.join(VOCAB_FILE);
        let vocab: CharVocab = read_json(
            &vocab_path,
            "a character vocabulary (a JSON list of characters)",
        )?;
        if vocab.len() != config.model.vocab_size {
            bail!(
                "{} has {} characters but {} says vocab_size = {}",
                vocab_path.display(),
                vocab.len(),
                dir.join(CONFIG_FILE).display(),
                config.model.vocab_size
            );
        }
        check_params_fit(dir, config.model.num_params())?;
        let model = load_weights(dir, config.model.init::<B>(device), device)?;
        Ok(Self {
            model,
            vocab,
            config,
        })
    }

    /// Writes the vocabulary, the config and the weights into `writer`'s
    /// staging directory (the metrics are the caller's).
    pub fn write_into(self, writer: &ArtifactWriter) -> Result<()> {
        writer.write_json(VOCAB_FILE, &self.vocab)?;
        writer.write_config(&self.config)?;
        writer.write_weights(self.model)
    }
}
