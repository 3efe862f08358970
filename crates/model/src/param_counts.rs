//! Counting a module's parameter values, and how many are exactly zero.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

/// Total and non-zero parameter values of a module (quantized tensors are
/// counted by their dequantized values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamCounts {
    pub total: usize,
    pub nonzero: usize,
}

impl ParamCounts {
    pub fn of<B: Backend, M: Module<B>>(module: &M) -> Self {
        let mut counts = Self::default();
        module.visit(&mut counts);
        counts
    }

    /// The fraction of parameters that are exactly zero.
    pub fn sparsity(&self) -> f64 {
        (self.total - self.nonzero) as f64 / self.total.max(1) as f64
    }
}

impl<B: Backend> ModuleVisitor<B> for ParamCounts {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let values = param.val().dequantize().into_data().convert::<f32>();
        let values = values.as_slice::<f32>().expect("converted to f32");
        self.total += values.len();
        self.nonzero += values.iter().filter(|v| **v != 0.0).count();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TextClassifierConfig;
    use burn::backend::NdArray;
    use burn::nn::{Initializer, LinearConfig};

    #[test]
    fn counts_every_value_and_the_zeros() {
        let device = Default::default();
        let model = TextClassifierConfig::new(10, 2)
            .with_d_embed(4)
            .with_d_hidden(3)
            .init::<NdArray>(&device);
        assert_eq!(ParamCounts::of(&model).total, model.num_params());
        let zeros = LinearConfig::new(3, 2)
            .with_initializer(Initializer::Zeros)
            .init::<NdArray>(&device);
        let ones = LinearConfig::new(3, 2)
            .with_initializer(Initializer::Ones)
            .init::<NdArray>(&device);
        let zero = ParamCounts::of(&zeros);
        assert_eq!((zero.total, zero.nonzero, zero.sparsity()), (8, 0, 1.0));
        let one = ParamCounts::of(&ones);
        assert_eq!((one.total, one.nonzero, one.sparsity()), (8, 8, 0.0));
    }
}
