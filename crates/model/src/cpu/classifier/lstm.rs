//! One direction of one LSTM layer for the host classifier: the equations
//! of `crate::lstm` (gate order i, f, g, o), both products, x W and h U,
//! through the weight format's product ([`Format::multiply_add`]).
//!
//! It runs over a batch packed by length, as PyTorch's
//! `pack_padded_sequence` does: the sequences sorted longest first, so that
//! the ones still running at step s are the first n_s rows, and no step
//! computes a padded position. The input projection x W is computed step
//! by step with the recurrent one, so nothing of size T × 4H is allocated.

use super::format::Format;
use crate::cpu::lstm::cell_forward_best;

/// The layer's weights: W `[E, 4H]` and U `[H, 4H]` in the format, b `[4H]`
/// in f32.
#[derive(Debug, Clone)]
pub(crate) struct HostLstm<F: Format> {
    input: F::Matrix,
    recurrent: F::Matrix,
    bias: Vec<f32>,
}

/// The most rows whose input projection is computed in one product (a
/// `[64, 4H]` block is 128 KiB at H = 128: it stays in the core's cache).
const INPUT_BLOCK: usize = 64;

/// A batch packed by length: step s holds `steps[s]` rows (never more than
/// step s − 1), row i of every step being the same sequence.
#[derive(Debug, Clone)]
pub(crate) struct Packed {
    /// Rows at each step, non-increasing.
    pub steps: Vec<usize>,
}

impl<F: Format> HostLstm<F> {
    /// From f32 W `[E, 4H]`, b `[4H]`, U `[H, 4H]` (row-major).
    pub(crate) fn new(input: &[f32], bias: &[f32], recurrent: &[f32], d_input: usize) -> Self {
        let g4 = bias.len();
        assert_eq!(g4 % 4, 0, "4H biases");
        let h = g4 / 4;
        Self {
            input: F::matrix(input, d_input, g4),
            recurrent: F::matrix(recurrent, h, g4),
            bias: bias.to_vec(),
        }
    }

    pub(crate) fn d_hidden(&self) -> usize {
        F::matrix_rows(&self.recurrent)
    }

    pub(crate) fn d_input(&self) -> usize {
        F::matrix_rows(&self.input)
    }

    /// Runs from a zero state over a packed batch: `input(s, i)` is the
    /// input `[E]` of row i at step s, and `emit(s, i, h)` receives its
    /// hidden state `[H]`. One step at a time, on the calling thread: the
    /// classifier runs groups of sequences on several threads instead.
    ///
    /// The input projection b + x W does not wait for the previous step, so
    /// it is computed for several steps at once, up to [`INPUT_BLOCK`] rows:
    /// a batch of one then reads W once per block instead of once per
    /// token. Each row's sums are the same either way in int8; in f32 they
    /// may differ in the last bits (gemm or the few-rows path).
    pub(crate) fn forward<'a>(
        &self,
        packed: &Packed,
        input: impl Fn(usize, usize) -> &'a [f32],
        mut emit: impl FnMut(usize, usize, &[f32]),
    ) {
        let (e, h) = (self.d_input(), self.d_hidden());
        let g4 = 4 * h;
        let steps = &packed.steps;
        let first = steps.first().copied().unwrap_or(0);
        let capacity = first.max(INPUT_BLOCK);
        let mut x = Vec::with_capacity(capacity * e);
        let mut gates = vec![0.0; capacity * g4];
        let mut cells = vec![0.0; first * h];
        let mut hidden = vec![0.0; first * h];
        let mut scratch = vec![0.0; 2 * h];
        let mut product = F::Scratch::default();
        let mut start = 0;
        while start < steps.len() {
            // The block: steps start..end, at least one, at most INPUT_BLOCK
            // rows unless its first step alone has more.
            let (mut end, mut rows) = (start + 1, steps[start]);
            while end < steps.len() && rows + steps[end] <= INPUT_BLOCK {
                rows += steps[end];
                end += 1;
            }
            // b + x W for every row of the block, step after step.
            x.clear();
            for (s, &n) in steps.iter().enumerate().take(end).skip(start) {
                (0..n).for_each(|i| x.extend_from_slice(input(s, i)));
            }
            let block = &mut gates[..rows * g4];
            block
                .chunks_mut(g4)
                .for_each(|row| row.copy_from_slice(&self.bias));
            F::multiply_add(&x, rows, &self.input, block, &mut product);

            let mut at = 0;
            for (s, &n) in steps.iter().enumerate().take(end).skip(start) {
                // + h_{t−1} U, for the n rows still running.
                let gates = &mut block[at * g4..(at + n) * g4];
                at += n;
                if s > 0 {
                    F::multiply_add(&hidden[..n * h], n, &self.recurrent, gates, &mut product);
                }
                let (tanh_cell, out) = scratch.split_at_mut(h);
                let rows = gates
                    .chunks_mut(g4)
                    .zip(cells.chunks_mut(h))
                    .zip(hidden.chunks_mut(h));
                for (i, ((gate, c), hid)) in rows.enumerate() {
                    cell_forward_best(gate, c, hid, tanh_cell, out);
                    emit(s, i, hid);
                }
            }
            start = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::classifier::format::{F32, Int8};
    use crate::cpu::test_data::{random, values};
    use crate::{LstmConfig, LstmState};
    use burn::backend::NdArray;
    use burn::prelude::*;

    /// The largest difference between the layer in format `F` over three
    /// packed sequences and the f32 layer over each sequence alone.
    fn largest_difference<F: Format>() -> f32 {
        let device = Default::default();
        let (e, h) = (24, 20);
        let lstm = LstmConfig::new(e, h).init::<NdArray>(&device);
        let (w, b, u) = lstm.weights();
        let (w, b, u) = (
            w.into_data().to_vec::<f32>().unwrap(),
            b.into_data().to_vec::<f32>().unwrap(),
            u.into_data().to_vec::<f32>().unwrap(),
        );
        let host = HostLstm::<F>::new(&w, &b, &u, e);
        // Three sequences of lengths 5, 3, 2, longest first.
        let lengths = [5, 3, 2];
        let x = values(random([3, 5, e], 1.0));
        let packed = Packed {
            steps: vec![3, 3, 2, 1, 1],
        };
        let mut out = vec![0.0; 3 * 5 * h];
        host.forward(
            &packed,
            |s, seq| &x[(seq * 5 + s) * e..(seq * 5 + s + 1) * e],
            |s, seq, hidden| out[(seq * 5 + s) * h..(seq * 5 + s + 1) * h].copy_from_slice(hidden),
        );
        let mut worst = 0.0f32;
        for (seq, &len) in lengths.iter().enumerate() {
            let alone = Tensor::<NdArray, 3>::from_data(
                TensorData::new(x[seq * 5 * e..(seq * 5 + len) * e].to_vec(), [1, len, e]),
                &device,
            );
            let (reference, _) = lstm.forward_from(alone, None::<LstmState<NdArray>>);
            let reference = reference.into_data().to_vec::<f32>().unwrap();
            for s in 0..len {
                for j in 0..h {
                    let at = (seq * 5 + s) * h + j;
                    worst = worst.max((out[at] - reference[s * h + j]).abs());
                }
            }
        }
        worst
    }

    /// int8: every hidden state within 0.02 of f32's (the states are in
    /// (−1, 1); an int8 step of a row is 1/127 of its largest value).
    #[test]
    fn the_int8_layer_follows_the_f32_layer() {
        let worst = largest_difference::<Int8>();
        println!("largest difference from f32: {worst}");
        assert!(worst < 0.02, "{worst}");
        assert!(worst > 0.0, "int8 should differ somewhat");
    }

    /// f32: the same function as the layer, up to the order of the sums.
    #[test]
    fn the_f32_host_layer_equals_the_layer() {
        let worst = largest_difference::<F32>();
        assert!(worst < 1e-5, "{worst}");
    }
}
