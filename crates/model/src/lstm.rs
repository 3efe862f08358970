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
//! What makes it fast (see `shared/bench/FINDINGS.md` for the measurements):
//! - the input projection W x_t of all time steps is one matmul, hoisted out of
//!   the loop; each step does one recurrent matmul for all four gates;
//! - tanh is computed as 2σ(2x) − 1, because on the CPU backends `tanh` costs
//!   several times `sigmoid`; scaling the g-block of the gate pre-activations
//!   by 2 lets one sigmoid call cover all four gates;
//! - outputs are collected and stacked once at the end, not slice-assigned
//!   per step;
//! - the projected input is split into time steps in √T blocks
//!   ([`time_steps`]), which keeps autodiff's backward of the slices from
//!   growing quadratically with T.

use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use crate::Recurrent;
use crate::steps::{tanh, time_steps};

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
            input.bias = Some(bias.map(|b| b.mask_fill(forget, self.forget_bias)));
        }
        Lstm {
            input,
            recurrent: linear(h, false),
            d_hidden: h,
        }
    }
}

impl<B: Backend> Lstm<B> {
    /// Runs over `x` `[B, T, E]` from a zero state. Returns the hidden state of
    /// every step `[B, T, H]` and the final state.
    pub fn forward(&self, x: Tensor<B, 3>) -> (Tensor<B, 3>, LstmState<B>) {
        let [batch, seq, _] = x.dims();
        let h = self.d_hidden;
        let device = x.device();
        // 1 for the sigmoid gates, 2 for the g-block, where σ(2x) gives tanh(x).
        // Scaling the input projection once and the recurrent weight once per
        // call keeps the multiply out of the time loop.
        let scale: Vec<f32> = (0..4 * h)
            .map(|j| {
                if (2 * h..3 * h).contains(&j) {
                    2.0
                } else {
                    1.0
                }
            })
            .collect();
        let scale = Tensor::<B, 1>::from_floats(scale.as_slice(), &device).unsqueeze::<2>(); // [1, 4H]
        let projected = self.input.forward(x) * scale.clone().unsqueeze::<3>(); // [B, T, 4H]
        let recurrent = self.recurrent.weight.val() * scale; // [H, 4H]
        let mut state = LstmState {
            hidden: Tensor::zeros([batch, h], &device),
            cell: Tensor::zeros([batch, h], &device),
        };
        let mut outputs = Vec::with_capacity(seq);
        for (t, wx) in time_steps(projected).into_iter().enumerate() {
            let pre = if t == 0 {
                wx // h_0 = 0, so U h_0 vanishes
            } else {
                wx + state.hidden.clone().matmul(recurrent.clone())
            };
            state = self.cell_step(pre, state.cell);
            outputs.push(state.hidden.clone());
        }
        (Tensor::stack(outputs, 1), state) // [B, T, H]
    }

    /// One step from the scaled gate pre-activations `[B, 4H]` and c_{t-1}.
    fn cell_step(&self, scaled: Tensor<B, 2>, cell: Tensor<B, 2>) -> LstmState<B> {
        let [batch, _] = scaled.dims();
        let h = self.d_hidden;
        let gates = sigmoid(scaled); // [B, 4H]: σ for i, f, o; σ(2x) for g
        let i = gates.clone().slice([0..batch, 0..h]);
        let f = gates.clone().slice([0..batch, h..2 * h]);
        let g = gates.clone().slice([0..batch, 2 * h..3 * h]) * 2.0 - 1.0; // tanh
        let o = gates.slice([0..batch, 3 * h..4 * h]);
        let cell = f * cell + i * g; // [B, H]
        let hidden = o * tanh(cell.clone()); // [B, H]
        LstmState { hidden, cell }
    }
}

impl<B: Backend> Recurrent<B> for Lstm<B> {
    fn forward_sequence(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward(x).0
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
