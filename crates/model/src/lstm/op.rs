//! The LSTM recurrence as one operation with a hand-written backward pass
//! through time.
//!
//! Written with plain tensor operations, an LSTM puts a dozen nodes per time
//! step into the autodiff graph, and autodiff then computes the recurrent
//! weight's gradient as T small matmuls (one per step, over the batch only).
//! Here the whole recurrence is one node: the forward pass keeps what the
//! backward pass needs (the gate activations, cells and hidden states of every
//! step), and the backward pass walks the steps in reverse doing only what
//! must be sequential — one `[B, 4H] × [4H, H]` matmul per step — and then
//! computes the weight gradient as a single `[H, B·T] × [B·T, 4H]` matmul.
//!
//! This is Burn's pattern for custom operations (its `custom-wgpu-kernel`
//! example): a backend trait, [`LstmBackend`], implemented by each concrete
//! backend with the plain forward pass, and by `Autodiff<B>` with the tracked
//! forward and the backward pass. Both passes are written once, generic over
//! any backend, from its own tensor operations.
//!
//! ```text
//! forward, per step (pre-activations P_t = W x_t + b precomputed for all t):
//!   S = σ(scale ⊙ (P_t + h U))       scale = 2 on the g-block, 1 elsewhere
//!   i, f, o = S_i, S_f, S_o;  g = 2 S_g − 1      (= tanh of the g pre-activation)
//!   c = f ⊙ c + i ⊙ g;  h = o ⊙ tanh(c)
//! backward, per step from t = T−1 down to 0:
//!   dh = ∂L/∂h_t + dh_next;  dc = ∂L/∂c_t + dc_next + dh ⊙ o ⊙ (1 − tanh²c_t)
//!   d[i, f, g, o] = [dc ⊙ g, dc ⊙ c_{t−1}, dc ⊙ i, dh ⊙ tanh c_t]
//!   dP_t = d[i, f, g, o] ⊙ S ⊙ (1 − S) ⊙ [1, 1, 4, 1]
//!   dc_next = dc ⊙ f;  dh_next = dP_t Uᵀ
//! then dU = [h_0 … h_{T−1}]ᵀ [dP_0 … dP_{T−1}], dh_0 = dh_next, dc_0 = dc_next.
//!
//! with a state mask m (variational recurrent dropout, one mask per sequence
//! for all steps): h U becomes (m ⊙ h) U, the h_t in dU become m ⊙ h_t, and
//! dh_next = (dP_t Uᵀ) ⊙ m.
//! ```

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::ops::{FloatTensor, IntTensor};

/// A concrete backend's implementation of the recurrence: the forward pass,
/// keeping what the backward pass will need when asked, and the backward
/// pass. The CPU backends run [`crate::cpu`]'s kernel; the others the
/// tensor-operation version ([`super::tensor_ops`]). It also carries the
/// other operations this crate writes per backend, each Burn's by default:
/// an embedding table's gradient, a Linear's weight gradient and a dropout
/// mask.
pub trait LstmKernel: Backend {
    /// What the forward pass keeps for the backward pass.
    type LstmTrace: Clone + Send + std::fmt::Debug + 'static;

    /// Runs the layer (see [`LstmInputs`]). Returns `[B·T + B, H]`: the
    /// hidden state of every step (row b·T + t), then the final cell state of
    /// each sequence (row B·T + b); and the trace if `keep_trace`. Rows, so
    /// that both parts are contiguous slices, and no per-step cell states,
    /// which nothing outside the layer reads.
    fn lstm_forward(
        inputs: LstmInputs<Self>,
        keep_trace: bool,
    ) -> (FloatTensor<Self>, Option<Self::LstmTrace>);

    /// From the gradient of the forward output `[B·T + B, H]`, the gradients of
    /// x, W, b, U, h_0 and c_0, in that order.
    fn lstm_backward(trace: Self::LstmTrace, grad: FloatTensor<Self>) -> [FloatTensor<Self>; 6];

    /// The gradient of an embedding table with `vocab` rows from the
    /// gradient of its lookup `[B, T, D]` at `ids` `[B, T]`: `[vocab, D]`
    /// (see [`crate::embedding_op`]). Burn's formula unless a backend has its
    /// own.
    fn embedding_grad(
        vocab: usize,
        grad: FloatTensor<Self>,
        ids: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        crate::embedding_op::burns_embedding_grad::<Self>(vocab, grad, ids)
    }

    /// xᵀ g, the weight gradient of a Linear over rows x `[N, D]` from the
    /// gradient g `[N, O]` of its output: `[D, O]` (see
    /// [`crate::linear_op`]). Burn's formula unless a backend has its own.
    fn linear_weight_grad(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::linear_weight_backward(x, grad)
    }

    /// A dropout mask of `shape`: each element 1 / `keep` with probability
    /// `keep`, else 0, drawn so that `Backend::seed` fixes it (see
    /// [`crate::ElementDropout`]). Burn's Bernoulli sampling unless a backend
    /// has its own.
    fn dropout_mask(shape: Shape, keep: f64, device: &Device<Self>) -> FloatTensor<Self> {
        crate::dropout::burns_mask::<Self>(shape, keep, device)
    }
}

/// The inputs of one LSTM layer over a sequence. Gate order i, f, g, o.
#[derive(Debug, Clone)]
pub struct LstmInputs<B: Backend> {
    /// x. `[B, T, E]`
    pub x: FloatTensor<B>,
    /// W. `[E, 4H]`
    pub input_weight: FloatTensor<B>,
    /// b. `[4H]`
    pub input_bias: FloatTensor<B>,
    /// U. `[H, 4H]`
    pub recurrent: FloatTensor<B>,
    /// h_0. `[B, H]`
    pub h0: FloatTensor<B>,
    /// c_0. `[B, H]`
    pub c0: FloatTensor<B>,
    /// When given, multiplies the hidden state before every recurrent matmul
    /// (variational recurrent dropout); a constant, not differentiated.
    /// `[B, H]`
    pub state_mask: Option<FloatTensor<B>>,
    /// When given, sequence b is right-padded after its first `lengths[b]`
    /// steps (each in 1..=T), and nothing reads the outputs at its padded
    /// positions: a pass without a trace (inference, validation) may skip
    /// those steps, leaving zeros there and the final cell state at the last
    /// real step. The CPU kernel does; passes with a trace compute every
    /// step, and real positions are the same either way. `[B]`
    pub lengths: Option<IntTensor<B>>,
}

/// A backend the models run on: the layer as one operation, recorded as one
/// autodiff node on `Autodiff<B>` for any [`LstmKernel`] `B`; likewise the
/// embedding lookup and a Linear over rows, whose gradients come from the
/// [`LstmKernel`].
pub trait LstmBackend: Backend {
    /// Whether the backend computes on the CPU, in host memory (ndarray,
    /// flex): inference may then run through the host classifier
    /// ([`HostClassifier`](crate::HostClassifier)) on plain buffers.
    const ON_HOST: bool = false;

    /// See [`LstmKernel::lstm_forward`]; returns `[B·T + B, H]`.
    fn lstm(inputs: LstmInputs<Self>) -> FloatTensor<Self>;

    /// The rows of `weights` `[V, D]` at `ids` `[B, T]`: `[B, T, D]`. Burn's
    /// lookup; on `Autodiff<B>` one node whose gradient is
    /// [`LstmKernel::embedding_grad`] (see [`crate::embedding_op`]).
    fn embedding_lookup(weights: FloatTensor<Self>, ids: IntTensor<Self>) -> FloatTensor<Self> {
        Self::embedding(weights, ids)
    }

    /// x W + b for x `[N, D]`, W `[D, O]`, b `[O]`: `[N, O]`. Burn's Linear;
    /// on `Autodiff<B>` one node whose weight gradient is
    /// [`LstmKernel::linear_weight_grad`] (see [`crate::linear_op`]).
    fn linear_rows(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::linear(x, weight, Some(bias))
    }

    /// See [`LstmKernel::dropout_mask`]; on `Autodiff<B>` a constant, as
    /// Burn's random tensors are.
    fn dropout_mask(shape: Shape, keep: f64, device: &Device<Self>) -> FloatTensor<Self>;
}

/// The CPU kernel on a CPU backend.
macro_rules! cpu_kernel {
    ($backend:ty) => {
        impl LstmKernel for $backend {
            type LstmTrace = crate::cpu::lstm::CpuTrace;

            fn lstm_forward(
                inputs: LstmInputs<Self>,
                keep_trace: bool,
            ) -> (FloatTensor<Self>, Option<Self::LstmTrace>) {
                crate::cpu::lstm::lstm_forward::<Self>(inputs, keep_trace)
            }

            fn lstm_backward(
                trace: Self::LstmTrace,
                grad: FloatTensor<Self>,
            ) -> [FloatTensor<Self>; 6] {
                crate::cpu::lstm::lstm_backward::<Self>(trace, grad)
            }

            fn embedding_grad(
                vocab: usize,
                grad: FloatTensor<Self>,
                ids: IntTensor<Self>,
            ) -> FloatTensor<Self> {
                crate::cpu::embedding::embedding_grad::<Self>(vocab, grad, ids)
            }

            fn linear_weight_grad(
                x: FloatTensor<Self>,
                grad: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                crate::cpu::transpose::linear_weight_grad::<Self>(x, grad)
            }

            fn dropout_mask(shape: Shape, keep: f64, device: &Device<Self>) -> FloatTensor<Self> {
                crate::cpu::dropout::dropout_mask::<Self>(shape, keep, device)
            }
        }
    };
}

/// The tensor-operation version, on a backend with no kernel of its own.
#[cfg(feature = "wgpu")]
macro_rules! tensor_ops_kernel {
    ($backend:ty) => {
        impl LstmKernel for $backend {
            type LstmTrace = super::tensor_ops::Trace<Self>;

            fn lstm_forward(
                inputs: LstmInputs<Self>,
                keep_trace: bool,
            ) -> (FloatTensor<Self>, Option<Self::LstmTrace>) {
                let (out, trace) = super::tensor_ops::forward::<Self>(inputs, keep_trace);
                (out.into_primitive().tensor(), trace)
            }

            fn lstm_backward(
                trace: Self::LstmTrace,
                grad: FloatTensor<Self>,
            ) -> [FloatTensor<Self>; 6] {
                super::tensor_ops::backward(trace, float(grad))
            }
        }
    };
}

/// A concrete backend runs its kernel's forward pass, keeping no trace.
macro_rules! untracked {
    ($backend:ty, on_host: $on_host:expr) => {
        impl LstmBackend for $backend {
            const ON_HOST: bool = $on_host;

            fn lstm(inputs: LstmInputs<Self>) -> FloatTensor<Self> {
                <Self as LstmKernel>::lstm_forward(inputs, false).0
            }

            fn dropout_mask(shape: Shape, keep: f64, device: &Device<Self>) -> FloatTensor<Self> {
                <Self as LstmKernel>::dropout_mask(shape, keep, device)
            }
        }
    };
}

cpu_kernel!(burn::backend::NdArray);
untracked!(burn::backend::NdArray, on_host: true);

#[cfg(feature = "flex")]
cpu_kernel!(burn::backend::Flex);
#[cfg(feature = "flex")]
untracked!(burn::backend::Flex, on_host: true);

#[cfg(feature = "wgpu")]
tensor_ops_kernel!(burn::backend::Wgpu);
#[cfg(feature = "wgpu")]
untracked!(burn::backend::Wgpu, on_host: false);

pub(crate) fn float<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

#[derive(Debug)]
struct LstmBackward;

impl<B: LstmKernel> Backward<B, 6> for LstmBackward {
    type State = B::LstmTrace;

    fn backward(self, ops: Ops<B::LstmTrace, 6>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let gradients = B::lstm_backward(ops.state, grad);
        for (parent, gradient) in ops.parents.into_iter().zip(gradients) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, gradient);
            }
        }
    }
}

impl<B: LstmKernel, C: CheckpointStrategy> LstmBackend for Autodiff<B, C> {
    fn lstm(inputs: LstmInputs<Self>) -> FloatTensor<Self> {
        let LstmInputs {
            x,
            input_weight,
            input_bias,
            recurrent,
            h0,
            c0,
            state_mask,
            lengths,
        } = inputs;
        let nodes = [&x, &input_weight, &input_bias, &recurrent, &h0, &c0].map(|t| t.node.clone());
        let tracked = LstmBackward.prepare::<C>(nodes).compute_bound().stateful();
        let keep_trace = matches!(tracked, OpsKind::Tracked(_));
        let inner = LstmInputs {
            x: x.primitive,
            input_weight: input_weight.primitive,
            input_bias: input_bias.primitive,
            recurrent: recurrent.primitive,
            h0: h0.primitive,
            c0: c0.primitive,
            // The mask is a constant: only its values are used.
            state_mask: state_mask.map(|mask| mask.primitive),
            lengths,
        };
        let (out, trace) = B::lstm_forward(inner, keep_trace);
        match tracked {
            OpsKind::Tracked(prep) => prep.finish(trace.expect("a trace was asked for"), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn embedding_lookup(weights: FloatTensor<Self>, ids: IntTensor<Self>) -> FloatTensor<Self> {
        crate::embedding_op::tracked_lookup::<B, C>(weights, ids)
    }

    fn linear_rows(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        crate::linear_op::tracked_linear_rows::<B, C>(x, weight, bias)
    }

    fn dropout_mask(shape: Shape, keep: f64, device: &Device<Self>) -> FloatTensor<Self> {
        <Self as burn::tensor::backend::AutodiffBackend>::from_inner(B::dropout_mask(
            shape, keep, device,
        ))
    }
}

/// Runs one LSTM layer on tensors (see [`LstmInputs`]): `x` `[B, T, E]`,
/// `input_weight` `[E, 4H]`, `input_bias` `[4H]`, `recurrent` `[H, 4H]`, the
/// start state and the state mask `[B, H]`, the lengths `[B]` of a
/// right-padded batch. Returns `[B·T + B, H]` (see
/// [`LstmKernel::lstm_forward`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn lstm_layer<B: LstmBackend>(
    x: Tensor<B, 3>,
    input_weight: Tensor<B, 2>,
    input_bias: Tensor<B, 1>,
    recurrent: Tensor<B, 2>,
    h0: Tensor<B, 2>,
    c0: Tensor<B, 2>,
    state_mask: Option<Tensor<B, 2>>,
    lengths: Option<Tensor<B, 1, Int>>,
) -> Tensor<B, 2> {
    float(B::lstm(LstmInputs {
        x: x.into_primitive().tensor(),
        input_weight: input_weight.into_primitive().tensor(),
        input_bias: input_bias.into_primitive().tensor(),
        recurrent: recurrent.into_primitive().tensor(),
        h0: h0.into_primitive().tensor(),
        c0: c0.into_primitive().tensor(),
        state_mask: state_mask.map(|mask| mask.into_primitive().tensor()),
        lengths: lengths.map(Tensor::into_primitive),
    }))
}
