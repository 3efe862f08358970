//! The embedding lookup as one autodiff operation, so that the CPU backends
//! can build its gradient their own way.
//!
//! Burn's gradient of a lookup (`embedding_backward`) fills a zero table
//! `[V, D]` and adds each looked-up row's gradient into it (`select_add`).
//! On ndarray the zero table alone — 10 MB for the classifier's 20,000 ×
//! 128, written one element at a time and then copied — was a fifth of a
//! training step at batch 32 × 64 (docs/perf/README.md). The CPU backends
//! ([`crate::cpu`]'s `embedding_grad`) allocate the table zeroed and add the
//! rows in the same order, so the gradient is the same to the bit; other
//! backends keep Burn's formula ([`LstmKernel::embedding_grad`]).
//!
//! ```text
//! forward:  y[b, t] = W[ids[b, t]]                       [B, T, D]
//! backward: dW[v] = Σ over (b, t) with ids[b, t] = v of dy[b, t],  in order
//! ```

use crate::LstmBackend;
use crate::lstm::op::LstmKernel;
use crate::lstm::op::float;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::TensorMetadata;
use burn::tensor::ops::{FloatTensor, IntTensor};

/// The rows of `weights` `[V, D]` at `ids` `[B, T]`: `[B, T, D]`.
pub(crate) fn embedding<B: LstmBackend>(
    weights: Tensor<B, 2>,
    ids: Tensor<B, 2, Int>,
) -> Tensor<B, 3> {
    float(B::embedding_lookup(
        weights.into_primitive().tensor(),
        ids.into_primitive(),
    ))
}

#[derive(Debug)]
struct EmbeddingBackward;

impl<B: LstmKernel> Backward<B, 1> for EmbeddingBackward {
    /// The table's row count V and the ids.
    type State = (usize, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (vocab, ids) = ops.state;
        if let [Some(weights)] = &ops.parents {
            grads.register::<B>(weights.id, B::embedding_grad(vocab, grad, ids));
        }
    }
}

/// [`LstmBackend::embedding_lookup`] on `Autodiff<B>`: the inner backend's
/// lookup, recorded as one node.
pub(crate) fn tracked_lookup<B: LstmKernel, C: CheckpointStrategy>(
    weights: FloatTensor<Autodiff<B, C>>,
    ids: IntTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    let vocab = weights.primitive.shape().dims::<2>()[0];
    let tracked = EmbeddingBackward
        .prepare::<C>([weights.node.clone()])
        .compute_bound()
        .stateful();
    let out = B::embedding(weights.primitive, ids.clone());
    match tracked {
        OpsKind::Tracked(prep) => prep.finish((vocab, ids), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// Burn's gradient of a lookup: a zero table `[vocab, D]` with each row of
/// `grad` `[B, T, D]` added at its id. [`LstmKernel::embedding_grad`]'s
/// default.
pub(crate) fn burns_embedding_grad<B: Backend>(
    vocab: usize,
    grad: FloatTensor<B>,
    ids: IntTensor<B>,
) -> FloatTensor<B> {
    let [batch, seq, d] = grad.shape().dims();
    let device = B::float_device(&grad);
    let dtype = grad.dtype();
    let ids = B::int_reshape(ids, Shape::new([batch * seq]));
    let grad = B::float_reshape(grad, Shape::new([batch * seq, d]));
    let zeros = B::float_zeros(Shape::new([vocab, d]), &device, dtype.into());
    B::float_select_add(zeros, 0, ids, grad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::nn::EmbeddingConfig;

    type A = Autodiff<NdArray>;

    /// The lookup and its weight gradient through our operation equal, bit
    /// for bit, Burn's `Embedding` module's, with ids repeated within and
    /// across sequences (rows that sum several gradients) and rows no id
    /// reaches (zero).
    #[test]
    fn lookup_and_gradient_equal_burns_embedding() {
        let device = Default::default();
        let module = EmbeddingConfig::new(50, 8).init::<A>(&device);
        let ids = Tensor::<A, 2, Int>::from_ints([[3, 7, 3, 49, 0], [7, 7, 12, 3, 1]], &device);
        // A loss whose gradient differs at every position.
        let weights_of_loss =
            Tensor::<A, 3>::random([2, 5, 8], burn::tensor::Distribution::Default, &device);
        let run = |ours: bool| {
            let weights = module.weight.val().detach().require_grad();
            let y = if ours {
                embedding(weights.clone(), ids.clone())
            } else {
                burn::tensor::module::embedding(weights.clone(), ids.clone())
            };
            let grads = (y.clone() * weights_of_loss.clone()).sum().backward();
            let grad = weights.grad(&grads).expect("the table has a gradient");
            let bits = |t: Tensor<NdArray, 2>| -> Vec<u32> {
                t.into_data().iter::<f32>().map(f32::to_bits).collect()
            };
            let y = y.inner().reshape([10, 8]);
            (bits(y), bits(grad))
        };
        let (ours, burns) = (run(true), run(false));
        assert_eq!(ours.0, burns.0, "the lookups differ");
        assert_eq!(ours.1, burns.1, "the gradients differ");
        // Row 3 sums three positions' gradients; row 2 is never looked up.
        let row = |k: usize| &ours.1[k * 8..(k + 1) * 8];
        assert!(row(3).iter().all(|&b| f32::from_bits(b) != 0.0));
        assert!(row(2).iter().all(|&b| f32::from_bits(b) == 0.0));
    }
}
