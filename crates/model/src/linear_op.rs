//! A Linear layer over rows `[N, D]` as one autodiff operation, so that the
//! CPU backends can build its weight gradient their own way.
//!
//! Burn's weight gradient xᵀ g multiplies a transposed view of x, and
//! ndarray's matmul first copies that view into standard layout element by
//! element (`as_standard_layout`): for attention pooling's scores at batch
//! 64 × 256 that copy of 2 M values was 8% of a training step
//! (docs/perf/README.md). The CPU backends transpose x with a blocked loop
//! and hand the same standard-layout matrix to the same matmul, so the
//! gradient is the same to the bit; the input's and the bias's gradients
//! are Burn's own functions, and other backends keep Burn's whole formula
//! ([`LstmKernel::linear_weight_grad`]).
//!
//! ```text
//! forward:  y = x W + b             x [N, D], W [D, O], y [N, O]
//! backward: dx = g Wᵀ,  dW = xᵀ g,  db = Σ_rows g
//! ```

use crate::LstmBackend;
use crate::lstm::op::{LstmKernel, float};
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;

/// `linear` applied to each row of `x` `[N, D]`: `[N, O]`. A layer without
/// a bias goes through Burn's own operation.
pub(crate) fn linear_rows<B: LstmBackend>(linear: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    match &linear.bias {
        Some(bias) => float(B::linear_rows(
            x.into_primitive().tensor(),
            linear.weight.val().into_primitive().tensor(),
            bias.val().into_primitive().tensor(),
        )),
        None => linear.forward(x),
    }
}

#[derive(Debug)]
struct LinearRowsBackward;

impl<B: LstmKernel> Backward<B, 3> for LinearRowsBackward {
    /// x and W.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node, bias_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight) = ops.state;
        if let Some(node) = x_node {
            grads.register::<B>(node.id, B::linear_x_backward(weight, grad.clone()));
        }
        if let Some(node) = weight_node {
            grads.register::<B>(node.id, B::linear_weight_grad(x, grad.clone()));
        }
        if let Some(node) = bias_node {
            grads.register::<B>(node.id, B::linear_bias_backward(grad));
        }
    }
}

/// [`LstmBackend::linear_rows`] on `Autodiff<B>`: the inner backend's
/// Linear, recorded as one node.
pub(crate) fn tracked_linear_rows<B: LstmKernel, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    bias: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    let nodes = [&x, &weight, &bias].map(|t| t.node.clone());
    let out = B::linear(
        x.primitive.clone(),
        weight.primitive.clone(),
        Some(bias.primitive),
    );
    match LinearRowsBackward
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, weight.primitive), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::nn::LinearConfig;
    use burn::tensor::Distribution;

    type A = Autodiff<NdArray>;

    /// The output and the gradients of x, W and b through our operation
    /// equal Burn's `Linear` module's bit for bit, with row and column
    /// counts that are not multiples of the transpose's block.
    #[test]
    fn output_and_gradients_equal_burns_linear() {
        let device = Default::default();
        let normal = Distribution::Normal(0.0, 1.0);
        let mut layer = LinearConfig::new(45, 3).init::<A>(&device);
        layer.weight = burn::module::Param::from_tensor(Tensor::random([45, 3], normal, &device));
        layer.bias = Some(burn::module::Param::from_tensor(Tensor::random(
            [3],
            normal,
            &device,
        )));
        let x = Tensor::<A, 2>::random([77, 45], normal, &device);
        let loss_weights = Tensor::<A, 2>::random([77, 3], normal, &device);
        let run = |ours: bool| {
            let x = x.clone().detach().require_grad();
            let y = if ours {
                linear_rows(&layer, x.clone())
            } else {
                layer.forward(x.clone())
            };
            let grads = (y.clone() * loss_weights.clone()).sum().backward();
            let bits = |values: Vec<f32>| values.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            let values = |t: burn::tensor::TensorData| t.iter::<f32>().collect::<Vec<_>>();
            [
                values(y.into_data()),
                values(x.grad(&grads).unwrap().into_data()),
                values(layer.weight.val().grad(&grads).unwrap().into_data()),
                values(
                    layer
                        .bias
                        .as_ref()
                        .unwrap()
                        .val()
                        .grad(&grads)
                        .unwrap()
                        .into_data(),
                ),
            ]
            .map(bits)
        };
        let (ours, burns) = (run(true), run(false));
        for (k, name) in ["output", "dx", "dW", "db"].iter().enumerate() {
            assert_eq!(ours[k], burns[k], "{name} differs");
            assert!(
                ours[k].iter().any(|&b| f32::from_bits(b) != 0.0),
                "{name} is all zero"
            );
        }
    }
}
