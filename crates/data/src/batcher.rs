//! From token ids to padded tensors.
//!
//! Shapes: B = batch size, T = the longest sequence of the batch (at most
//! `max_seq_len`). Sequences are right-padded with [`PAD_ID`].

use crate::{DataError, LabelledText, PAD_ID, UNK_ID, WordTokenizer};
use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;

/// A tokenized example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    pub ids: Vec<u32>,
    pub label: usize,
}

/// Tokenizes a whole split once, so that epochs only pad and copy.
pub fn encode_all(
    tokenizer: &WordTokenizer,
    items: &[LabelledText],
) -> Result<Vec<EncodedText>, DataError> {
    items
        .iter()
        .map(|item| {
            Ok(EncodedText {
                ids: tokenizer.encode(&item.text)?,
                label: item.label,
            })
        })
        .collect()
}

/// A batch of right-padded sequences.
#[derive(Debug, Clone)]
pub struct TextBatch<B: Backend> {
    /// Token ids, [`PAD_ID`] after each sequence's end. `[B, T]`
    pub tokens: Tensor<B, 2, Int>,
    /// True at real tokens, false at padding. `[B, T]`
    pub mask: Tensor<B, 2, Bool>,
    /// Number of real tokens of each sequence (at least 1). `[B]`
    pub lengths: Vec<usize>,
    /// Class indices. `[B]`
    pub labels: Tensor<B, 1, Int>,
}

/// Pads a batch to its longest sequence, truncating sequences longer than
/// `max_seq_len`. An empty sequence becomes a single [`UNK_ID`], so that every
/// sequence has at least one real position for attention to look at.
#[derive(Debug, Clone)]
pub struct TextBatcher {
    pub max_seq_len: usize,
}

impl TextBatcher {
    pub fn new(max_seq_len: usize) -> Self {
        assert!(max_seq_len > 0, "max_seq_len must be at least 1");
        Self { max_seq_len }
    }

    /// Token ids and mask for a batch of sequences, and their lengths.
    /// Returns `([B, T] ids, [B, T] mask, lengths)`.
    pub fn pad<B: Backend>(
        &self,
        sequences: &[&[u32]],
        device: &B::Device,
    ) -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>, Vec<usize>) {
        let padded = self.pad_ids(sequences);
        let (batch, seq_len) = (sequences.len(), padded.seq_len);
        let mut mask = vec![false; batch * seq_len];
        for (row, &len) in padded.lengths.iter().enumerate() {
            mask[row * seq_len..row * seq_len + len].fill(true);
        }
        let ids: Vec<i64> = padded.ids.iter().map(|&id| id as i64).collect();
        let tokens = Tensor::from_data(TensorData::new(ids, [batch, seq_len]), device);
        let mask = Tensor::from_data(TensorData::new(mask, [batch, seq_len]), device);
        (tokens, mask, padded.lengths)
    }

    /// [`pad`](Self::pad) on the host: the same ids and lengths as plain
    /// vectors, for code that runs outside Burn (the host classifier).
    pub fn pad_ids(&self, sequences: &[&[u32]]) -> PaddedIds {
        let lengths: Vec<usize> = sequences
            .iter()
            .map(|ids| ids.len().clamp(1, self.max_seq_len))
            .collect();
        let batch = sequences.len();
        let seq_len = lengths.iter().copied().max().unwrap_or(1);
        let mut ids = vec![PAD_ID; batch * seq_len];
        for (row, seq) in sequences.iter().enumerate() {
            let start = row * seq_len;
            if seq.is_empty() {
                ids[start] = UNK_ID;
            }
            for (slot, &id) in ids[start..].iter_mut().zip(seq.iter().take(lengths[row])) {
                *slot = id;
            }
        }
        PaddedIds {
            ids,
            seq_len,
            lengths,
        }
    }
}

/// A batch of token ids padded on the host (see [`TextBatcher::pad_ids`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddedIds {
    /// `[B, T]`, row-major, [`PAD_ID`] after each sequence's end.
    pub ids: Vec<u32>,
    /// T: the longest length.
    pub seq_len: usize,
    /// Real tokens of each sequence (at least 1). `[B]`
    pub lengths: Vec<usize>,
}

impl<B: Backend> Batcher<B, EncodedText, TextBatch<B>> for TextBatcher {
    fn batch(&self, items: Vec<EncodedText>, device: &B::Device) -> TextBatch<B> {
        let sequences: Vec<&[u32]> = items.iter().map(|item| item.ids.as_slice()).collect();
        let (tokens, mask, lengths) = self.pad(&sequences, device);
        let labels: Vec<i64> = items.iter().map(|item| item.label as i64).collect();
        let labels = Tensor::from_data(TensorData::new(labels, [items.len()]), device);
        TextBatch {
            tokens,
            mask,
            lengths,
            labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn pads_to_the_longest_truncates_and_masks() {
        let items = vec![
            EncodedText {
                ids: vec![5, 6, 7],
                label: 1,
            },
            EncodedText {
                ids: vec![8],
                label: 0,
            },
            EncodedText {
                ids: vec![],
                label: 1,
            },
            EncodedText {
                ids: vec![2, 3, 4, 5, 6, 7],
                label: 0,
            },
        ];
        let batch: TextBatch<NdArray> = TextBatcher::new(4).batch(items, &Default::default());
        assert_eq!(batch.lengths, [3, 1, 1, 4]);
        let tokens = batch
            .tokens
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap();
        #[rustfmt::skip]
        assert_eq!(tokens, [
            5, 6, 7, 0,
            8, 0, 0, 0,
            1, 0, 0, 0,
            2, 3, 4, 5,
        ]);
        let mask = batch.mask.into_data().to_vec::<bool>().unwrap();
        let expected: Vec<bool> = [3, 1, 1, 4]
            .iter()
            .flat_map(|&n| (0..4).map(move |t| t < n))
            .collect();
        assert_eq!(mask, expected);
        let labels = batch
            .labels
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap();
        assert_eq!(labels, [1, 0, 1, 0]);
    }

    #[test]
    fn encode_all_keeps_labels() {
        let tok = WordTokenizer::train(["good film", "bad film"].into_iter(), 1, 10).unwrap();
        let items = [
            LabelledText {
                text: "good film".into(),
                label: 1,
            },
            LabelledText {
                text: "awful".into(),
                label: 0,
            },
        ];
        let encoded = encode_all(&tok, &items).unwrap();
        assert_eq!(encoded[0].ids.len(), 2);
        assert_eq!(encoded[0].label, 1);
        assert_eq!(
            encoded[1],
            EncodedText {
                ids: vec![UNK_ID],
                label: 0
            }
        );
    }
}
