//! The text classifier for inference on the CPU, outside Burn's tensor
//! operations: the same function as
//! [`TextClassifier::forward`](crate::TextClassifier) — embedding, stacked
//! (bi)directional LSTM, attention pooling (and max and mean pooling beside
//! it for `Pooling::Concat`), output layer — over plain
//! buffers, in one of two weight formats ([`format`]):
//!
//! - [`F32Classifier`]: the model's own f32 values. Written with tensor
//!   operations, a forward pass is about a dozen backend calls around the
//!   LSTM, each allocating, and the LSTM forks and joins at every step;
//!   here a batch of one is a few microseconds of bookkeeping.
//! - [`Int8Classifier`]: int8 embedding rows (one scale per row), every
//!   LSTM's W and U and the output layer in int8 (one scale per output
//!   column), and the activations entering each of those products (one
//!   scale per row, at every step).
//!
//! Both keep in f32 the biases, the cell state, the gates' nonlinearities,
//! and the pooling, whose single scoring vector is cheap and whose
//! weights a person reads. Both pack the batch by length (no padded
//! position is computed) and run one group of sequences per thread from
//! embedding to logits.
//!
//! Weights are taken from the model's values, whatever they were stored
//! as. For int8: f32 weights are quantized directly (PyTorch's
//! `quantize_dynamic` does the same), and the int8 weights of a `train
//! compress quantize` artifact after dequantizing them — re-quantizing per
//! column a tensor that had one scale changes no value when the column
//! holds the tensor's largest magnitude, and otherwise moves it by less
//! than half a step of the finer grid.

pub mod format;
mod lstm;

use crate::cpu::kernel_threads;
use crate::cpu::threads::pool;
use crate::{Pooling, TextClassifier};
use burn::prelude::*;
use format::{F32, Format, Int8};
use lstm::{HostLstm, Packed};
use rayon::prelude::*;
use std::ops::Range;

/// Batches of fewer tokens run on one thread: a batch-1 sentence of 32
/// tokens takes about 50 µs in int8, of the order of waking a second thread.
const PARALLEL_TOKENS: usize = 128;

/// A classifier whose encoder this path cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the host classifier runs classifiers whose encoder is made of LSTM layers only",
        )
    }
}

impl std::error::Error for Unsupported {}

/// A [`TextClassifier`]'s weights in format `F`, ready for
/// [`forward`](Self::forward).
#[derive(Debug, Clone)]
pub struct HostClassifier<F: Format> {
    /// One row per token id. `[V, E]`
    embedding: F::Table,
    d_embed: usize,
    /// Each layer's forward LSTM and, when bidirectional, its backward one.
    layers: Vec<(HostLstm<F>, Option<HostLstm<F>>)>,
    /// Attention's scoring vector `[D]` and bias, in f32.
    score: Vec<f32>,
    score_bias: f32,
    /// Attention alone, or with max and mean pooling after it.
    pooling: Pooling,
    /// `[P, C]`, P = D or 3D (the pooling's output).
    output: F::Matrix,
    /// `[C]`
    output_bias: Vec<f32>,
}

/// The classifier with the model's own f32 weights.
pub type F32Classifier = HostClassifier<F32>;
/// The classifier with int8 weights.
pub type Int8Classifier = HostClassifier<Int8>;

/// What [`HostClassifier::forward`] computes for a batch, as
/// [`ClassifierOutput`](crate::ClassifierOutput) does.
#[derive(Debug, Clone)]
pub struct HostOutput {
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

impl<F: Format> HostClassifier<F> {
    /// `model`'s weights in format `F` (see the module's documentation).
    /// Fails for an encoder that is not made of LSTM layers.
    pub fn from_model<B: Backend>(model: &TextClassifier<B>) -> Result<Self, Unsupported> {
        let (embedding, encoder, attention, output) = model.parts();
        let lstms = encoder.lstm_layers().ok_or(Unsupported)?;
        let [vocab, d_embed] = embedding.weight.val().dims();
        let embedding = F::table(&values(embedding.weight.val()), vocab, d_embed);
        let layer = |lstm: &crate::Lstm<B>| {
            let (w, b, u) = lstm.weights();
            let d_input = w.dims()[0];
            HostLstm::new(&values(w), &values(b), &values(u), d_input)
        };
        let layers = lstms
            .into_iter()
            .map(|(forward, backward)| (layer(forward), backward.map(layer)))
            .collect();
        let (score, score_bias) = attention.score_weights();
        let [pooled, classes] = output.weight.val().dims();
        let output_bias = match &output.bias {
            Some(bias) => values(bias.val()),
            None => vec![0.0; classes],
        };
        Ok(Self {
            embedding,
            d_embed,
            layers,
            score,
            score_bias,
            pooling: model.pooling(),
            output: F::matrix(&values(output.weight.val()), pooled, classes),
            output_bias,
        })
    }

    pub fn num_classes(&self) -> usize {
        self.output_bias.len()
    }

    /// Token ids this model has embeddings for.
    pub fn vocab_size(&self) -> usize {
        F::table_rows(&self.embedding)
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
    pub fn forward(&self, tokens: &[u32], seq: usize, lengths: &[usize]) -> HostOutput {
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
        HostOutput { logits, attention }
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
                let at = (b * seq + t) * e;
                F::read_row(&self.embedding, id, &mut input[at..at + e]);
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

        // Attention pooling over the real positions, then max and mean
        // pooling beside it for `Pooling::Concat`.
        let d = d_in;
        let p = self.pooling.d_output(d);
        let mut pooled = vec![0.0; batch * p];
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
            let pooled = &mut pooled[b * p..(b + 1) * p];
            let (attended, rest) = pooled.split_at_mut(d);
            for (t, &w) in weights.iter().enumerate() {
                let h = &input[(b * seq + t) * d..(b * seq + t + 1) * d];
                attended.iter_mut().zip(h).for_each(|(p, h)| *p += w * h);
            }
            if self.pooling == Pooling::Concat {
                let (max, mean) = rest.split_at_mut(d);
                max.fill(f32::NEG_INFINITY);
                for t in 0..lengths[b] {
                    let h = &input[(b * seq + t) * d..(b * seq + t + 1) * d];
                    max.iter_mut().zip(h).for_each(|(m, &h)| *m = m.max(h));
                    mean.iter_mut().zip(h).for_each(|(m, h)| *m += h);
                }
                let n = lengths[b] as f32;
                mean.iter_mut().for_each(|m| *m /= n);
            }
        }

        // The output layer.
        logits
            .chunks_mut(self.num_classes())
            .for_each(|row| row.copy_from_slice(&self.output_bias));
        F::multiply_add(
            &pooled,
            batch,
            &self.output,
            logits,
            &mut F::Scratch::default(),
        );
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

    fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    }

    /// For one layer and for two bidirectional ones, attention-pooled, and
    /// for one layer concat-pooled: how far format `F`'s logits and
    /// attention are from the model's (largest differences); checks that
    /// padding gets no weight, and that sequence 0 alone gets what it gets
    /// in the batch to within `alone`.
    fn follow_the_model<F: Format>(alone: f32) -> Vec<(f32, f32)> {
        let device = Default::default();
        let mut found = Vec::new();
        for (layers, bidirectional, pooling) in [
            (1, false, Pooling::Attention),
            (2, true, Pooling::Attention),
            (1, false, Pooling::Concat),
        ] {
            <B as Backend>::seed(&device, 11);
            let model = TextClassifierConfig::new(50, 3)
                .with_d_embed(24)
                .with_d_hidden(20)
                .with_layers(layers)
                .with_bidirectional(bidirectional)
                .with_pooling(Some(pooling))
                .init::<B>(&device);
            let host = HostClassifier::<F>::from_model(&model).unwrap();
            let (tokens, seq, lengths) = batch();
            let out = host.forward(&tokens, seq, &lengths);
            let (logits, attention) = float_forward(&model, &tokens, seq, &lengths);
            let (dl, da) = (
                largest_difference(&out.logits, &logits),
                largest_difference(&out.attention, &attention),
            );
            println!(
                "{layers} layers, bidirectional {bidirectional}, {pooling}: logits {dl}, attention {da}"
            );
            found.push((dl, da));
            for (b, &len) in lengths.iter().enumerate() {
                let row = &out.attention[b * seq..(b + 1) * seq];
                assert!(row[len..].iter().all(|&w| w == 0.0), "padding got weight");
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
            // Sequence 0 alone, unpadded.
            let one = host.forward(&tokens[..lengths[0]], lengths[0], &lengths[..1]);
            let moved = largest_difference(&one.logits, &out.logits[..3]);
            assert!(moved <= alone, "alone, the logits moved by {moved}");
        }
        found
    }

    /// int8: the logits within 0.05 of the f32 model's and the attention
    /// within 0.02; a sequence alone gets exactly its answer in the batch.
    #[test]
    fn the_int8_classifier_follows_the_f32_one() {
        for (dl, da) in follow_the_model::<Int8>(0.0) {
            assert!(dl < 0.05 && dl > 0.0, "logits moved by {dl}");
            assert!(da < 0.02, "attention moved by {da}");
        }
    }

    /// f32: the model's function, up to the order of the sums.
    #[test]
    fn the_f32_host_classifier_equals_the_model() {
        for (dl, da) in follow_the_model::<F32>(1e-5) {
            assert!(dl < 1e-5, "logits moved by {dl}");
            assert!(da < 1e-6, "attention moved by {da}");
        }
    }

    /// A batch large enough to run as several groups on several threads
    /// gives each sequence what it gets alone, to within `tolerance`.
    fn answer_as_alone<F: Format>(tolerance: f32) {
        let device = Default::default();
        let model = TextClassifierConfig::new(50, 2)
            .with_d_embed(16)
            .with_d_hidden(12)
            .with_bidirectional(true)
            .init::<B>(&device);
        let host = HostClassifier::<F>::from_model(&model).unwrap();
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
        let out = host.forward(&tokens, seq, &lengths);
        for (b, &len) in lengths.iter().enumerate() {
            let alone = host.forward(&tokens[b * seq..b * seq + len], len, &[len]);
            let logits = largest_difference(&alone.logits, &out.logits[2 * b..2 * b + 2]);
            let attention =
                largest_difference(&alone.attention, &out.attention[b * seq..b * seq + len]);
            assert!(
                logits <= tolerance && attention <= tolerance,
                "sequence {b}: {logits}, {attention}"
            );
        }
    }

    /// In integers, the sums are exact: the same bits alone and batched.
    #[test]
    fn an_int8_batch_answers_what_each_sequence_answers_alone() {
        answer_as_alone::<Int8>(0.0);
    }

    /// In f32, gemm and the few-rows path sum in other orders.
    #[test]
    fn an_f32_batch_answers_what_each_sequence_answers_alone() {
        answer_as_alone::<F32>(1e-5);
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
            assert_eq!(F32Classifier::from_model(&model).unwrap_err(), Unsupported);
        }
    }
}
