//! Sentence pairs for translation: files of `source<TAB>target` lines, their
//! subword ids, and padded batches for teacher forcing.
//!
//! Shapes: B = batch size, S = the longest source of the batch, T = the
//! longest target plus one (the start token in front for the decoder's
//! inputs, the end token behind for its outputs).

use crate::{BOS_ID, DataError, EOS_ID, PAD_ID, SubwordTokenizer, TsvRows, UNK_ID};
use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;
use std::path::Path;

/// One line of a parallel corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentencePair {
    pub source: String,
    pub target: String,
}

/// Every `source<TAB>target` line of `path` (the target is everything after
/// the first tab); blank lines are skipped, a file without a pair is an
/// error, and so is a line without a tab, naming the line.
pub fn read_pairs(path: &Path) -> Result<Vec<SentencePair>, DataError> {
    let mut pairs = Vec::new();
    for row in TsvRows::open(path)? {
        let row = row.map_err(|err| match err {
            DataError::MissingTab { path, line } => DataError::NotAPair { path, line },
            other => other,
        })?;
        pairs.push(SentencePair {
            source: row.label,
            target: row.text.trim().to_string(),
        });
    }
    if pairs.is_empty() {
        return Err(DataError::NoPairs {
            path: path.to_path_buf(),
        });
    }
    Ok(pairs)
}

/// A pair as subword ids, cut to the batcher's limits later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPair {
    pub source: Vec<u32>,
    pub target: Vec<u32>,
}

/// Tokenizes a whole split once, so that epochs only pad and copy.
pub fn encode_pairs(
    source: &SubwordTokenizer,
    target: &SubwordTokenizer,
    pairs: &[SentencePair],
) -> Result<Vec<EncodedPair>, DataError> {
    pairs
        .iter()
        .map(|pair| {
            Ok(EncodedPair {
                source: source.encode(&pair.source)?,
                target: target.encode(&pair.target)?,
            })
        })
        .collect()
}

/// A batch of pairs, right-padded with [`PAD_ID`].
#[derive(Debug, Clone)]
pub struct PairBatch<B: Backend> {
    /// `[B, S]`
    pub source: Tensor<B, 2, Int>,
    /// True at real source tokens. `[B, S]`
    pub source_mask: Tensor<B, 2, Bool>,
    /// [`BOS_ID`] then the target: what the decoder reads. `[B, T]`
    pub target_in: Tensor<B, 2, Int>,
    /// The target then [`EOS_ID`]: what it should write; [`PAD_ID`] where
    /// there is nothing to predict. `[B, T]`
    pub target_out: Tensor<B, 2, Int>,
    /// The flat indices (into `[B·T]`) of `target_out`'s real tokens, in
    /// order: what a loss over real tokens selects. `[N]`
    pub target_positions: Tensor<B, 1, Int>,
}

/// Pads pairs into a [`PairBatch`], cutting sources to `max_source` and
/// targets to `max_target` tokens. An empty source becomes one
/// [`UNK_ID`], so that attention always has a position to look at.
#[derive(Debug, Clone)]
pub struct PairBatcher {
    pub max_source: usize,
    pub max_target: usize,
}

impl PairBatcher {
    pub fn new(max_source: usize, max_target: usize) -> Self {
        assert!(
            max_source > 0 && max_target > 0,
            "limits must be at least 1"
        );
        Self {
            max_source,
            max_target,
        }
    }

    /// The source ids and mask of a batch of sentences, `[B, S]` each: what
    /// decoding needs.
    pub fn sources<B: Backend>(
        &self,
        sources: &[&[u32]],
        device: &B::Device,
    ) -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>) {
        let cut: Vec<&[u32]> = sources
            .iter()
            .map(|s| {
                if s.is_empty() {
                    &[UNK_ID][..]
                } else {
                    &s[..s.len().min(self.max_source)]
                }
            })
            .collect();
        let width = cut.iter().map(|s| s.len()).max().unwrap_or(1);
        let mut ids = Vec::with_capacity(cut.len() * width);
        let mut mask = Vec::with_capacity(cut.len() * width);
        for s in &cut {
            for i in 0..width {
                ids.push(s.get(i).map_or(PAD_ID as i64, |&id| id as i64));
                mask.push(i < s.len());
            }
        }
        let shape = [cut.len(), width];
        (
            Tensor::from_data(TensorData::new(ids, shape), device),
            Tensor::from_data(TensorData::new(mask, shape), device),
        )
    }
}

impl<B: Backend> Batcher<B, EncodedPair, PairBatch<B>> for PairBatcher {
    fn batch(&self, items: Vec<EncodedPair>, device: &B::Device) -> PairBatch<B> {
        let sources: Vec<&[u32]> = items.iter().map(|p| p.source.as_slice()).collect();
        let (source, source_mask) = self.sources::<B>(&sources, device);
        let targets: Vec<&[u32]> = items
            .iter()
            .map(|p| &p.target[..p.target.len().min(self.max_target)])
            .collect();
        let width = targets.iter().map(|t| t.len()).max().unwrap_or(0) + 1;
        let mut inputs = Vec::with_capacity(items.len() * width);
        let mut outputs = Vec::with_capacity(items.len() * width);
        let mut positions = Vec::new();
        for t in &targets {
            for i in 0..width {
                let input = match i {
                    0 => BOS_ID,
                    i if i <= t.len() => t[i - 1],
                    _ => PAD_ID,
                };
                let output = match i {
                    i if i < t.len() => t[i],
                    i if i == t.len() => EOS_ID,
                    _ => PAD_ID,
                };
                if output != PAD_ID {
                    positions.push(outputs.len() as i64);
                }
                inputs.push(input as i64);
                outputs.push(output as i64);
            }
        }
        let shape = [items.len(), width];
        let n = positions.len();
        PairBatch {
            source,
            source_mask,
            target_in: Tensor::from_data(TensorData::new(inputs, shape), device),
            target_out: Tensor::from_data(TensorData::new(outputs, shape), device),
            target_positions: Tensor::from_data(TensorData::new(positions, [n]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    #[test]
    fn pads_shifts_the_target_and_cuts_to_the_limits() {
        let batcher = PairBatcher::new(3, 2);
        let items = vec![
            EncodedPair {
                source: vec![10, 11, 12, 13],
                target: vec![20, 21, 22],
            },
            EncodedPair {
                source: vec![],
                target: vec![30],
            },
        ];
        let batch: PairBatch<B> = batcher.batch(items, &Default::default());
        let ints = |t: Tensor<B, 2, Int>| t.into_data().convert::<i64>().to_vec::<i64>().unwrap();
        assert_eq!(ints(batch.source), [10, 11, 12, 1, 0, 0]);
        assert_eq!(
            batch.source_mask.into_data().to_vec::<bool>().unwrap(),
            [true, true, true, true, false, false]
        );
        assert_eq!(ints(batch.target_in), [2, 20, 21, 2, 30, 0]);
        assert_eq!(ints(batch.target_out), [20, 21, 3, 30, 3, 0]);
        let positions = batch.target_positions.into_data().convert::<i64>();
        assert_eq!(positions.to_vec::<i64>().unwrap(), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn pairs_are_read_with_their_line_numbers_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.tsv");
        std::fs::write(
            &path,
            "\u{feff}Open\tOuvrir\r\n\nSave as\tEnregistrer sous\n",
        )
        .unwrap();
        let pairs = read_pairs(&path).unwrap();
        assert_eq!(
            pairs[1],
            SentencePair {
                source: "Save as".into(),
                target: "Enregistrer sous".into()
            }
        );
        std::fs::write(&path, "Open\tOuvrir\nno tab here\n").unwrap();
        let msg = read_pairs(&path).unwrap_err().to_string();
        assert!(
            msg.ends_with("pairs.tsv:2: no tab: expected `source<TAB>target`"),
            "{msg}"
        );
        std::fs::write(&path, "\n").unwrap();
        let msg = read_pairs(&path).unwrap_err().to_string();
        assert!(msg.contains("no sentence pair"), "{msg}");
    }
}
