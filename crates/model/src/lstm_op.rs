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
use burn::tensor::ops::FloatTensor;

/// A concrete backend's implementation of the recurrence: the forward pass,
/// keeping what the backward pass will need when asked, and the backward
/// pass. The CPU backends run [`crate::lstm_cpu`]'s kernel; the others the
/// tensor-operation version in this file.
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
}

/// A backend the models run on: the layer as one operation, recorded as one
/// autodiff node on `Autodiff<B>` for any [`LstmKernel`] `B`.
pub trait LstmBackend: Backend {
    /// See [`LstmKernel::lstm_forward`]; returns `[B·T + B, H]`.
    fn lstm(inputs: LstmInputs<Self>) -> FloatTensor<Self>;
}

/// The CPU kernel on a CPU backend.
macro_rules! cpu_kernel {
    ($backend:ty) => {
        impl LstmKernel for $backend {
            type LstmTrace = crate::lstm_cpu::CpuTrace;

            fn lstm_forward(
                inputs: LstmInputs<Self>,
                keep_trace: bool,
            ) -> (FloatTensor<Self>, Option<Self::LstmTrace>) {
                crate::lstm_cpu::lstm_forward::<Self>(inputs, keep_trace)
            }

            fn lstm_backward(
                trace: Self::LstmTrace,
                grad: FloatTensor<Self>,
            ) -> [FloatTensor<Self>; 6] {
                crate::lstm_cpu::lstm_backward::<Self>(trace, grad)
            }
        }
    };
}

/// The tensor-operation version, on a backend with no kernel of its own.
#[cfg(feature = "wgpu")]
macro_rules! tensor_ops_kernel {
    ($backend:ty) => {
        impl LstmKernel for $backend {
            type LstmTrace = tensor_ops::Trace<Self>;

            fn lstm_forward(
                inputs: LstmInputs<Self>,
                keep_trace: bool,
            ) -> (FloatTensor<Self>, Option<Self::LstmTrace>) {
                let (out, trace) = tensor_ops::forward::<Self>(inputs, keep_trace);
                (out.into_primitive().tensor(), trace)
            }

            fn lstm_backward(
                trace: Self::LstmTrace,
                grad: FloatTensor<Self>,
            ) -> [FloatTensor<Self>; 6] {
                tensor_ops::backward(trace, float(grad))
            }
        }
    };
}

/// A concrete backend runs its kernel's forward pass, keeping no trace.
macro_rules! untracked {
    ($backend:ty) => {
        impl LstmBackend for $backend {
            fn lstm(inputs: LstmInputs<Self>) -> FloatTensor<Self> {
                <Self as LstmKernel>::lstm_forward(inputs, false).0
            }
        }
    };
}

cpu_kernel!(burn::backend::NdArray);
untracked!(burn::backend::NdArray);

#[cfg(feature = "flex")]
cpu_kernel!(burn::backend::Flex);
#[cfg(feature = "flex")]
untracked!(burn::backend::Flex);

#[cfg(feature = "wgpu")]
tensor_ops_kernel!(burn::backend::Wgpu);
#[cfg(feature = "wgpu")]
untracked!(burn::backend::Wgpu);

fn float<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// The recurrence written with tensor operations: the kernel of the
/// backends with none of their own (wgpu), and the reference the CPU
/// kernel's tests compare against.
#[cfg_attr(not(any(feature = "wgpu", test)), allow(dead_code))]
pub(crate) mod tensor_ops {
    use super::{LstmInputs, float};
    use crate::steps::tanh;
    use burn::prelude::*;
    use burn::tensor::activation::sigmoid;
    use burn::tensor::ops::FloatTensor;

    /// What the tensor-operation backward pass needs from the forward pass.
    #[derive(Debug, Clone)]
    pub struct Trace<B: Backend> {
        /// σ(scaled pre-activations) of each step. `[B, 4H]` each
        gates: Vec<Tensor<B, 2>>,
        /// c_0 … c_T. `[B, H]` each
        cells: Vec<Tensor<B, 2>>,
        /// tanh(c_1) … tanh(c_T). `[B, H]` each
        tanh_cells: Vec<Tensor<B, 2>>,
        /// h_0 … h_{T−1}, the hidden state each step started from (masked when
        /// there is a state mask). `[B, H]` each
        hiddens: Vec<Tensor<B, 2>>,
        /// U, unscaled. `[H, 4H]`
        recurrent: Tensor<B, 2>,
        /// The state mask, if any. `[B, H]`
        state_mask: Option<Tensor<B, 2>>,
        /// x, flattened. `[B·T, E]`
        x: Tensor<B, 2>,
        /// W. `[E, 4H]`
        input_weight: Tensor<B, 2>,
    }

    /// The per-column factor of the pre-activations before the sigmoid: 2 on the
    /// g-block, where σ(2x) gives tanh(x) = 2σ(2x) − 1. `[1, 4H]`
    fn gate_scale<B: Backend>(h: usize, g_block: f32, device: &B::Device) -> Tensor<B, 2> {
        let scale: Vec<f32> = (0..4 * h)
            .map(|j| {
                if (2 * h..3 * h).contains(&j) {
                    g_block
                } else {
                    1.0
                }
            })
            .collect();
        Tensor::<B, 1>::from_floats(scale.as_slice(), device).unsqueeze::<2>()
    }

    pub(crate) fn forward<B: Backend>(
        inputs: LstmInputs<B>,
        keep_trace: bool,
    ) -> (Tensor<B, 2>, Option<Trace<B>>) {
        let x = float::<B, 3>(inputs.x);
        let input_weight = float::<B, 2>(inputs.input_weight);
        let recurrent = float::<B, 2>(inputs.recurrent);
        let (h0, c0) = (float::<B, 2>(inputs.h0), float::<B, 2>(inputs.c0));
        let state_mask = inputs.state_mask.map(float::<B, 2>);
        let [batch, seq, d_input] = x.dims();
        let four_h = input_weight.dims()[1];
        let h = four_h / 4;
        let device = x.device();
        let x = x.reshape([batch * seq, d_input]);
        let projected = (x.clone().matmul(input_weight.clone())
            + float::<B, 1>(inputs.input_bias).unsqueeze::<2>())
        .reshape([batch, seq, four_h]); // [B, T, 4H]
        let scale = gate_scale::<B>(h, 2.0, &device);
        let scaled_input = projected * scale.clone().unsqueeze::<3>(); // [B, T, 4H]
        let scaled_recurrent = recurrent.clone() * scale; // [H, 4H]

        let (mut hidden, mut cell) = (h0, c0);
        let mut trace = keep_trace.then(|| Trace {
            gates: Vec::with_capacity(seq),
            cells: vec![cell.clone()],
            tanh_cells: Vec::with_capacity(seq),
            hiddens: Vec::with_capacity(seq),
            recurrent,
            state_mask: state_mask.clone(),
            x,
            input_weight,
        });
        let mut hiddens = Vec::with_capacity(seq);
        for t in 0..seq {
            let wx = scaled_input
                .clone()
                .slice([0..batch, t..t + 1, 0..four_h])
                .reshape([batch, four_h]);
            if let Some(mask) = &state_mask {
                hidden = hidden * mask.clone();
            }
            let gates = sigmoid(wx + hidden.clone().matmul(scaled_recurrent.clone())); // [B, 4H]
            let i = gates.clone().slice([0..batch, 0..h]);
            let f = gates.clone().slice([0..batch, h..2 * h]);
            let g = gates.clone().slice([0..batch, 2 * h..3 * h]) * 2.0 - 1.0;
            let o = gates.clone().slice([0..batch, 3 * h..4 * h]);
            cell = f * cell + i * g; // [B, H]
            let tanh_cell = tanh(cell.clone());
            let next = o * tanh_cell.clone(); // [B, H]
            if let Some(trace) = trace.as_mut() {
                trace.gates.push(gates);
                trace.cells.push(cell.clone());
                trace.tanh_cells.push(tanh_cell);
                trace.hiddens.push(hidden);
            }
            hidden = next;
            hiddens.push(hidden.clone());
        }
        let hiddens = Tensor::stack::<3>(hiddens, 1).reshape([batch * seq, h]);
        let out = Tensor::cat(vec![hiddens, cell], 0); // [B·T + B, H]
        (out, trace)
    }

    /// Gradients of x, W, b, U, h_0 and c_0, from the gradient of the output
    /// `[B·T + B, H]`.
    pub(crate) fn backward<B: Backend>(trace: Trace<B>, grad: Tensor<B, 2>) -> [FloatTensor<B>; 6] {
        let seq = trace.gates.len();
        let [rows, h] = grad.dims();
        let batch = rows / (seq + 1);
        let grad_cell = grad.clone().slice([batch * seq..rows, 0..h]);
        let grad = grad.slice([0..batch * seq, 0..h]).reshape([batch, seq, h]);
        let device = grad.device();
        let derivative_scale = gate_scale::<B>(h, 4.0, &device); // d(2σ(2x) − 1)/dx = 4σ(1 − σ)
        let recurrent_t = trace.recurrent.clone().transpose(); // [4H, H]
        let mut dh_next = Tensor::<B, 2>::zeros([batch, h], &device);
        let mut dc_next = grad_cell;
        let mut d_pre = Vec::with_capacity(seq);
        for t in (0..seq).rev() {
            let dh = grad
                .clone()
                .slice([0..batch, t..t + 1, 0..h])
                .reshape([batch, h])
                + dh_next;
            let gates = trace.gates[t].clone();
            let i = gates.clone().slice([0..batch, 0..h]);
            let f = gates.clone().slice([0..batch, h..2 * h]);
            let g = gates.clone().slice([0..batch, 2 * h..3 * h]) * 2.0 - 1.0;
            let o = gates.clone().slice([0..batch, 3 * h..4 * h]);
            let tanh_cell = trace.tanh_cells[t].clone();
            let dc = dc_next + dh.clone() * o * (tanh_cell.clone().powi_scalar(2).neg() + 1.0);
            let d_gates = Tensor::cat(
                vec![
                    dc.clone() * g,
                    dc.clone() * trace.cells[t].clone(),
                    dc.clone() * i,
                    dh * tanh_cell,
                ],
                1,
            ); // [B, 4H]
            let d = d_gates * gates.clone() * (gates.neg() + 1.0) * derivative_scale.clone();
            dc_next = dc * f;
            dh_next = d.clone().matmul(recurrent_t.clone());
            if let Some(mask) = &trace.state_mask {
                dh_next = dh_next * mask.clone();
            }
            d_pre.push(d);
        }
        d_pre.reverse();
        let d_projected = Tensor::stack::<3>(d_pre, 1); // [B, T, 4H]
        let hiddens = Tensor::stack::<3>(trace.hiddens, 1).reshape([batch * seq, h]); // [B·T, H]
        let d_pre = d_projected.reshape([batch * seq, 4 * h]); // [B·T, 4H]
        let d_recurrent = hiddens.transpose().matmul(d_pre.clone()); // [H, 4H]
        let d_input_weight = trace.x.clone().transpose().matmul(d_pre.clone()); // [E, 4H]
        let d_input_bias = d_pre.clone().sum_dim(0).reshape([4 * h]); // [4H]
        let d_x = d_pre.matmul(trace.input_weight.transpose()); // [B·T, E]
        let d_input = d_x.dims()[1];
        [
            d_x.reshape([batch, seq, d_input]).into_primitive().tensor(),
            d_input_weight.into_primitive().tensor(),
            d_input_bias.into_primitive().tensor(),
            d_recurrent.into_primitive().tensor(),
            dh_next.into_primitive().tensor(),
            dc_next.into_primitive().tensor(),
        ]
    }
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
        };
        let (out, trace) = B::lstm_forward(inner, keep_trace);
        match tracked {
            OpsKind::Tracked(prep) => prep.finish(trace.expect("a trace was asked for"), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

/// Runs one LSTM layer on tensors (see [`LstmInputs`]): `x` `[B, T, E]`,
/// `input_weight` `[E, 4H]`, `input_bias` `[4H]`, `recurrent` `[H, 4H]`, the
/// start state and the state mask `[B, H]`. Returns `[B·T + B, H]` (see
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
) -> Tensor<B, 2> {
    float(B::lstm(LstmInputs {
        x: x.into_primitive().tensor(),
        input_weight: input_weight.into_primitive().tensor(),
        input_bias: input_bias.into_primitive().tensor(),
        recurrent: recurrent.into_primitive().tensor(),
        h0: h0.into_primitive().tensor(),
        c0: c0.into_primitive().tensor(),
        state_mask: state_mask.map(|mask| mask.into_primitive().tensor()),
    }))
}
