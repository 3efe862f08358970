//! Sequence models, each generic over a Burn [`Backend`](burn::tensor::backend::Backend)
//! so that one definition runs on the ndarray CPU backend and, unchanged, on wgpu.
//!
//! This crate knows nothing of files, datasets or training loops: it takes
//! tensors and returns tensors. Shapes in comments use B = batch size,
//! T = sequence length, E = embedding size, H = hidden size, C = classes.
//!
//! - Fundamentals: [`Mlp`] with hand-written [`backprop`] beside autodiff.
//! - The recurrent family: [`Rnn`], [`Gru`], [`Lstm`] behind [`Recurrent`],
//!   stacked and made bidirectional by [`Encoder`], which also takes the
//!   Transformer's self-attention layers ([`SelfAttentionEncoder`]) instead.
//! - Attention: [`AttentionPooling`], whose weights a person can inspect;
//!   [`Alignment`], a decoder's attention over the encoder (Bahdanau, Luong).
//! - Models: [`TextClassifier`], [`SequenceRegressor`], the character
//!   language model [`CharLm`], the encoder–decoder [`Translator`] and
//!   the [`TransformerTranslator`], both behind [`Seq2Seq`] for [`translate`].
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::prelude::*;
//! use model::TextClassifierConfig;
//!
//! let device = Default::default();
//! let model = TextClassifierConfig::new(100, 2).init::<NdArray>(&device);
//! let tokens = Tensor::<NdArray, 2, Int>::from_ints([[5, 6, 7], [8, 9, 0]], &device);
//! let mask = tokens.clone().not_equal_elem(0); // [B, T], false at padding
//! let out = model.forward(tokens, mask);
//! assert_eq!(out.logits.dims(), [2, 2]); // [B, C]
//! assert_eq!(out.attention.dims(), [2, 3]); // [B, T]
//! ```

mod alignment;
mod attention;
mod cell_ops;
mod char_lm;
mod classifier;
pub mod cpu;
mod decode;
mod dropout;
mod embedding_op;
mod encoder;
mod linear_op;
mod lstm;
mod mlp;
mod param_counts;
mod pooling;
mod regressor;
mod rnn;
mod self_attention;
mod seq2seq;
mod transformer_translator;
mod translator;
mod units;

pub use alignment::{Alignment, AlignmentConfig, AlignmentKind, Keys};
pub use attention::{AttentionPooling, AttentionPoolingConfig};
pub use char_lm::{CharLm, CharLmConfig, CharLmOutput};
pub use classifier::{ClassifierOutput, TextClassifier, TextClassifierConfig};
pub use cpu::classifier::format::{F32, Format, Int8};
pub use cpu::classifier::{F32Classifier, HostClassifier, HostOutput, Int8Classifier, Unsupported};
pub use cpu::{CpuBackend, configure_threads, keep_freed_memory, kernel_threads};
pub use decode::{Hypothesis, SearchOptions, translate};
pub use dropout::{ElementDropout, VariationalDropout};
pub use encoder::{CellKind, Encoder, EncoderConfig, EncoderOutput, RecurrentLayer};
pub use lstm::op::{LstmBackend, LstmInputs, LstmKernel};
pub use lstm::{Lstm, LstmConfig, LstmState};
pub use mlp::{Activation, Loss, Mlp, MlpConfig, MlpGradients, Trace, backprop, sgd_step};
pub use param_counts::ParamCounts;
pub use pooling::Pooling;
pub use regressor::{SequenceRegressor, SequenceRegressorConfig};
pub use rnn::{Gru, GruConfig, Rnn, RnnConfig};
pub use self_attention::{
    SelfAttentionEncoder, SelfAttentionEncoderConfig, transformer_width_fits,
};
pub use seq2seq::{AnyEncoded, AnyState, Seq2Seq, Seq2SeqConfig, Seq2SeqModel};
pub use transformer_translator::{
    EncodedMemory, TransformerTranslator, TransformerTranslatorConfig,
};
pub use translator::{DecoderState, EncodedSource, Translator, TranslatorConfig, TranslatorOutput};
pub use units::{UnitImportance, Units};

use burn::prelude::*;

/// A recurrent layer run over a whole sequence from a zero state.
pub trait Recurrent<B: Backend> {
    /// `[B, T, E]` → the hidden state of every step `[B, T, H]`.
    fn forward_sequence(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_masked(x, None)
    }
    /// Like [`forward_sequence`](Self::forward_sequence), with `state_mask`
    /// `[B, H]` multiplying the previous hidden state before each recurrent
    /// matmul, the same mask at every step (variational recurrent dropout;
    /// see [`VariationalDropout`]).
    fn forward_masked(&self, x: Tensor<B, 3>, state_mask: Option<Tensor<B, 2>>) -> Tensor<B, 3>;
    /// Like [`forward_masked`](Self::forward_masked) over a right-padded
    /// batch whose sequence b has `lengths[b]` real steps `[B]`: the
    /// outputs at padded positions are left to the cell (the LSTM skips
    /// those steps at inference), so callers must mask them.
    fn forward_lengths(
        &self,
        x: Tensor<B, 3>,
        state_mask: Option<Tensor<B, 2>>,
        lengths: Tensor<B, 1, Int>,
    ) -> Tensor<B, 3> {
        let _ = lengths;
        self.forward_masked(x, state_mask)
    }
    /// H, the size of the hidden state.
    fn d_hidden(&self) -> usize;
}

#[cfg(test)]
mod test_util {
    use burn::module::Param;
    use burn::prelude::*;

    /// The largest absolute difference between two tensors.
    pub fn max_diff<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
        (a - b).abs().max().into_scalar().elem()
    }

    /// Right-padded ids (0 = padding) of `rows` on ndarray, and the mask
    /// that is true at real tokens. `[B, S]` each
    pub fn padded(
        rows: &[&[i64]],
    ) -> (
        Tensor<burn::backend::NdArray, 2, Int>,
        Tensor<burn::backend::NdArray, 2, Bool>,
    ) {
        let width = rows.iter().map(|r| r.len()).max().unwrap();
        let mut ids = Vec::new();
        let mut mask = Vec::new();
        for row in rows {
            for i in 0..width {
                ids.push(row.get(i).copied().unwrap_or(0));
                mask.push(i < row.len());
            }
        }
        let device = Default::default();
        (
            Tensor::from_data(TensorData::new(ids, [rows.len(), width]), &device),
            Tensor::from_data(TensorData::new(mask, [rows.len(), width]), &device),
        )
    }

    /// `t` as a parameter that is a fresh leaf of the autodiff graph (a
    /// parameter made straight from a computed tensor would not be).
    pub fn leaf<B: Backend, const D: usize>(t: Tensor<B, D>) -> Param<Tensor<B, D>> {
        let device = t.device();
        Param::from_tensor(Tensor::from_data(t.into_data(), &device))
    }
}
