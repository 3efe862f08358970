//! The text classifier for int8 inference on the CPU: the same function as
//! [`TextClassifier::forward`](crate::TextClassifier) — embedding, stacked
//! (bi)directional LSTM, attention pooling, output layer — with the weights
//! held as int8 and the products computed in integers.
//!
//! What is int8: the embedding rows (one scale per row, dequantized only for
//! the tokens of the batch), every LSTM's W and U and the output layer (one
//! scale per output column), and the activations entering each of those
//! products (one scale per row, at every step). What stays f32: the biases,
//! the cell state, the gates' nonlinearities, and attention pooling, whose
//! single scoring vector is cheap and whose weights a person reads.
//!
//! Weights are quantized here from the model's values, whatever they were
//! stored as: f32 weights directly (PyTorch's `quantize_dynamic` does the
//! same), and the int8 weights of a `train compress quantize` artifact after
//! dequantizing them — re-quantizing per column a tensor that had one scale
//! changes no value when the column holds the tensor's largest magnitude,
//! and otherwise moves it by less than half a step of the finer grid.

use super::lstm::{Int8Lstm, Packed};
use super::matmul::{Int8Matrix, Int8Rows, matmul};
use crate::TextClassifier;
use crate::cpu::kernel_threads;
use crate::cpu::threads::pool;
use burn::prelude::*;
use rayon::prelude::*;
use std::ops::Range;

/// Batches of fewer tokens run on one thread: a batch-1 sentence of 32
/// tokens takes about 60 µs, of the order of waking a second thread.
const PARALLEL_TOKENS: usize = 128;

/// A classifier whose encoder this path cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("int8 inference runs classifiers whose encoder is made of LSTM layers only")
    }
}

impl std::error::Error for Unsupported {}

/// A [`TextClassifier`]'s weights as int8, ready for [`forward`](Self::forward).
#[derive(Debug, Clone)]
pub struct Int8Classifier {
    /// One row per token id. `[V, E]`
    embedding: Vec<i8>,
    /// One scale per row. `[V]`
    embedding_scales: Vec<f32>,
    d_embed: usize,
    /// Each layer's forward LSTM and, when bidirectional, its backward one.
    layers: Vec<(Int8Lstm, Option<Int8Lstm>)>,
    /// Attention's scoring vector `[D]` and bias, in f32.
    score: Vec<f32>,
    score_bias: f32,
    /// `[D, C]`
    output: Int8Matrix,
    /// `[C]`
    output_bias: Vec<f32>,
}

/// What [`Int8Classifier::forward`] computes for a batch, as
/// [`ClassifierOutput`](crate::ClassifierOutput) does.
#[derive(Debug, Clone)]
pub struct Int8Output {
    /// Unnormalized class scores. `[B, C]`
    pub logits: Vec<f32>,
    /// Attention weight of each position (zero at padding). `[B, T]`
    pub attention: Vec<f32>,
}

fn values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .dequantize()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 values")
}

impl Int8Classifier {
    /// Quantizes `model`'s weights (see the module's documentation). Fails
    /// for an encoder that is not made of LSTM layers.
    pub fn from_model<B: Backend>(model: &TextClassifier<B>) -> Result<Self, Unsupported> {
        let (embedding, encoder, attention, output) = model.parts();
        let lstms = encoder.lstm_layers().ok_or(Unsupported)?;
        let [vocab, d_embed] = embedding.weight.val().dims();
        let table = values(embedding.weight.val());
        let mut codes = Int8Rows::default();
        codes.quantize(&table, vocab, d_embed);
        let (embedding, embedding_scales) = codes.into_signed(d_embed);
        let quantize = |lstm: &crate::Lstm<B>| {
            let (w, b, u) = lstm.weights();
            let d_input = w.dims()[0];
            Int8Lstm::quantize(&values(w), &values(b), &values(u), d_input)
        };
        let layers = lstms
            .into_iter()
            .map(|(forward, backward)| (quantize(forward), backward.map(quantize)))
            .collect();
        let (score, score_bias) = attention.score_weights();
        let [d, classes] = output.weight.val().dims();
        let output_bias = match &output.bias {
            Some(bias) => values(bias.val()),
            None => vec![0.0; classes],
        };
        Ok(Self {
            embedding,
            embedding_scales,
            d_embed,
            layers,
            score,
            score_bias,
            output: Int8Matrix::quantize(&values(output.weight.val()), d, classes),
            output_bias,
        })
    }

    pub fn num_classes(&self) -> usize {
        self.output_bias.len()
    }

    /// Token ids this model has embeddings for.
    pub fn vocab_size(&self) -> usize {
        self.embedding_scales.len()
    }

    /// Classifies right-padded token ids `tokens` `[B, T]` (row-major, T =
    /// `seq`), sequence b holding `lengths[b]` real tokens (at least one).
    ///
    /// Sequences are independent, so a batch runs as one group of
    /// consecutive sequences per core, each group on its own thread from
    /// start to end (no hand-off at every step), the groups cut to hold
    /// about as many tokens each.
    ///
    /// # Panics
    /// If the shapes disagree, a length is 0 or above T, or an id is not
    /// below [`vocab_size`](Self::vocab_size).
    pub fn forward(&self, tokens: &[u32], seq: usize, lengths: &[usize]) -> Int8Output {
        let batch = lengths.len();
        assert_eq!(tokens.len(), batch * seq, "[{batch}, {seq}] token ids");
        assert!(
            lengths.iter().all(|&len| (1..=seq).contains(&len)),
            "every length must be in 1..={seq}"
        );
        assert!(
            tokens.iter().all(|&id| (id as usize) < self.vocab_size()),
            "a token id is out of the vocabulary ({} ids)",
            self.vocab_size()
        );
        let classes = self.num_classes();
        let mut logits = vec![0.0; batch * classes];
        let mut attention = vec![0.0; batch * seq];
        let mut jobs = Vec::new();
        let (mut logits_rest, mut attention_rest) = (&mut logits[..], &mut attention[..]);
        for group in groups(lengths, kernel_threads()) {
            let n = group.len();
            let (l, rest) = logits_rest.split_at_mut(n * classes);
            logits_rest = rest;
            let (a, rest) = attention_rest.split_at_mut(n * seq);
            attention_rest = rest;
            jobs.push((group, l, a));
        }
        let run = |(group, logits, attention): (Range<usize>, &mut [f32], &mut [f32])| {
            let tokens = &tokens[group.start * seq..group.end * seq];
            self.forward_group(tokens, seq, &lengths[group], logits, attention);
        };
        if jobs.len() == 1 {
            jobs.into_iter().for_each(run);
        } else {
            pool().install(|| jobs.into_par_iter().for_each(run));
        }
        Int8Output { logits, attention }
    }

    /// [`forward`](Self::forward) for a group of sequences, on the calling
    /// thread, into `logits` `[B, C]` and `attention` `[B, T]`.
    fn forward_group(
        &self,
        tokens: &[u32],
        seq: usize,
        lengths: &[usize],
        logits: &mut [f32],
        attention: &mut [f32],
    ) {
        let batch = lengths.len();
        // The batch packed by length: longest first, and how many sequences
        // are still running at each step.
        let mut order: Vec<usize> = (0..batch).collect();
        order.sort_by_key(|&b| std::cmp::Reverse(lengths[b]));
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let packed = Packed {
            steps: (0..longest)
                .map(|s| lengths.iter().filter(|&&len| len > s).count())
                .collect(),
        };

        // Embeddings of the real positions, `[B, T, E]` (zeros at padding).
        let e = self.d_embed;
        let mut input = vec![0.0; batch * seq * e];
        for b in 0..batch {
            for t in 0..lengths[b] {
                let id = tokens[b * seq + t] as usize;
                let scale = self.embedding_scales[id];
                let codes = &self.embedding[id * e..(id + 1) * e];
                for (x, &q) in input[(b * seq + t) * e..].iter_mut().zip(codes) {
                    *x = q as f32 * scale;
                }
            }
        }

        // The encoder, layer by layer; each direction over the packed batch.
        let mut d_in = e;
        for (forward, backward) in &self.layers {
            let h = forward.d_hidden();
            let d_out = if backward.is_some() { 2 * h } else { h };
            let mut output = vec![0.0; batch * seq * d_out];
            for (direction, lstm) in std::iter::once(forward).chain(backward).enumerate() {
                // Row i of the packed batch at step s is sequence order[i] at
                // position s forwards, L − 1 − s backwards (the backward
                // direction starts at each sequence's own last token).
                let position = |s: usize, i: usize| {
                    let b = order[i];
                    let t = if direction == 0 {
                        s
                    } else {
                        lengths[b] - 1 - s
                    };
                    b * seq + t
                };
                lstm.forward(
                    &packed,
                    |s, i| &input[position(s, i) * d_in..][..d_in],
                    |s, i, hidden| {
                        let at = position(s, i) * d_out + direction * h;
                        output[at..at + h].copy_from_slice(hidden);
                    },
                );
            }
            input = output;
            d_in = d_out;
        }

        // Attention pooling over the real positions.
        let d = d_in;
        let mut pooled = vec![0.0; batch * d];
        for b in 0..batch {
            let weights = &mut attention[b * seq..b * seq + lengths[b]];
            for (t, w) in weights.iter_mut().enumerate() {
                let h = &input[(b * seq + t) * d..(b * seq + t + 1) * d];
                *w = h.iter().zip(&self.score).map(|(h, s)| h * s).sum::<f32>() + self.score_bias;
            }
            let max = weights.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            weights.iter_mut().for_each(|w| *w = (*w - max).exp());
            let sum: f32 = weights.iter().sum();
            weights.iter_mut().for_each(|w| *w /= sum);
            let pooled = &mut pooled[b * d..(b + 1) * d];
            for (t, &w) in weights.iter().enumerate() {
                let h = &input[(b * seq + t) * d..(b * seq + t + 1) * d];
                pooled.iter_mut().zip(h).for_each(|(p, h)| *p += w * h);
            }
        }

        // The output layer.
        logits
            .chunks_mut(self.num_classes())
            .for_each(|row| row.copy_from_slice(&self.output_bias));
        let mut rows = Int8Rows::default();
        rows.quantize(&pooled, batch, d);
        matmul(&rows, &self.output, logits, true);
    }
}

/// Consecutive groups of sequences, at most one per thread, each holding
/// about the same number of tokens; one group for a small batch.
fn groups(lengths: &[usize], threads: usize) -> Vec<Range<usize>> {
    let total: usize = lengths.iter().sum();
    let count = threads.min(lengths.len()).max(1);
    if count == 1 || total < PARALLEL_TOKENS {
        let whole = 0..lengths.len();
        return vec![whole];
    }
    let mut groups = Vec::with_capacity(count);
    let (mut start, mut seen) = (0, 0);
    for (b, &len) in lengths.iter().enumerate() {
        seen += len;
        // Cut once this group holds its share of the tokens.
        if seen * count >= total * (groups.len() + 1) && groups.len() + 1 < count {
            groups.push(start..b + 1);
            start = b + 1;
        }
    }
    groups.push(start..lengths.len());
    groups.retain(|g| !g.is_empty());
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CellKind, TextClassifierConfig};
    use burn::backend::NdArray;

    type B = NdArray;

    fn batch() -> (Vec<u32>, usize, Vec<usize>) {
        let lengths = vec![3, 8, 1, 5];
        let seq = 8;
        let mut tokens = vec![0u32; lengths.len() * seq];
        for (b, &len) in lengths.iter().enumerate() {
            for t in 0..len {
                tokens[b * seq + t] = (2 + (b * 7 + t * 13) % 45) as u32;
            }
        }
        (tokens, seq, lengths)
    }

    fn float_forward(
        model: &TextClassifier<B>,
        tokens: &[u32],
        seq: usize,
        lengths: &[usize],
    ) -> (Vec<f32>, Vec<f32>) {
        let device = Default::default();
        let batch = lengths.len();
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), &device);
        let mask = tokens.clone().not_equal_elem(0);
        let out = model.forward(tokens, mask);
        (
            out.logits.into_data().to_vec::<f32>().unwrap(),
            out.attention.into_data().to_vec::<f32>().unwrap(),
        )
    }

    /// One layer and two bidirectional ones: the logits within 0.05 of the
    /// f32 model's and the attention within 0.02, zero at padding; and a
    /// sequence gets the same answer alone as in the padded batch.
    #[test]
    fn the_int8_classifier_follows_the_f32_one() {
        let device = Default::default();
        for (layers, bidirectional) in [(1, false), (2, true)] {
            <B as Backend>::seed(&device, 11);
            let model = TextClassifierConfig::new(50, 3)
                .with_d_embed(24)
                .with_d_hidden(20)
                .with_layers(layers)
                .with_bidirectional(bidirectional)
                .init::<B>(&device);
            let int8 = Int8Classifier::from_model(&model).unwrap();
            let (tokens, seq, lengths) = batch();
            let out = int8.forward(&tokens, seq, &lengths);
            let (logits, attention) = float_forward(&model, &tokens, seq, &lengths);
            let worst = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max)
            };
            let (dl, da) = (
                worst(&out.logits, &logits),
                worst(&out.attention, &attention),
            );
            println!("{layers} layers, bidirectional {bidirectional}: logits {dl}, attention {da}");
            assert!(dl < 0.05 && dl > 0.0, "logits moved by {dl}");
            assert!(da < 0.02, "attention moved by {da}");
            for (b, &len) in lengths.iter().enumerate() {
                let row = &out.attention[b * seq..(b + 1) * seq];
                assert!(row[len..].iter().all(|&w| w == 0.0), "padding got weight");
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
            // Sequence 0 alone, unpadded.
            let alone = int8.forward(&tokens[..lengths[0]], lengths[0], &lengths[..1]);
            assert_eq!(alone.logits, out.logits[..3].to_vec());
        }
    }

    /// A batch large enough to run as several groups on several threads
    /// gives each sequence exactly what it gets alone.
    #[test]
    fn a_batch_answers_what_each_sequence_answers_alone() {
        let device = Default::default();
        let model = TextClassifierConfig::new(50, 2)
            .with_d_embed(16)
            .with_d_hidden(12)
            .with_bidirectional(true)
            .init::<B>(&device);
        let int8 = Int8Classifier::from_model(&model).unwrap();
        let seq = 12;
        let lengths: Vec<usize> = (0..40).map(|b| 1 + (b * 5) % seq).collect();
        assert!(lengths.iter().sum::<usize>() >= PARALLEL_TOKENS);
        let tokens: Vec<u32> = (0..40 * seq)
            .map(|k| {
                if k % seq < lengths[k / seq] {
                    (2 + k % 47) as u32
                } else {
                    0
                }
            })
            .collect();
        let out = int8.forward(&tokens, seq, &lengths);
        for (b, &len) in lengths.iter().enumerate() {
            let alone = int8.forward(&tokens[b * seq..b * seq + len], len, &[len]);
            assert_eq!(
                alone.logits,
                out.logits[2 * b..2 * b + 2].to_vec(),
                "sequence {b}"
            );
            assert_eq!(
                alone.attention,
                out.attention[b * seq..b * seq + len].to_vec()
            );
        }
    }

    /// Groups cover the batch in order, hold similar numbers of tokens, and
    /// a small batch is one group.
    #[test]
    fn groups_split_the_tokens_evenly() {
        assert_eq!(groups(&[32], 2), vec![0..1]);
        assert_eq!(groups(&[10, 10, 10], 2), vec![0..3]);
        let lengths: Vec<usize> = (0..256).map(|b| 32 + (b * 37) % 33).collect();
        let cut = groups(&lengths, 2);
        assert_eq!(cut.len(), 2);
        assert_eq!(
            (cut[0].start, cut[0].end, cut[1].end),
            (0, cut[1].start, 256)
        );
        let tokens = |g: &Range<usize>| lengths[g.clone()].iter().sum::<usize>() as f64;
        let share = tokens(&cut[0]) / (tokens(&cut[0]) + tokens(&cut[1]));
        assert!((share - 0.5).abs() < 0.01, "{share}");
    }

    #[test]
    fn other_encoders_are_refused() {
        let device = Default::default();
        for cell in [CellKind::Gru, CellKind::Rnn, CellKind::Transformer] {
            let model = TextClassifierConfig::new(20, 2)
                .with_d_embed(8)
                .with_d_hidden(8)
                .with_heads(2)
                .with_cell(cell)
                .init::<B>(&device);
            assert_eq!(Int8Classifier::from_model(&model).unwrap_err(), Unsupported);
        }
    }
}
