//! One direction of one LSTM layer with int8 weights, for inference: the
//! equations of `crate::lstm` (gate order i, f, g, o), with both products,
//! x W and h U, through the int8 matmul, the state quantized afresh per row
//! at every step.
//!
//! It runs over a batch packed by length, as PyTorch's
//! `pack_padded_sequence` does: the sequences sorted longest first, so that
//! the ones still running at step s are the first n_s rows, and no step
//! computes a padded position.

use super::matmul::{Int8Matrix, Int8Rows, matmul};
use crate::cpu::lstm::cell_forward_best;
use crate::cpu::threads::pool;
use rayon::prelude::*;

/// Steps with at least this many gate values apply the gates on several
/// threads (as the f32 kernel does).
const PARALLEL_GATES: usize = 1 << 15;

/// The layer's weights: W `[E, 4H]` and U `[H, 4H]` as int8, b `[4H]` in f32.
#[derive(Debug, Clone)]
pub(crate) struct Int8Lstm {
    input: Int8Matrix,
    recurrent: Int8Matrix,
    bias: Vec<f32>,
}

/// A batch packed by length: step s holds `steps[s]` rows (never more than
/// step s − 1), row i of every step being the same sequence.
#[derive(Debug, Clone)]
pub(crate) struct Packed {
    /// Rows at each step, non-increasing.
    pub steps: Vec<usize>,
}

impl Packed {
    pub(crate) fn rows(&self) -> usize {
        self.steps.iter().sum()
    }
}

impl Int8Lstm {
    /// From f32 W `[E, 4H]`, b `[4H]`, U `[H, 4H]` (row-major).
    pub(crate) fn quantize(input: &[f32], bias: &[f32], recurrent: &[f32], d_input: usize) -> Self {
        let g4 = bias.len();
        assert_eq!(g4 % 4, 0, "4H biases");
        let h = g4 / 4;
        Self {
            input: Int8Matrix::quantize(input, d_input, g4),
            recurrent: Int8Matrix::quantize(recurrent, h, g4),
            bias: bias.to_vec(),
        }
    }

    pub(crate) fn d_hidden(&self) -> usize {
        self.recurrent.rows()
    }

    /// Bytes held: both matrices and the f32 biases.
    pub(crate) fn weight_bytes(&self) -> usize {
        self.input.weight_bytes() + self.recurrent.weight_bytes() + 4 * self.bias.len()
    }

    pub(crate) fn d_input(&self) -> usize {
        self.input.rows()
    }

    /// Runs from a zero state over `x` `[rows, E]` in packed order. Returns
    /// the hidden state of every step `[rows, H]`, in the same order.
    pub(crate) fn forward(&self, x: &[f32], packed: &Packed) -> Vec<f32> {
        let h = self.d_hidden();
        let g4 = 4 * h;
        let rows = packed.rows();
        assert_eq!(x.len(), rows * self.d_input(), "[{rows}, E] inputs");
        // The pre-activations of every step at once: b + x W. `[rows, 4H]`
        let mut gates = vec![0.0; rows * g4];
        gates
            .chunks_mut(g4)
            .for_each(|row| row.copy_from_slice(&self.bias));
        let mut quantized = Int8Rows::default();
        quantized.quantize(x, rows, self.d_input());
        matmul(&quantized, &self.input, &mut gates, true);

        let first = packed.steps.first().copied().unwrap_or(0);
        let mut out = vec![0.0; rows * h];
        let mut cells = vec![0.0; first * h];
        let (mut start, mut previous) = (0, 0);
        for &n in &packed.steps {
            let (done, rest) = out.split_at_mut(start * h);
            let step_gates = &mut gates[start * g4..(start + n) * g4];
            if start > 0 {
                // gates += h_{t−1} U, for the rows still running.
                quantized.quantize(&done[previous * h..(previous + n) * h], n, h);
                matmul(&quantized, &self.recurrent, step_gates, true);
            }
            let step_out = &mut rest[..n * h];
            let cells = &mut cells[..n * h];
            let apply = |gate: &mut [f32], c: &mut [f32], o: &mut [f32]| {
                let mut hid = vec![0.0; h];
                let mut tanh_cell = vec![0.0; h];
                for ((gate, c), o) in gate.chunks_mut(g4).zip(c.chunks_mut(h)).zip(o.chunks_mut(h))
                {
                    cell_forward_best(gate, c, &mut hid, &mut tanh_cell, o);
                }
            };
            if n * g4 >= PARALLEL_GATES {
                let per_thread = n.div_ceil(crate::cpu::kernel_threads());
                pool().install(|| {
                    (
                        step_gates.par_chunks_mut(per_thread * g4),
                        cells.par_chunks_mut(per_thread * h),
                        step_out.par_chunks_mut(per_thread * h),
                    )
                        .into_par_iter()
                        .for_each(|(gate, c, o)| apply(gate, c, o));
                });
            } else {
                apply(step_gates, cells, step_out);
            }
            previous = start;
            start += n;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_data::{random, values};
    use crate::{LstmConfig, LstmState};
    use burn::backend::NdArray;
    use burn::prelude::*;

    /// Against the f32 layer over the same sequences run one at a time:
    /// every hidden state within 0.02 (the states are in (−1, 1); an int8
    /// step of a row is 1/127 of its largest value).
    #[test]
    fn the_int8_layer_follows_the_f32_layer() {
        let device = Default::default();
        let (e, h) = (24, 20);
        let lstm = LstmConfig::new(e, h).init::<NdArray>(&device);
        let (w, b, u) = lstm.weights();
        let (w, b, u) = (
            w.into_data().to_vec::<f32>().unwrap(),
            b.into_data().to_vec::<f32>().unwrap(),
            u.into_data().to_vec::<f32>().unwrap(),
        );
        let int8 = Int8Lstm::quantize(&w, &b, &u, e);
        // Three sequences of lengths 5, 3, 2, longest first.
        let lengths = [5, 3, 2];
        let x = values(random([3, 5, e], 1.0));
        let packed = Packed {
            steps: vec![3, 3, 2, 1, 1],
        };
        let mut rows = Vec::new();
        for (s, &n) in packed.steps.iter().enumerate() {
            for seq in 0..n {
                rows.extend_from_slice(&x[(seq * 5 + s) * e..(seq * 5 + s + 1) * e]);
            }
        }
        let out = int8.forward(&rows, &packed);
        let mut worst = 0.0f32;
        for (seq, &len) in lengths.iter().enumerate() {
            let alone = Tensor::<NdArray, 3>::from_data(
                TensorData::new(x[seq * 5 * e..(seq * 5 + len) * e].to_vec(), [1, len, e]),
                &device,
            );
            let (reference, _) = lstm.forward_from(alone, None::<LstmState<NdArray>>);
            let reference = reference.into_data().to_vec::<f32>().unwrap();
            let mut row = 0;
            for (s, &n) in packed.steps.iter().enumerate().take(len) {
                let at = (row + seq) * h;
                for j in 0..h {
                    worst = worst.max((out[at + j] - reference[s * h + j]).abs());
                }
                row += n;
            }
        }
        println!("largest difference from f32: {worst}");
        assert!(worst < 0.02, "{worst}");
        assert!(worst > 0.0, "int8 should differ somewhat");
    }
}
