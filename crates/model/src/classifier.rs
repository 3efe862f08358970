//! The text classifier: Embedding -> encoder (an LSTM by default; any
//! recurrent cell, or a Transformer) -> attention pooling (alone, or
//! concatenated with max and mean pooling) -> Linear.

use crate::pooling::{Pooling, max_and_mean};
use crate::{AttentionPooling, AttentionPoolingConfig, CellKind, Encoder, EncoderConfig};
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::LstmBackend;

#[derive(Config, Debug)]
pub struct TextClassifierConfig {
    /// Number of token ids, padding and unknown included.
    pub vocab_size: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// 128: large enough for MR's ~18k words, small enough for a laptop CPU.
    #[config(default = 128)]
    pub d_embed: usize,
    /// 128: the size PyTorch baselines on MR use; larger overfits 8.5k sentences.
    #[config(default = 128)]
    pub d_hidden: usize,
    /// Dropout on the word embeddings (each element of each step). 0.5, as
    /// is usual for sentence classification on small data (Kim 2014).
    #[config(default = 0.5)]
    pub embedding_dropout: f64,
    /// Dropout on the pooled vector before the output layer, and between
    /// stacked recurrent layers.
    #[config(default = 0.5)]
    pub output_dropout: f64,
    /// Variational dropout inside the encoder: one mask per sentence on each
    /// layer's input and recurrent state, reused at every step (see
    /// [`VariationalDropout`](crate::VariationalDropout)).
    #[config(default = 0.0)]
    pub recurrent_dropout: f64,
    /// The recurrent cell of the encoder, or the Transformer's layers.
    #[config(default = "CellKind::Lstm")]
    pub cell: CellKind,
    /// Stacked layers (for recurrent ones, dropout between them when more than one).
    #[config(default = 1)]
    pub layers: usize,
    /// Read each sentence in both directions (outputs of size 2H; not for
    /// a Transformer, which sees both sides already).
    #[config(default = false)]
    pub bidirectional: bool,
    /// Attention heads of a Transformer encoder (of d_hidden / heads each).
    #[config(default = 4)]
    pub heads: usize,
    /// How the encoder's outputs become one vector; `None` is
    /// `Pooling::Attention` (an option so that the configs written before
    /// it existed still load).
    pub pooling: Option<Pooling>,
}

/// What the classifier computes for a batch.
#[derive(Debug, Clone)]
pub struct ClassifierOutput<B: Backend> {
    /// Unnormalized class scores. `[B, C]`
    pub logits: Tensor<B, 2>,
    /// Attention weight of each time step (zero at padding). `[B, T]`
    pub attention: Tensor<B, 2>,
}

#[derive(Module, Debug)]
pub struct TextClassifier<B: Backend> {
    pub(crate) embedding: Embedding<B>,
    pub(crate) encoder: Encoder<B>,
    pub(crate) attention: AttentionPooling<B>,
    pub(crate) embedding_dropout: Dropout,
    pub(crate) output_dropout: Dropout,
    pub(crate) output: Linear<B>,
    /// Not in the record: it comes from the config, like the layers' sizes.
    #[module(skip)]
    pub(crate) pooling: Pooling,
}

impl TextClassifierConfig {
    /// [`pooling`](Self::pooling), its absence read as attention alone.
    pub fn pooling(&self) -> Pooling {
        self.pooling.unwrap_or_default()
    }

    pub fn encoder(&self) -> EncoderConfig {
        EncoderConfig::new(self.cell, self.d_embed, self.d_hidden)
            .with_layers(self.layers)
            .with_bidirectional(self.bidirectional)
            .with_dropout(self.output_dropout)
            .with_recurrent_dropout(self.recurrent_dropout)
            .with_heads(self.heads)
    }

    /// Parameters of the model built from this config, without building it
    /// (so that a config too large for memory can be refused first).
    pub fn num_params(&self) -> f64 {
        let encoder = self.encoder();
        let d = encoder.d_output() as f64;
        let embedding = self.vocab_size as f64 * self.d_embed as f64;
        let attention = d + 1.0;
        let pooled = self.pooling().d_output(encoder.d_output()) as f64;
        let output = pooled * self.num_classes as f64 + self.num_classes as f64;
        embedding + encoder.num_params() + attention + output
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> TextClassifier<B> {
        let encoder = self.encoder();
        let d = encoder.d_output();
        TextClassifier {
            embedding: EmbeddingConfig::new(self.vocab_size, self.d_embed).init(device),
            encoder: encoder.init(device),
            attention: AttentionPoolingConfig::new(d).init(device),
            embedding_dropout: DropoutConfig::new(self.embedding_dropout).init(),
            output_dropout: DropoutConfig::new(self.output_dropout).init(),
            output: LinearConfig::new(self.pooling().d_output(d), self.num_classes).init(device),
            pooling: self.pooling(),
        }
    }
}

impl<B: LstmBackend> TextClassifier<B> {
    /// Classifies right-padded token ids `[B, T]`; `mask` `[B, T]` is true at
    /// real tokens. Every sequence needs at least one real token.
    ///
    /// Padding does not change the result: the encoder's outputs at real
    /// positions never see the padding (see [`Encoder`]), and attention gives
    /// padded positions a weight of exactly zero.
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        mask: Tensor<B, 2, Bool>,
    ) -> ClassifierOutput<B> {
        let hidden = self.encode(tokens, mask.clone()); // [B, T, D]
        let (pooled, attention) = match self.pooling {
            Pooling::Attention => self.attention.forward(hidden, Some(mask)), // [B, D], [B, T]
            Pooling::Concat => {
                let (attended, attention) =
                    self.attention.forward(hidden.clone(), Some(mask.clone()));
                let (max, mean) = max_and_mean(hidden, mask); // [B, D] each
                (Tensor::cat(vec![attended, max, mean], 1), attention) // [B, 3D], [B, T]
            }
        };
        let logits = self.output.forward(self.output_dropout.forward(pooled)); // [B, C]
        ClassifierOutput { logits, attention }
    }

    /// The encoder's output at every position of right-padded token ids
    /// `[B, T]` (embedding, its dropout, the encoder): `[B, T, D]`. What
    /// the classifier pools, and what a language model pretraining the
    /// embedding and encoder (`train --pretrain-epochs`) predicts from.
    pub fn encode(&self, tokens: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>) -> Tensor<B, 3> {
        // Burn's lookup, with the CPU backends' own gradient (`embedding_op`).
        let x = crate::embedding_op::embedding(self.embedding.weight.val(), tokens); // [B, T, E]
        let x = self.embedding_dropout.forward(x);
        // The encoder gets the mask even when its outputs at real positions
        // would not need it (a forward-only one): with the lengths, the CPU
        // kernel skips the padded steps at inference.
        self.encoder.forward(x, Some(mask)).outputs // [B, T, D]
    }
}

/// The parts the host inference path reads (`crate::cpu::classifier`).
impl<B: Backend> TextClassifier<B> {
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The word embedding (what `train --pretrain-epochs` pretrains, with the encoder).
    pub fn embedding(&self) -> &Embedding<B> {
        &self.embedding
    }

    pub fn encoder(&self) -> &Encoder<B> {
        &self.encoder
    }

    /// The model with its word embedding replaced by `weight` (`[vocab,
    /// d_embed]`, the shape it had), as a fresh parameter: pretrained word
    /// vectors (`train --embeddings`).
    pub fn with_embedding_weight(mut self, weight: Tensor<B, 2>) -> Self {
        assert_eq!(
            weight.dims(),
            self.embedding.weight.dims(),
            "the embedding's shape is [vocab, d_embed]"
        );
        // Rebuilt from its values, so that the parameter is a leaf of the
        // autodiff graph whatever `weight` was computed from.
        let device = weight.device();
        let weight = Tensor::from_data(weight.into_data(), &device);
        self.embedding.weight = burn::module::Param::from_tensor(weight);
        self
    }

    pub(crate) fn parts(&self) -> (&Embedding<B>, &Encoder<B>, &AttentionPooling<B>, &Linear<B>) {
        (
            &self.embedding,
            &self.encoder,
            &self.attention,
            &self.output,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::Tolerance;

    type B = NdArray;

    #[test]
    fn the_parameter_count_of_a_config_is_that_of_its_model() {
        let device = Default::default();
        for cell in [CellKind::Rnn, CellKind::Gru, CellKind::Lstm] {
            for (layers, bidirectional) in [(1, false), (2, false), (2, true)] {
                let config = TextClassifierConfig::new(37, 3)
                    .with_d_embed(5)
                    .with_d_hidden(7)
                    .with_cell(cell)
                    .with_layers(layers)
                    .with_bidirectional(bidirectional);
                let built = config.init::<B>(&device).num_params();
                assert_eq!(
                    config.num_params(),
                    built as f64,
                    "{cell} {layers} {bidirectional}"
                );
            }
        }
        for (d_embed, layers) in [(5, 1), (8, 2)] {
            let config = TextClassifierConfig::new(37, 3)
                .with_d_embed(d_embed)
                .with_d_hidden(8)
                .with_cell(CellKind::Transformer)
                .with_heads(2)
                .with_layers(layers);
            let built = config.init::<B>(&device).num_params();
            assert_eq!(config.num_params(), built as f64, "transformer {layers}");
        }
        let concat = TextClassifierConfig::new(37, 3)
            .with_d_hidden(7)
            .with_bidirectional(true)
            .with_pooling(Some(Pooling::Concat));
        let built = concat.init::<B>(&device).num_params();
        assert_eq!(concat.num_params(), built as f64, "concat pooling");
        let lm = crate::CharLmConfig::new(29)
            .with_d_embed(6)
            .with_d_hidden(9)
            .with_layers(2);
        assert_eq!(lm.num_params(), lm.init::<B>(&device).num_params() as f64);
    }

    #[test]
    fn shapes() {
        let device = Default::default();
        let model = TextClassifierConfig::new(50, 3)
            .with_d_embed(8)
            .with_d_hidden(6)
            .init::<B>(&device);
        let tokens = Tensor::<B, 2, Int>::from_ints([[4, 5, 6, 7, 8], [9, 10, 0, 0, 0]], &device);
        let mask = tokens.clone().not_equal_elem(0);
        let out = model.forward(tokens, mask);
        assert_eq!(out.logits.dims(), [2, 3]);
        assert_eq!(out.attention.dims(), [2, 5]);
        let sums = out.attention.sum_dim(1).into_data();
        sums.assert_approx_eq::<f32>(
            &TensorData::from([[1.0f32], [1.0]]),
            Tolerance::absolute(1e-6),
        );
    }

    #[test]
    fn padding_does_not_change_the_logits() {
        for (cell, bidirectional) in [
            (CellKind::Lstm, false),
            (CellKind::Lstm, true),
            (CellKind::Gru, true),
            (CellKind::Rnn, false),
            (CellKind::Transformer, false),
        ] {
            let config = TextClassifierConfig::new(50, 2)
                .with_cell(cell)
                .with_bidirectional(bidirectional)
                .with_layers(2);
            check_padding_invariance(config.clone());
            check_padding_invariance(config.with_pooling(Some(Pooling::Concat)));
        }
    }

    /// Max and mean pooling read the real steps only, whatever the padding holds.
    #[test]
    fn max_and_mean_skip_the_padding() {
        let device = Default::default();
        let hidden = Tensor::<B, 3>::from_floats(
            [
                [[1.0, -2.0], [3.0, -4.0], [9.0, 9.0]],
                [[-5.0, 0.5], [7.0, 7.0], [8.0, 8.0]],
            ],
            &device,
        );
        let mask = Tensor::<B, 2, Bool>::from_bool(
            TensorData::from([[true, true, false], [true, false, false]]),
            &device,
        );
        let (max, mean) = max_and_mean(hidden, mask);
        max.into_data()
            .assert_eq(&TensorData::from([[3.0f32, -2.0], [-5.0, 0.5]]), false);
        mean.into_data()
            .assert_eq(&TensorData::from([[2.0f32, -3.0], [-5.0, 0.5]]), false);
    }

    /// A config written before `pooling` existed loads, as attention alone.
    #[test]
    fn a_config_without_pooling_loads_as_attention_pooling() {
        let mut json = serde_json::to_value(TextClassifierConfig::new(10, 2)).unwrap();
        json.as_object_mut().unwrap().remove("pooling");
        let config: TextClassifierConfig = serde_json::from_value(json).unwrap();
        assert_eq!(config.pooling(), Pooling::Attention);
        let config: TextClassifierConfig = serde_json::from_value(
            serde_json::to_value(
                TextClassifierConfig::new(10, 2).with_pooling(Some(Pooling::Concat)),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config.pooling(), Pooling::Concat);
    }

    fn check_padding_invariance(config: TextClassifierConfig) {
        let device = Default::default();
        let model = config.init::<B>(&device);
        // Dropout is a no-op outside autodiff, so the model is deterministic here.
        let alone = Tensor::<B, 2, Int>::from_ints([[11, 12, 13]], &device);
        let out_alone = model.forward(alone.clone(), alone.clone().not_equal_elem(0));

        let padded = Tensor::<B, 2, Int>::from_ints(
            [
                [21, 22, 23, 24, 25, 26, 27, 28],
                [11, 12, 13, 0, 0, 0, 0, 0],
                [30, 31, 0, 0, 0, 0, 0, 0],
            ],
            &device,
        );
        let out_batch = model.forward(padded.clone(), padded.not_equal_elem(0));
        let row = out_batch.logits.slice([1..2, 0..2]);
        row.into_data()
            .assert_approx_eq::<f32>(&out_alone.logits.into_data(), Tolerance::absolute(1e-5));
        let att = out_batch.attention.slice([1..2, 0..3]);
        att.into_data()
            .assert_approx_eq::<f32>(&out_alone.attention.into_data(), Tolerance::absolute(1e-6));
    }
}
