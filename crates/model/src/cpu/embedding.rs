//! The gradient of an embedding table on plain memory (see
//! [`crate::embedding_op`]).

use super::host::CpuBackend;
use burn::prelude::{Int, Tensor};
use burn::tensor::TensorMetadata;
use burn::tensor::ops::{FloatTensor, IntTensor};

/// The table's gradient `[vocab, D]` from the lookup's `grad` `[B, T, D]`
/// at `ids` `[B, T]`: each position's row added into its id's row, in the
/// order of the positions — the sums Burn's `select_add` makes — into a
/// table allocated zeroed rather than filled element by element.
pub(crate) fn embedding_grad<B: CpuBackend>(
    vocab: usize,
    grad: FloatTensor<B>,
    ids: IntTensor<B>,
) -> FloatTensor<B> {
    let device = B::float_device(&grad);
    let d = grad.shape().dims::<3>()[2];
    let grad = B::into_vec(grad);
    let ids = Tensor::<B, 2, Int>::from_primitive(ids).into_data();
    let mut table = vec![0.0f32; vocab * d];
    for (row, id) in grad.chunks_exact(d).zip(ids.iter::<i64>()) {
        // The forward lookup has read row `id`, so it is in range.
        let target = &mut table[id as usize * d..][..d];
        for (t, g) in target.iter_mut().zip(row) {
            *t += g;
        }
    }
    B::from_vec(table, [vocab, d].into(), &device)
}
