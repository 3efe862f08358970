//! Transposes by a blocked loop, and the weight gradient of a Linear over
//! rows with x transposed by it (see [`crate::linear_op`]).

use super::host::CpuBackend;
use burn::tensor::TensorMetadata;
use burn::tensor::ops::FloatTensor;

/// Tiles of 16 × 16 values: a tile is read row by row into a local array
/// (1 KiB) and written out column by column, 64 contiguous bytes at a time;
/// 2.5× faster than a 32 × 32 loop that indexes both buffers directly
/// (0.58 against 1.45 ms for the language model's 512 × 2048 U).
const TILE: usize = 16;

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
    transpose_into(&x, n, d, &mut transposed);
    B::float_matmul(B::from_vec(transposed, [d, n].into(), &device), grad)
}

/// Writes the transpose of the row-major `rows × cols` `matrix` into `out`
/// (row-major `cols × rows`), tile by tile; every element of `out` is written.
pub(crate) fn transpose_into(matrix: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    assert_eq!(matrix.len(), rows * cols);
    assert_eq!(out.len(), rows * cols);
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            if r0 + TILE <= rows && c0 + TILE <= cols {
                let mut tile = [[0.0f32; TILE]; TILE];
                for (i, row) in tile.iter_mut().enumerate() {
                    let at = (r0 + i) * cols + c0;
                    row.copy_from_slice(&matrix[at..at + TILE]);
                }
                for j in 0..TILE {
                    let at = (c0 + j) * rows + r0;
                    for (i, value) in out[at..at + TILE].iter_mut().enumerate() {
                        *value = tile[i][j];
                    }
                }
            } else {
                // A tile cut by the matrix's edge.
                for r in r0..(r0 + TILE).min(rows) {
                    for c in c0..(c0 + TILE).min(cols) {
                        out[c * rows + r] = matrix[r * cols + c];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole tiles and tiles cut by either edge land where a transpose puts
    /// them.
    #[test]
    fn every_element_lands_at_its_transposed_place() {
        for (rows, cols) in [(32, 48), (37, 21), (5, 3), (16, 1), (1, 40)] {
            let matrix: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut out = vec![f32::NAN; rows * cols];
            transpose_into(&matrix, rows, cols, &mut out);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        out[c * rows + r],
                        matrix[r * cols + c],
                        "{rows}×{cols} at ({r}, {c})"
                    );
                }
            }
        }
    }
}
