//! The Transformer's encoder as a sequence encoder (Vaswani et al. 2017):
//! where the recurrent family carries a state from step to step, every
//! position here attends to every other real position directly, so the
//! distance between two tokens costs nothing.
//!
//! ```text
//! x [B, T, E] ─ Linear (if E ≠ d) ─ + sinusoids ─ dropout ─ N × pre-LN layer ─ LayerNorm ─ [B, T, d]
//! ```
//!
//! Layers normalize first (pre-LN, Xiong et al. 2020), which trains with
//! Adam's usual learning rates and no warm-up; the stack then ends with a
//! LayerNorm of its own (Burn's pre-LN layers leave the residual stream
//! unnormalized). Padding is masked out of every attention, so a sequence's
//! real positions are the same alone and inside a padded batch; the values
//! at padded positions are finite and must be masked by the caller.
//!
//! It plugs into [`Encoder`](crate::Encoder) as `CellKind::Transformer`,
//! so the classifier and the adding problem's regressor take it like any
//! recurrent cell.

use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

/// The sinusoids' longest period (Vaswani et al.'s 10,000).
const MAX_TIMESCALE: usize = 10_000;

/// Whether a Transformer can be `width` wide with `heads` heads: each head
/// gets width / heads dimensions, and the positional sinusoids come in
/// sine–cosine pairs, so the width must be a multiple of the heads and even.
/// The one rule that the models assert and the options and configs check.
pub fn transformer_width_fits(width: usize, heads: usize) -> bool {
    heads > 0 && width % heads == 0 && width % 2 == 0
}

#[derive(Config, Debug)]
pub struct SelfAttentionEncoderConfig {
    pub d_input: usize,
    /// d, the width of every position's vector (a multiple of `heads`, even).
    pub d_model: usize,
    pub d_ff: usize,
    pub heads: usize,
    pub layers: usize,
    /// On the input after the positions are added, and inside every layer
    /// (training only).
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct SelfAttentionEncoder<B: Backend> {
    /// `E -> d`, absent when E = d.
    input: Option<Linear<B>>,
    layers: TransformerEncoder<B>,
    norm: LayerNorm<B>,
    dropout: Dropout,
}

impl SelfAttentionEncoderConfig {
    /// Parameters of the encoder built from this config, without building it.
    pub fn num_params(&self) -> f64 {
        let (e, d, f) = (self.d_input as f64, self.d_model as f64, self.d_ff as f64);
        let input = if self.d_input == self.d_model {
            0.0
        } else {
            e * d + d
        };
        let attention = 4.0 * (d * d + d);
        let feed_forward = d * f + f + f * d + d;
        let layer = attention + feed_forward + 2.0 * (2.0 * d);
        input + self.layers as f64 * layer + 2.0 * d
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> SelfAttentionEncoder<B> {
        assert!(
            transformer_width_fits(self.d_model, self.heads),
            "the Transformer's width ({}) must be even and a multiple of its heads ({})",
            self.d_model,
            self.heads
        );
        assert!(
            self.layers >= 1,
            "a Transformer encoder needs at least one layer"
        );
        SelfAttentionEncoder {
            input: (self.d_input != self.d_model)
                .then(|| LinearConfig::new(self.d_input, self.d_model).init(device)),
            layers: TransformerEncoderConfig::new(self.d_model, self.d_ff, self.heads, self.layers)
                .with_dropout(self.dropout)
                .with_norm_first(true)
                .init(device),
            norm: LayerNormConfig::new(self.d_model).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl<B: Backend> SelfAttentionEncoder<B> {
    /// `x` `[B, T, E]` → `[B, T, d]`. `mask` `[B, T]` is true at real tokens
    /// (every row needs one); `None` means every position is real.
    pub fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 2, Bool>>) -> Tensor<B, 3> {
        let x = match &self.input {
            Some(input) => input.forward(x),
            None => x,
        }; // [B, T, d]
        let x = self.dropout.forward(with_positions(x));
        let mut input = TransformerEncoderInput::new(x);
        if let Some(mask) = mask {
            input = input.mask_pad(mask.bool_not());
        }
        self.norm.forward(self.layers.forward(input)) // [B, T, d]
    }
}

/// `x` `[B, T, d]` plus the sinusoids of positions 0..T (Vaswani et al.
/// 2017, section 3.5). `[B, T, d]`
pub(crate) fn with_positions<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [_, length, d] = x.dims();
    let positions =
        burn::nn::generate_sinusoids::<B>(length, d, MAX_TIMESCALE.max(length), &x.device());
    x + positions.unsqueeze_dim::<3>(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::max_diff;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Distribution;

    type B = NdArray;

    #[test]
    fn the_width_must_be_even_and_a_multiple_of_the_heads() {
        assert!(transformer_width_fits(128, 4));
        assert!(transformer_width_fits(6, 3));
        assert!(!transformer_width_fits(6, 4), "not a multiple of the heads");
        assert!(!transformer_width_fits(9, 3), "odd");
        assert!(!transformer_width_fits(8, 0), "no heads");
    }

    fn config(d_input: usize) -> SelfAttentionEncoderConfig {
        SelfAttentionEncoderConfig::new(d_input, 8, 16, 2, 2, 0.0)
    }

    /// A sequence alone and inside a padded batch: the same outputs at its
    /// real positions.
    #[test]
    fn padding_does_not_change_real_positions() {
        let device = Default::default();
        let encoder = config(3).init::<B>(&device);
        let x = Tensor::<B, 3>::random([3, 6, 3], Distribution::Normal(0.0, 1.0), &device);
        let mask = Tensor::<B, 2, Int>::from_ints(
            [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]],
            &device,
        )
        .equal_elem(1);
        let batch = encoder.forward(x.clone(), Some(mask));
        for (row, len) in [(0, 6), (1, 3), (2, 1)] {
            let alone = encoder.forward(x.clone().slice([row..row + 1, 0..len]), None);
            let diff = max_diff(batch.clone().slice([row..row + 1, 0..len]), alone);
            assert!(diff < 1e-5, "row {row} differs by {diff}");
        }
    }

    /// Self-attention sees the future too: changing the last token changes
    /// the first position's output (a forward recurrence would not).
    #[test]
    fn every_position_sees_the_whole_sequence() {
        let device = Default::default();
        let encoder = config(8).init::<B>(&device);
        let x = Tensor::<B, 3>::random([1, 5, 8], Distribution::Normal(0.0, 1.0), &device);
        let changed = x.clone().slice_assign(
            [0..1, 4..5],
            Tensor::random([1, 1, 8], Distribution::Normal(0.0, 1.0), &device),
        );
        let first = |x| encoder.forward(x, None).slice([0..1, 0..1]);
        assert!(max_diff(first(x), first(changed)) > 1e-4);
    }

    #[test]
    fn the_parameter_count_of_a_config_is_that_of_its_encoder() {
        let device = Default::default();
        for d_input in [3, 8] {
            let config = config(d_input);
            assert_eq!(
                config.num_params(),
                config.init::<B>(&device).num_params() as f64,
                "d_input {d_input}"
            );
        }
    }

    /// Every parameter, the input projection and the final norm included,
    /// is a leaf the loss reaches.
    #[test]
    fn every_parameter_gets_a_gradient() {
        use burn::optim::GradientsParams;
        type A = Autodiff<B>;
        let device = Default::default();
        let encoder = config(3).init::<A>(&device);
        let x = Tensor::<A, 3>::random([2, 4, 3], Distribution::Normal(0.0, 1.0), &device);
        let mask =
            Tensor::<A, 2, Int>::from_ints([[1, 1, 1, 1], [1, 1, 0, 0]], &device).equal_elem(1);
        // A random probe: the plain sum of a LayerNorm's output with unit
        // gains is constant, and would send nothing back.
        let probe = Tensor::<A, 3>::random([2, 4, 8], Distribution::Normal(0.0, 1.0), &device);
        let grads = (encoder.forward(x, Some(mask)) * probe).sum().backward();
        let grads = GradientsParams::from_grads(grads, &encoder);
        // input (2); per layer: 4 attention linears, 2 feed-forward linears
        // and 2 norms, 2 tensors each; the final norm (2)
        assert_eq!(grads.len(), 2 + 2 * 16 + 2);
    }
}
