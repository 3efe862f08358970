//! One interface over the recurrent family: a stack of RNN, GRU or LSTM
//! layers, each optionally bidirectional, over right-padded batches.
//!
//! Variable lengths: given the mask of a right-padded batch,
//! - the forward direction's output at a real position only depends on the
//!   tokens before it, and the final state is read at each sequence's own
//!   last real token; the LSTM layers are given the lengths, and at inference
//!   the CPU kernel skips the padded steps altogether (zeros there);
//! - the backward direction reverses each sequence within its own length
//!   (`[a b c PAD PAD]` → `[c b a PAD PAD]`), so it starts at that sequence's
//!   last real token rather than at the padding, then its outputs are put
//!   back in the original order.
//!
//! So real positions and final states are the same whether a sequence comes
//! alone or inside a padded batch; padded positions hold values that callers
//! must mask (attention pooling does).
//!
//! `CellKind::Transformer` swaps the recurrence for self-attention layers
//! ([`SelfAttentionEncoder`]): the same outputs and final state (read at the
//! last real token, which has attended to the whole sequence), padding
//! masked out of every attention.

use crate::dropout::apply_per_sequence;
use crate::self_attention::{SelfAttentionEncoder, SelfAttentionEncoderConfig};
use crate::{Gru, GruConfig, Lstm, LstmConfig, Recurrent, Rnn, RnnConfig, VariationalDropout};
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;

use crate::LstmBackend;
use serde::{Deserialize, Serialize};

/// Which layers an encoder is built from: a recurrent cell, or the
/// Transformer's self-attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    /// Elman RNN with tanh.
    Rnn,
    Gru,
    Lstm,
    /// Not a recurrence: self-attention layers (Vaswani et al. 2017), see
    /// [`SelfAttentionEncoder`].
    Transformer,
}

impl std::fmt::Display for CellKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CellKind::Rnn => "rnn",
            CellKind::Gru => "gru",
            CellKind::Lstm => "lstm",
            CellKind::Transformer => "transformer",
        })
    }
}

#[derive(Config, Debug)]
pub struct EncoderConfig {
    pub cell: CellKind,
    pub d_input: usize,
    /// Hidden size of each direction (the Transformer's width d).
    pub d_hidden: usize,
    #[config(default = 1)]
    pub layers: usize,
    #[config(default = false)]
    pub bidirectional: bool,
    /// Dropout on the outputs of every layer but the last (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Variational dropout inside every layer and direction (training only):
    /// one mask per sequence on the layer's input and one on its recurrent
    /// state, each reused at every time step.
    #[config(default = 0.0)]
    pub recurrent_dropout: f64,
    /// Attention heads of a Transformer (d / heads each): 4, as in the
    /// translator.
    #[config(default = 4)]
    pub heads: usize,
    /// Dropout inside a Transformer's layers and on its input (training
    /// only): Vaswani et al.'s 0.1.
    #[config(default = 0.1)]
    pub transformer_dropout: f64,
    /// The LSTM's initial forget-gate bias: [`LstmConfig`]'s 1 (see there).
    #[config(default = 1.0)]
    pub lstm_forget_bias: f64,
}

/// One recurrent layer of any kind.
#[derive(Module, Debug)]
pub enum RecurrentLayer<B: Backend> {
    Rnn(Rnn<B>),
    Gru(Gru<B>),
    Lstm(Lstm<B>),
}

impl<B: LstmBackend> Recurrent<B> for RecurrentLayer<B> {
    fn forward_masked(&self, x: Tensor<B, 3>, state_mask: Option<Tensor<B, 2>>) -> Tensor<B, 3> {
        match self {
            RecurrentLayer::Rnn(layer) => layer.forward_masked(x, state_mask),
            RecurrentLayer::Gru(layer) => layer.forward_masked(x, state_mask),
            RecurrentLayer::Lstm(layer) => layer.forward_masked(x, state_mask),
        }
    }

    fn forward_lengths(
        &self,
        x: Tensor<B, 3>,
        state_mask: Option<Tensor<B, 2>>,
        lengths: Tensor<B, 1, Int>,
    ) -> Tensor<B, 3> {
        match self {
            RecurrentLayer::Lstm(layer) => layer.forward_lengths(x, state_mask, lengths),
            other => other.forward_masked(x, state_mask),
        }
    }

    fn d_hidden(&self) -> usize {
        match self {
            RecurrentLayer::Rnn(layer) => layer.d_hidden(),
            RecurrentLayer::Gru(layer) => layer.d_hidden(),
            RecurrentLayer::Lstm(layer) => layer.d_hidden(),
        }
    }
}

#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    forward: RecurrentLayer<B>,
    backward: Option<RecurrentLayer<B>>,
}

#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// The recurrent layers (none for a Transformer).
    layers: Vec<EncoderLayer<B>>,
    /// The Transformer's layers, for `CellKind::Transformer` only.
    self_attention: Option<SelfAttentionEncoder<B>>,
    dropout: Dropout,
    recurrent_dropout: VariationalDropout,
}

/// What an encoder computes for a batch.
#[derive(Debug, Clone)]
pub struct EncoderOutput<B: Backend> {
    /// The last layer's output at every step, both directions concatenated
    /// (forward first). `[B, T, D]`, D = H or 2H.
    pub outputs: Tensor<B, 3>,
    /// The last layer's final state: the forward direction at each sequence's
    /// last real token, the backward direction at its first. `[B, D]`
    pub last: Tensor<B, 2>,
}

impl CellKind {
    /// Parameters of one cell reading `d_input` into `d_hidden` units (as
    /// `f64`: it is asked of configs too large to build, to refuse them);
    /// for the Transformer, one layer of width `d_hidden` with its input
    /// projection and final norm.
    pub fn num_params(self, d_input: usize, d_hidden: usize) -> f64 {
        let (i, h) = (d_input as f64, d_hidden as f64);
        match self {
            CellKind::Transformer => EncoderConfig::new(self, d_input, d_hidden)
                .self_attention()
                .expect("a Transformer")
                .num_params(),
            // W (with bias) and U (without).
            CellKind::Rnn => h * (i + h) + h,
            // Both linears carry biases: the reset gate multiplies U's.
            CellKind::Gru => 3.0 * h * (i + h) + 6.0 * h,
            CellKind::Lstm => 4.0 * h * (i + h) + 4.0 * h,
        }
    }
}

impl EncoderConfig {
    /// The Transformer this config describes (`None` for a recurrent cell):
    /// d = `d_hidden`, feed-forward 4d as in the paper.
    pub fn self_attention(&self) -> Option<SelfAttentionEncoderConfig> {
        (self.cell == CellKind::Transformer).then(|| {
            SelfAttentionEncoderConfig::new(
                self.d_input,
                self.d_hidden,
                4 * self.d_hidden,
                self.heads,
                self.layers,
                self.transformer_dropout,
            )
        })
    }

    /// Parameters of the encoder built from this config, without building it.
    pub fn num_params(&self) -> f64 {
        if let Some(transformer) = self.self_attention() {
            return transformer.num_params();
        }
        let directions = if self.bidirectional { 2.0 } else { 1.0 };
        (0..self.layers)
            .map(|l| {
                let d_input = if l == 0 {
                    self.d_input
                } else {
                    self.d_output()
                };
                directions * self.cell.num_params(d_input, self.d_hidden)
            })
            .sum()
    }

    /// Size of the encoder's output vectors.
    pub fn d_output(&self) -> usize {
        if self.bidirectional && self.cell != CellKind::Transformer {
            2 * self.d_hidden
        } else {
            self.d_hidden
        }
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Encoder<B> {
        assert!(self.layers >= 1, "an encoder needs at least one layer");
        if let Some(transformer) = self.self_attention() {
            assert!(
                !self.bidirectional && self.recurrent_dropout == 0.0,
                "a Transformer is neither bidirectional nor recurrent: it already sees both sides"
            );
            return Encoder {
                layers: Vec::new(),
                self_attention: Some(transformer.init(device)),
                dropout: DropoutConfig::new(0.0).init(),
                recurrent_dropout: VariationalDropout::new(0.0),
            };
        }
        let cell = |d_input: usize| match self.cell {
            CellKind::Transformer => unreachable!("built above"),
            CellKind::Rnn => {
                RecurrentLayer::Rnn(RnnConfig::new(d_input, self.d_hidden).init(device))
            }
            CellKind::Gru => {
                RecurrentLayer::Gru(GruConfig::new(d_input, self.d_hidden).init(device))
            }
            CellKind::Lstm => {
                let config =
                    LstmConfig::new(d_input, self.d_hidden).with_forget_bias(self.lstm_forget_bias);
                RecurrentLayer::Lstm(config.init(device))
            }
        };
        let layers = (0..self.layers)
            .map(|l| {
                let d_input = if l == 0 {
                    self.d_input
                } else {
                    self.d_output()
                };
                EncoderLayer {
                    forward: cell(d_input),
                    backward: self.bidirectional.then(|| cell(d_input)),
                }
            })
            .collect();
        Encoder {
            layers,
            self_attention: None,
            dropout: DropoutConfig::new(self.dropout).init(),
            recurrent_dropout: VariationalDropout::new(self.recurrent_dropout),
        }
    }
}

impl<B: Backend> Encoder<B> {
    /// Each layer's forward and backward LSTM, when every layer is an LSTM
    /// (what the int8 inference path runs); `None` for other cells.
    #[allow(clippy::type_complexity)]
    pub(crate) fn lstm_layers(&self) -> Option<Vec<(&Lstm<B>, Option<&Lstm<B>>)>> {
        fn lstm<B: Backend>(layer: &RecurrentLayer<B>) -> Option<&Lstm<B>> {
            match layer {
                RecurrentLayer::Lstm(lstm) => Some(lstm),
                _ => None,
            }
        }
        if self.self_attention.is_some() {
            return None;
        }
        self.layers
            .iter()
            .map(|layer| {
                let backward = match &layer.backward {
                    Some(backward) => Some(lstm(backward)?),
                    None => None,
                };
                Some((lstm(&layer.forward)?, backward))
            })
            .collect()
    }
}

impl<B: Backend> Encoder<B> {
    /// The encoder of forward LSTM layers that reads only the `inputs`
    /// features and keeps only `units[l]` of layer l (ascending indices).
    /// Panics unless every layer is a forward-only LSTM.
    pub(crate) fn keep_lstm_units(&self, inputs: &[usize], units: &[Vec<usize>]) -> Encoder<B> {
        let lstms = self.lstm_layers().expect("LSTM layers");
        assert_eq!(lstms.len(), units.len(), "one set of units per layer");
        let layers = lstms
            .iter()
            .enumerate()
            .map(|(l, (lstm, backward))| {
                assert!(backward.is_none(), "a forward-only encoder");
                let inputs = if l == 0 { inputs } else { &units[l - 1] };
                EncoderLayer {
                    forward: RecurrentLayer::Lstm(lstm.keep(inputs, &units[l])),
                    backward: None,
                }
            })
            .collect();
        Encoder {
            layers,
            self_attention: None,
            dropout: self.dropout.clone(),
            recurrent_dropout: self.recurrent_dropout.clone(),
        }
    }
}

impl<B: LstmBackend> Encoder<B> {
    /// Encodes `x` `[B, T, E]`. `mask` `[B, T]` is true at real tokens of a
    /// right-padded batch (every row needs at least one); `None` means every
    /// sequence fills all T steps.
    pub fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 2, Bool>>) -> EncoderOutput<B> {
        let [batch, seq, _] = x.dims();
        let device = x.device();
        // Index of each sequence's last real token, the lengths, and (only
        // if needed) the permutation that reverses each sequence within its
        // length.
        let (last_index, lengths, reversal) = match &mask {
            None => (
                Tensor::<B, 2, Int>::full([batch, 1], seq as i64 - 1, &device),
                None,
                None,
            ),
            Some(mask) => {
                let lengths = mask.clone().int().sum_dim(1); // [B, 1]
                let reversal = self
                    .is_bidirectional()
                    .then(|| reversal_index(mask.clone(), lengths.clone()));
                (
                    lengths.clone() - 1,
                    Some(lengths.reshape([batch])),
                    reversal,
                )
            }
        };
        if let Some(transformer) = &self.self_attention {
            let outputs = transformer.forward(x, mask); // [B, T, d]
            let last = gather_step(outputs.clone(), last_index); // [B, d]
            return EncoderOutput { outputs, last };
        }

        let mut input = x;
        let mut last = None;
        for (l, layer) in self.layers.iter().enumerate() {
            if l > 0 {
                input = self.dropout.forward(input);
            }
            let forward = self.run(&layer.forward, input.clone(), lengths.clone()); // [B, T, H]
            let forward_last = gather_step(forward.clone(), last_index.clone()); // [B, H]
            let (outputs, layer_last) = match &layer.backward {
                None => (forward, forward_last),
                Some(backward) => {
                    let reversed = reverse(input, reversal.clone());
                    let backward = reverse(
                        self.run(backward, reversed, lengths.clone()),
                        reversal.clone(),
                    );
                    let h = backward.dims()[2];
                    let backward_last = backward
                        .clone()
                        .slice([0..batch, 0..1, 0..h])
                        .reshape([batch, h]);
                    (
                        Tensor::cat(vec![forward, backward], 2),
                        Tensor::cat(vec![forward_last, backward_last], 1),
                    )
                }
            };
            input = outputs;
            last = Some(layer_last);
        }
        EncoderOutput {
            outputs: input,
            last: last.expect("at least one layer"),
        }
    }

    pub fn is_bidirectional(&self) -> bool {
        self.layers.iter().any(|l| l.backward.is_some())
    }

    /// Whether the outputs at real positions depend on the padding unless
    /// [`forward`](Self::forward) is given the mask: true when some layer
    /// reads the sequence backwards or attends over all of it.
    pub fn needs_mask(&self) -> bool {
        self.is_bidirectional() || self.self_attention.is_some()
    }

    /// One direction of one layer, with fresh variational dropout masks for
    /// its input and its state when training; over a right-padded batch of
    /// `lengths` `[B]` when given (its outputs at padded positions are then
    /// not to be read: the layers above see them only at padded positions,
    /// and attention and `last` never).
    fn run(
        &self,
        cell: &RecurrentLayer<B>,
        x: Tensor<B, 3>,
        lengths: Option<Tensor<B, 1, Int>>,
    ) -> Tensor<B, 3> {
        let [batch, _, d_input] = x.dims();
        let device = x.device();
        let input_mask = self.recurrent_dropout.mask::<B>(batch, d_input, &device);
        let state_mask = self
            .recurrent_dropout
            .mask::<B>(batch, cell.d_hidden(), &device);
        let x = apply_per_sequence(x, input_mask);
        match lengths {
            Some(lengths) => cell.forward_lengths(x, state_mask, lengths),
            None => cell.forward_masked(x, state_mask),
        }
    }
}

/// For each row, the index that reverses its first `length` steps and leaves
/// the padding in place: `[2, 1, 0, 3, 4]` for length 3 of 5. `[B, T]`
fn reversal_index<B: Backend>(
    mask: Tensor<B, 2, Bool>,
    lengths: Tensor<B, 2, Int>,
) -> Tensor<B, 2, Int> {
    let [batch, seq] = mask.dims();
    let steps = Tensor::<B, 1, Int>::arange(0..seq as i64, &mask.device())
        .unsqueeze::<2>()
        .expand([batch, seq]); // [B, T]
    let reversed = lengths - 1 - steps.clone(); // [B, T]
    steps.mask_where(mask, reversed)
}

/// Reverses each sequence of `x` `[B, T, D]` within its length, or the whole
/// of T when there is no mask (the permutation is its own inverse).
fn reverse<B: Backend>(x: Tensor<B, 3>, reversal: Option<Tensor<B, 2, Int>>) -> Tensor<B, 3> {
    match reversal {
        None => x.flip([1]),
        Some(index) => {
            let dims = x.dims();
            x.gather(1, index.unsqueeze_dim::<3>(2).expand(dims))
        }
    }
}

/// `x[b, index[b], :]` for every row: `[B, T, D]`, `[B, 1]` → `[B, D]`.
fn gather_step<B: Backend>(x: Tensor<B, 3>, index: Tensor<B, 2, Int>) -> Tensor<B, 2> {
    let [batch, _, d] = x.dims();
    x.gather(1, index.unsqueeze_dim::<3>(2).expand([batch, 1, d]))
        .reshape([batch, d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::max_diff;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::AutodiffModule;
    use burn::tensor::Distribution;

    type B = NdArray;

    #[test]
    fn reversal_index_reverses_within_each_length() {
        let device = Default::default();
        let mask = Tensor::<B, 2, Int>::from_ints([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], &device)
            .equal_elem(1);
        let lengths = mask.clone().int().sum_dim(1);
        let index = reversal_index(mask, lengths);
        assert_eq!(
            index.into_data().to_vec::<i64>().unwrap(),
            vec![2, 1, 0, 3, 4, 4, 3, 2, 1, 0]
        );
    }

    /// A sequence alone and the same sequence inside a padded batch give the
    /// same outputs at its real positions, in both directions and at every
    /// layer, and the same final state.
    #[test]
    fn padding_does_not_change_any_direction() {
        let device = Default::default();
        for cell in [CellKind::Rnn, CellKind::Gru, CellKind::Lstm] {
            let encoder = EncoderConfig::new(cell, 3, 4)
                .with_layers(2)
                .with_bidirectional(true)
                .init::<B>(&device);
            let x = Tensor::<B, 3>::random([3, 6, 3], Distribution::Normal(0.0, 1.0), &device);
            let mask = Tensor::<B, 2, Int>::from_ints(
                [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]],
                &device,
            )
            .equal_elem(1);
            let batch = encoder.forward(x.clone(), Some(mask));
            for (row, len) in [(0, 6), (1, 3), (2, 2)] {
                let seq = x.clone().slice([row..row + 1, 0..len, 0..3]);
                let alone = encoder.forward(seq, None);
                let diff = max_diff(
                    batch.outputs.clone().slice([row..row + 1, 0..len, 0..8]),
                    alone.outputs,
                );
                assert!(diff < 1e-5, "{cell}: row {row} outputs differ by {diff}");
                let diff = max_diff(batch.last.clone().slice([row..row + 1, 0..8]), alone.last);
                assert!(
                    diff < 1e-5,
                    "{cell}: row {row} final state differs by {diff}"
                );
            }
        }
    }

    #[test]
    fn last_is_the_final_step_of_each_direction() {
        let device = Default::default();
        let encoder = EncoderConfig::new(CellKind::Gru, 2, 3)
            .with_bidirectional(true)
            .init::<B>(&device);
        let x = Tensor::<B, 3>::random([2, 5, 2], Distribution::Normal(0.0, 1.0), &device);
        let out = encoder.forward(x, None);
        assert_eq!(out.outputs.dims(), [2, 5, 6]);
        let forward_end = out
            .outputs
            .clone()
            .slice([0..2, 4..5, 0..3])
            .reshape([2, 3]);
        let backward_start = out.outputs.slice([0..2, 0..1, 3..6]).reshape([2, 3]);
        let expected = Tensor::cat(vec![forward_end, backward_start], 1);
        assert!(max_diff(out.last, expected) < 1e-7);
    }

    /// The positions of the exact zeros of `t`.
    fn zeros_of(t: Tensor<B, 1>) -> Vec<usize> {
        let values = t.into_data().to_vec::<f32>().unwrap();
        (0..values.len()).filter(|&i| values[i] == 0.0).collect()
    }

    /// Variational dropout drops the same input units and the same state
    /// units at every step of a sequence, and other units in another one.
    /// Seen through gradients: an input unit dropped for a sequence gets a
    /// zero gradient at every step of it, and a state unit dropped for the
    /// only sequence of a batch never reaches the recurrent weight.
    #[test]
    fn recurrent_dropout_keeps_one_mask_per_sequence() {
        type A = Autodiff<B>;
        let device = Default::default();
        A::seed(&device, 7);
        let (e, h, steps) = (16, 16, 6);
        let encoder = EncoderConfig::new(CellKind::Lstm, e, h)
            .with_recurrent_dropout(0.5)
            .init::<A>(&device);
        let lstm = match &encoder.layers[0].forward {
            RecurrentLayer::Lstm(lstm) => lstm,
            _ => unreachable!(),
        };
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<A, 3>::random([2, steps, e], normal, &device).require_grad();
        let probe = Tensor::<A, 3>::random([2, steps, h], normal, &device);
        let grads = (encoder.forward(x.clone(), None).outputs * probe)
            .sum()
            .backward();
        let gx = x.grad(&grads).unwrap(); // [2, T, E]
        let dropped = |row: usize, t: usize| {
            zeros_of(
                gx.clone()
                    .slice([row..row + 1, t..t + 1, 0..e])
                    .flatten(0, 2),
            )
        };
        for row in 0..2 {
            let first = dropped(row, 0);
            assert!(!first.is_empty() && first.len() < e, "{first:?}");
            for t in 1..steps {
                assert_eq!(dropped(row, t), first, "row {row}, step {t}");
            }
        }
        assert_ne!(dropped(0, 0), dropped(1, 0), "one mask per sequence");

        // One sequence: the rows of dU of the dropped state units are zero.
        let x = Tensor::<A, 3>::random([1, steps, e], normal, &device);
        let grads = encoder.forward(x, None).outputs.sum().backward();
        let du = lstm.recurrent_weight().grad(&grads).unwrap(); // [H, 4H]
        let zero_rows = zeros_of(du.abs().sum_dim(1).flatten(0, 1));
        assert!(
            !zero_rows.is_empty() && zero_rows.len() < h,
            "{zero_rows:?}"
        );
    }

    #[test]
    fn recurrent_dropout_is_off_at_inference() {
        type A = Autodiff<B>;
        let device = Default::default();
        let encoder = EncoderConfig::new(CellKind::Gru, 4, 8)
            .with_recurrent_dropout(0.5)
            .init::<A>(&device);
        let x = Tensor::<B, 3>::random([3, 5, 4], Distribution::Normal(0.0, 1.0), &device);
        // Training: two passes draw different masks.
        let training =
            |x: Tensor<B, 3>| encoder.forward(Tensor::from_inner(x), None).outputs.inner();
        assert!(max_diff(training(x.clone()), training(x.clone())) > 1e-3);
        // Inference (the model without autodiff, as validation and infer use it).
        let inference = encoder.valid();
        let once = inference.forward(x.clone(), None).outputs;
        let twice = inference.forward(x, None).outputs;
        assert_eq!(max_diff(once, twice), 0.0);
    }

    #[test]
    fn gradients_flow_through_the_reversal() {
        let device = Default::default();
        let encoder = EncoderConfig::new(CellKind::Lstm, 2, 3)
            .with_bidirectional(true)
            .init::<Autodiff<B>>(&device);
        let x =
            Tensor::<Autodiff<B>, 3>::random([2, 4, 2], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
        let mask = Tensor::<Autodiff<B>, 2, Int>::from_ints([[1, 1, 1, 1], [1, 1, 0, 0]], &device)
            .equal_elem(1);
        let out = encoder.forward(x.clone(), Some(mask));
        let grads = out.last.sum().backward();
        let gx = x.grad(&grads).unwrap(); // [2, 4, 2]
        // The padded steps of row 1 reach neither final state.
        let padded = gx
            .clone()
            .slice([1..2, 2..4, 0..2])
            .abs()
            .max()
            .into_scalar();
        assert_eq!(padded, 0.0);
        let real = gx.slice([1..2, 0..2, 0..2]).abs().min().into_scalar();
        assert!(real > 0.0);
    }
}
