//! The translators behind one interface: [`Seq2Seq`] is what a search needs
//! of an encoder–decoder (encode once, then step), and [`Seq2SeqModel`] is
//! either architecture, chosen by its config ([`Seq2SeqConfig`], tagged
//! `"arch": "lstm"` or `"transformer"` in a config file), so that training,
//! artifacts and decoding are written once.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::transformer_translator::EncodedMemory;
use crate::{
    AlignmentKind, DecoderState, EncodedSource, LstmBackend, TransformerTranslator,
    TransformerTranslatorConfig, Translator, TranslatorConfig,
};

/// What beam and greedy search need of an encoder–decoder.
pub trait Seq2Seq<B: Backend> {
    /// The source, encoded once for every step.
    type Encoded: Clone;
    /// What the decoder carries from step to step.
    type State;

    /// Right-padded source ids `[B, S]`, `mask` true at real tokens.
    fn encode(&self, source: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>) -> Self::Encoded;
    /// `[B, S]`, true at real source tokens.
    fn source_mask(encoded: &Self::Encoded) -> Tensor<B, 2, Bool>;
    /// The rows `rows` `[N]` (a row may repeat): one per hypothesis.
    fn select_encoded(encoded: &Self::Encoded, rows: Tensor<B, 1, Int>) -> Self::Encoded;
    fn start(&self, encoded: &Self::Encoded) -> Self::State;
    /// The logits of the next token `[N, V]` after `previous` `[N]`, the
    /// attention weights over the source `[N, S]` if the model has one
    /// attention to show, and the state to carry on.
    fn step(
        &self,
        encoded: &Self::Encoded,
        previous: Tensor<B, 1, Int>,
        state: Self::State,
    ) -> (Tensor<B, 2>, Option<Tensor<B, 2>>, Self::State);
    fn select_state(state: &Self::State, rows: Tensor<B, 1, Int>) -> Self::State;
}

impl<B: LstmBackend> Seq2Seq<B> for Translator<B> {
    type Encoded = EncodedSource<B>;
    type State = DecoderState<B>;

    fn encode(&self, source: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>) -> Self::Encoded {
        Translator::encode(self, source, mask)
    }
    fn source_mask(encoded: &Self::Encoded) -> Tensor<B, 2, Bool> {
        encoded.keys.mask.clone()
    }
    fn select_encoded(encoded: &Self::Encoded, rows: Tensor<B, 1, Int>) -> Self::Encoded {
        encoded.select(rows)
    }
    fn start(&self, encoded: &Self::Encoded) -> Self::State {
        Translator::start(self, encoded)
    }
    fn step(
        &self,
        encoded: &Self::Encoded,
        previous: Tensor<B, 1, Int>,
        state: Self::State,
    ) -> (Tensor<B, 2>, Option<Tensor<B, 2>>, Self::State) {
        let (logits, weights, state) = Translator::step(self, encoded, previous, state);
        (logits, self.attention_kind().map(|_| weights), state)
    }
    fn select_state(state: &Self::State, rows: Tensor<B, 1, Int>) -> Self::State {
        state.select(rows)
    }
}

impl<B: Backend> Seq2Seq<B> for TransformerTranslator<B> {
    type Encoded = EncodedMemory<B>;
    /// The target prefix so far `[N, t]` (none before the first step).
    type State = Option<Tensor<B, 2, Int>>;

    fn encode(&self, source: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>) -> Self::Encoded {
        TransformerTranslator::encode(self, source, mask)
    }
    fn source_mask(encoded: &Self::Encoded) -> Tensor<B, 2, Bool> {
        encoded.mask.clone()
    }
    fn select_encoded(encoded: &Self::Encoded, rows: Tensor<B, 1, Int>) -> Self::Encoded {
        encoded.select(rows)
    }
    fn start(&self, _: &Self::Encoded) -> Self::State {
        None
    }
    fn step(
        &self,
        encoded: &Self::Encoded,
        previous: Tensor<B, 1, Int>,
        state: Self::State,
    ) -> (Tensor<B, 2>, Option<Tensor<B, 2>>, Self::State) {
        // Burn's decoder layers do not return their cross-attention
        // weights: there are heads × layers of them, and no one alignment.
        let (logits, prefix) = TransformerTranslator::step(self, encoded, previous, state);
        (logits, None, Some(prefix))
    }
    fn select_state(state: &Self::State, rows: Tensor<B, 1, Int>) -> Self::State {
        state.as_ref().map(|prefix| prefix.clone().select(0, rows))
    }
}

/// Either architecture's config; `"arch"` names it in JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "lowercase")]
pub enum Seq2SeqConfig {
    /// The recurrent encoder–decoder, with or without attention.
    Lstm(TranslatorConfig),
    Transformer(TransformerTranslatorConfig),
}

impl Seq2SeqConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Seq2SeqModel<B> {
        match self {
            Seq2SeqConfig::Lstm(c) => Seq2SeqModel::Lstm(c.init(device)),
            Seq2SeqConfig::Transformer(c) => Seq2SeqModel::Transformer(c.init(device)),
        }
    }

    pub fn num_params(&self) -> f64 {
        match self {
            Seq2SeqConfig::Lstm(c) => c.num_params(),
            Seq2SeqConfig::Transformer(c) => c.num_params(),
        }
    }

    /// Source and target vocabulary sizes.
    pub fn vocab_sizes(&self) -> (usize, usize) {
        match self {
            Seq2SeqConfig::Lstm(c) => (c.source_vocab, c.target_vocab),
            Seq2SeqConfig::Transformer(c) => (c.source_vocab, c.target_vocab),
        }
    }

    /// The sizes that must be at least 1, by field name, and the dropout.
    pub fn sizes(&self) -> (Vec<(&'static str, usize)>, f64) {
        match self {
            Seq2SeqConfig::Lstm(c) => (
                vec![
                    ("model.source_vocab", c.source_vocab),
                    ("model.target_vocab", c.target_vocab),
                    ("model.d_embed", c.d_embed),
                    ("model.d_hidden", c.d_hidden),
                ],
                c.dropout,
            ),
            Seq2SeqConfig::Transformer(c) => (
                vec![
                    ("model.source_vocab", c.source_vocab),
                    ("model.target_vocab", c.target_vocab),
                    ("model.d_model", c.d_model),
                    ("model.d_ff", c.d_ff),
                    ("model.n_heads", c.n_heads),
                    ("model.n_layers", c.n_layers),
                ],
                c.dropout,
            ),
        }
    }
}

/// Either architecture.
#[derive(Module, Debug)]
pub enum Seq2SeqModel<B: Backend> {
    Lstm(Translator<B>),
    Transformer(TransformerTranslator<B>),
}

/// [`Seq2SeqModel`]'s encoded source.
#[derive(Debug, Clone)]
pub enum AnyEncoded<B: Backend> {
    Lstm(EncodedSource<B>),
    Transformer(EncodedMemory<B>),
}

/// [`Seq2SeqModel`]'s decoder state.
pub enum AnyState<B: Backend> {
    Lstm(DecoderState<B>),
    Transformer(Option<Tensor<B, 2, Int>>),
}

impl<B: LstmBackend> Seq2SeqModel<B> {
    /// The recurrent model's kind of attention (`None` without, and for the
    /// Transformer, which has many).
    pub fn attention_kind(&self) -> Option<AlignmentKind> {
        match self {
            Seq2SeqModel::Lstm(m) => m.attention_kind(),
            Seq2SeqModel::Transformer(_) => None,
        }
    }

    /// Teacher forcing: the logits after each of `target_in` `[B, T]`. `[B, T, V]`
    pub fn forward(
        &self,
        source: Tensor<B, 2, Int>,
        source_mask: Tensor<B, 2, Bool>,
        target_in: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        match self {
            Seq2SeqModel::Lstm(m) => m.forward(source, source_mask, target_in).logits,
            Seq2SeqModel::Transformer(m) => m.forward(source, source_mask, target_in),
        }
    }
}

impl<B: LstmBackend> Seq2Seq<B> for Seq2SeqModel<B> {
    type Encoded = AnyEncoded<B>;
    type State = AnyState<B>;

    fn encode(&self, source: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>) -> Self::Encoded {
        match self {
            Seq2SeqModel::Lstm(m) => AnyEncoded::Lstm(Seq2Seq::encode(m, source, mask)),
            Seq2SeqModel::Transformer(m) => {
                AnyEncoded::Transformer(Seq2Seq::encode(m, source, mask))
            }
        }
    }
    fn source_mask(encoded: &Self::Encoded) -> Tensor<B, 2, Bool> {
        match encoded {
            AnyEncoded::Lstm(e) => <Translator<B> as Seq2Seq<B>>::source_mask(e),
            AnyEncoded::Transformer(e) => <TransformerTranslator<B> as Seq2Seq<B>>::source_mask(e),
        }
    }
    fn select_encoded(encoded: &Self::Encoded, rows: Tensor<B, 1, Int>) -> Self::Encoded {
        match encoded {
            AnyEncoded::Lstm(e) => AnyEncoded::Lstm(e.select(rows)),
            AnyEncoded::Transformer(e) => AnyEncoded::Transformer(e.select(rows)),
        }
    }
    fn start(&self, encoded: &Self::Encoded) -> Self::State {
        match (self, encoded) {
            (Seq2SeqModel::Lstm(m), AnyEncoded::Lstm(e)) => AnyState::Lstm(Seq2Seq::start(m, e)),
            (Seq2SeqModel::Transformer(_), AnyEncoded::Transformer(_)) => {
                AnyState::Transformer(None)
            }
            _ => panic!("a source encoded by the other architecture"),
        }
    }
    fn step(
        &self,
        encoded: &Self::Encoded,
        previous: Tensor<B, 1, Int>,
        state: Self::State,
    ) -> (Tensor<B, 2>, Option<Tensor<B, 2>>, Self::State) {
        match (self, encoded, state) {
            (Seq2SeqModel::Lstm(m), AnyEncoded::Lstm(e), AnyState::Lstm(s)) => {
                let (logits, weights, s) = Seq2Seq::step(m, e, previous, s);
                (logits, weights, AnyState::Lstm(s))
            }
            (
                Seq2SeqModel::Transformer(m),
                AnyEncoded::Transformer(e),
                AnyState::Transformer(s),
            ) => {
                let (logits, weights, s) = Seq2Seq::step(m, e, previous, s);
                (logits, weights, AnyState::Transformer(s))
            }
            _ => panic!("a state of the other architecture"),
        }
    }
    fn select_state(state: &Self::State, rows: Tensor<B, 1, Int>) -> Self::State {
        match state {
            AnyState::Lstm(s) => AnyState::Lstm(s.select(rows)),
            AnyState::Transformer(s) => {
                AnyState::Transformer(s.as_ref().map(|p| p.clone().select(0, rows)))
            }
        }
    }
}
