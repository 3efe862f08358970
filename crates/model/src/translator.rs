//! The encoder–decoder translator: a bidirectional LSTM reads the source, an
//! LSTM decoder writes the target one token at a time, attending over every
//! source position at every step (Bahdanau, Cho & Bengio 2015; Luong et
//! al. 2015) — or, without attention, seeing only the encoder's final
//! state (Sutskever, Vinyals & Le 2014; Cho et al. 2014).
//!
//! One decoder step (shapes for a batch of B, source length S, encoder
//! states of D = 2 H, decoder state of H_dec = D):
//!
//! ```text
//! y_{t-1} ─ embed ─┐
//!                  ├─ concat [B, E + D] ─ LSTM ─ s_t [B, D] ─┬─ attend over h_1..h_S ─ c_t [B, D]
//! c_{t-1} ─────────┘                                          └──────── concat [s_t; c_t] ─ Linear ─ logits [B, V]
//! ```
//!
//! The context of the last step is fed into the next ("input feeding",
//! Luong et al. 2015). The decoder starts from tanh(W h_last), the
//! encoder's final states of both directions. Without attention the context
//! is h_last at every step.

use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::tanh;

use crate::alignment::{Alignment, AlignmentConfig, AlignmentKind, Keys};
use crate::{CellKind, Encoder, EncoderConfig, Lstm, LstmBackend, LstmConfig, LstmState};

#[derive(Config, Debug)]
pub struct TranslatorConfig {
    pub source_vocab: usize,
    pub target_vocab: usize,
    /// 256: subword embeddings of a small corpus.
    #[config(default = 256)]
    pub d_embed: usize,
    /// Each direction of the encoder; the decoder has twice this.
    #[config(default = 256)]
    pub d_hidden: usize,
    /// `None` trains the encoder–decoder without attention.
    #[config(default = "Some(AlignmentKind::Bahdanau)")]
    pub attention: Option<AlignmentKind>,
    /// On the embeddings and before the output layer (training only).
    #[config(default = 0.3)]
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct Translator<B: Backend> {
    source_embedding: Embedding<B>,
    encoder: Encoder<B>,
    /// h_last → the decoder's first state. `D -> D`
    bridge: Linear<B>,
    target_embedding: Embedding<B>,
    /// `E + D -> D`
    decoder: Lstm<B>,
    alignment: Option<Alignment<B>>,
    /// [s_t; c_t] → logits. `2D -> V`
    output: Linear<B>,
    dropout: Dropout,
}

/// The source, encoded once for every decoding step.
#[derive(Debug, Clone)]
pub struct EncodedSource<B: Backend> {
    /// Encoder states and their projection `[B, S, ·]`, and the mask.
    pub keys: Keys<B>,
    /// The final state of both directions `[B, D]`.
    pub last: Tensor<B, 2>,
}

/// What the decoder carries from one step to the next.
#[derive(Debug, Clone)]
pub struct DecoderState<B: Backend> {
    pub lstm: LstmState<B>,
    /// The last step's context `[B, D]`.
    pub context: Tensor<B, 2>,
}

/// A teacher-forced pass over whole target sequences.
#[derive(Debug, Clone)]
pub struct TranslatorOutput<B: Backend> {
    /// `[B, T, V]`
    pub logits: Tensor<B, 3>,
    /// Each step's weights over the source `[B, T, S]` (zeros without attention).
    pub attention: Tensor<B, 3>,
}

impl<B: Backend> EncodedSource<B> {
    /// The rows `rows` `[N]` of every tensor (a row may repeat): one per
    /// hypothesis of a beam search.
    pub fn select(&self, rows: Tensor<B, 1, Int>) -> Self {
        Self {
            keys: Keys {
                values: self.keys.values.clone().select(0, rows.clone()),
                keys: self.keys.keys.clone().select(0, rows.clone()),
                mask: self.keys.mask.clone().select(0, rows.clone()),
            },
            last: self.last.clone().select(0, rows),
        }
    }
}

impl<B: Backend> DecoderState<B> {
    /// The rows `rows` `[N]` of the state (a row may repeat).
    pub fn select(&self, rows: Tensor<B, 1, Int>) -> Self {
        Self {
            lstm: LstmState {
                hidden: self.lstm.hidden.clone().select(0, rows.clone()),
                cell: self.lstm.cell.clone().select(0, rows.clone()),
            },
            context: self.context.clone().select(0, rows),
        }
    }
}

impl TranslatorConfig {
    fn d_state(&self) -> usize {
        2 * self.d_hidden
    }

    /// The number of parameters `init` makes, from the sizes alone (to
    /// refuse an absurd config before allocating it).
    pub fn num_params(&self) -> f64 {
        let (e, h, a) = (self.d_embed, self.d_hidden, 128.0);
        let d = self.d_state();
        let (v_src, v_tgt, df) = (self.source_vocab as f64, self.target_vocab as f64, d as f64);
        let alignment = match self.attention {
            Some(AlignmentKind::Bahdanau) => df * a + (df * a + a) + a,
            Some(AlignmentKind::General) => df * df,
            Some(AlignmentKind::Dot) | None => 0.0,
        };
        v_src * e as f64
            + 2.0 * CellKind::Lstm.num_params(e, h)
            + (df * df + df)
            + v_tgt * e as f64
            + CellKind::Lstm.num_params(e + d, d)
            + alignment
            + (2.0 * df * v_tgt + v_tgt)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Translator<B> {
        let d = self.d_state();
        Translator {
            source_embedding: EmbeddingConfig::new(self.source_vocab, self.d_embed).init(device),
            encoder: EncoderConfig::new(CellKind::Lstm, self.d_embed, self.d_hidden)
                .with_bidirectional(true)
                .init(device),
            bridge: LinearConfig::new(d, d).init(device),
            target_embedding: EmbeddingConfig::new(self.target_vocab, self.d_embed).init(device),
            decoder: LstmConfig::new(self.d_embed + d, d).init(device),
            // d_attention stays AlignmentConfig's default, which num_params counts on.
            alignment: self
                .attention
                .map(|kind| AlignmentConfig::new(kind, d, d).init(device)),
            output: LinearConfig::new(2 * d, self.target_vocab).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl<B: LstmBackend> Translator<B> {
    /// The kind of attention, or `None` for the model without.
    pub fn attention_kind(&self) -> Option<AlignmentKind> {
        self.alignment.as_ref().map(Alignment::kind)
    }

    /// Encodes right-padded source ids `[B, S]`; `mask` is true at real
    /// tokens (at least one per row).
    pub fn encode(&self, source: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>) -> EncodedSource<B> {
        let x = self.dropout.forward(self.source_embedding.forward(source)); // [B, S, E]
        let encoded = self.encoder.forward(x, Some(mask.clone())); // [B, S, D], [B, D]
        let keys = match &self.alignment {
            Some(alignment) => alignment.keys(encoded.outputs, mask),
            None => Keys {
                keys: encoded.outputs.clone(),
                values: encoded.outputs,
                mask,
            },
        };
        EncodedSource {
            keys,
            last: encoded.last,
        }
    }

    /// The decoder's state before the first target token.
    pub fn start(&self, source: &EncodedSource<B>) -> DecoderState<B> {
        let hidden = tanh(self.bridge.forward(source.last.clone())); // [B, D]
        let context = match &self.alignment {
            Some(_) => source.last.zeros_like(),
            None => source.last.clone(),
        };
        DecoderState {
            lstm: LstmState {
                cell: hidden.zeros_like(),
                hidden,
            },
            context,
        }
    }

    /// One decoder step from the previous tokens `[B]`: the logits of the
    /// next `[B, V]`, the attention weights `[B, S]` (zeros without
    /// attention) and the state to carry on.
    pub fn step(
        &self,
        source: &EncodedSource<B>,
        previous: Tensor<B, 1, Int>,
        state: DecoderState<B>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>, DecoderState<B>) {
        let [batch] = previous.dims();
        let embedded = self.target_embedding.forward(previous.reshape([batch, 1])); // [B, 1, E]
        let input = Tensor::cat(
            vec![
                self.dropout.forward(embedded),
                state.context.clone().unsqueeze_dim::<3>(1),
            ],
            2,
        ); // [B, 1, E + D]
        let (_, lstm) = self.decoder.forward_from(input, Some(state.lstm)); // s_t: [B, D]
        let (context, weights) = match &self.alignment {
            Some(alignment) => alignment.forward(lstm.hidden.clone(), &source.keys),
            None => {
                let [_, positions] = source.keys.mask.dims();
                (
                    state.context,
                    Tensor::zeros([batch, positions], &lstm.hidden.device()),
                )
            }
        };
        let features = Tensor::cat(vec![lstm.hidden.clone(), context.clone()], 1); // [B, 2D]
        let logits = self.output.forward(self.dropout.forward(features)); // [B, V]
        (logits, weights, DecoderState { lstm, context })
    }

    /// Teacher forcing: the logits after each of `target_in` `[B, T]` (the
    /// target shifted right, starting with the start token).
    pub fn forward(
        &self,
        source: Tensor<B, 2, Int>,
        source_mask: Tensor<B, 2, Bool>,
        target_in: Tensor<B, 2, Int>,
    ) -> TranslatorOutput<B> {
        let [batch, steps] = target_in.dims();
        let encoded = self.encode(source, source_mask);
        let mut state = self.start(&encoded);
        let mut logits = Vec::with_capacity(steps);
        let mut attention = Vec::with_capacity(steps);
        for t in 0..steps {
            let previous = target_in
                .clone()
                .slice([0..batch, t..t + 1])
                .reshape([batch]);
            let (step_logits, weights, next) = self.step(&encoded, previous, state);
            logits.push(step_logits.unsqueeze_dim::<3>(1));
            attention.push(weights.unsqueeze_dim::<3>(1));
            state = next;
        }
        TranslatorOutput {
            logits: Tensor::cat(logits, 1),       // [B, T, V]
            attention: Tensor::cat(attention, 1), // [B, T, S]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    use crate::test_util::padded as ids;

    fn config(attention: Option<AlignmentKind>) -> TranslatorConfig {
        TranslatorConfig::new(30, 25)
            .with_d_embed(6)
            .with_d_hidden(5)
            .with_attention(attention)
    }

    const KINDS: [Option<AlignmentKind>; 4] = [
        Some(AlignmentKind::Bahdanau),
        Some(AlignmentKind::Dot),
        Some(AlignmentKind::General),
        None,
    ];

    #[test]
    fn attention_sums_to_one_over_the_source_and_is_zero_on_padding() {
        let device = Default::default();
        for kind in KINDS[..3].iter().copied() {
            let model = config(kind).init::<B>(&device);
            let (source, mask) = ids(&[&[4, 5, 6, 7], &[8, 9]]);
            let (target, _) = ids(&[&[1, 3, 4], &[1, 5, 6]]);
            let out = model.forward(source, mask, target);
            let w: Vec<f32> = out.attention.into_data().to_vec().unwrap(); // [2, 3, 4]
            for t in 0..3 {
                let first = &w[t * 4..t * 4 + 4];
                assert!(
                    (first.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                    "{kind:?} {first:?}"
                );
                let second = &w[12 + t * 4..12 + t * 4 + 4];
                assert!(
                    (second[0] + second[1] - 1.0).abs() < 1e-5,
                    "{kind:?} {second:?}"
                );
                assert_eq!(&second[2..], &[0.0, 0.0], "{kind:?}");
            }
        }
    }

    #[test]
    fn a_sentence_alone_and_in_a_padded_batch_gets_the_same_logits() {
        let device = Default::default();
        for kind in KINDS {
            let model = config(kind).init::<B>(&device);
            let (source, mask) = ids(&[&[8, 9]]);
            let (target, _) = ids(&[&[1, 5]]);
            let alone: Vec<f32> = model
                .forward(source, mask, target)
                .logits
                .into_data()
                .to_vec()
                .unwrap();
            let (source, mask) = ids(&[&[4, 5, 6, 7, 3], &[8, 9]]);
            let (target, _) = ids(&[&[1, 3, 4, 2], &[1, 5, 0, 0]]);
            let batch: Vec<f32> = model
                .forward(source, mask, target)
                .logits
                .into_data()
                .to_vec()
                .unwrap();
            // The second sentence's first two steps: [1, 0..2, V] of [2, 4, 25].
            let padded = &batch[4 * 25..4 * 25 + 2 * 25];
            for (a, b) in alone.iter().zip(padded) {
                assert!((a - b).abs() < 1e-5, "{kind:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn teacher_forcing_equals_decoding_step_by_step() {
        let device = Default::default();
        for kind in KINDS {
            let model = config(kind).init::<B>(&device);
            let (source, mask) = ids(&[&[4, 5, 6], &[7, 8, 9]]);
            let (target, _) = ids(&[&[1, 3, 4], &[1, 5, 6]]);
            let forced = model.forward(source.clone(), mask.clone(), target.clone());
            let encoded = model.encode(source, mask);
            let mut state = model.start(&encoded);
            for t in 0..3 {
                let previous = target.clone().slice([0..2, t..t + 1]).reshape([2]);
                let (logits, _, next) = model.step(&encoded, previous, state);
                state = next;
                let want: Vec<f32> = forced
                    .logits
                    .clone()
                    .slice([0..2, t..t + 1, 0..25])
                    .into_data()
                    .to_vec()
                    .unwrap();
                let got: Vec<f32> = logits.into_data().to_vec().unwrap();
                assert_eq!(want, got, "{kind:?} step {t}");
            }
        }
    }

    /// Every parameter must be a leaf of the autodiff graph that the loss
    /// reaches, or the optimizer silently never updates it.
    #[test]
    fn every_parameter_gets_a_gradient() {
        use burn::backend::Autodiff;
        use burn::optim::GradientsParams;
        type AD = Autodiff<NdArray>;
        let device = Default::default();
        for kind in KINDS {
            let model = config(kind).with_dropout(0.0).init::<AD>(&device);
            let source = Tensor::<AD, 2, Int>::from_ints([[4, 5, 6], [7, 8, 0]], &device);
            let mask = source.clone().not_equal_elem(0);
            let target = Tensor::<AD, 2, Int>::from_ints([[1, 3, 4], [1, 5, 6]], &device);
            let grads = model.forward(source, mask, target).logits.sum().backward();
            let grads = GradientsParams::from_grads(grads, &model);
            struct Count(usize);
            impl<B: Backend> burn::module::ModuleVisitor<B> for Count {
                fn visit_float<const D: usize>(&mut self, _: &burn::module::Param<Tensor<B, D>>) {
                    self.0 += 1;
                }
            }
            let mut params = Count(0);
            model.visit(&mut params);
            // Without attention the bridge, embeddings, encoder, decoder and output: 15.
            assert!(params.0 >= 15, "{kind:?}: {} parameters", params.0);
            assert_eq!(grads.len(), params.0, "{kind:?}");
            // The count from the sizes alone is the count of the built model.
            let config = config(kind);
            assert_eq!(config.num_params(), model.num_params() as f64, "{kind:?}");
        }
    }

    /// Greedy decoding of one source sentence, for the learning test.
    fn greedy(model: &Translator<B>, source: &[i64], max_len: usize) -> Vec<i64> {
        let (ids, mask) = ids(&[source]);
        let encoded = model.encode(ids, mask);
        let mut state = model.start(&encoded);
        let mut previous = START;
        let mut out = Vec::new();
        for _ in 0..max_len {
            let token = Tensor::<B, 1, Int>::from_ints([previous], &Default::default());
            let (logits, _, next) = model.step(&encoded, token, state);
            state = next;
            previous = logits.argmax(1).into_scalar().elem::<i64>();
            if previous == END {
                break;
            }
            out.push(previous);
        }
        out
    }

    const START: i64 = 1;
    const END: i64 = 2;

    /// A tiny model learns to copy and to reverse short sequences, and then
    /// translates sequences it never saw exactly.
    #[test]
    fn a_tiny_model_learns_to_copy_and_to_reverse() {
        use burn::backend::Autodiff;
        use burn::module::AutodiffModule;
        use burn::nn::loss::CrossEntropyLossConfig;
        use burn::optim::{AdamConfig, GradientsParams, Optimizer};
        use rand::{Rng, SeedableRng};
        use rand_chacha::ChaCha8Rng;
        type AD = Autodiff<NdArray>;
        let device = Default::default();
        /// Replaces every weight with a draw from the test's own generator:
        /// the backend's generator is shared by every test of the process,
        /// which draw from it in between, so weights from it differ from run
        /// to run. A matrix gets U(−1/√fan_in, 1/√fan_in); a vector keeps a
        /// constant initialization (the biases' zeros or ones) and gets zeros
        /// otherwise.
        struct Reinit(ChaCha8Rng);
        impl burn::module::ModuleMapper<AD> for Reinit {
            fn map_float<const D: usize>(
                &mut self,
                param: burn::module::Param<Tensor<AD, D>>,
            ) -> burn::module::Param<Tensor<AD, D>> {
                let (id, tensor, mapper) = param.consume();
                let dims: [usize; D] = tensor.dims();
                let device = tensor.device();
                let old = tensor.into_data().to_vec::<f32>().unwrap();
                let values: Vec<f32> = if D >= 2 {
                    let bound = 1.0 / (dims[0] as f32).sqrt();
                    old.iter()
                        .map(|_| self.0.random_range(-bound..bound))
                        .collect()
                } else if old.iter().all(|v| *v == old[0]) {
                    old
                } else {
                    vec![0.0; old.len()]
                };
                let fresh = Tensor::<AD, D>::from_data(TensorData::new(values, dims), &device)
                    .require_grad();
                burn::module::Param::from_mapped_value(id, fresh, mapper)
            }
        }
        for reverse in [false, true] {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let sentence = |rng: &mut ChaCha8Rng| -> Vec<i64> {
                let len = rng.random_range(3..=5);
                (0..len).map(|_| rng.random_range(3..11)).collect()
            };
            let held_out: Vec<Vec<i64>> = (0..5).map(|_| sentence(&mut rng)).collect();
            let mut model = TranslatorConfig::new(11, 11)
                .with_d_embed(16)
                .with_d_hidden(24)
                .with_dropout(0.0)
                .init::<AD>(&device)
                .map(&mut Reinit(ChaCha8Rng::seed_from_u64(7)));
            let mut optimizer = AdamConfig::new().init();
            let loss_fn = CrossEntropyLossConfig::new()
                .with_pad_tokens(Some(vec![0]))
                .init(&device);
            for _ in 0..600 {
                let batch: Vec<Vec<i64>> = (0..16)
                    .map(|_| sentence(&mut rng))
                    .filter(|s| !held_out.contains(s))
                    .collect();
                let targets: Vec<Vec<i64>> = batch
                    .iter()
                    .map(|s| {
                        if reverse {
                            s.iter().rev().copied().collect()
                        } else {
                            s.clone()
                        }
                    })
                    .collect();
                let source_rows: Vec<&[i64]> = batch.iter().map(Vec::as_slice).collect();
                let (source, mask) = ids(&source_rows);
                let inputs: Vec<Vec<i64>> =
                    targets.iter().map(|t| [&[START][..], t].concat()).collect();
                let outputs: Vec<Vec<i64>> =
                    targets.iter().map(|t| [t, &[END][..]].concat()).collect();
                let rows = |v: &Vec<Vec<i64>>| -> Tensor<AD, 2, Int> {
                    let r: Vec<&[i64]> = v.iter().map(Vec::as_slice).collect();
                    let (t, _) = ids(&r);
                    Tensor::from_data(t.into_data(), &device)
                };
                let source = Tensor::<AD, 2, Int>::from_data(source.into_data(), &device);
                let mask = Tensor::<AD, 2, Bool>::from_data(mask.into_data(), &device);
                let out = model.forward(source, mask, rows(&inputs));
                let [b, t, v] = out.logits.dims();
                let loss = loss_fn.forward(
                    out.logits.reshape([b * t, v]),
                    rows(&outputs).reshape([b * t]),
                );
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optimizer.step(1e-2, model, grads);
            }
            let model = model.valid();
            for source in &held_out {
                let want: Vec<i64> = if reverse {
                    source.iter().rev().copied().collect()
                } else {
                    source.clone()
                };
                assert_eq!(greedy(&model, source, 8), want, "reverse={reverse}");
            }
        }
    }
}
