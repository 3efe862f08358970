//! A long short-term memory layer (Hochreiter & Schmidhuber 1997, with the
//! forget gate of Gers et al. 2000), written for speed on CPU backends while
//! computing exactly what `burn::nn::Lstm` computes:
//!
//! ```text
//! i_t = σ(W_i x_t + U_i h_{t-1} + b_i)      input gate
//! f_t = σ(W_f x_t + U_f h_{t-1} + b_f)      forget gate
//! g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)   candidate cell
//! o_t = σ(W_o x_t + U_o h_{t-1} + b_o)      output gate
//! c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
//! h_t = o_t ⊙ tanh(c_t)
//! ```
//!
//! What makes it fast (`docs/perf/README.md` has the measurements):
//! - the input projection W x_t + b of all time steps is one `[B·T, E]`
//!   matmul, hoisted out of the loop;
//! - the recurrence is one autodiff operation ([`LstmBackend`], in
//!   [`op`]): one recurrent matmul per step for all four gates, tanh
//!   computed as 2σ(2x) − 1 (on the CPU backends `tanh` costs several times
//!   `sigmoid`, so one sigmoid call covers all four gates), and a
//!   hand-written backward pass through time instead of a dozen graph nodes
//!   per step.
//!
//! The files: this one is the module; [`op`] the autodiff operation and the
//! backend traits; [`tensor_ops`] the recurrence written with tensor
//! operations (wgpu's kernel, and the reference the CPU kernel is tested
//! against). The tests also check the fused operation against the same
//! recurrence written step by step (`forward_unfused`, test-only).

pub(crate) mod op;
#[cfg_attr(not(any(feature = "wgpu", test)), allow(dead_code))]
pub(crate) mod tensor_ops;

use burn::module::Param;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;

use crate::Recurrent;
#[cfg(test)]
use crate::cell_ops::{linear_3d, tanh, time_steps};
#[cfg(test)]
use burn::tensor::activation::sigmoid;
use op::{LstmBackend, lstm_layer};

#[derive(Config, Debug)]
pub struct LstmConfig {
    pub d_input: usize,
    pub d_hidden: usize,
    /// Xavier (Glorot) normal, as `burn::nn::Lstm` initializes its gates.
    #[config(default = "Initializer::XavierNormal{gain:1.0}")]
    pub initializer: Initializer,
    /// The initial bias of the forget gate. 1 (Gers et al. 2000; Jozefowicz
    /// et al. 2015) starts the cell remembering: with a bias near 0 the
    /// forget gate is about ½, the cell halves at every step, and the
    /// gradient reaching 100 steps back is about 2⁻¹⁰⁰ — the adding-problem
    /// experiment measured exactly that.
    #[config(default = 1.0)]
    pub forget_bias: f64,
}

#[derive(Module, Debug)]
pub struct Lstm<B: Backend> {
    /// W x + b for the four gates, in the order i, f, g, o. `E -> 4H`
    input: Linear<B>,
    /// U h for the four gates (no bias: `input` carries it). `H -> 4H`
    recurrent: Linear<B>,
    d_hidden: usize,
}

/// Hidden and cell state. `[B, H]` each.
#[derive(Debug, Clone)]
pub struct LstmState<B: Backend> {
    pub hidden: Tensor<B, 2>,
    pub cell: Tensor<B, 2>,
}

impl<B: Backend> LstmState<B> {
    /// The all-zero state of a batch of `batch` sequences.
    pub fn zeros(batch: usize, d_hidden: usize, device: &B::Device) -> Self {
        Self {
            hidden: Tensor::zeros([batch, d_hidden], device),
            cell: Tensor::zeros([batch, d_hidden], device),
        }
    }
}

impl LstmConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Lstm<B> {
        let h = self.d_hidden;
        let linear = |d_in: usize, bias: bool| {
            LinearConfig::new(d_in, 4 * h)
                .with_bias(bias)
                .with_initializer(self.initializer.clone())
                .init(device)
        };
        let mut input = linear(self.d_input, true);
        if let Some(bias) = input.bias.take() {
            let forget = (0..4 * h)
                .map(|j| (h..2 * h).contains(&j))
                .collect::<Vec<_>>();
            let forget = Tensor::<B, 1, Bool>::from_data(TensorData::new(forget, [4 * h]), device);
            // A fresh parameter from the adjusted value: `Param::map` would
            // leave a computed tensor, not a leaf of the autodiff graph, and
            // the optimizer would never see its gradient.
            let value = bias.val().mask_fill(forget, self.forget_bias).detach();
            input.bias = Some(Param::from_tensor(value));
        }
        Lstm {
            input,
            recurrent: linear(h, false),
            d_hidden: h,
        }
    }
}

impl<B: Backend> Lstm<B> {
    /// The layer that reads only the `inputs` features of its input and has
    /// only the hidden `units` (ascending indices), with their weights.
    pub(crate) fn keep(&self, inputs: &[usize], units: &[usize]) -> Lstm<B> {
        let h = self.d_hidden;
        // Each kept unit's column in each of the four gate blocks.
        let gates: Vec<usize> = (0..4)
            .flat_map(|gate| units.iter().map(move |k| gate * h + k))
            .collect();
        Lstm {
            input: crate::units::keep_linear(&self.input, inputs, &gates),
            recurrent: crate::units::keep_linear(&self.recurrent, units, &gates),
            d_hidden: units.len(),
        }
    }
}

impl<B: LstmBackend> Lstm<B> {
    /// Runs over `x` `[B, T, E]` from a zero state. Returns the hidden state of
    /// every step `[B, T, H]` and the final state.
    pub fn forward(&self, x: Tensor<B, 3>) -> (Tensor<B, 3>, LstmState<B>) {
        self.forward_from(x, None)
    }

    /// Like [`forward`](Self::forward), but starting from `state` (a zero
    /// state if `None`): a language model carries the state of one window of
    /// text into the next, and a generator feeds one character at a time.
    pub fn forward_from(
        &self,
        x: Tensor<B, 3>,
        state: Option<LstmState<B>>,
    ) -> (Tensor<B, 3>, LstmState<B>) {
        self.forward_with(x, state, None)
    }

    /// Like [`forward_from`](Self::forward_from), with `state_mask` `[B, H]`
    /// multiplying the hidden state before every recurrent matmul: the same
    /// mask at every step of a sequence, as variational recurrent dropout
    /// (Gal & Ghahramani 2016) needs.
    pub fn forward_with(
        &self,
        x: Tensor<B, 3>,
        state: Option<LstmState<B>>,
        state_mask: Option<Tensor<B, 2>>,
    ) -> (Tensor<B, 3>, LstmState<B>) {
        self.run(x, state, state_mask, None)
    }

    /// The layer over a right-padded batch from a zero state, sequence b
    /// holding `lengths[b]` real steps: the outputs at real positions are
    /// those of [`forward_with`](Self::forward_with); at padded ones they
    /// may be zeros (inference skips those steps, see
    /// [`LstmInputs::lengths`](crate::LstmInputs)), so callers mask them.
    pub fn forward_padded(
        &self,
        x: Tensor<B, 3>,
        state_mask: Option<Tensor<B, 2>>,
        lengths: Tensor<B, 1, Int>,
    ) -> Tensor<B, 3> {
        self.run(x, None, state_mask, Some(lengths)).0
    }

    fn run(
        &self,
        x: Tensor<B, 3>,
        state: Option<LstmState<B>>,
        state_mask: Option<Tensor<B, 2>>,
        lengths: Option<Tensor<B, 1, Int>>,
    ) -> (Tensor<B, 3>, LstmState<B>) {
        let [batch, seq, _] = x.dims();
        let h = self.d_hidden;
        let device = x.device();
        let state = state.unwrap_or_else(|| LstmState::zeros(batch, h, &device));
        let bias = match &self.input.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([4 * h], &device),
        };
        let out = lstm_layer(
            x,
            self.input.weight.val(),
            bias,
            self.recurrent.weight.val(),
            state.hidden,
            state.cell,
            state_mask,
            lengths,
        ); // [B·T + B, H]: hidden states, then final cells
        let hidden = out
            .clone()
            .slice([0..batch * seq, 0..h])
            .reshape([batch, seq, h]); // [B, T, H]
        let state = LstmState {
            hidden: hidden
                .clone()
                .slice([0..batch, seq - 1..seq, 0..h])
                .reshape([batch, h]),
            cell: out.slice([batch * seq..batch * (seq + 1), 0..h]),
        };
        (hidden, state)
    }
}

impl<B: Backend> Lstm<B> {
    /// W `[E, 4H]`, b `[4H]` and U `[H, 4H]` as float tensors (int8 weights
    /// dequantized): what the int8 inference path quantizes its own way.
    pub(crate) fn weights(&self) -> (Tensor<B, 2>, Tensor<B, 1>, Tensor<B, 2>) {
        let input = self.input.weight.val().dequantize();
        let bias = match &self.input.bias {
            Some(bias) => bias.val().dequantize(),
            None => Tensor::zeros([4 * self.d_hidden], &input.device()),
        };
        (input, bias, self.recurrent.weight.val().dequantize())
    }
}

/// What the tests need: the reference implementation, and U.
#[cfg(test)]
impl<B: Backend> Lstm<B> {
    /// The reference implementation: the same recurrence written step by
    /// step with tensor operations, so that autodiff records every step. The
    /// tests check [`forward`](Self::forward)'s fused operation against it.
    pub(crate) fn forward_unfused(
        &self,
        x: Tensor<B, 3>,
        state: Option<LstmState<B>>,
        state_mask: Option<Tensor<B, 2>>,
    ) -> (Tensor<B, 3>, LstmState<B>) {
        let [batch, seq, _] = x.dims();
        let h = self.d_hidden;
        let device = x.device();
        let projected = linear_3d(&self.input, x); // [B, T, 4H]
        let recurrent = self.recurrent.weight.val(); // [H, 4H]
        let mut state = state.unwrap_or_else(|| LstmState::zeros(batch, h, &device));
        let mut outputs = Vec::with_capacity(seq);
        for wx in time_steps(projected) {
            let h_in = match &state_mask {
                Some(mask) => state.hidden.clone() * mask.clone(),
                None => state.hidden.clone(),
            };
            let pre = wx + h_in.matmul(recurrent.clone()); // [B, 4H]
            let i = sigmoid(pre.clone().slice([0..batch, 0..h]));
            let f = sigmoid(pre.clone().slice([0..batch, h..2 * h]));
            let g = tanh(pre.clone().slice([0..batch, 2 * h..3 * h]));
            let o = sigmoid(pre.slice([0..batch, 3 * h..4 * h]));
            let cell = f * state.cell + i * g; // [B, H]
            let hidden = o * tanh(cell.clone()); // [B, H]
            state = LstmState { hidden, cell };
            outputs.push(state.hidden.clone());
        }
        (Tensor::stack(outputs, 1), state) // [B, T, H]
    }

    /// U, for tests of other modules. `[H, 4H]`
    pub(crate) fn recurrent_weight(&self) -> &burn::module::Param<Tensor<B, 2>> {
        &self.recurrent.weight
    }
}

impl<B: LstmBackend> Recurrent<B> for Lstm<B> {
    fn forward_masked(&self, x: Tensor<B, 3>, state_mask: Option<Tensor<B, 2>>) -> Tensor<B, 3> {
        self.forward_with(x, None, state_mask).0
    }

    fn forward_lengths(
        &self,
        x: Tensor<B, 3>,
        state_mask: Option<Tensor<B, 2>>,
        lengths: Tensor<B, 1, Int>,
    ) -> Tensor<B, 3> {
        self.forward_padded(x, state_mask, lengths)
    }

    fn d_hidden(&self) -> usize {
        self.d_hidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{leaf, max_diff};
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::LstmConfig as BurnLstmConfig;
    use burn::tensor::Distribution;

    type B = Autodiff<NdArray>;

    /// Our LSTM with the weights of a `burn::nn::Lstm`: its four gate
    /// controllers concatenated in the order i, f, g, o, and its two biases
    /// per gate summed (they always appear added together).
    fn from_burn(reference: &burn::nn::Lstm<B>, device: &Device<B>) -> Lstm<B> {
        let gates = [
            &reference.input_gate,
            &reference.forget_gate,
            &reference.cell_gate,
            &reference.output_gate,
        ];
        let w_x = Tensor::cat(
            gates
                .iter()
                .map(|g| g.input_transform.weight.val())
                .collect(),
            1,
        ); // [E, 4H]
        let w_h = Tensor::cat(
            gates
                .iter()
                .map(|g| g.hidden_transform.weight.val())
                .collect(),
            1,
        ); // [H, 4H]
        let bias = Tensor::cat(
            gates
                .iter()
                .map(|g| {
                    g.input_transform.bias.as_ref().unwrap().val()
                        + g.hidden_transform.bias.as_ref().unwrap().val()
                })
                .collect(),
            0,
        ); // [4H]
        let mut ours = LstmConfig::new(w_x.dims()[0], reference.d_hidden).init::<B>(device);
        ours.input.weight = leaf(w_x);
        ours.input.bias = Some(leaf(bias));
        ours.recurrent.weight = leaf(w_h);
        ours
    }

    #[test]
    fn forget_gate_bias_starts_at_the_configured_value() {
        let device = Default::default();
        let lstm = LstmConfig::new(3, 4)
            .with_forget_bias(1.5)
            .init::<NdArray>(&device);
        let bias = lstm
            .input
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert!(bias[4..8].iter().all(|&b| b == 1.5), "{bias:?}");
        assert!(
            bias[..4].iter().chain(&bias[8..]).all(|&b| b != 1.5),
            "{bias:?}"
        );
    }

    #[test]
    fn a_sequence_in_two_windows_with_the_state_carried_equals_it_whole() {
        let device = Default::default();
        let lstm = LstmConfig::new(3, 5).init::<NdArray>(&device);
        let x = Tensor::<NdArray, 3>::random([2, 9, 3], Distribution::Normal(0.0, 1.0), &device);
        let (whole, end) = lstm.forward(x.clone());
        let (first, state) = lstm.forward_from(x.clone().slice([0..2, 0..4, 0..3]), None);
        let tail = x.slice([0..2, 4..9, 0..3]);
        let (second, carried_end) = lstm.forward_from(tail.clone(), Some(state));
        let halves = Tensor::cat(vec![first, second.clone()], 1);
        assert!(max_diff(whole, halves) < 1e-6);
        assert!(max_diff(end.cell, carried_end.cell) < 1e-6);
        // The carried state matters: the tail from a zero state differs.
        let (restarted, _) = lstm.forward(tail);
        assert!(max_diff(second, restarted) > 1e-3);
    }

    /// With and without a state mask (variational recurrent dropout: a
    /// scaled 0/2 mask per sequence, zeroing some units at every step).
    #[test]
    fn the_fused_recurrence_equals_the_step_by_step_one_with_gradients() {
        let device = Default::default();
        let mask = Tensor::<B, 2>::random([4, 5], Distribution::Bernoulli(0.5), &device) * 2.0;
        for state_mask in [None, Some(mask)] {
            fused_equals_unfused(state_mask);
        }
    }

    fn fused_equals_unfused(state_mask: Option<Tensor<B, 2>>) {
        let device = Default::default();
        let lstm = LstmConfig::new(3, 5).init::<B>(&device);
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<B, 3>::random([4, 11, 3], normal, &device).require_grad();
        let start = || LstmState {
            hidden: Tensor::<B, 2>::random([4, 5], normal, &device)
                .inner()
                .clone(),
            cell: Tensor::<B, 2>::random([4, 5], normal, &device).inner(),
        };
        let (h0, c0) = {
            let s = start();
            (
                Tensor::<B, 2>::from_inner(s.hidden).require_grad(),
                Tensor::<B, 2>::from_inner(s.cell).require_grad(),
            )
        };
        let probe = Tensor::<B, 3>::random([4, 11, 5], normal, &device);
        let probe_cell = Tensor::<B, 2>::random([4, 5], normal, &device);
        let run = |fused: bool| {
            let state = Some(LstmState {
                hidden: h0.clone(),
                cell: c0.clone(),
            });
            let (out, end) = if fused {
                lstm.forward_with(x.clone(), state, state_mask.clone())
            } else {
                lstm.forward_unfused(x.clone(), state, state_mask.clone())
            };
            // A loss that reaches every output and the final cell.
            let loss =
                (out.clone() * probe.clone()).sum() + (end.cell.clone() * probe_cell.clone()).sum();
            let grads = loss.backward();
            let wanted = [
                x.grad(&grads).unwrap().flatten::<1>(0, 2),
                h0.grad(&grads).unwrap().flatten::<1>(0, 1),
                c0.grad(&grads).unwrap().flatten::<1>(0, 1),
                lstm.recurrent
                    .weight
                    .grad(&grads)
                    .unwrap()
                    .flatten::<1>(0, 1),
                lstm.input.weight.grad(&grads).unwrap().flatten::<1>(0, 1),
                lstm.input.bias.as_ref().unwrap().grad(&grads).unwrap(),
            ];
            (out.inner(), end.cell.inner(), wanted)
        };
        let (out_fused, cell_fused, grads_fused) = run(true);
        let (out_ref, cell_ref, grads_ref) = run(false);
        assert!(max_diff(out_fused, out_ref) < 1e-5);
        assert!(max_diff(cell_fused, cell_ref) < 1e-5);
        let names = ["x", "h0", "c0", "U", "W", "b"];
        for ((name, fused), reference) in names.iter().zip(grads_fused).zip(grads_ref) {
            let scale: f32 = reference.clone().abs().max().into_scalar();
            let diff = max_diff(fused, reference);
            println!("d{name}: maxdiff {diff:e} (largest {scale:e})");
            assert!(scale > 1e-3, "d{name} should not vanish");
            assert!(diff < 1e-5 * scale.max(1.0), "d{name} differs by {diff}");
        }
    }

    #[test]
    fn equals_burn_lstm_forward_and_gradients() {
        let device = Default::default();
        for (batch, seq) in [(3, 1), (2, 7), (4, 17)] {
            let reference = BurnLstmConfig::new(5, 6, true).init::<B>(&device);
            let ours = from_burn(&reference, &device);
            let x = Tensor::<NdArray, 3>::random(
                [batch, seq, 5],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
            .into_data();
            let probe =
                Tensor::<B, 3>::random([batch, seq, 6], Distribution::Normal(0.0, 1.0), &device);

            let x_ref = Tensor::<B, 3>::from_data(x.clone(), &device).require_grad();
            let (out_ref, state_ref) = reference.forward(x_ref.clone(), None);
            let x_ours = Tensor::<B, 3>::from_data(x, &device).require_grad();
            let (out_ours, state_ours) = ours.forward(x_ours.clone());

            let diff = max_diff(out_ref.clone().inner(), out_ours.clone().inner());
            println!("outputs OK, maxdiff = {diff:e}");
            assert!(diff < 1e-5, "outputs differ by {diff}");
            let diff = max_diff(state_ref.cell.inner(), state_ours.cell.inner());
            assert!(diff < 1e-5, "final cells differ by {diff}");

            // The same scalar loss through both: the gradients must agree.
            let grads_ref = (out_ref * probe.clone()).sum().backward();
            let grads_ours = (out_ours * probe).sum().backward();
            let gx_ref = x_ref.grad(&grads_ref).unwrap();
            let gx_ours = x_ours.grad(&grads_ours).unwrap();
            let diff = max_diff(gx_ref, gx_ours);
            println!("input gradients OK, maxdiff = {diff:e}");
            assert!(diff < 1e-5, "input gradients differ by {diff}");
            // With one step, h_0 = 0 and U never enters our graph (Burn's gets zeros).
            if seq > 1 {
                let gw_ref = reference
                    .cell_gate
                    .hidden_transform
                    .weight
                    .grad(&grads_ref)
                    .unwrap(); // [H, H]
                let gw_ours = ours
                    .recurrent
                    .weight
                    .grad(&grads_ours)
                    .unwrap()
                    .slice([0..6, 12..18]);
                let diff = max_diff(gw_ref, gw_ours);
                assert!(
                    diff < 1e-5,
                    "recurrent weight gradients (g-block) differ by {diff}"
                );
            }
            let gb_ref = reference
                .forget_gate
                .input_transform
                .bias
                .as_ref()
                .unwrap()
                .grad(&grads_ref)
                .unwrap(); // [H]
            let gb_ours = ours
                .input
                .bias
                .as_ref()
                .unwrap()
                .grad(&grads_ours)
                .unwrap()
                .slice([6..12]);
            let diff = max_diff(gb_ref, gb_ours);
            assert!(diff < 1e-5, "bias gradients (f-block) differ by {diff}");
        }
    }
}
