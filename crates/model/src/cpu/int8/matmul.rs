//! The int8 matrix product: f32 activations quantized per row to 8 bits,
//! int8 weights with one scale per output column, products summed exactly
//! in 32-bit integers, then scaled back to f32.
//!
//! ```text
//! x[m, :] ≈ s_m · (a[m, :] − 128)    a: u8, one scale s_m per row (its max |x| / 127)
//! w[:, n] ≈ t_n · q[:, n]            q: i8 in −127..=127, one scale t_n per column
//! (x w)[m, n] ≈ s_m t_n · (Σ_k a[m, k] q[k, n] − 128 Σ_k q[k, n])
//! ```
//!
//! The activations are stored offset by 128 as unsigned bytes because the
//! instruction that does the work, AVX-512 VNNI's `vpdpbusd`, multiplies
//! unsigned bytes by signed ones: four products summed into each 32-bit lane,
//! 64 multiply-adds per instruction (four times an f32 FMA's 16). The
//! column sums Σ_k q[k, n] take the offset back out.
//!
//! The weights are packed once for that instruction: panels of 16 columns,
//! and within a panel, for each group of four rows k, the 16 columns' four
//! bytes side by side (one 64-byte vector). Without VNNI, a portable loop over
//! the same layout (compiled for AVX-512 or AVX2 when the CPU has them) gives
//! the same integers, so every CPU computes the same result.

use crate::cpu::simd::best_instructions;

/// Columns per panel: one 512-bit vector of 32-bit sums.
const PANEL: usize = 16;

/// A weight matrix `[K, N]` as int8, packed for the kernel.
#[derive(Debug, Clone)]
pub struct Int8Matrix {
    k: usize,
    n: usize,
    /// K rounded up to a multiple of 4, divided by 4.
    k4: usize,
    /// `[N / 16 rounded up][k4][16][4]`; the padding is zero.
    packed: Vec<i8>,
    /// One scale per column (padded to whole panels with 0). `[panels · 16]`
    scales: Vec<f32>,
    /// 128 · Σ_k q[k, n] (padded like `scales`).
    offsets: Vec<i32>,
}

impl Int8Matrix {
    /// Quantizes `values` `[K, N]` (row-major) symmetrically per column:
    /// q = round(w / t) with t = max |w[:, n]| / 127, so the largest weight
    /// of each column is exactly representable. A zero column gets t = 0.
    pub(crate) fn quantize(values: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(values.len(), k * n, "a [{k}, {n}] matrix");
        let k4 = k.div_ceil(4);
        let panels = n.div_ceil(PANEL);
        let mut scales = vec![0.0f32; panels * PANEL];
        for row in values.chunks(n) {
            for (scale, &w) in scales.iter_mut().zip(row) {
                *scale = scale.max(w.abs());
            }
        }
        scales.iter_mut().for_each(|s| *s /= 127.0);
        let mut packed = vec![0i8; panels * k4 * PANEL * 4];
        let mut offsets = vec![0i32; panels * PANEL];
        for (r, row) in values.chunks(n).enumerate() {
            for (col, &w) in row.iter().enumerate() {
                let scale = scales[col];
                let q = if scale > 0.0 {
                    (w / scale).round().clamp(-127.0, 127.0) as i8
                } else {
                    0
                };
                let (panel, lane) = (col / PANEL, col % PANEL);
                packed[((panel * k4 + r / 4) * PANEL + lane) * 4 + r % 4] = q;
                offsets[col] += 128 * q as i32;
            }
        }
        Self {
            k,
            n,
            k4,
            packed,
            scales,
            offsets,
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.k
    }

    /// The matrix these codes stand for, `[K, N]` row-major (for tests and
    /// for measuring what quantization changed).
    #[cfg(test)]
    pub(crate) fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.k * self.n];
        for r in 0..self.k {
            for col in 0..self.n {
                let (panel, lane) = (col / PANEL, col % PANEL);
                let q = self.packed[((panel * self.k4 + r / 4) * PANEL + lane) * 4 + r % 4];
                out[r * self.n + col] = q as f32 * self.scales[col];
            }
        }
        out
    }
}

/// Rows of f32 activations quantized to u8, one scale per row; reused from
/// step to step without reallocating.
#[derive(Debug, Clone, Default)]
pub struct Int8Rows {
    m: usize,
    /// Bytes per row: K rounded up to a multiple of 4.
    stride: usize,
    /// `[M, stride]`: round(x / s) + 128; the padding is 128 (zero).
    codes: Vec<u8>,
    /// s = max |x[m, :]| / 127 per row (0 for a zero row). `[M]`
    scales: Vec<f32>,
}

impl Int8Rows {
    /// Quantizes `values` `[M, K]` (row-major), replacing what was held.
    pub(crate) fn quantize(&mut self, values: &[f32], m: usize, k: usize) {
        assert_eq!(values.len(), m * k, "[{m}, {k}] activations");
        self.m = m;
        self.stride = k.div_ceil(4) * 4;
        self.codes.clear();
        self.codes.resize(m * self.stride, 128);
        self.scales.clear();
        self.scales.resize(m, 0.0);
        quantize_rows_best(values, k, self.stride, &mut self.codes, &mut self.scales);
    }

    /// The codes as signed int8 `[M, K]` (the offset of 128 taken back out,
    /// the padding dropped) and the row scales: a table read a row at a
    /// time, like the embedding.
    pub(crate) fn into_signed(self, k: usize) -> (Vec<i8>, Vec<f32>) {
        let codes = self
            .codes
            .chunks(self.stride.max(1))
            .flat_map(|row| row[..k].iter().map(|&c| (c as i16 - 128) as i8))
            .collect();
        (codes, self.scales)
    }
}

best_instructions!(fn quantize_rows_best = quantize_rows(
    values: &[f32],
    k: usize,
    stride: usize,
    codes: &mut [u8],
    scales: &mut [f32],
));

#[inline(always)]
fn quantize_rows(values: &[f32], k: usize, stride: usize, codes: &mut [u8], scales: &mut [f32]) {
    for ((row, out), scale) in values
        .chunks(k)
        .zip(codes.chunks_mut(stride))
        .zip(scales.iter_mut())
    {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        *scale = max / 127.0;
        if max > 0.0 {
            let inverse = 127.0 / max;
            for (code, &v) in out.iter_mut().zip(row) {
                // Rounded half away from zero, as `f32::round`, written with
                // floor and copysign so that the loop vectorizes (`round`
                // and the saturating `as` casts kept it scalar).
                let y = v * inverse;
                let rounded = (y.abs() + 0.5).floor().copysign(y) + 128.0;
                // SAFETY: |v · inverse| ≤ 127 (max is the row's largest
                // |v|), so `rounded` is a whole number in 1..=255, which i32
                // represents.
                *code = unsafe { rounded.to_int_unchecked::<i32>() } as u8;
            }
        }
    }
}

/// `out` `[M, N]` = (or += when `accumulate`) `rows` `[M, K]` × `matrix`
/// `[K, N]`, dequantized, on the calling thread.
pub(crate) fn matmul(rows: &Int8Rows, matrix: &Int8Matrix, out: &mut [f32], accumulate: bool) {
    let (m, n) = (rows.m, matrix.n);
    assert_eq!(rows.stride, matrix.k4 * 4, "the inner dimensions differ");
    assert_eq!(out.len(), m * n, "the output is [{m}, {n}]");
    if m == 0 || n == 0 {
        return;
    }
    block(
        &rows.codes,
        &rows.scales,
        rows.stride,
        matrix,
        out,
        accumulate,
    );
}

/// The VNNI kernel when the CPU has it, else the
/// portable loop.
fn block(
    codes: &[u8],
    scales: &[f32],
    stride: usize,
    matrix: &Int8Matrix,
    out: &mut [f32],
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if vnni::available() {
        // SAFETY: the CPU has the instructions the kernel is compiled for.
        unsafe { vnni::block(codes, scales, stride, matrix, out, accumulate) };
        return;
    }
    portable_block_best(codes, scales, stride, matrix, out, accumulate);
}

best_instructions!(fn portable_block_best = portable_block(
    codes: &[u8],
    scales: &[f32],
    stride: usize,
    matrix: &Int8Matrix,
    out: &mut [f32],
    accumulate: bool,
));

/// The kernel without VNNI: the same sums, one row and one panel at a time.
#[inline(always)]
fn portable_block(
    codes: &[u8],
    scales: &[f32],
    stride: usize,
    matrix: &Int8Matrix,
    out: &mut [f32],
    accumulate: bool,
) {
    let n = matrix.n;
    let panel_len = matrix.k4 * PANEL * 4;
    for ((a, &s), out) in codes.chunks(stride).zip(scales).zip(out.chunks_mut(n)) {
        for (panel, w) in matrix.packed.chunks(panel_len).enumerate() {
            let mut sums = [0i32; PANEL];
            for (a4, w4) in a.chunks(4).zip(w.chunks(PANEL * 4)) {
                for (lane, sum) in sums.iter_mut().enumerate() {
                    for i in 0..4 {
                        *sum += a4[i] as i32 * w4[lane * 4 + i] as i32;
                    }
                }
            }
            let first = panel * PANEL;
            for (lane, &sum) in sums.iter().enumerate().take(n - first.min(n)) {
                let col = first + lane;
                let value = s * matrix.scales[col] * (sum - matrix.offsets[col]) as f32;
                let o = &mut out[col];
                *o = if accumulate { *o + value } else { value };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    //! The kernel on AVX-512 VNNI: a tile of up to 4 rows × 4 panels
    //! (64 columns) in 16 vector accumulators, one `vpdpbusd` per row,
    //! panel and group of four k.

    use super::{Int8Matrix, PANEL};
    use std::arch::x86_64::*;

    pub(super) fn available() -> bool {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
        })
    }

    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI ([`available`]).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn block(
        codes: &[u8],
        scales: &[f32],
        stride: usize,
        matrix: &Int8Matrix,
        out: &mut [f32],
        accumulate: bool,
    ) {
        let m = scales.len();
        let panels = matrix.n.div_ceil(PANEL);
        let mut row = 0;
        while row < m {
            let rows = (m - row).min(4);
            let mut panel = 0;
            while panel < panels {
                let count = (panels - panel).min(4);
                let tile = Tile {
                    codes: &codes[row * stride..],
                    scales: &scales[row..],
                    stride,
                    matrix,
                    panel,
                    out_row: row,
                    accumulate,
                };
                // SAFETY: the caller's CPU has the instructions; `tile` is
                // within bounds (rows and panels counted above).
                unsafe {
                    match (rows, count) {
                        (4, 4) => tile.run::<4, 4>(out),
                        (4, 3) => tile.run::<4, 3>(out),
                        (4, 2) => tile.run::<4, 2>(out),
                        (4, _) => tile.run::<4, 1>(out),
                        (3, 4) => tile.run::<3, 4>(out),
                        (3, 3) => tile.run::<3, 3>(out),
                        (3, 2) => tile.run::<3, 2>(out),
                        (3, _) => tile.run::<3, 1>(out),
                        (2, 4) => tile.run::<2, 4>(out),
                        (2, 3) => tile.run::<2, 3>(out),
                        (2, 2) => tile.run::<2, 2>(out),
                        (2, _) => tile.run::<2, 1>(out),
                        (_, 4) => tile.run::<1, 4>(out),
                        (_, 3) => tile.run::<1, 3>(out),
                        (_, 2) => tile.run::<1, 2>(out),
                        (_, _) => tile.run::<1, 1>(out),
                    }
                }
                panel += count;
            }
            row += rows;
        }
    }

    struct Tile<'a> {
        /// From the tile's first row.
        codes: &'a [u8],
        /// From the tile's first row.
        scales: &'a [f32],
        stride: usize,
        matrix: &'a Int8Matrix,
        panel: usize,
        out_row: usize,
        accumulate: bool,
    }

    impl Tile<'_> {
        /// # Safety
        /// AVX-512 F, BW and VNNI; `R` rows and `P` panels from the tile's
        /// origin exist.
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        #[inline]
        unsafe fn run<const R: usize, const P: usize>(&self, out: &mut [f32]) {
            let matrix = self.matrix;
            let panel_len = matrix.k4 * PANEL * 4;
            assert!(self.codes.len() >= (R - 1) * self.stride + matrix.k4 * 4);
            assert!(matrix.packed.len() >= (self.panel + P) * panel_len);
            let mut sums = [[_mm512_setzero_si512(); P]; R];
            let weights = matrix.packed[self.panel * panel_len..].as_ptr();
            let codes = self.codes.as_ptr();
            for k4 in 0..matrix.k4 {
                let mut w = [_mm512_setzero_si512(); P];
                for (p, w) in w.iter_mut().enumerate() {
                    // SAFETY: within `packed` (asserted above).
                    *w = unsafe {
                        _mm512_loadu_si512(weights.add(p * panel_len + k4 * 64) as *const _)
                    };
                }
                for (r, sums) in sums.iter_mut().enumerate() {
                    // SAFETY: within `codes` (asserted above); unaligned read.
                    let a = unsafe {
                        (codes.add(r * self.stride + k4 * 4) as *const i32).read_unaligned()
                    };
                    let a = _mm512_set1_epi32(a);
                    for p in 0..P {
                        sums[p] = _mm512_dpbusd_epi32(sums[p], a, w[p]);
                    }
                }
            }
            let n = matrix.n;
            for (r, sums) in sums.iter().enumerate() {
                let s = _mm512_set1_ps(self.scales[r]);
                let out_row = &mut out[(self.out_row + r) * n..(self.out_row + r + 1) * n];
                for (p, &sum) in sums.iter().enumerate() {
                    let col = (self.panel + p) * PANEL;
                    let valid = (n - col).min(PANEL);
                    let mask: __mmask16 = if valid == PANEL {
                        !0
                    } else {
                        (1u16 << valid) - 1
                    };
                    // SAFETY: `scales` and `offsets` hold whole panels.
                    let (t, offset) = unsafe {
                        (
                            _mm512_loadu_ps(matrix.scales.as_ptr().add(col)),
                            _mm512_loadu_si512(matrix.offsets.as_ptr().add(col) as *const _),
                        )
                    };
                    let value = _mm512_mul_ps(
                        _mm512_mul_ps(s, t),
                        _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, offset)),
                    );
                    let dst = out_row[col..].as_mut_ptr();
                    // SAFETY: `mask` keeps the lanes inside the row.
                    unsafe {
                        let value = if self.accumulate {
                            _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, dst))
                        } else {
                            value
                        };
                        _mm512_mask_storeu_ps(dst, mask, value);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed * 2_654_435_761 + 1;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }

    fn f32_matmul(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| x[i * k + l] * w[l * n + j]).sum();
            }
        }
        out
    }

    /// Odd sizes (K not a multiple of 4, N not of 16, rows not of 4) and
    /// the LSTM's: the product is that of the
    /// dequantized operands to within float rounding, and within a few
    /// quantization steps of the f32 product.
    #[test]
    fn the_int8_product_is_the_product_of_the_quantized_operands() {
        for (m, k, n) in [
            (1, 3, 5),
            (3, 7, 17),
            (5, 128, 64),
            (9, 130, 70),
            (300, 128, 512),
        ] {
            let x = random(m * k, 1, 1.0);
            let w = random(k * n, 2, 0.2);
            let matrix = Int8Matrix::quantize(&w, k, n);
            let mut rows = Int8Rows::default();
            rows.quantize(&x, m, k);
            let mut out = vec![0.0; m * n];
            matmul(&rows, &matrix, &mut out, false);
            // The dequantized activations.
            let xq: Vec<f32> = (0..m)
                .flat_map(|i| {
                    let (codes, s) = (&rows.codes[i * rows.stride..], rows.scales[i]);
                    (0..k).map(move |l| (codes[l] as f32 - 128.0) * s)
                })
                .collect();
            let exact = f32_matmul(&xq, &matrix.dequantize(), m, k, n);
            let float = f32_matmul(&x, &w, m, k, n);
            let mut worst = (0.0f32, 0.0f32);
            for ((o, e), f) in out.iter().zip(&exact).zip(&float) {
                worst.0 = worst.0.max((o - e).abs());
                worst.1 = worst.1.max((o - f).abs());
            }
            // Each term's error is at most half a step of x times |w| plus
            // half a step of w times |x|: (0.5/127)(0.2 + 1) · k in the worst
            // case; random signs make it about √k of that.
            let bound = 1.2 * 0.5 / 127.0 * (k as f32).sqrt() * 3.0;
            println!(
                "{m}×{k}×{n}: vs dequantized {}, vs f32 {} (bound {bound})",
                worst.0, worst.1
            );
            assert!(worst.0 < 1e-4 * k as f32, "{m}×{k}×{n}: {}", worst.0);
            assert!(worst.1 < bound, "{m}×{k}×{n}: {}", worst.1);
            assert!(worst.1 > 0.0, "quantization should change something");
        }
    }

    /// The VNNI kernel and the portable loop give the same bits, and
    /// `accumulate` adds to what the output held.
    #[test]
    fn every_kernel_gives_the_same_sums() {
        let (m, k, n) = (7, 37, 50);
        let x = random(m * k, 3, 2.0);
        let w = random(k * n, 4, 0.5);
        let matrix = Int8Matrix::quantize(&w, k, n);
        let mut rows = Int8Rows::default();
        rows.quantize(&x, m, k);
        let start = random(m * n, 5, 1.0);
        let mut portable = start.clone();
        portable_block(
            &rows.codes,
            &rows.scales,
            rows.stride,
            &matrix,
            &mut portable,
            true,
        );
        let mut best = start.clone();
        matmul(&rows, &matrix, &mut best, true);
        assert_eq!(portable, best);
        let mut fresh = vec![f32::NAN; m * n];
        matmul(&rows, &matrix, &mut fresh, false);
        for ((b, f), s) in best.iter().zip(&fresh).zip(&start) {
            assert!((b - (f + s)).abs() < 1e-5, "{b} vs {f} + {s}");
        }
    }

    /// A zero row of activations and a zero column of weights give zeros,
    /// not NaN (their scales are 0).
    #[test]
    fn zero_rows_and_columns_give_zero() {
        let (m, k, n) = (2, 8, 3);
        let mut x = random(m * k, 6, 1.0);
        x[..k].fill(0.0);
        let mut w = random(k * n, 7, 1.0);
        for r in 0..k {
            w[r * n + 1] = 0.0;
        }
        let matrix = Int8Matrix::quantize(&w, k, n);
        let mut rows = Int8Rows::default();
        rows.quantize(&x, m, k);
        let mut out = vec![f32::NAN; m * n];
        matmul(&rows, &matrix, &mut out, false);
        assert_eq!(&out[..n], &[0.0; 3]);
        assert_eq!(out[n + 1], 0.0);
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
