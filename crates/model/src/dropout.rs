//! Dropout, two ways.
//!
//! [`ElementDropout`] drops each element on its own, as Burn's `Dropout`
//! does, with a mask the backend draws ([`LstmBackend::dropout_mask`]): on
//! the CPU backends from a fast generator seeded by Burn's, elsewhere Burn's
//! own sampling. The language model uses it between its layers.
//!
//! [`VariationalDropout`] (Gal & Ghahramani 2016, "A Theoretically Grounded
//! Application of Dropout in Recurrent Neural Networks") draws one mask per
//! sequence. Burn's `Dropout` draws a fresh mask for every element it sees,
//! so applied inside a recurrence it would drop different units at every
//! time step and the noise would compound along the sequence. Variational
//! dropout reuses one mask at every step, on the inputs of a recurrent layer
//! and on its recurrent state; the encoder applies it to both (see
//! [`Encoder`](crate::Encoder)), the language model to the state of each
//! layer ([`CharLm`](crate::CharLm)).

use crate::LstmBackend;
use crate::lstm::op::float;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::ops::FloatTensor;

/// Drops each element with probability `prob` and scales the rest by
/// 1 / (1 − prob), during training only, like Burn's `Dropout`, with the
/// mask the backend draws: one multiplication forward and one backward.
#[derive(Module, Clone, Debug)]
pub struct ElementDropout {
    /// The probability of dropping an element, in `[0, 1)`.
    pub prob: f64,
}

impl ElementDropout {
    pub fn new(prob: f64) -> Self {
        Self {
            prob: checked(prob),
        }
    }

    /// `x` with dropout applied; `x` itself with p = 0 or outside training
    /// (a backend without autodiff, as in validation and generation).
    pub fn forward<B: LstmBackend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let device = x.device();
        if self.prob == 0.0 || !B::ad_enabled(&device) {
            return x;
        }
        let mask = B::dropout_mask(x.shape(), 1.0 - self.prob, &device);
        x * float::<B, D>(mask)
    }
}

/// Burn's Bernoulli mask, scaled: the default of
/// [`LstmKernel::dropout_mask`](crate::LstmKernel::dropout_mask).
pub(crate) fn burns_mask<B: Backend>(
    shape: Shape,
    keep: f64,
    device: &B::Device,
) -> FloatTensor<B> {
    // Drawn as Burn's `Dropout` draws it: the elements in order.
    let mask = Tensor::<B, 1>::random(
        [shape.num_elements()],
        Distribution::Bernoulli(keep),
        device,
    ) * (1.0 / keep);
    B::float_reshape(mask.into_primitive().tensor(), shape)
}

/// Draws per-sequence dropout masks, during training only.
#[derive(Module, Clone, Debug)]
pub struct VariationalDropout {
    /// The probability of dropping a unit, in `[0, 1)`.
    pub prob: f64,
}

impl VariationalDropout {
    pub fn new(prob: f64) -> Self {
        Self {
            prob: checked(prob),
        }
    }

    /// A mask `[batch, d]` of zeros and 1 / (1 − p), one row per sequence, to
    /// be used at every time step; `None` when nothing is dropped: with
    /// p = 0, or outside training (a backend without autodiff, as in
    /// validation and inference, like Burn's `Dropout`).
    pub fn mask<B: Backend>(
        &self,
        batch: usize,
        d: usize,
        device: &B::Device,
    ) -> Option<Tensor<B, 2>> {
        if self.prob == 0.0 || !B::ad_enabled(device) {
            return None;
        }
        let keep = 1.0 - self.prob;
        let mask = Tensor::<B, 2>::random([batch, d], Distribution::Bernoulli(keep), device);
        Some(mask * (1.0 / keep))
    }
}

/// `x` `[B, T, D]` with row b multiplied by `mask[b]` `[B, D]` at every step.
pub(crate) fn apply_per_sequence<B: Backend>(
    x: Tensor<B, 3>,
    mask: Option<Tensor<B, 2>>,
) -> Tensor<B, 3> {
    match mask {
        Some(mask) => x * mask.unsqueeze_dim::<3>(1),
        None => x,
    }
}

/// `prob`, a dropout probability, which must be in [0, 1).
fn checked(prob: f64) -> f64 {
    assert!(
        (0.0..1.0).contains(&prob),
        "dropout probability must be in [0, 1), got {prob}"
    );
    prob
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type AD = Autodiff<NdArray>;

    fn input(device: &Device<AD>) -> Tensor<AD, 3> {
        Tensor::<AD, 3>::random([4, 64, 128], Distribution::Uniform(1.0, 2.0), device)
            .require_grad()
    }

    #[test]
    fn drops_about_prob_scales_the_rest_and_the_gradient_is_the_mask() {
        let device = Default::default();
        AD::seed(&device, 3);
        let x = input(&device);
        let out = ElementDropout::new(0.3).forward(x.clone());
        let xs = x.to_data().to_vec::<f32>().unwrap();
        let outs = out.to_data().to_vec::<f32>().unwrap();
        let grads = out.sum().backward();
        let dx = x.grad(&grads).unwrap().to_data().to_vec::<f32>().unwrap();
        let scale = (1.0 / 0.7f64) as f32;
        let mut kept = 0;
        for ((x, out), dx) in xs.iter().zip(&outs).zip(&dx) {
            if *out == 0.0 {
                assert_eq!(*dx, 0.0);
            } else {
                kept += 1;
                assert_eq!(*out, x * scale);
                assert_eq!(*dx, scale);
            }
        }
        let fraction = kept as f64 / xs.len() as f64;
        assert!((fraction - 0.7).abs() < 0.01, "{fraction}");
    }

    #[test]
    fn the_backend_seed_fixes_the_mask_and_inference_keeps_everything() {
        let device = Default::default();
        let run = |seed| {
            AD::seed(&device, 9);
            let x = input(&device);
            AD::seed(&device, seed);
            ElementDropout::new(0.5).forward(x).into_data()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        // Without autodiff nothing is dropped.
        let x = Tensor::<NdArray, 2>::ones([3, 5], &device);
        let out = ElementDropout::new(0.5).forward(x.clone());
        assert_eq!(out.into_data(), x.into_data());
    }

    #[test]
    fn the_default_mask_is_burns_dropout() {
        let device = Default::default();
        let x = input(&device);
        AD::seed(&device, 5);
        let burns = burn::nn::DropoutConfig::new(0.4).init().forward(x.clone());
        AD::seed(&device, 5);
        let mask = burns_mask::<AD>(x.shape(), 0.6, &device);
        let ours = x * float::<AD, 3>(mask);
        assert_eq!(burns.into_data(), ours.into_data());
    }
}
