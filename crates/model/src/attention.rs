//! Attention pooling over a sequence (Bahdanau et al. 2015; as a pooling layer
//! for classification, Yang et al. 2016 without the context projection): a
//! learned score per time step, a softmax over the real time steps, and the
//! weighted sum of the encoder outputs. The weights are returned so a person
//! can see which words the model looked at.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::LstmBackend;
use crate::linear_op::linear_rows;

/// Scores of padded positions before the softmax: far enough below any real
/// score that `exp` underflows to exactly 0 in f32, so padding gets no weight.
const MASKED_SCORE: f32 = -1.0e9;

#[derive(Config, Debug)]
pub struct AttentionPoolingConfig {
    /// Size of the encoder outputs being pooled.
    pub d_hidden: usize,
}

#[derive(Module, Debug)]
pub struct AttentionPooling<B: Backend> {
    /// One score per time step: s_t = w · h_t + b. `H -> 1`
    pub(crate) score: Linear<B>,
}

impl AttentionPoolingConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> AttentionPooling<B> {
        AttentionPooling {
            score: LinearConfig::new(self.d_hidden, 1).init(device),
        }
    }
}

impl<B: LstmBackend> AttentionPooling<B> {
    /// Pools `hidden` `[B, T, H]` over time, ignoring positions where `mask`
    /// `[B, T]` is false (`None`: every position is real). Every row of
    /// `mask` must have at least one true.
    ///
    /// Returns the pooled vectors `[B, H]` and the attention weights `[B, T]`
    /// (each row sums to 1, zero at padding).
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        mask: Option<Tensor<B, 2, Bool>>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let [batch, seq, d_hidden] = hidden.dims();
        // One Linear over the B·T rows, with the CPU backends' own weight
        // gradient (`linear_op`).
        let rows = hidden.clone().reshape([batch * seq, d_hidden]);
        let mut scores = linear_rows(&self.score, rows).reshape([batch, seq]); // [B, T]
        if let Some(mask) = mask {
            scores = scores.mask_fill(mask.bool_not(), MASKED_SCORE);
        }
        let weights = softmax(scores, 1); // [B, T]
        let pooled = weights.clone().unsqueeze_dim::<3>(1).matmul(hidden); // [B, 1, H]
        (pooled.reshape([batch, d_hidden]), weights)
    }
}

impl<B: Backend> AttentionPooling<B> {
    /// Pooling over only the `units` (ascending indices) of each vector.
    pub(crate) fn keep(&self, units: &[usize]) -> AttentionPooling<B> {
        AttentionPooling {
            score: crate::units::keep_linear(&self.score, units, &[0]),
        }
    }

    /// The scoring layer's weight `[H]` and bias, as values.
    pub(crate) fn score_weights(&self) -> (Vec<f32>, f32) {
        let weight = self.score.weight.val().dequantize().into_data();
        let bias = match &self.score.bias {
            Some(bias) => bias.val().dequantize().into_data().to_vec::<f32>(),
            None => Ok(vec![0.0]),
        };
        (
            weight.to_vec::<f32>().expect("f32 weights"),
            bias.expect("an f32 bias")[0],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::Tolerance;

    #[test]
    fn masked_positions_get_zero_weight_and_rows_sum_to_one() {
        let device = Default::default();
        let pool = AttentionPoolingConfig::new(4).init::<NdArray>(&device);
        let hidden =
            Tensor::<NdArray, 3>::random([2, 3, 4], burn::tensor::Distribution::Default, &device);
        let mask = Tensor::<NdArray, 2, Bool>::from_bool(
            TensorData::from([[true, true, false], [true, false, false]]),
            &device,
        );
        let (pooled, weights) = pool.forward(hidden.clone(), Some(mask));
        let w = weights.to_data().to_vec::<f32>().unwrap();
        assert_eq!(w[2], 0.0);
        assert_eq!(&w[4..], &[0.0, 0.0]);
        assert!((w[0] + w[1] - 1.0).abs() < 1e-6);
        assert!((w[3] - 1.0).abs() < 1e-6);
        // With one real position, the pooled vector is that position's output.
        let second = hidden.slice([1..2, 0..1, 0..4]).reshape([1, 4]);
        pooled
            .slice([1..2, 0..4])
            .into_data()
            .assert_approx_eq::<f32>(&second.into_data(), Tolerance::absolute(1e-6));
    }
}
