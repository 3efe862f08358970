//! How the host classifier holds its weights and multiplies by them: the
//! one thing its two versions differ in.
//!
//! - [`F32`]: the model's own values; the products through the f32 kernels
//!   of `cpu::matmul` (gemm, or the few-rows path for a handful of rows).
//! - [`Int8`]: 8-bit codes with one scale per output column (per row for
//!   the embedding), the activations quantized per row at every product,
//!   summed in 32-bit integers (`cpu::int8`).

use crate::cpu::int8::{Int8Matrix, Int8Rows, matmul as int8_matmul};
use crate::cpu::matmul::{How, View, matmul_with};
use std::fmt::Debug;

/// A weight format of the host classifier.
pub trait Format: Debug + Clone + Send + Sync + 'static {
    /// A weight matrix `[K, N]`, prepared once.
    type Matrix: Debug + Clone + Send + Sync;
    /// The embedding table `[V, E]`.
    type Table: Debug + Clone + Send + Sync;
    /// What a product prepares its left operand in, reused from step to step.
    type Scratch: Default;

    /// `values` `[K, N]` row-major.
    fn matrix(values: &[f32], k: usize, n: usize) -> Self::Matrix;
    /// K.
    fn matrix_rows(matrix: &Self::Matrix) -> usize;
    /// `out` `[M, N]` += `x` `[M, K]` × `matrix`, on the calling thread.
    fn multiply_add(
        x: &[f32],
        m: usize,
        matrix: &Self::Matrix,
        out: &mut [f32],
        scratch: &mut Self::Scratch,
    );

    /// `values` `[V, E]` row-major.
    fn table(values: &[f32], vocab: usize, d_embed: usize) -> Self::Table;
    /// V.
    fn table_rows(table: &Self::Table) -> usize;
    /// Row `id` of the table into `out` `[E]`.
    fn read_row(table: &Self::Table, id: usize, out: &mut [f32]);
}

/// The weights as f32: the model's own values.
#[derive(Debug, Clone, Copy)]
pub struct F32;

/// A row-major f32 matrix.
#[derive(Debug, Clone)]
pub struct F32Matrix {
    values: Vec<f32>,
    rows: usize,
    cols: usize,
}

impl Format for F32 {
    type Matrix = F32Matrix;
    type Table = F32Matrix;
    type Scratch = ();

    fn matrix(values: &[f32], k: usize, n: usize) -> F32Matrix {
        assert_eq!(values.len(), k * n, "a [{k}, {n}] matrix");
        F32Matrix {
            values: values.to_vec(),
            rows: k,
            cols: n,
        }
    }

    fn matrix_rows(matrix: &F32Matrix) -> usize {
        matrix.rows
    }

    fn multiply_add(x: &[f32], m: usize, matrix: &F32Matrix, out: &mut [f32], _: &mut ()) {
        let (k, n) = (matrix.rows, matrix.cols);
        assert_eq!(out.len(), m * n, "the output is [{m}, {n}]");
        matmul_with(
            out,
            n,
            View::rows(&x[..m * k], m, k),
            View::rows(&matrix.values, k, n),
            true,
            How::for_rows(m, false),
        );
    }

    fn table(values: &[f32], vocab: usize, d_embed: usize) -> F32Matrix {
        Self::matrix(values, vocab, d_embed)
    }

    fn table_rows(table: &F32Matrix) -> usize {
        table.rows
    }

    fn read_row(table: &F32Matrix, id: usize, out: &mut [f32]) {
        out.copy_from_slice(&table.values[id * table.cols..(id + 1) * table.cols]);
    }
}

/// The weights as int8 (see `cpu::int8`).
#[derive(Debug, Clone, Copy)]
pub struct Int8;

/// An embedding table as int8 rows, one scale per row.
#[derive(Debug, Clone)]
pub struct Int8Table {
    /// `[V, E]`
    codes: Vec<i8>,
    /// `[V]`
    scales: Vec<f32>,
    d_embed: usize,
}

impl Format for Int8 {
    type Matrix = Int8Matrix;
    type Table = Int8Table;
    type Scratch = Int8Rows;

    fn matrix(values: &[f32], k: usize, n: usize) -> Int8Matrix {
        Int8Matrix::quantize(values, k, n)
    }

    fn matrix_rows(matrix: &Int8Matrix) -> usize {
        matrix.rows()
    }

    fn multiply_add(
        x: &[f32],
        m: usize,
        matrix: &Int8Matrix,
        out: &mut [f32],
        scratch: &mut Int8Rows,
    ) {
        let k = matrix.rows();
        scratch.quantize(&x[..m * k], m, k);
        int8_matmul(scratch, matrix, out, true);
    }

    fn table(values: &[f32], vocab: usize, d_embed: usize) -> Int8Table {
        let mut rows = Int8Rows::default();
        rows.quantize(values, vocab, d_embed);
        let (codes, scales) = rows.into_signed(d_embed);
        Int8Table {
            codes,
            scales,
            d_embed,
        }
    }

    fn table_rows(table: &Int8Table) -> usize {
        table.scales.len()
    }

    fn read_row(table: &Int8Table, id: usize, out: &mut [f32]) {
        let e = table.d_embed;
        let scale = table.scales[id];
        let codes = &table.codes[id * e..(id + 1) * e];
        for (x, &q) in out.iter_mut().zip(codes) {
            *x = q as f32 * scale;
        }
    }
}
