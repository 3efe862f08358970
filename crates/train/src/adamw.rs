//! AdamW as one pass over memory on the CPU backends.
//!
//! Burn's `AdamW` updates each parameter tensor with about a dozen tensor
//! operations (the two moments, their bias corrections, the square root, the
//! division, the decay, the step), each a full pass over memory with a newly
//! allocated result. For the classifier's 20,000 × 128 embedding that was
//! 13.8 ms of a 46 ms training step in the bench (`docs/perf/README.md`).
//! [`FusedAdamW`] computes the same update element by element in one pass on
//! ndarray and flex (`model::cpu::adamw_update`, on every core), and with
//! tensor operations elsewhere. Its state is
//! Burn's [`AdamWState`], so checkpoints keep Burn's format.
//!
//! ```text
//! m ← β₁ m + (1 − β₁) g        v ← β₂ v + (1 − β₂) g²        t ← t + 1
//! w ← w (1 − lr λ) − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
//! ```

use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamWState, AdaptiveMomentumState, SimpleOptimizer};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::FloatTensor;
use model::CpuBackend;
use model::cpu::{AdamWUpdate, adamw_update};

/// A backend that can apply one AdamW update to a parameter tensor.
pub trait AdamWKernel: Backend {
    /// Returns the updated weights and the two moments; `moments` is `None`
    /// at the first step (both start at zero).
    fn adamw_update(
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moments: Option<(FloatTensor<Self>, FloatTensor<Self>)>,
        update: AdamWUpdate,
    ) -> [FloatTensor<Self>; 3];
}

/// The one-pass update on a CPU backend.
fn cpu_update<B: CpuBackend>(
    weights: FloatTensor<B>,
    grad: FloatTensor<B>,
    moments: Option<(FloatTensor<B>, FloatTensor<B>)>,
    u: AdamWUpdate,
) -> [FloatTensor<B>; 3] {
    let device = B::float_device(&weights);
    let shape = burn::tensor::TensorMetadata::shape(&weights);
    let mut w = B::into_vec(weights);
    let g = B::into_vec(grad);
    let (mut m, mut v) = match moments {
        Some((m, v)) => (B::into_vec(m), B::into_vec(v)),
        None => (vec![0.0; w.len()], vec![0.0; w.len()]),
    };
    adamw_update(&mut w, &g, &mut m, &mut v, u);
    [w, m, v].map(|values| B::from_vec(values, shape.clone(), &device))
}

/// The one-pass update on a CPU backend.
macro_rules! cpu_adamw {
    ($backend:ty) => {
        impl AdamWKernel for $backend {
            fn adamw_update(
                weights: FloatTensor<Self>,
                grad: FloatTensor<Self>,
                moments: Option<(FloatTensor<Self>, FloatTensor<Self>)>,
                update: AdamWUpdate,
            ) -> [FloatTensor<Self>; 3] {
                cpu_update::<Self>(weights, grad, moments, update)
            }
        }
    };
}

cpu_adamw!(burn::backend::NdArray);
#[cfg(feature = "flex")]
cpu_adamw!(burn::backend::Flex);

#[cfg(feature = "wgpu")]
impl AdamWKernel for burn::backend::Wgpu {
    fn adamw_update(
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moments: Option<(FloatTensor<Self>, FloatTensor<Self>)>,
        u: AdamWUpdate,
    ) -> [FloatTensor<Self>; 3] {
        let float = |t| Tensor::<Self, 1>::from_primitive(TensorPrimitive::Float(t));
        let (w, g) = (float(weights), float(grad));
        let (m, v) = match moments {
            Some((m, v)) => (float(m), float(v)),
            None => (w.zeros_like(), w.zeros_like()),
        };
        let m = m * u.beta_1 + g.clone() * (1.0 - u.beta_1);
        let v = v * u.beta_2 + g.powi_scalar(2) * (1.0 - u.beta_2);
        let step = (m.clone() / (1.0 - u.beta_1.powi(u.time)))
            / ((v.clone() / (1.0 - u.beta_2.powi(u.time))).sqrt() + u.epsilon);
        let w = w * (1.0 - u.lr * u.weight_decay) - step * u.lr;
        [w, m, v].map(|t| t.into_primitive().tensor())
    }
}

/// AdamW's settings; Burn's defaults.
#[derive(Debug, Clone)]
pub struct FusedAdamWConfig {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// Decoupled weight decay λ: every step scales each weight by 1 − lr λ.
    pub weight_decay: f32,
    pub grad_clipping: Option<GradientClippingConfig>,
}

impl FusedAdamWConfig {
    pub fn new(weight_decay: f32) -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-5,
            weight_decay,
            grad_clipping: None,
        }
    }

    /// AdamW (Adam when `weight_decay` is 0) with Burn's per-tensor norm
    /// clipping when `clip_norm` > 0: the optimizer of `train` and
    /// `train lm`.
    pub fn clipped(weight_decay: f64, clip_norm: f64) -> Self {
        let clipping = (clip_norm > 0.0).then(|| GradientClippingConfig::Norm(clip_norm as f32));
        Self::new(weight_decay as f32).with_grad_clipping(clipping)
    }

    pub fn with_grad_clipping(mut self, clipping: Option<GradientClippingConfig>) -> Self {
        self.grad_clipping = clipping;
        self
    }

    /// The optimizer for module `M` on autodiff backend `B`.
    pub fn init<B, M>(&self) -> OptimizerAdaptor<FusedAdamW, M, B>
    where
        B: AutodiffBackend<InnerBackend: AdamWKernel>,
        M: AutodiffModule<B>,
    {
        let optimizer = OptimizerAdaptor::from(FusedAdamW {
            config: self.clone(),
        });
        match &self.grad_clipping {
            Some(clipping) => optimizer.with_grad_clipping(clipping.init()),
            None => optimizer,
        }
    }
}

/// AdamW with a one-pass update (see the module docs).
#[derive(Debug, Clone)]
pub struct FusedAdamW {
    config: FusedAdamWConfig,
}

impl<B: AdamWKernel> SimpleOptimizer<B> for FusedAdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let c = &self.config;
        let time = state.as_ref().map_or(0, |s| s.momentum.time) + 1;
        let moments = state.map(|s| {
            let m = s.momentum;
            (
                m.moment_1.into_primitive().tensor(),
                m.moment_2.into_primitive().tensor(),
            )
        });
        let [w, m, v] = B::adamw_update(
            tensor.into_primitive().tensor(),
            grad.into_primitive().tensor(),
            moments,
            AdamWUpdate {
                lr: lr as f32,
                beta_1: c.beta_1,
                beta_2: c.beta_2,
                epsilon: c.epsilon,
                weight_decay: c.weight_decay,
                time: time as i32,
            },
        );
        let tensor = |t| Tensor::<B, D>::from_primitive(TensorPrimitive::Float(t));
        let state = AdamWState {
            momentum: AdaptiveMomentumState {
                time,
                moment_1: tensor(m),
                moment_2: tensor(v),
                max_moment_2: None,
            },
        };
        (tensor(w), Some(state))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::Param;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
    use burn::tensor::Distribution;

    type A = Autodiff<NdArray>;

    /// Five steps of ours and of Burn's AdamW from the same weights and
    /// gradients (a loss that changes with the weights) end at the same
    /// weights, with and without decay.
    #[test]
    fn equals_burns_adamw() {
        let device = Default::default();
        for decay in [0.0, 0.05] {
            let normal = Distribution::Normal(0.0, 1.0);
            // Eager parameters: a `LinearConfig::init` one is drawn lazily,
            // so each clone would draw its own.
            let mut start: Linear<A> = LinearConfig::new(6, 4).init(&device);
            start.weight = Param::from_tensor(Tensor::random([6, 4], normal, &device));
            start.bias = Some(Param::from_tensor(Tensor::random([4], normal, &device)));
            let x = Tensor::<A, 2>::random([5, 6], normal, &device);
            let run = |fused: bool| {
                let mut model = start.clone();
                let mut ours = FusedAdamWConfig::new(decay).init::<A, Linear<A>>();
                let mut burns = AdamWConfig::new()
                    .with_weight_decay(decay)
                    .init::<A, Linear<A>>();
                for _ in 0..5 {
                    let loss = model.forward(x.clone()).powi_scalar(2).sum();
                    let grads = GradientsParams::from_grads(loss.backward(), &model);
                    model = if fused {
                        ours.step(0.01, model, grads)
                    } else {
                        burns.step(0.01, model, grads)
                    };
                }
                model
                    .weight
                    .val()
                    .inner()
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap()
            };
            let (fused, reference) = (run(true), run(false));
            let moved = start
                .weight
                .val()
                .inner()
                .into_data()
                .to_vec::<f32>()
                .unwrap()
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(moved > 1e-3, "the weights should move");
            let diff = fused
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-6, "decay {decay}: weights differ by {diff}");
        }
    }
}
