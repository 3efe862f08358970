//! A subword tokenizer for translation: byte-pair encoding (Sennrich et al.
//! 2016) trained with the `tokenizers` crate on one side of the training
//! pairs, saved as a standard `tokenizer.json`.
//!
//! Text is split on spaces only, each word keeping a leading `▁` in place of
//! its space (the Metaspace scheme of SentencePiece), so that decoding joins
//! the pieces back into exactly the text they came from: punctuation and case
//! survive, which BLEU counts. A word the merges never saw is spelled in
//! smaller pieces, down to single characters; a character the training text
//! never had becomes `[UNK]`, which decoding leaves out.

use crate::DataError;
use std::path::Path;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{AddedToken, Tokenizer};

/// The special tokens and their ids, the same on both sides. Padding is 0
/// so that a zero-filled tensor is all padding.
pub const SUBWORD_SPECIALS: [&str; 4] = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"];
/// The token the decoder starts from.
pub const BOS_ID: u32 = 2;
/// The token that ends a translation.
pub const EOS_ID: u32 = 3;

/// A trained BPE vocabulary.
#[derive(Clone)]
pub struct SubwordTokenizer {
    inner: Tokenizer,
}

impl SubwordTokenizer {
    /// Learns merges from `texts` until the vocabulary holds `vocab_size`
    /// entries (the four special tokens and every character of the texts
    /// included), or until no pair occurs `min_frequency` times.
    pub fn train<'a>(
        texts: impl Iterator<Item = &'a str> + Send,
        vocab_size: usize,
        min_frequency: u64,
    ) -> Result<Self, DataError> {
        let model = BPE::builder()
            .unk_token(SUBWORD_SPECIALS[1].to_string())
            .build()
            .map_err(tok_err)?;
        let mut inner = Tokenizer::new(model);
        inner.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
        inner.with_decoder(Some(MetaspaceDecoder::new(
            '▁',
            PrependScheme::Always,
            true,
        )));
        let trainer = BpeTrainer::builder()
            .vocab_size(vocab_size)
            .min_frequency(min_frequency)
            .show_progress(false)
            .special_tokens(
                SUBWORD_SPECIALS
                    .iter()
                    .map(|t| AddedToken::from(*t, true))
                    .collect(),
            )
            .build();
        let mut trainer = TrainerWrapper::BpeTrainer(trainer);
        inner.train(&mut trainer, texts).map_err(tok_err)?;
        let tokenizer = Self { inner };
        tokenizer
            .check_specials()
            .map_err(|e| DataError::Tokenizer(format!("after training: {e}")))?;
        Ok(tokenizer)
    }

    /// Loads a `tokenizer.json` written by [`SubwordTokenizer::save`],
    /// checking the special tokens' ids and that the ids are 0..n.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let named = |e: String| DataError::Tokenizer(format!("{}: {e}", path.display()));
        let inner = Tokenizer::from_file(path).map_err(|e| named(e.to_string()))?;
        let tokenizer = Self { inner };
        tokenizer.check_specials().map_err(named)?;
        crate::tokenizer::dense_ids(&tokenizer.inner).map_err(named)?;
        Ok(tokenizer)
    }

    fn check_specials(&self) -> Result<(), String> {
        for (id, token) in SUBWORD_SPECIALS.iter().enumerate() {
            if self.inner.token_to_id(token) != Some(id as u32) {
                return Err(format!("expected {token} to have id {id}"));
            }
        }
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        self.inner
            .save(path, false)
            .map_err(|e| DataError::Tokenizer(format!("{}: {e}", path.display())))
    }

    /// Number of ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The ids of `text`'s pieces, without [`BOS_ID`] or [`EOS_ID`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        Ok(self.encode_with_pieces(text)?.0)
    }

    /// The ids and the pieces they stand for (`▁` marks a word's start).
    pub fn encode_with_pieces(&self, text: &str) -> Result<(Vec<u32>, Vec<String>), DataError> {
        let encoding = self.inner.encode(text, false).map_err(tok_err)?;
        Ok((encoding.get_ids().to_vec(), encoding.get_tokens().to_vec()))
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        self.inner.decode(ids, true).map_err(tok_err)
    }

    /// The piece an id stands for.
    pub fn piece(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}

fn tok_err(e: tokenizers::Error) -> DataError {
    DataError::Tokenizer(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXTS: [&str; 4] = [
        "Ouvrir le fichier",
        "Fermer le fichier",
        "Ouvrir le dossier « Documents »",
        "le fichier est ouvert.",
    ];

    fn tiny() -> SubwordTokenizer {
        SubwordTokenizer::train(TEXTS.into_iter(), 60, 2).unwrap()
    }

    #[test]
    fn special_tokens_come_first_and_frequent_words_become_one_piece() {
        let tok = tiny();
        for (id, token) in SUBWORD_SPECIALS.iter().enumerate() {
            assert_eq!(tok.piece(id as u32).as_deref(), Some(*token));
        }
        let (ids, pieces) = tok.encode_with_pieces("le fichier").unwrap();
        assert_eq!(pieces, ["▁le", "▁fichier"]);
        assert!(ids.iter().all(|&id| id as usize >= SUBWORD_SPECIALS.len()));
        // A word never seen is spelled in smaller pieces.
        let (_, pieces) = tok.encode_with_pieces("fichiers").unwrap();
        assert!(pieces.len() > 1, "{pieces:?}");
        assert!(tok.vocab_size() <= 60);
    }

    #[test]
    fn decoding_gives_back_the_text_and_drops_unknown_characters() {
        let tok = tiny();
        for text in ["Ouvrir le dossier « Documents »", "le fichier est ouvert."] {
            assert_eq!(tok.decode(&tok.encode(text).unwrap()).unwrap(), text);
        }
        // 'z' never occurs in the training text.
        let ids = tok.encode("le fichier z").unwrap();
        assert!(ids.contains(&1), "{ids:?}");
        assert_eq!(tok.decode(&ids).unwrap().trim_end(), "le fichier");
        assert_eq!(tok.encode("").unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn save_and_load_round_trip_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target_tokenizer.json");
        let tok = tiny();
        tok.save(&path).unwrap();
        let loaded = SubwordTokenizer::load(&path).unwrap();
        let text = "Fermer le dossier";
        assert_eq!(loaded.encode(text).unwrap(), tok.encode(text).unwrap());
        std::fs::write(&path, "{not json").unwrap();
        let msg = SubwordTokenizer::load(&path).err().unwrap().to_string();
        assert!(msg.contains("target_tokenizer.json"), "{msg}");
    }
}
