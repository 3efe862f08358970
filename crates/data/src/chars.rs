//! Character-level text for language models: a character vocabulary and the
//! contiguous streams of truncated backpropagation through time, laid out as
//! char-rnn lays them out.

use crate::DataError;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// The characters of a text, each with an id (in sorted order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<char>", into = "Vec<char>")]
pub struct CharVocab {
    chars: Vec<char>,
    ids: HashMap<char, u32>,
}

impl From<Vec<char>> for CharVocab {
    fn from(chars: Vec<char>) -> Self {
        let ids = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        Self { chars, ids }
    }
}

impl From<CharVocab> for Vec<char> {
    fn from(vocab: CharVocab) -> Self {
        vocab.chars
    }
}

impl CharVocab {
    /// Every distinct character of `text`, sorted.
    pub fn from_text(text: &str) -> Self {
        let chars: BTreeSet<char> = text.chars().collect();
        chars.into_iter().collect::<Vec<_>>().into()
    }

    pub fn len(&self) -> usize {
        self.chars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The ids of `text`; an error listing every character the vocabulary
    /// does not have.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        let (ids, unknown) = self.encode_lossy(text);
        if unknown.is_empty() {
            Ok(ids)
        } else {
            Err(DataError::UnknownChars {
                chars: unknown
                    .iter()
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            })
        }
    }

    /// The ids of the characters the vocabulary has, and the distinct
    /// characters it skipped, in order of first appearance.
    pub fn encode_lossy(&self, text: &str) -> (Vec<u32>, Vec<char>) {
        let mut unknown = Vec::new();
        let ids = text
            .chars()
            .filter_map(|c| {
                let id = self.ids.get(&c).copied();
                if id.is_none() && !unknown.contains(&c) {
                    unknown.push(c);
                }
                id
            })
            .collect();
        (ids, unknown)
    }

    /// The text of `ids` (ids out of range are skipped).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .filter_map(|&i| self.chars.get(i as usize))
            .collect()
    }
}

/// A text cut into `batch` contiguous streams of equal length, served in
/// windows of `seq_len` steps: row b of batch k continues exactly where row
/// b of batch k − 1 stopped, so the hidden state a model ends a batch with
/// is the right state to start the next one with (truncated BPTT).
#[derive(Debug, Clone)]
pub struct CharStreams {
    ids: Vec<u32>,
    batch: usize,
    seq_len: usize,
    /// Steps per stream (inputs; each target is the next id).
    stream_len: usize,
}

/// One window of every stream. `[B, T]` each.
#[derive(Debug, Clone)]
pub struct CharBatch<B: Backend> {
    pub inputs: Tensor<B, 2, Int>,
    /// The character after each input.
    pub targets: Tensor<B, 2, Int>,
    /// Which window of the streams this is; window 0 starts them, so a
    /// model carrying state starts it afresh there.
    pub window: usize,
}

/// One row of one window: as a Burn [`Dataset`], [`CharStreams`] serves
/// window 0's rows, then window 1's, and so on, so that a data loader with
/// batch size B (and no shuffling) yields exactly one window per batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharRow {
    pub window: usize,
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
}

/// Stacks the rows of one window into a [`CharBatch`].
#[derive(Debug, Clone, Default)]
pub struct CharBatcher;

impl CharStreams {
    pub fn new(ids: Vec<u32>, batch: usize, seq_len: usize) -> Result<Self, DataError> {
        let stream_len = ids.len().saturating_sub(1) / batch.max(1);
        if batch == 0 || seq_len == 0 || stream_len < seq_len {
            return Err(DataError::TooShort {
                chars: ids.len(),
                needed: batch * seq_len + 1,
            });
        }
        Ok(Self {
            ids,
            batch,
            seq_len,
            stream_len,
        })
    }

    /// The same text cut `offset` characters later: the text turned left by
    /// `offset` (its first `offset` characters moved to its end) and cut
    /// into the same number of streams of the same length. Training cuts
    /// the text at a new offset every epoch: with one fixed cut, each
    /// stream starts from a zero state at the same character every epoch,
    /// and a model can learn to count steps and recite the training text by
    /// position — the language model of `train lm` did (docs/generation.md).
    /// The one place where the text's end meets its start falls inside a
    /// stream.
    pub fn rotated(&self, offset: usize) -> Self {
        let offset = offset % self.ids.len().max(1);
        let mut ids = Vec::with_capacity(self.ids.len());
        ids.extend_from_slice(&self.ids[offset..]);
        ids.extend_from_slice(&self.ids[..offset]);
        Self { ids, ..*self }
    }

    /// Steps in each stream: the offsets that give distinct cuts.
    pub fn stream_len(&self) -> usize {
        self.stream_len
    }

    /// Windows per pass over the text (the tail shorter than one window is dropped).
    pub fn len(&self) -> usize {
        self.stream_len / self.seq_len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inputs and targets of window `k`, row-major `[B, T]`.
    pub fn window(&self, k: usize) -> (Vec<u32>, Vec<u32>) {
        assert!(k < self.len(), "window {k} of {}", self.len());
        let mut inputs = Vec::with_capacity(self.batch * self.seq_len);
        let mut targets = Vec::with_capacity(self.batch * self.seq_len);
        for b in 0..self.batch {
            let start = b * self.stream_len + k * self.seq_len;
            inputs.extend_from_slice(&self.ids[start..start + self.seq_len]);
            targets.extend_from_slice(&self.ids[start + 1..start + self.seq_len + 1]);
        }
        (inputs, targets)
    }

    /// Window `k` as tensors on `device`.
    pub fn batch<B: Backend>(&self, k: usize, device: &B::Device) -> CharBatch<B> {
        let (inputs, targets) = self.window(k);
        char_batch(k, inputs, targets, self.batch, device)
    }

    /// Streams (rows of a batch).
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }
}

fn char_batch<B: Backend>(
    window: usize,
    inputs: Vec<u32>,
    targets: Vec<u32>,
    rows: usize,
    device: &B::Device,
) -> CharBatch<B> {
    let seq_len = inputs.len() / rows.max(1);
    let tensor = |ids: Vec<u32>| {
        let ids: Vec<i64> = ids.into_iter().map(i64::from).collect();
        Tensor::from_data(TensorData::new(ids, [rows, seq_len]), device)
    };
    CharBatch {
        inputs: tensor(inputs),
        targets: tensor(targets),
        window,
    }
}

impl Dataset<CharRow> for CharStreams {
    /// Row `index % B` of window `index / B`.
    fn get(&self, index: usize) -> Option<CharRow> {
        let (window, row) = (index / self.batch, index % self.batch);
        if window >= self.len() {
            return None;
        }
        let start = row * self.stream_len + window * self.seq_len;
        Some(CharRow {
            window,
            inputs: self.ids[start..start + self.seq_len].to_vec(),
            targets: self.ids[start + 1..start + self.seq_len + 1].to_vec(),
        })
    }

    fn len(&self) -> usize {
        self.len() * self.batch
    }
}

impl<B: Backend> Batcher<B, CharRow, CharBatch<B>> for CharBatcher {
    /// The rows must be the B rows of one window, in order (a loader with
    /// batch size B over [`CharStreams`], not shuffled, gives exactly that).
    fn batch(&self, rows: Vec<CharRow>, device: &B::Device) -> CharBatch<B> {
        let window = rows.first().map_or(0, |row| row.window);
        assert!(
            rows.iter().all(|row| row.window == window),
            "a character batch must hold the rows of one window: load CharStreams with its own batch size and no shuffling"
        );
        let n = rows.len();
        let mut inputs = Vec::with_capacity(n * rows.first().map_or(0, |r| r.inputs.len()));
        let mut targets = Vec::with_capacity(inputs.capacity());
        for row in rows {
            inputs.extend(row.inputs);
            targets.extend(row.targets);
        }
        char_batch(window, inputs, targets, n, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_sorted_and_round_trips() {
        let vocab = CharVocab::from_text("to be, or not to be");
        assert_eq!(vocab.chars(), &[' ', ',', 'b', 'e', 'n', 'o', 'r', 't']);
        let ids = vocab.encode("not to be").unwrap();
        assert_eq!(vocab.decode(&ids), "not to be");
        let json = serde_json::to_string(&vocab).unwrap();
        assert_eq!(json, r#"[" ",",","b","e","n","o","r","t"]"#);
        assert_eq!(serde_json::from_str::<CharVocab>(&json).unwrap(), vocab);
    }

    #[test]
    fn unknown_characters_are_named_or_skipped() {
        let vocab = CharVocab::from_text("abc");
        let err = vocab.encode("abXcYX").unwrap_err().to_string();
        assert!(err.contains("'X' 'Y'"), "{err}");
        let (ids, skipped) = vocab.encode_lossy("abXcYX");
        assert_eq!(vocab.decode(&ids), "abc");
        assert_eq!(skipped, ['X', 'Y']);
    }

    #[test]
    fn streams_are_contiguous_and_targets_are_the_next_character() {
        // ids 0..=100: 100 inputs with targets, 3 streams of 33, windows of 10.
        let streams = CharStreams::new((0..=100).collect(), 3, 10).unwrap();
        assert_eq!(streams.len(), 3);
        let windows: Vec<_> = (0..3).map(|k| streams.window(k)).collect();
        for (k, (inputs, targets)) in windows.iter().enumerate() {
            for b in 0..3 {
                let row = &inputs[b * 10..(b + 1) * 10];
                assert_eq!(row[0] as usize, b * 33 + k * 10, "window {k} row {b}");
                assert!(row.windows(2).all(|w| w[1] == w[0] + 1));
                let next = &targets[b * 10..(b + 1) * 10];
                assert!(row.iter().zip(next).all(|(i, t)| *t == i + 1));
                if k > 0 {
                    // Row b picks up where it stopped in the window before.
                    assert_eq!(row[0], windows[k - 1].0[b * 10 + 9] + 1);
                }
            }
        }
        let batch = streams.batch::<burn::backend::NdArray>(1, &Default::default());
        assert_eq!(batch.inputs.dims(), [3, 10]);
        assert_eq!(batch.targets.dims(), [3, 10]);
    }

    #[test]
    fn a_data_loader_over_the_streams_yields_the_windows_in_order() {
        use burn::backend::NdArray;
        use burn::data::dataloader::DataLoaderBuilder;
        let streams = CharStreams::new((0..=100).collect(), 3, 10).unwrap();
        assert_eq!(Dataset::len(&streams), 9);
        let loader = DataLoaderBuilder::<NdArray, _, _>::new(CharBatcher)
            .batch_size(streams.batch_size())
            .build(streams.clone());
        let mut seen = 0;
        for (k, batch) in loader.iter().enumerate() {
            assert_eq!(batch.window, k);
            let (inputs, targets) = streams.window(k);
            let ints = |t: Tensor<NdArray, 2, Int>| -> Vec<u32> {
                t.into_data().iter::<i64>().map(|v| v as u32).collect()
            };
            assert_eq!(ints(batch.inputs), inputs, "window {k}");
            assert_eq!(ints(batch.targets), targets, "window {k}");
            seen += 1;
        }
        assert_eq!(seen, 3);
    }

    #[test]
    fn a_text_too_short_for_one_window_is_an_error() {
        let err = CharStreams::new((0..20).collect(), 4, 5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("20 characters") && err.contains("21"), "{err}");
        assert!(CharStreams::new((0..21).collect(), 4, 5).is_ok());
    }

    #[test]
    fn a_rotated_cut_starts_each_stream_offset_characters_later() {
        let ids: Vec<u32> = (0..101).collect();
        let streams = CharStreams::new(ids.clone(), 4, 5).unwrap();
        assert_eq!(streams.stream_len(), 25);
        assert_eq!(streams.rotated(0).window(3), streams.window(3));
        let rotated = streams.rotated(7);
        assert_eq!(rotated.len(), streams.len());
        let (inputs, targets) = rotated.window(0);
        // Row b starts at b · 25 + 7, and its targets are the next characters.
        for b in 0..4 {
            let start = b * 25 + 7;
            let row: Vec<u32> = (start..start + 5).map(|i| (i % 101) as u32).collect();
            assert_eq!(inputs[b * 5..b * 5 + 5], row[..]);
            let next: Vec<u32> = (start + 1..start + 6).map(|i| (i % 101) as u32).collect();
            assert_eq!(targets[b * 5..b * 5 + 5], next[..]);
        }
        // Past the end, the text starts again.
        let (inputs, _) = streams.rotated(100).window(0);
        assert_eq!(inputs[..5], [100, 0, 1, 2, 3]);
    }
}
