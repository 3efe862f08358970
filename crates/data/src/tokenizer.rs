//! A word-level tokenizer built on the `tokenizers` crate: lowercase, split on
//! whitespace and punctuation (BERT's pre-tokenizer), one id per word. It is
//! trained on the training split only and saved as a standard `tokenizer.json`.

use crate::DataError;
use std::path::Path;
use tokenizers::models::ModelWrapper;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainer};
use tokenizers::normalizers::Lowercase;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{AddedToken, Tokenizer};

/// Padding: id 0, so that a zero-filled tensor is all padding.
pub const PAD_TOKEN: &str = "[PAD]";
pub const PAD_ID: u32 = 0;
/// Words not in the vocabulary.
pub const UNK_TOKEN: &str = "[UNK]";
pub const UNK_ID: u32 = 1;

/// A trained word-level vocabulary.
#[derive(Clone)]
pub struct WordTokenizer {
    inner: Tokenizer,
}

impl WordTokenizer {
    /// Builds the vocabulary from `texts`: words seen at least `min_frequency`
    /// times, the most frequent first, at most `max_vocab` entries including
    /// `[PAD]` (id 0) and `[UNK]` (id 1).
    pub fn train<'a>(
        texts: impl Iterator<Item = &'a str> + Send,
        min_frequency: u64,
        max_vocab: usize,
    ) -> Result<Self, DataError> {
        let model = WordLevel::builder()
            .unk_token(UNK_TOKEN.to_string())
            .build()
            .map_err(tok_err)?;
        let mut inner = Tokenizer::new(model);
        inner.with_normalizer(Some(Lowercase)).map_err(tok_err)?;
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        let trainer = WordLevelTrainer::builder()
            .min_frequency(min_frequency)
            .vocab_size(max_vocab)
            .show_progress(false)
            .special_tokens(vec![
                AddedToken::from(PAD_TOKEN, true),
                AddedToken::from(UNK_TOKEN, true),
            ])
            .build()
            .map_err(|e| DataError::Tokenizer(e.to_string()))?;
        let mut trainer = TrainerWrapper::WordLevelTrainer(trainer);
        inner.train(&mut trainer, texts).map_err(tok_err)?;
        let tokenizer = Self { inner };
        debug_assert_eq!(tokenizer.inner.token_to_id(PAD_TOKEN), Some(PAD_ID));
        debug_assert_eq!(tokenizer.inner.token_to_id(UNK_TOKEN), Some(UNK_ID));
        Ok(tokenizer)
    }

    /// Like [`WordTokenizer::train`], but a word seen fewer than
    /// `min_frequency` times (and at least once) is also kept where `keep` is
    /// true of it. Words with a pretrained vector (`train --embeddings`) need
    /// no second sighting to start from a meaningful embedding. The order is
    /// [`WordTokenizer::train`]'s: the most frequent first, ties by word, so
    /// that a `keep` true of nothing gives the same vocabulary.
    pub fn train_keeping<'a>(
        texts: &[&'a str],
        min_frequency: u64,
        max_vocab: usize,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Self, DataError> {
        // Every word in the trainer's order; the words seen `min_frequency`
        // times are a prefix of that order.
        let every = Self::train(texts.iter().copied(), 1, usize::MAX)?;
        let frequent = Self::train(texts.iter().copied(), min_frequency, usize::MAX)?.vocab_size();
        let mut vocab = ahash::AHashMap::new();
        for id in 0..every.vocab_size() as u32 {
            let word = every
                .token(id)
                .ok_or_else(|| DataError::Tokenizer(format!("id {id} has no word")))?;
            if vocab.len() < max_vocab && ((id as usize) < frequent || keep(&word)) {
                let next = vocab.len() as u32;
                vocab.insert(word, next);
            }
        }
        let model = WordLevel::builder()
            .vocab(vocab)
            .unk_token(UNK_TOKEN.to_string())
            .build()
            .map_err(tok_err)?;
        let mut inner = every.inner;
        inner.with_model(ModelWrapper::from(model));
        Ok(Self { inner })
    }

    /// The word of `id`, as the vocabulary holds it (lowercase).
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Loads a `tokenizer.json` written by [`WordTokenizer::save`].
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| DataError::Tokenizer(format!("{}: {e}", path.display())))?;
        for (token, id) in [(PAD_TOKEN, PAD_ID), (UNK_TOKEN, UNK_ID)] {
            if inner.token_to_id(token) != Some(id) {
                return Err(DataError::Tokenizer(format!(
                    "{}: expected {token} to have id {id}",
                    path.display()
                )));
            }
        }
        dense_ids(&inner).map_err(|e| DataError::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Self { inner })
    }

    /// Writes the tokenizer in the `tokenizers` JSON format.
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        self.inner
            .save(path, false)
            .map_err(|e| DataError::Tokenizer(format!("{}: {e}", path.display())))
    }

    /// Number of ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The ids of the words of `text` (unknown words become [`UNK_ID`]).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        Ok(self.encode_with_tokens(text)?.0)
    }

    /// The ids and the words of `text` they stand for, as written in `text`
    /// (so an unknown word shows as itself, not as `[UNK]`).
    pub fn encode_with_tokens(&self, text: &str) -> Result<(Vec<u32>, Vec<String>), DataError> {
        let encoding = self.inner.encode(text, false).map_err(tok_err)?;
        let words = encoding
            .get_offsets()
            .iter()
            .zip(encoding.get_tokens())
            .map(|(&(start, end), token)| text.get(start..end).unwrap_or(token).to_string())
            .collect();
        Ok((encoding.get_ids().to_vec(), words))
    }
}

/// Checks that the ids of `tokenizer`'s vocabulary are 0..n, each once, so
/// that every id indexes an embedding of n rows.
pub(crate) fn dense_ids(tokenizer: &Tokenizer) -> Result<(), String> {
    let vocab = tokenizer.get_vocab(true);
    let mut seen = vec![false; vocab.len()];
    for (token, &id) in &vocab {
        match seen.get_mut(id as usize) {
            Some(slot) if !*slot => *slot = true,
            _ => {
                return Err(format!(
                    "token {token:?} has id {id}, but a vocabulary of {} tokens needs the ids 0..{}, each once",
                    vocab.len(),
                    vocab.len()
                ));
            }
        }
    }
    Ok(())
}

fn tok_err(e: tokenizers::Error) -> DataError {
    DataError::Tokenizer(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordTokenizer {
        let texts = ["A good film.", "a BAD film", "good, good acting!"];
        WordTokenizer::train(texts.into_iter(), 1, 100).unwrap()
    }

    #[test]
    fn special_tokens_come_first_then_words_by_frequency() {
        let tok = tiny();
        // [PAD], [UNK], then: good (3), a (2), film (2), then the single ones.
        assert_eq!(tok.vocab_size(), 2 + 8);
        let (ids, tokens) = tok.encode_with_tokens("Good film, a masterpiece").unwrap();
        assert_eq!(tokens, ["Good", "film", ",", "a", "masterpiece"]);
        assert_eq!(ids, [2, 4, 6, 3, UNK_ID]);
    }

    #[test]
    fn min_frequency_and_max_vocab_limit_the_vocabulary() {
        let texts = ["a good film.", "a bad film", "good, good acting!"];
        let tok = WordTokenizer::train(texts.into_iter(), 2, 100).unwrap();
        assert_eq!(tok.vocab_size(), 2 + 3); // good, a, film
        let tok = WordTokenizer::train(texts.into_iter(), 1, 3).unwrap();
        assert_eq!(tok.vocab_size(), 3); // [PAD], [UNK], good
    }

    #[test]
    fn train_keeping_adds_the_rare_words_kept_and_keeps_the_order() {
        let texts = ["a good film.", "a bad film", "good, good acting!"];
        let vocab = |tok: &WordTokenizer| -> Vec<String> {
            (0..tok.vocab_size() as u32)
                .map(|id| tok.token(id).unwrap())
                .collect()
        };
        // Keeping nothing is `train`.
        let plain = WordTokenizer::train(texts.into_iter(), 2, 100).unwrap();
        let none = WordTokenizer::train_keeping(&texts, 2, 100, |_| false).unwrap();
        assert_eq!(vocab(&none), vocab(&plain));
        // "bad" and "acting" are seen once; only "bad" is kept, after the
        // frequent words, where its count puts it.
        let kept = WordTokenizer::train_keeping(&texts, 2, 100, |w| w == "bad").unwrap();
        assert_eq!(vocab(&kept), ["[PAD]", "[UNK]", "good", "a", "film", "bad"]);
        assert_eq!(kept.encode("A bad acting").unwrap(), [3, 5, UNK_ID]);
        // The limit still holds, specials included.
        let small = WordTokenizer::train_keeping(&texts, 2, 4, |_| true).unwrap();
        assert_eq!(vocab(&small), ["[PAD]", "[UNK]", "good", "a"]);
        // And it saves and loads like any other.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        kept.save(&path).unwrap();
        assert_eq!(vocab(&WordTokenizer::load(&path).unwrap()), vocab(&kept));
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let tok = tiny();
        tok.save(&path).unwrap();
        let loaded = WordTokenizer::load(&path).unwrap();
        let text = "A good, bad film nobody saw";
        assert_eq!(loaded.encode(text).unwrap(), tok.encode(text).unwrap());
        assert_eq!(loaded.vocab_size(), tok.vocab_size());

        std::fs::write(&path, "{not json").unwrap();
        let msg = WordTokenizer::load(&path).err().unwrap().to_string();
        assert!(msg.contains("tokenizer.json"), "{msg}");
    }
}
