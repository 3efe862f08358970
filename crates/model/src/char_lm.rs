//! A character-level language model in the manner of Karpathy's char-rnn:
//! Embedding -> a stack of [`Lstm`] layers (dropout after each, and
//! optionally on each layer's recurrent state) -> Linear to the vocabulary.
//! It predicts, at every position, the next character.
//!
//! The state is explicit: [`CharLm::forward`] takes the state of each layer
//! and returns the new one, so that training can carry it from one window of
//! text into the next (truncated backpropagation through time) and generation
//! can feed one character at a time.

use crate::linear_op::linear_rows;
use crate::{CellKind, Lstm, LstmConfig, LstmState};
use crate::{ElementDropout, VariationalDropout};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::LstmBackend;

#[derive(Config, Debug)]
pub struct CharLmConfig {
    /// Number of distinct characters.
    pub vocab_size: usize,
    /// char-rnn feeds one-hot vectors; a small embedding computes the same
    /// thing (a one-hot vector times a matrix picks a row) with fewer weights.
    #[config(default = 64)]
    pub d_embed: usize,
    /// char-rnn's defaults: 2 layers; 256 units fit a laptop CPU.
    #[config(default = 256)]
    pub d_hidden: usize,
    #[config(default = 2)]
    pub layers: usize,
    /// Dropout on the output of every LSTM layer (Zaremba et al. 2014: not
    /// on the recurrent connections).
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Variational dropout on each layer's recurrent state (Gal & Ghahramani
    /// 2016): one mask per stream and window, the same at every step. 0 (off)
    /// is what char-rnn and the configs written before it do.
    #[config(default = 0.0)]
    pub recurrent_dropout: f64,
}

#[derive(Module, Debug)]
pub struct CharLm<B: Backend> {
    embedding: Embedding<B>,
    layers: Vec<Lstm<B>>,
    dropout: ElementDropout,
    recurrent_dropout: VariationalDropout,
    output: Linear<B>,
}

/// What the model computes for a window of text.
#[derive(Debug, Clone)]
pub struct CharLmOutput<B: Backend> {
    /// Unnormalized scores of the next character at every position. `[B, T, V]`
    pub logits: Tensor<B, 3>,
    /// The state of each layer after the last position, to start the next
    /// window from.
    pub state: Vec<LstmState<B>>,
}

impl CharLmConfig {
    /// Parameters of the model built from this config, without building it.
    pub fn num_params(&self) -> f64 {
        let (v, e, h) = (
            self.vocab_size as f64,
            self.d_embed as f64,
            self.d_hidden as f64,
        );
        let lstm = (0..self.layers)
            .map(|l| {
                let d_input = if l == 0 { self.d_embed } else { self.d_hidden };
                CellKind::Lstm.num_params(d_input, self.d_hidden)
            })
            .sum::<f64>();
        v * e + lstm + h * v + v
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> CharLm<B> {
        assert!(
            self.layers >= 1,
            "a language model needs at least one layer"
        );
        let layers = (0..self.layers)
            .map(|l| {
                let d_input = if l == 0 { self.d_embed } else { self.d_hidden };
                LstmConfig::new(d_input, self.d_hidden).init(device)
            })
            .collect();
        CharLm {
            embedding: EmbeddingConfig::new(self.vocab_size, self.d_embed).init(device),
            layers,
            dropout: ElementDropout::new(self.dropout),
            recurrent_dropout: VariationalDropout::new(self.recurrent_dropout),
            output: LinearConfig::new(self.d_hidden, self.vocab_size).init(device),
        }
    }
}

impl<B: LstmBackend> CharLm<B> {
    /// Character ids `[B, T]`, and the state to start from (zeros if `None`).
    pub fn forward(
        &self,
        chars: Tensor<B, 2, Int>,
        state: Option<Vec<LstmState<B>>>,
    ) -> CharLmOutput<B> {
        let mut state = match state {
            Some(state) => {
                assert_eq!(state.len(), self.layers.len(), "one state per layer");
                state.into_iter().map(Some).collect()
            }
            None => vec![None; self.layers.len()],
        };
        let [batch, _] = chars.dims();
        let device = chars.device();
        let mut x = self.embedding.forward(chars); // [B, T, E]
        let mut next = Vec::with_capacity(self.layers.len());
        for (layer, start) in self.layers.iter().zip(state.iter_mut()) {
            // None outside training or with p = 0.
            let state_mask =
                self.recurrent_dropout
                    .mask::<B>(batch, crate::Recurrent::d_hidden(layer), &device); // [B, H]
            let (out, end) = layer.forward_with(x, start.take(), state_mask); // [B, T, H]
            x = self.dropout.forward(out);
            next.push(end);
        }
        // One Linear over the B·T rows, with the CPU backends' own weight
        // gradient (`linear_op`).
        let [batch, seq, d_hidden] = x.dims();
        let logits = linear_rows(&self.output, x.reshape([batch * seq, d_hidden])); // [B·T, V]
        let vocab = logits.dims()[1];
        CharLmOutput {
            logits: logits.reshape([batch, seq, vocab]), // [B, T, V]
            state: next,
        }
    }

    /// The zero state of every layer, for `batch` sequences.
    pub fn zero_state(&self, batch: usize, device: &B::Device) -> Vec<LstmState<B>> {
        self.layers
            .iter()
            .map(|layer| LstmState::zeros(batch, crate::Recurrent::d_hidden(layer), device))
            .collect()
    }

    pub fn vocab_size(&self) -> usize {
        self.output.weight.dims()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::max_diff;
    use burn::backend::NdArray;

    type B = NdArray;

    #[test]
    fn carrying_the_state_across_windows_equals_one_long_window() {
        let device = Default::default();
        let model = CharLmConfig::new(11)
            .with_d_embed(4)
            .with_d_hidden(6)
            .with_dropout(0.0)
            .init::<B>(&device);
        let text =
            Tensor::<B, 2, Int>::from_ints([[1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1]], &device);
        let whole = model.forward(text.clone(), None);
        assert_eq!(whole.logits.dims(), [2, 7, 11]);
        let first = model.forward(text.clone().slice([0..2, 0..3]), None);
        let second = model.forward(text.clone().slice([0..2, 3..7]), Some(first.state));
        let joined = Tensor::cat(vec![first.logits, second.logits.clone()], 1);
        assert!(max_diff(whole.logits, joined) < 1e-5);
        // Starting the second window from zeros instead gives other scores.
        let zero = model.zero_state(2, &device);
        let restarted = model.forward(text.slice([0..2, 3..7]), Some(zero));
        assert!(max_diff(second.logits, restarted.logits) > 1e-4);
    }

    /// The recurrent dropout masks the state the recurrence reads, in
    /// training only: the first step, which reads the zero state, is
    /// untouched, every later step moves, and a model without autodiff
    /// computes what the same weights without it compute.
    #[test]
    fn recurrent_dropout_masks_the_state_in_training_only() {
        use burn::backend::Autodiff;
        use burn::module::AutodiffModule;
        type AD = Autodiff<NdArray>;
        let device = Default::default();
        AD::seed(&device, 5);
        let dropped = CharLmConfig::new(11)
            .with_d_embed(4)
            .with_d_hidden(6)
            .with_dropout(0.0)
            .with_recurrent_dropout(0.5)
            .init::<AD>(&device);
        let text = Tensor::<AD, 2, Int>::from_ints([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]], &device);
        let masked = dropped.forward(text.clone(), None).logits; // [2, 5, 11]
        // Cloned once used: the clone of a parameter not yet initialized
        // would initialize itself, with other values.
        let mut plain = dropped.clone();
        plain.recurrent_dropout = VariationalDropout::new(0.0);
        let unmasked = plain.forward(text.clone(), None).logits;
        let first = |x: Tensor<AD, 3>| x.slice([0..2, 0..1, 0..11]);
        let rest = |x: Tensor<AD, 3>| x.slice([0..2, 1..5, 0..11]);
        assert_eq!(
            max_diff(first(masked.clone()), first(unmasked.clone())),
            0.0
        );
        assert!(max_diff(rest(masked), rest(unmasked)) > 1e-4);

        let text = text.inner();
        let inference = dropped.valid().forward(text.clone(), None).logits;
        let reference = plain.valid().forward(text, None).logits;
        assert_eq!(max_diff(inference, reference), 0.0);
    }

    /// Every parameter must be a leaf of the autodiff graph that the loss
    /// reaches, or the optimizer silently never updates it.
    #[test]
    fn every_parameter_gets_a_gradient() {
        use burn::backend::Autodiff;
        use burn::optim::GradientsParams;
        type AD = Autodiff<NdArray>;
        let device = Default::default();
        let model = CharLmConfig::new(11)
            .with_d_embed(4)
            .with_d_hidden(6)
            .init::<AD>(&device);
        let text = Tensor::<AD, 2, Int>::from_ints([[1, 2, 3, 4], [4, 3, 2, 1]], &device);
        let grads = model.forward(text, None).logits.sum().backward();
        let grads = GradientsParams::from_grads(grads, &model);
        // embedding; per layer: input weight and bias, recurrent weight; output weight and bias
        assert_eq!(grads.len(), 1 + 2 * 3 + 2);
    }
}
