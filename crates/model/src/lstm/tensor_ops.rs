//! The recurrence written with tensor operations: the kernel of the
//! backends with none of their own (wgpu), and the reference the CPU
//! kernel's tests compare against.

use super::op::{LstmInputs, float};
use crate::cell_ops::tanh;
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
