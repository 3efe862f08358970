//! The plain (Elman) RNN and the GRU, written like our [`Lstm`](crate::Lstm):
//! the input projection of all time steps in one matmul, one recurrent matmul
//! per step, outputs stacked once at the end.
//!
//! ```text
//! Elman (1990):  h_t = tanh(W x_t + U h_{t-1} + b)
//!
//! GRU (Cho et al. 2014, reset applied after the recurrent matmul, as in
//! PyTorch and `burn::nn::Gru`'s default):
//!   r_t = σ(W_r x_t + b_r + U_r h_{t-1} + c_r)          reset gate
//!   z_t = σ(W_z x_t + b_z + U_z h_{t-1} + c_z)          update gate
//!   n_t = tanh(W_n x_t + b_n + r_t ⊙ (U_n h_{t-1} + c_n))  candidate
//!   h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}
//! ```
//!
//! The RNN's state passes through a tanh and a matrix at every step, so the
//! gradient reaching step t from step t + k is a product of k Jacobians
//! `diag(1 − h²) U`: it shrinks (or explodes) geometrically in k. The GRU's
//! update gate and the LSTM's cell give the state an additive path instead.

use crate::Recurrent;
use crate::cell_ops::{linear_3d, tanh, time_steps};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

#[derive(Config, Debug)]
pub struct RnnConfig {
    pub d_input: usize,
    pub d_hidden: usize,
    #[config(default = "Initializer::XavierNormal{gain:1.0}")]
    pub initializer: Initializer,
}

/// An Elman RNN with a tanh nonlinearity.
#[derive(Module, Debug)]
pub struct Rnn<B: Backend> {
    /// W x + b. `E -> H`
    input: Linear<B>,
    /// U h (no bias: `input` carries it). `H -> H`
    recurrent: Linear<B>,
    d_hidden: usize,
}

impl RnnConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Rnn<B> {
        let linear = |d_in: usize, bias: bool| {
            LinearConfig::new(d_in, self.d_hidden)
                .with_bias(bias)
                .with_initializer(self.initializer.clone())
                .init(device)
        };
        Rnn {
            input: linear(self.d_input, true),
            recurrent: linear(self.d_hidden, false),
            d_hidden: self.d_hidden,
        }
    }
}

impl<B: Backend> Recurrent<B> for Rnn<B> {
    fn forward_masked(&self, x: Tensor<B, 3>, state_mask: Option<Tensor<B, 2>>) -> Tensor<B, 3> {
        let projected = linear_3d(&self.input, x); // [B, T, H]
        let u = self.recurrent.weight.val(); // [H, H]
        let mut outputs: Vec<Tensor<B, 2>> = Vec::new();
        for wx in time_steps(projected) {
            let pre = match outputs.last() {
                None => wx, // h_0 = 0
                Some(h) => wx + apply(h.clone(), &state_mask).matmul(u.clone()),
            };
            outputs.push(tanh(pre)); // [B, H]
        }
        Tensor::stack(outputs, 1) // [B, T, H]
    }

    fn d_hidden(&self) -> usize {
        self.d_hidden
    }
}

/// `h ⊙ mask`, or `h` without a mask.
fn apply<B: Backend>(h: Tensor<B, 2>, mask: &Option<Tensor<B, 2>>) -> Tensor<B, 2> {
    match mask {
        Some(mask) => h * mask.clone(),
        None => h,
    }
}

#[derive(Config, Debug)]
pub struct GruConfig {
    pub d_input: usize,
    pub d_hidden: usize,
    #[config(default = "Initializer::XavierNormal{gain:1.0}")]
    pub initializer: Initializer,
}

/// A gated recurrent unit; gates in the order r, z, n.
#[derive(Module, Debug)]
pub struct Gru<B: Backend> {
    /// W x + b for the three gates. `E -> 3H`
    input: Linear<B>,
    /// U h + c for the three gates; c_n must stay separate because the reset
    /// gate multiplies it. `H -> 3H`
    recurrent: Linear<B>,
    d_hidden: usize,
}

impl GruConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Gru<B> {
        let linear = |d_in: usize| {
            LinearConfig::new(d_in, 3 * self.d_hidden)
                .with_initializer(self.initializer.clone())
                .init(device)
        };
        Gru {
            input: linear(self.d_input),
            recurrent: linear(self.d_hidden),
            d_hidden: self.d_hidden,
        }
    }
}

impl<B: Backend> Recurrent<B> for Gru<B> {
    fn forward_masked(&self, x: Tensor<B, 3>, state_mask: Option<Tensor<B, 2>>) -> Tensor<B, 3> {
        let [batch, seq, _] = x.dims();
        let h = self.d_hidden;
        let projected = linear_3d(&self.input, x); // [B, T, 3H]
        let mut hidden = Tensor::<B, 2>::zeros([batch, h], &projected.device());
        let mut outputs = Vec::with_capacity(seq);
        for wx in time_steps(projected) {
            let uh = self.recurrent.forward(apply(hidden.clone(), &state_mask)); // [B, 3H]
            let rz = sigmoid(
                wx.clone().slice([0..batch, 0..2 * h]) + uh.clone().slice([0..batch, 0..2 * h]),
            ); // [B, 2H]
            let r = rz.clone().slice([0..batch, 0..h]);
            let z = rz.slice([0..batch, h..2 * h]);
            let n =
                tanh(wx.slice([0..batch, 2 * h..3 * h]) + r * uh.slice([0..batch, 2 * h..3 * h])); // [B, H]
            hidden = n.clone() + z * (hidden - n); // (1 − z) n + z h
            outputs.push(hidden.clone());
        }
        Tensor::stack(outputs, 1) // [B, T, H]
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
    use burn::module::Param;
    use burn::tensor::Distribution;

    type B = Autodiff<NdArray>;

    /// Runs `ours` and `reference` on the same random input and checks the
    /// outputs and the input gradients agree.
    fn check_parity(
        ours: impl Fn(Tensor<B, 3>) -> Tensor<B, 3>,
        reference: impl Fn(Tensor<B, 3>) -> Tensor<B, 3>,
        dims: [usize; 3],
        d_hidden: usize,
    ) {
        let device = Default::default();
        let x =
            Tensor::<NdArray, 3>::random(dims, Distribution::Normal(0.0, 1.0), &device).into_data();
        let probe = Tensor::<B, 3>::random(
            [dims[0], dims[1], d_hidden],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let x_ref = Tensor::<B, 3>::from_data(x.clone(), &device).require_grad();
        let x_ours = Tensor::<B, 3>::from_data(x, &device).require_grad();
        let out_ref = reference(x_ref.clone());
        let out_ours = ours(x_ours.clone());
        let diff = max_diff(out_ref.clone().inner(), out_ours.clone().inner());
        assert!(diff < 1e-5, "outputs differ by {diff}");
        let g_ref = (out_ref * probe.clone()).sum().backward();
        let g_ours = (out_ours * probe).sum().backward();
        let diff = max_diff(x_ref.grad(&g_ref).unwrap(), x_ours.grad(&g_ours).unwrap());
        assert!(diff < 1e-5, "input gradients differ by {diff}");
    }

    #[test]
    fn rnn_equals_burn_rnn() {
        let device = Default::default();
        for dims in [[3, 1, 4], [2, 9, 4]] {
            let reference = burn::nn::RnnConfig::new(4, 5, true).init::<B>(&device);
            let mut ours = RnnConfig::new(4, 5).init::<B>(&device);
            let gate = &reference.gate;
            ours.input.weight = leaf(gate.input_transform.weight.val());
            ours.input.bias = Some(leaf(
                gate.input_transform.bias.as_ref().unwrap().val()
                    + gate.hidden_transform.bias.as_ref().unwrap().val(),
            ));
            ours.recurrent.weight = leaf(gate.hidden_transform.weight.val());
            check_parity(
                |x| ours.forward_sequence(x),
                |x| reference.forward(x, None).0,
                dims,
                5,
            );
        }
    }

    #[test]
    fn rnn_matches_values_worked_by_hand() {
        // One unit, W = 0.5, U = −1, b = 0.1; inputs 1, 2:
        // h1 = tanh(0.5 + 0.1) = tanh(0.6) = 0.5370496
        // h2 = tanh(1.0 + 0.1 − 0.5370496) = tanh(0.5629504) = 0.5101633
        let device = Default::default();
        let mut rnn = RnnConfig::new(1, 1).init::<NdArray>(&device);
        rnn.input.weight = Param::from_data([[0.5f32]], &device);
        rnn.input.bias = Some(Param::from_data([0.1f32], &device));
        rnn.recurrent.weight = Param::from_data([[-1.0f32]], &device);
        let out = rnn.forward_sequence(Tensor::from_floats([[[1.0], [2.0]]], &device));
        let got = out.into_data().to_vec::<f32>().unwrap();
        assert!((got[0] - 0.537_049_6).abs() < 1e-6, "h1 = {}", got[0]);
        assert!((got[1] - 0.510_163_3).abs() < 1e-6, "h2 = {}", got[1]);
    }

    #[test]
    fn gru_equals_burn_gru() {
        let device = Default::default();
        for dims in [[3, 1, 4], [2, 9, 4]] {
            let reference = burn::nn::GruConfig::new(4, 5, true).init::<B>(&device);
            let mut ours = GruConfig::new(4, 5).init::<B>(&device);
            let gates = [
                &reference.reset_gate,
                &reference.update_gate,
                &reference.new_gate,
            ];
            let cat = |f: &dyn Fn(&burn::nn::GateController<B>) -> Tensor<B, 2>| {
                leaf(Tensor::cat(gates.iter().map(|g| f(g)).collect(), 1))
            };
            let bias = |f: &dyn Fn(&burn::nn::GateController<B>) -> Tensor<B, 1>| {
                leaf(Tensor::cat(gates.iter().map(|g| f(g)).collect(), 0))
            };
            ours.input.weight = cat(&|g| g.input_transform.weight.val());
            ours.recurrent.weight = cat(&|g| g.hidden_transform.weight.val());
            ours.input.bias = Some(bias(&|g| g.input_transform.bias.as_ref().unwrap().val()));
            ours.recurrent.bias = Some(bias(&|g| g.hidden_transform.bias.as_ref().unwrap().val()));
            check_parity(
                |x| ours.forward_sequence(x),
                |x| reference.forward(x, None),
                dims,
                5,
            );
        }
    }
}
