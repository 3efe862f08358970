//! Matrix products on plain buffers with strides: gemm's kernels (AVX-512
//! or AVX2, picked when it runs) for anything large, and a few-rows path
//! for a batch of one, where gemm's packing costs more than the product.

use super::simd::best_instructions;
use gemm::Parallelism;

/// Problems at least this large (multiply-adds) are split across threads;
/// below it a matmul is over before the pool would have woken up.
const PARALLEL_MATMUL: usize = 1 << 20;
/// Products with at most this many rows skip gemm (see `small_matmul`).
pub(crate) const SMALL_BATCH: usize = 4;

best_instructions!(fn small_matmul_best = small_matmul(
    dst: &mut [f32],
    dst_row_stride: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
) -> bool);

/// A matrix inside a buffer: element (r, c) is
/// `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows × cols` matrix.
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    pub(crate) fn transposed(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// One past the largest index the view reads.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
    }
}

/// `dst (+)= lhs × rhs`, where `dst` is row-major with row stride
/// `dst_row_stride`; adds to what `dst` holds when `accumulate`. Large
/// products use the thread pool.
pub(crate) fn matmul(
    dst: &mut [f32],
    dst_row_stride: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
) {
    let how = How::for_rows(lhs.rows, true);
    matmul_with(dst, dst_row_stride, lhs, rhs, accumulate, how);
}

/// How [`matmul_with`] runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct How {
    /// Large products may use the thread pool (else the calling thread only,
    /// for code that already runs one task per thread).
    pub parallel: bool,
    /// The few-rows path instead of gemm (where the layout allows). Rows
    /// get the same bits from either kernel whatever their number, but not
    /// from one kernel and the other: code that must match another run
    /// row for row chooses as that run did.
    pub few_rows: bool,
}

impl How {
    /// What [`matmul`] would choose for `rows` rows, the thread pool allowed
    /// when `parallel`: what a group of rows keeps while some of its rows end,
    /// so that each row gets the bits of the run without groups.
    pub(crate) fn for_rows(rows: usize, parallel: bool) -> Self {
        How {
            parallel,
            few_rows: rows <= SMALL_BATCH,
        }
    }
}

/// [`matmul`], choosing the threads and the kernel.
pub(crate) fn matmul_with(
    dst: &mut [f32],
    dst_row_stride: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
    how: How,
) {
    let parallel = how.parallel;
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul: inner dimensions differ");
    let dst_view = View {
        data: dst,
        rows: m,
        cols: n,
        row_stride: dst_row_stride,
        col_stride: 1,
    };
    assert!(dst_view.extent() <= dst.len(), "matmul: dst out of bounds");
    assert!(lhs.extent() <= lhs.data.len(), "matmul: lhs out of bounds");
    assert!(rhs.extent() <= rhs.data.len(), "matmul: rhs out of bounds");
    if how.few_rows && lhs.col_stride == 1 {
        let done = small_matmul_best(dst, dst_row_stride, lhs, rhs, accumulate);
        if done {
            return;
        }
    }
    let parallelism = if parallel && m * n * k >= PARALLEL_MATMUL {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every element gemm reads or writes
    // inside its slice, and `dst` is borrowed mutably, so it aliases neither
    // input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `matmul` for a few rows (a batch of one at inference), where gemm's
/// packing costs more than the product: each row of `dst` is a sum of rows of
/// `rhs` (row-major `rhs`) or a set of dot products (transposed `rhs`).
/// Returns false, doing nothing, for other layouts.
#[inline(always)]
fn small_matmul(
    dst: &mut [f32],
    dst_row_stride: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
) -> bool {
    let (k, n) = (rhs.rows, rhs.cols);
    if rhs.col_stride != 1 && rhs.row_stride != 1 {
        return false;
    }
    for r in 0..lhs.rows {
        let a = &lhs.data[r * lhs.row_stride..][..k];
        let out = &mut dst[r * dst_row_stride..][..n];
        if !accumulate {
            out.fill(0.0);
        }
        if rhs.col_stride == 1 {
            for (kk, &a_k) in a.iter().enumerate() {
                let b = &rhs.data[kk * rhs.row_stride..][..n];
                out.iter_mut().zip(b).for_each(|(o, b)| *o += a_k * b);
            }
        } else {
            for (j, o) in out.iter_mut().enumerate() {
                *o += dot(a, &rhs.data[j * rhs.col_stride..][..k]);
            }
        }
    }
    true
}

/// Σ aᵢ bᵢ, in 16 running sums so that it vectorizes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 16];
    let (a_chunks, b_chunks) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for l in 0..16 {
            sums[l] += x[l] * y[l];
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_follows_the_strides() {
        // lhs 2×3, rhs given transposed (3×2 read from a 2×3 buffer).
        let lhs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let rhs_t = [1.0, 0.0, -1.0, 2.0, 1.0, 0.0];
        let mut dst = [10.0, 20.0, 30.0, 40.0];
        matmul(
            &mut dst,
            2,
            View::rows(&lhs, 2, 3),
            View::rows(&rhs_t, 2, 3).transposed(),
            true,
        );
        // [1 2 3; 4 5 6] × [1 2; 0 1; -1 0] = [-2 4; -2 13]
        assert_eq!(dst, [8.0, 24.0, 28.0, 53.0]);
    }

    /// gemm and the few-rows path give the same products, for row-major and
    /// transposed right-hand sides, accumulating or not.
    #[test]
    fn the_few_rows_path_equals_gemm() {
        let (m, k, n) = (3, 37, 21);
        let value = |i: usize| ((i * 7919) % 13) as f32 / 13.0 - 0.5;
        let lhs: Vec<f32> = (0..m * k).map(value).collect();
        let rhs: Vec<f32> = (0..k * n).map(|i| value(i + 5)).collect();
        for transposed in [false, true] {
            let rhs_view = if transposed {
                View::rows(&rhs, n, k).transposed()
            } else {
                View::rows(&rhs, k, n)
            };
            for accumulate in [false, true] {
                let mut by_gemm = vec![1.0; m * n];
                let mut small = by_gemm.clone();
                // Straight to gemm, as `matmul` does for larger batches.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        by_gemm.as_mut_ptr(),
                        1,
                        n as isize,
                        accumulate,
                        lhs.as_ptr(),
                        1,
                        k as isize,
                        rhs.as_ptr(),
                        rhs_view.col_stride as isize,
                        rhs_view.row_stride as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                assert!(small_matmul(
                    &mut small,
                    n,
                    View::rows(&lhs, m, k),
                    rhs_view,
                    accumulate
                ));
                let diff = by_gemm
                    .iter()
                    .zip(&small)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(
                    diff < 1e-5,
                    "transposed {transposed}, accumulate {accumulate}: {diff}"
                );
            }
        }
    }
}
