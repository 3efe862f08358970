//! Datasets, tokenization and batchers for the sequence models.
//!
//! Translation reads sentence pairs ([`read_pairs`]) and spells them in
//! BPE pieces ([`SubwordTokenizer`]).
//!
//! This crate knows nothing of models: it turns files into token ids and token
//! ids into padded Burn tensors; [`synthetic`] generates the toy datasets of
//! the fundamentals. `train` and `infer` join it with `model`.
//!
//! ```no_run
//! use data::{LabelledText, WordTokenizer, read_labelled_tsv};
//! let labels = ["neg", "pos"];
//! let train = read_labelled_tsv("datasets/mr/train.tsv".as_ref(), &labels)?;
//! let tokenizer = WordTokenizer::train(train.iter().map(|t| t.text.as_str()), 1, 30_000)?;
//! let ids = tokenizer.encode("a charming film")?;
//! # Ok::<(), data::DataError>(())
//! ```

mod batcher;
mod bucket;
mod chars;
mod error;
mod pairs;
mod subword;
pub mod synthetic;
mod tokenizer;
mod tsv;
mod word_vectors;

pub use batcher::{EncodedText, PaddedIds, TextBatch, TextBatcher, encode_all};
pub use bucket::{Bucketed, POOL_BATCHES, bucket_by_length, padded_positions};
pub use chars::{CharBatch, CharBatcher, CharRow, CharStreams, CharVocab};
pub use error::DataError;
pub use pairs::{EncodedPair, PairBatch, PairBatcher, SentencePair, encode_pairs, read_pairs};
pub use subword::{BOS_ID, EOS_ID, SUBWORD_SPECIALS, SubwordTokenizer};
pub use tokenizer::{PAD_ID, PAD_TOKEN, UNK_ID, UNK_TOKEN, WordTokenizer};
pub use tsv::{
    LabelledText, MR_LABELS, TsvRow, TsvRows, label_row, labelled_rows, labels_of,
    read_labelled_tsv, read_tsv,
};
pub use word_vectors::WordVectors;
