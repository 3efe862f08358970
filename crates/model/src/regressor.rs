//! A recurrent encoder read out to one number per sequence: the model of the
//! adding problem (Hochreiter & Schmidhuber 1997), with or without attention.

use crate::{AttentionPooling, AttentionPoolingConfig, Encoder, EncoderConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::LstmBackend;

#[derive(Config, Debug)]
pub struct SequenceRegressorConfig {
    pub encoder: EncoderConfig,
    /// Pool the encoder's outputs with attention instead of reading its final
    /// state: a path from every step straight to the output.
    #[config(default = false)]
    pub attention: bool,
}

#[derive(Module, Debug)]
pub struct SequenceRegressor<B: Backend> {
    encoder: Encoder<B>,
    attention: Option<AttentionPooling<B>>,
    output: Linear<B>,
}

impl SequenceRegressorConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> SequenceRegressor<B> {
        let d = self.encoder.d_output();
        SequenceRegressor {
            encoder: self.encoder.init(device),
            attention: self
                .attention
                .then(|| AttentionPoolingConfig::new(d).init(device)),
            output: LinearConfig::new(d, 1).init(device),
        }
    }
}

impl<B: LstmBackend> SequenceRegressor<B> {
    /// `[B, T, E]` (every sequence full length) → `[B]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 1> {
        self.forward_with_attention(x).0
    }

    /// [`forward`](Self::forward), and the attention weights `[B, T]` when
    /// the model pools with attention.
    pub fn forward_with_attention(&self, x: Tensor<B, 3>) -> (Tensor<B, 1>, Option<Tensor<B, 2>>) {
        let [batch, _, _] = x.dims();
        let encoded = self.encoder.forward(x, None);
        let (summary, weights) = match &self.attention {
            None => (encoded.last, None), // [B, D]
            Some(attention) => {
                let (pooled, weights) = attention.forward(encoded.outputs, None);
                (pooled, Some(weights))
            }
        };
        (self.output.forward(summary).reshape([batch]), weights)
    }
}
