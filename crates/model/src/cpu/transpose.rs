//! The weight gradient of a Linear over rows with x transposed by a blocked
//! loop (see [`crate::linear_op`]).

use super::host::CpuBackend;
use burn::tensor::TensorMetadata;
use burn::tensor::ops::FloatTensor;

/// Tiles of 32 × 32 values: a tile's rows and columns (4 KiB each way)
/// stay in L1 while it is copied.
const TILE: usize = 32;

/// xᵀ g for x `[N, D]` and g `[N, O]`: `[D, O]`. xᵀ is written to a new
/// row-major buffer tile by tile, then multiplied by the backend's matmul,
/// which gets the same standard-layout matrix Burn's formula gives it.
pub(crate) fn linear_weight_grad<B: CpuBackend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let device = B::float_device(&x);
    let [n, d] = x.shape().dims();
    let x = B::to_vec(&x);
    let mut transposed = vec![0.0f32; n * d];
    for r0 in (0..n).step_by(TILE) {
        for c0 in (0..d).step_by(TILE) {
            for r in r0..(r0 + TILE).min(n) {
                for c in c0..(c0 + TILE).min(d) {
                    transposed[c * n + r] = x[r * d + c];
                }
            }
        }
    }
    B::float_matmul(B::from_vec(transposed, [d, n].into(), &device), grad)
}
