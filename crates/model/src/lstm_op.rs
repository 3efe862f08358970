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
use burn::tensor::activation::sigmoid;
use burn::tensor::ops::FloatTensor;

use crate::steps::tanh;

/// A backend that can run the LSTM recurrence as one operation.
///
/// The default method is the plain forward pass; `Autodiff<B>` overrides it
/// to record one graph node with its own backward pass.
pub trait LstmBackend: Backend {
    /// Runs the recurrence over pre-activations `projected` `[B, T, 4H]`
    /// (W x_t + b, gate order i, f, g, o) with recurrent weight `recurrent`
    /// `[H, 4H]`, from `h0` and `c0` `[B, H]`. Returns `[B, T, 2H]`: the hidden
    /// state of each step, then its cell state.
    ///
    /// `state_mask` `[B, H]`, when given, multiplies the hidden state before
    /// every recurrent matmul (variational recurrent dropout); it is a
    /// constant, not differentiated.
    fn lstm_recurrence(
        projected: FloatTensor<Self>,
        recurrent: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        state_mask: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        forward::<Self>(
            float(projected),
            float(recurrent),
            float(h0),
            float(c0),
            state_mask.map(float),
            false,
        )
        .0
        .into_primitive()
        .tensor()
    }
}

impl LstmBackend for burn::backend::NdArray {}

#[cfg(feature = "wgpu")]
impl LstmBackend for burn::backend::Wgpu {}

fn float<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// What the backward pass needs from the forward pass.
#[derive(Debug, Clone)]
struct Trace<B: Backend> {
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

fn forward<B: Backend>(
    projected: Tensor<B, 3>,
    recurrent: Tensor<B, 2>,
    h0: Tensor<B, 2>,
    c0: Tensor<B, 2>,
    state_mask: Option<Tensor<B, 2>>,
    keep_trace: bool,
) -> (Tensor<B, 3>, Option<Trace<B>>) {
    let [batch, seq, four_h] = projected.dims();
    let h = four_h / 4;
    let device = projected.device();
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
    });
    let mut hiddens = Vec::with_capacity(seq);
    let mut cells = Vec::with_capacity(seq);
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
        cells.push(cell.clone());
    }
    let out = Tensor::cat(vec![Tensor::stack(hiddens, 1), Tensor::stack(cells, 1)], 2); // [B, T, 2H]
    (out, trace)
}

/// Gradients of the projected input `[B, T, 4H]`, the recurrent weight
/// `[H, 4H]`, h_0 and c_0 `[B, H]`, from the gradient of the output `[B, T, 2H]`.
fn backward<B: Backend>(
    trace: Trace<B>,
    grad: Tensor<B, 3>,
) -> (Tensor<B, 3>, Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>) {
    let [batch, seq, two_h] = grad.dims();
    let h = two_h / 2;
    let device = grad.device();
    let derivative_scale = gate_scale::<B>(h, 4.0, &device); // d(2σ(2x) − 1)/dx = 4σ(1 − σ)
    let recurrent_t = trace.recurrent.clone().transpose(); // [4H, H]
    let mut dh_next = Tensor::<B, 2>::zeros([batch, h], &device);
    let mut dc_next = Tensor::<B, 2>::zeros([batch, h], &device);
    let mut d_pre = Vec::with_capacity(seq);
    for t in (0..seq).rev() {
        let step = grad
            .clone()
            .slice([0..batch, t..t + 1, 0..two_h])
            .reshape([batch, two_h]);
        let dh = step.clone().slice([0..batch, 0..h]) + dh_next;
        let gates = trace.gates[t].clone();
        let i = gates.clone().slice([0..batch, 0..h]);
        let f = gates.clone().slice([0..batch, h..2 * h]);
        let g = gates.clone().slice([0..batch, 2 * h..3 * h]) * 2.0 - 1.0;
        let o = gates.clone().slice([0..batch, 3 * h..4 * h]);
        let tanh_cell = trace.tanh_cells[t].clone();
        let dc = step.slice([0..batch, h..two_h])
            + dc_next
            + dh.clone() * o * (tanh_cell.clone().powi_scalar(2).neg() + 1.0);
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
    let d_recurrent = hiddens
        .transpose()
        .matmul(d_projected.clone().reshape([batch * seq, 4 * h])); // [H, 4H]
    (d_projected, d_recurrent, dh_next, dc_next)
}

#[derive(Debug)]
struct LstmRecurrenceBackward;

impl<B: Backend> Backward<B, 4> for LstmRecurrenceBackward {
    type State = Trace<B>;

    fn backward(self, ops: Ops<Trace<B>, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [projected, recurrent, h0, c0] = ops.parents;
        let grad = float::<B, 3>(grads.consume::<B>(&ops.node));
        let (d_projected, d_recurrent, d_h0, d_c0) = backward(ops.state, grad);
        if let Some(node) = projected {
            grads.register::<B>(node.id, d_projected.into_primitive().tensor());
        }
        if let Some(node) = recurrent {
            grads.register::<B>(node.id, d_recurrent.into_primitive().tensor());
        }
        if let Some(node) = h0 {
            grads.register::<B>(node.id, d_h0.into_primitive().tensor());
        }
        if let Some(node) = c0 {
            grads.register::<B>(node.id, d_c0.into_primitive().tensor());
        }
    }
}

impl<B: LstmBackend, C: CheckpointStrategy> LstmBackend for Autodiff<B, C> {
    fn lstm_recurrence(
        projected: FloatTensor<Self>,
        recurrent: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        state_mask: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        // The mask is a constant: only its values are used.
        let state_mask = state_mask.map(|mask| mask.primitive);
        let nodes = [
            projected.node.clone(),
            recurrent.node.clone(),
            h0.node.clone(),
            c0.node.clone(),
        ];
        match LstmRecurrenceBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, trace) = forward::<B>(
                    float(projected.primitive),
                    float(recurrent.primitive),
                    float(h0.primitive),
                    float(c0.primitive),
                    state_mask.map(float),
                    true,
                );
                prep.finish(
                    trace.expect("a trace was asked for"),
                    out.into_primitive().tensor(),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::lstm_recurrence(
                projected.primitive,
                recurrent.primitive,
                h0.primitive,
                c0.primitive,
                state_mask,
            )),
        }
    }
}

/// Runs the recurrence on tensors (see [`LstmBackend::lstm_recurrence`]).
pub(crate) fn lstm_recurrence<B: LstmBackend>(
    projected: Tensor<B, 3>,
    recurrent: Tensor<B, 2>,
    h0: Tensor<B, 2>,
    c0: Tensor<B, 2>,
    state_mask: Option<Tensor<B, 2>>,
) -> Tensor<B, 3> {
    float(B::lstm_recurrence(
        projected.into_primitive().tensor(),
        recurrent.into_primitive().tensor(),
        h0.into_primitive().tensor(),
        c0.into_primitive().tensor(),
        state_mask.map(|mask| mask.into_primitive().tensor()),
    ))
}
