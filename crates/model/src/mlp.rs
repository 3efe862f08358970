//! A dense network of any layer sizes, and backpropagation written out by
//! hand beside Burn's autodiff.
//!
//! The textbook equations, for one sample as a column vector x:
//!
//! ```text
//! forward:   z1 = W1·x + b1,  a1 = σ(z1),  z2 = W2·a1 + b2,  ŷ = σ(z2)
//! output:    δ2 = (ŷ − y) ⊙ σ'(z2)            (squared error ½‖ŷ − y‖²)
//! hidden:    δ1 = (W2ᵀ·δ2) ⊙ σ'(z1)
//! gradients: ∂E/∂W2 = δ2·a1ᵀ, ∂E/∂b2 = δ2, ∂E/∂W1 = δ1·xᵀ, ∂E/∂b1 = δ1
//! update:    W ← W − α·∂E/∂W
//! ```
//!
//! Burn's [`Linear`] stores W transposed (`[in, out]`, z = x·W + b for a row
//! vector x), and a batch is a stack of rows, so [`backprop`] computes the
//! same equations in row form: δ_prev = (δ·Wᵀ) ⊙ f'(z_prev), ∂E/∂W = Aᵀ·δ,
//! ∂E/∂b = Σ_rows δ, averaged over the batch.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu, sigmoid, softmax};
use serde::{Deserialize, Serialize};

/// The nonlinearity after a dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Sigmoid,
    Tanh,
    Relu,
    /// No nonlinearity: for logits fed to softmax cross-entropy.
    Identity,
}

impl Activation {
    pub fn forward<B: Backend>(self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Activation::Sigmoid => sigmoid(z),
            Activation::Tanh => z.tanh(),
            Activation::Relu => relu(z),
            Activation::Identity => z,
        }
    }

    /// f'(z), elementwise.
    pub fn derivative<B: Backend>(self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Activation::Sigmoid => {
                let s = sigmoid(z);
                s.clone() * (s.neg() + 1.0) // σ(1 − σ)
            }
            Activation::Tanh => {
                let t = z.tanh();
                t.clone().neg() * t + 1.0 // 1 − tanh²
            }
            Activation::Relu => z.greater_elem(0.0).float(), // 1 where z > 0
            Activation::Identity => z.ones_like(),
        }
    }
}

/// The loss a network is trained with, averaged over the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// ½‖ŷ − y‖² per sample.
    SquaredError,
    /// −Σ y·log softmax(z) per sample; the last layer must be `Identity`.
    CrossEntropy,
}

impl Loss {
    /// The mean loss of the network's outputs against targets `[N, K]`.
    pub fn forward<B: Backend>(self, output: Tensor<B, 2>, target: Tensor<B, 2>) -> Tensor<B, 1> {
        let [n, _] = output.dims();
        let per_sample = match self {
            Loss::SquaredError => (output - target).powi_scalar(2).sum_dim(1) * 0.5,
            Loss::CrossEntropy => (log_softmax(output, 1) * target).sum_dim(1).neg(),
        }; // [N, 1]
        per_sample.sum().div_scalar(n as f32)
    }
}

#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Layer widths from input to output, e.g. `[2, 3, 1]`.
    pub sizes: Vec<usize>,
    /// One activation per dense layer (`sizes.len() − 1` of them).
    pub activations: Vec<Activation>,
}

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub layers: Vec<Linear<B>>,
    #[module(skip)]
    pub activations: Vec<Activation>,
}

impl MlpConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        assert!(
            self.sizes.len() >= 2,
            "an MLP needs an input and an output size"
        );
        assert_eq!(
            self.activations.len(),
            self.sizes.len() - 1,
            "one activation per dense layer"
        );
        Mlp {
            layers: self
                .sizes
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
            activations: self.activations.clone(),
        }
    }
}

/// Every layer's pre-activation z and activation a, kept for backprop.
pub struct Trace<B: Backend> {
    /// a_0 = x, a_1, …, a_L = ŷ. `[N, width]` each
    pub activations: Vec<Tensor<B, 2>>,
    /// z_1, …, z_L.
    pub pre_activations: Vec<Tensor<B, 2>>,
}

impl<B: Backend> Mlp<B> {
    /// `[N, in]` → `[N, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.layers
            .iter()
            .zip(&self.activations)
            .fold(x, |a, (layer, f)| f.forward(layer.forward(a)))
    }

    pub fn forward_trace(&self, x: Tensor<B, 2>) -> Trace<B> {
        let mut trace = Trace {
            activations: vec![x],
            pre_activations: Vec::new(),
        };
        for (layer, f) in self.layers.iter().zip(&self.activations) {
            let z = layer.forward(trace.activations.last().unwrap().clone());
            trace.activations.push(f.forward(z.clone()));
            trace.pre_activations.push(z);
        }
        trace
    }
}

/// ∂E/∂W and ∂E/∂b of every layer, in Burn's layout (`[in, out]`, `[out]`).
pub struct MlpGradients<B: Backend> {
    pub weights: Vec<Tensor<B, 2>>,
    pub biases: Vec<Tensor<B, 1>>,
}

/// Backpropagation by hand, on plain tensors (no autodiff): the mean loss
/// over the batch and its gradients.
pub fn backprop<B: Backend>(
    mlp: &Mlp<B>,
    x: Tensor<B, 2>,
    y: Tensor<B, 2>,
    loss: Loss,
) -> (f32, MlpGradients<B>) {
    let [n, _] = x.dims();
    let trace = mlp.forward_trace(x);
    let output = trace.activations.last().unwrap().clone();
    let z_out = trace.pre_activations.last().unwrap().clone();
    let value = loss
        .forward(output.clone(), y.clone())
        .into_scalar()
        .elem::<f32>();

    // Output error δ_L = ∂E/∂z_L, already divided by N for the batch mean.
    let mut delta = match loss {
        Loss::SquaredError => (output - y) * mlp.activations.last().unwrap().derivative(z_out),
        Loss::CrossEntropy => {
            assert_eq!(
                *mlp.activations.last().unwrap(),
                Activation::Identity,
                "softmax cross-entropy takes logits: the last layer must be Identity"
            );
            softmax(z_out, 1) - y
        }
    } / n as f32; // [N, out]

    let depth = mlp.layers.len();
    let mut weights = Vec::with_capacity(depth);
    let mut biases = Vec::with_capacity(depth);
    for l in (0..depth).rev() {
        let a_prev = trace.activations[l].clone(); // [N, in]
        weights.push(a_prev.transpose().matmul(delta.clone())); // δ·aᵀ in row form: [in, out]
        biases.push(delta.clone().sum_dim(0).squeeze_dim(0)); // [out]
        if l > 0 {
            let w = mlp.layers[l].weight.val(); // [in, out]
            let f_prime = mlp.activations[l - 1].derivative(trace.pre_activations[l - 1].clone());
            delta = delta.matmul(w.transpose()) * f_prime; // (Wᵀ·δ) ⊙ f'(z) in row form
        }
    }
    weights.reverse();
    biases.reverse();
    (value, MlpGradients { weights, biases })
}

/// Plain SGD by hand: W ← W − α·∂E/∂W, b ← b − α·∂E/∂b.
pub fn sgd_step<B: Backend>(mut mlp: Mlp<B>, grads: MlpGradients<B>, lr: f64) -> Mlp<B> {
    for ((layer, gw), gb) in mlp.layers.iter_mut().zip(grads.weights).zip(grads.biases) {
        layer.weight = layer.weight.clone().map(|w| w - gw * lr);
        if let Some(bias) = layer.bias.take() {
            layer.bias = Some(bias.map(|b| b - gb * lr));
        }
    }
    mlp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::max_diff;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::AutodiffModule;
    use burn::optim::{GradientsParams, Optimizer, SgdConfig};
    use burn::tensor::Distribution;

    type B = NdArray;
    type AB = Autodiff<NdArray>;

    fn autodiff_grads(
        mlp: &Mlp<AB>,
        x: Tensor<B, 2>,
        y: Tensor<B, 2>,
        loss: Loss,
    ) -> MlpGradients<B> {
        let x = Tensor::<AB, 2>::from_inner(x);
        let y = Tensor::<AB, 2>::from_inner(y);
        let grads = loss.forward(mlp.forward(x), y).backward();
        MlpGradients {
            weights: mlp
                .layers
                .iter()
                .map(|l| l.weight.grad(&grads).unwrap())
                .collect(),
            biases: mlp
                .layers
                .iter()
                .map(|l| l.bias.as_ref().unwrap().grad(&grads).unwrap())
                .collect(),
        }
    }

    /// Hand-written gradients equal autodiff's for each hidden activation,
    /// with squared error on a sigmoid output and with softmax cross-entropy.
    #[test]
    fn backprop_equals_autodiff() {
        let device = Default::default();
        for hidden in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
            for (loss, out, k) in [
                (Loss::SquaredError, Activation::Sigmoid, 1),
                (Loss::CrossEntropy, Activation::Identity, 3),
            ] {
                let mlp =
                    MlpConfig::new(vec![2, 5, 4, k], vec![hidden, hidden, out]).init::<AB>(&device);
                let x = Tensor::<B, 2>::random([7, 2], Distribution::Normal(0.0, 1.0), &device);
                let y = match loss {
                    Loss::SquaredError => {
                        Tensor::<B, 2>::random([7, 1], Distribution::Uniform(0.0, 1.0), &device)
                    }
                    Loss::CrossEntropy => softmax(
                        Tensor::<B, 2>::random([7, k], Distribution::Normal(0.0, 1.0), &device),
                        1,
                    ),
                };
                let expected = autodiff_grads(&mlp, x.clone(), y.clone(), loss);
                let (_, ours) = backprop(&mlp.valid(), x, y, loss);
                for l in 0..3 {
                    let dw = max_diff(ours.weights[l].clone(), expected.weights[l].clone());
                    let db = max_diff(ours.biases[l].clone(), expected.biases[l].clone());
                    assert!(
                        dw < 1e-5 && db < 1e-5,
                        "{hidden:?}/{loss:?} layer {l}: dW {dw}, db {db}"
                    );
                }
            }
        }
    }

    /// 100 single-sample SGD steps by hand and with autodiff + Burn's SGD,
    /// from the same start, end at the same weights.
    #[test]
    fn manual_and_autodiff_training_agree() {
        let device = Default::default();
        let start = MlpConfig::new(vec![2, 3, 1], vec![Activation::Sigmoid; 2]).init::<AB>(&device);
        let data = Tensor::<B, 2>::random([100, 2], Distribution::Uniform(0.0, 1.0), &device);
        let labels = data.clone().sum_dim(1).greater_elem(1.0).float(); // [100, 1]

        let initial = start.valid();
        let mut manual = initial.clone();
        let mut auto = start;
        let mut optimizer = SgdConfig::new().init::<AB, Mlp<AB>>();
        for i in 0..100 {
            let x = data.clone().slice([i..i + 1, 0..2]);
            let y = labels.clone().slice([i..i + 1, 0..1]);
            let (_, grads) = backprop(&manual, x.clone(), y.clone(), Loss::SquaredError);
            manual = sgd_step(manual, grads, 0.5);

            let loss = Loss::SquaredError
                .forward(auto.forward(Tensor::from_inner(x)), Tensor::from_inner(y));
            let grads = GradientsParams::from_grads(loss.backward(), &auto);
            auto = optimizer.step(0.5, auto, grads);
        }
        let auto = auto.valid();
        let mut moved = 0.0f32;
        for ((a, m), i) in auto.layers.iter().zip(&manual.layers).zip(&initial.layers) {
            let dw = max_diff(a.weight.val(), m.weight.val());
            let db = max_diff(
                a.bias.as_ref().unwrap().val(),
                m.bias.as_ref().unwrap().val(),
            );
            assert!(
                dw < 1e-5 && db < 1e-5,
                "weights differ after 100 steps: {dw}, {db}"
            );
            moved = moved.max(max_diff(a.weight.val(), i.weight.val()));
        }
        assert!(moved > 1e-3, "training did not move the weights ({moved})");
    }
}
