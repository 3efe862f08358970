//! Checkpoint averaging (`--average K`): the element-wise mean of the
//! weights of several epochs of one run, which lands nearer the middle of
//! the region the optimizer wanders in than any one epoch does (Izmailov et
//! al. 2018, "Averaging weights leads to wider optima"; Vaswani et al. 2017
//! average their last checkpoints the same way).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

/// The mean of the float parameters of `models`, which must share one
/// architecture; the result keeps the first model's structure and ids.
pub fn average<B: Backend, M: Module<B>>(models: Vec<M>) -> M {
    let count = models.len();
    assert!(count > 0, "averaging needs at least one model");
    let mut sum = Sum::<B> {
        tensors: Vec::new(),
        next: 0,
    };
    let mut models = models.into_iter();
    let first = models.next().expect("at least one model");
    first.visit(&mut sum);
    for model in models {
        sum.next = 0;
        model.visit(&mut sum);
    }
    first.map(&mut Mean {
        sums: sum.tensors,
        next: 0,
        count: count as f64,
    })
}

/// Running sums of every float parameter, flattened, in visiting order.
struct Sum<B: Backend> {
    tensors: Vec<Tensor<B, 1>>,
    next: usize,
}

impl<B: Backend> ModuleVisitor<B> for Sum<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val().dequantize();
        let flat = value.clone().reshape([value.shape().num_elements()]);
        match self.tensors.get_mut(self.next) {
            Some(total) => *total = total.clone() + flat,
            None => self.tensors.push(flat),
        }
        self.next += 1;
    }
}

/// Replaces each float parameter by its sum over the models divided by their count.
struct Mean<B: Backend> {
    sums: Vec<Tensor<B, 1>>,
    next: usize,
    count: f64,
}

impl<B: Backend> ModuleMapper<B> for Mean<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let mean = self.sums[self.next].clone().div_scalar(self.count);
        self.next += 1;
        Param::from_mapped_value(id, mean.reshape(tensor.dims()), mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::nn::{Linear, LinearConfig};

    type B = NdArray;

    fn flat(linear: &Linear<B>) -> Vec<f32> {
        let mut values = linear.weight.val().into_data().to_vec::<f32>().unwrap();
        values.extend(
            linear
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .to_vec::<f32>()
                .unwrap(),
        );
        values
    }

    /// Every parameter of the average is the mean of the models' values.
    #[test]
    fn the_average_is_the_element_wise_mean() {
        let device = Default::default();
        let models: Vec<Linear<B>> = (0..3)
            .map(|_| LinearConfig::new(3, 2).init::<B>(&device))
            .collect();
        let values: Vec<Vec<f32>> = models.iter().map(flat).collect();
        let averaged = flat(&average(models));
        assert_eq!(averaged.len(), 8);
        for (i, got) in averaged.iter().enumerate() {
            let want = (values[0][i] + values[1][i] + values[2][i]) / 3.0;
            assert!((got - want).abs() < 1e-6, "{i}: {got} vs {want}");
        }
        assert!(
            values[0] != values[1],
            "the models differ, so the test can fail"
        );
    }
}
