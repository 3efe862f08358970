//! Tensor helpers the recurrent cells share: the split of a sequence into
//! its time steps, tanh as 2σ(2x) − 1, and a Linear over every position.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

/// Splits `[B, T, D]` into its T time steps `[B, D]`, in order.
///
/// Sliced in blocks of about √T steps, then per step within a block:
/// autodiff's backward of a slice allocates a zero tensor of the whole input,
/// so slicing T steps straight out of `[B, T, D]` costs O(T²) in backward,
/// while two levels cost O(T^1.5).
pub(crate) fn time_steps<B: Backend>(x: Tensor<B, 3>) -> Vec<Tensor<B, 2>> {
    let [batch, seq, d] = x.dims();
    let block = (seq as f64).sqrt().ceil().max(1.0) as usize;
    let mut steps = Vec::with_capacity(seq);
    for start in (0..seq).step_by(block) {
        let end = (start + block).min(seq);
        let chunk = x.clone().slice([0..batch, start..end, 0..d]); // [B, ≤√T, D]
        for t in 0..end - start {
            steps.push(
                chunk
                    .clone()
                    .slice([0..batch, t..t + 1, 0..d])
                    .reshape([batch, d]),
            );
        }
    }
    steps
}

/// tanh(x) computed as 2σ(2x) − 1: the same function, but on the CPU
/// backends `tanh` costs several times `sigmoid`.
pub(crate) fn tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    sigmoid(x * 2.0) * 2.0 - 1.0
}

/// `linear` applied to every position of `[B, T, D]`, as one `[B·T, D]`
/// matmul. Burn's `Linear` on a 3-D input broadcasts the weight into a
/// batched matmul, whose weight gradient is a `[B, D, D_out]` tensor summed
/// over the batch afterwards; flattening first makes the forward one large
/// matmul and the weight gradient another.
pub(crate) fn linear_3d<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch, seq, d] = x.dims();
    let out = linear.forward(x.reshape([batch * seq, d])); // [B·T, D_out]
    let d_out = out.dims()[1];
    out.reshape([batch, seq, d_out])
}
