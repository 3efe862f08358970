//! The LSTM layer as a CPU kernel, for the ndarray and flex backends.
//!
//! Written with tensor operations (the reference version, `crate::lstm::tensor_ops`),
//! a time step is about a dozen backend calls, each allocating its result and
//! each handed to a thread pool; at the bench's shapes that overhead, and the
//! CPU backends' slow `tanh`, cost more than the arithmetic
//! (`docs/perf/README.md`). Here a step is one
//! matmul — the `gemm` crate, which picks AVX-512, AVX2 or SSE kernels when it
//! runs — and one pass over the batch rows that applies the gates in place,
//! with exp-based sigmoid and tanh that the compiler vectorizes (compiled for
//! the best instruction set the CPU has: AVX-512 or AVX2, chosen when it runs).
//!
//! In training the buffers live for the whole sequence. The forward pass
//! turns the pre-activations `[B, T, 4H]` into the gate activations in place,
//! and the backward pass turns those into their gradients in place;
//! everything is kept batch-major, as the tensors are, so no transposes are
//! needed. Without a backward pass to serve, the forward pass keeps one
//! step's pre-activations at a time. The equations are those of
//! `crate::lstm::op`.
//!
//! The files: this one holds the entry points, the traced forward pass and
//! the per-row cell steps; [`inference`] the pass without a trace (packed by
//! length for a padded batch); [`backward`] the backward pass; [`groups`]
//! how a batch is cut into groups of rows, one per thread; [`recycle`] the
//! trace's buffers, reused from one training step to the next.

use super::host::CpuBackend;
use super::matmul::{How, View, matmul, matmul_with};
use super::simd::{best_instructions, sigmoid, tanh};
use super::threads::pool;
use super::transpose::transpose_into;
use crate::LstmInputs;
use burn::prelude::{Int, Tensor};
use burn::tensor::TensorMetadata;
use burn::tensor::ops::FloatTensor;
use rayon::prelude::*;

mod backward;
mod groups;
mod inference;
mod recycle;

use backward::backward;
use groups::{Cut, row_groups, run_groups};
use inference::forward_untraced;

/// Batches with at least this many gate values per step apply the gates on
/// several threads.
const PARALLEL_ROWS: usize = 1 << 15;

/// What the backward pass needs from the forward pass.
#[derive(Debug, Clone)]
pub struct CpuTrace {
    dims: Dims,
    /// x. `[B, T, E]`
    x: Vec<f32>,
    /// Gate activations: σ for i, f, o and tanh for g. `[B, T, 4H]`
    gates: Vec<f32>,
    /// The cell state each step started from, c_{t−1}. `[B, T, H]`
    prev_cells: Vec<f32>,
    /// tanh(c_t). `[B, T, H]`
    tanh_cells: Vec<f32>,
    /// The hidden state each step started from, h_{t−1} (masked when there
    /// is a state mask). `[B, T, H]`
    hiddens: Vec<f32>,
    weights: Weights,
    /// The state mask. `[B, H]`
    state_mask: Option<Vec<f32>>,
}

/// The shapes of one run.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    seq: usize,
    d_input: usize,
    hidden: usize,
}

/// The layer's parameters.
#[derive(Debug, Clone)]
struct Weights {
    /// W. `[E, 4H]`
    input: Vec<f32>,
    /// b. `[4H]`
    bias: Vec<f32>,
    /// U. `[H, 4H]`
    recurrent: Vec<f32>,
}

/// Runs the layer (see [`crate::LstmKernel::lstm_forward`]).
pub(crate) fn lstm_forward<B: CpuBackend>(
    inputs: LstmInputs<B>,
    keep_trace: bool,
) -> (FloatTensor<B>, Option<CpuTrace>) {
    let device = B::float_device(&inputs.x);
    let [batch, seq, d_input] = inputs.x.shape().dims();
    let hidden = inputs.recurrent.shape().dims::<2>()[0];
    let dims = Dims {
        batch,
        seq,
        d_input,
        hidden,
    };
    let weights = Weights {
        input: B::to_vec(&inputs.input_weight),
        bias: B::to_vec(&inputs.input_bias),
        recurrent: B::to_vec(&inputs.recurrent),
    };
    // Moved out without a copy when nothing else holds them.
    let (x, h0, c0) = (
        B::into_vec(inputs.x),
        B::into_vec(inputs.h0),
        B::into_vec(inputs.c0),
    );
    let state_mask = inputs.state_mask.as_ref().map(B::to_vec);
    // Only a pass without a trace skips padded steps (see `LstmInputs::lengths`).
    let lengths = inputs.lengths.filter(|_| !keep_trace).map(|lengths| {
        Tensor::<B, 1, Int>::from_primitive(lengths)
            .into_data()
            .iter::<i64>()
            .map(|len| len.clamp(0, seq as i64) as usize)
            .collect::<Vec<_>>()
    });
    let groups = row_groups(batch, hidden);
    let (out, trace) = pool().install(|| {
        if keep_trace {
            let (out, trace) = forward(x, weights, h0, c0, state_mask, dims, groups);
            (out, Some(trace))
        } else {
            let state = (h0, c0, state_mask);
            let out = forward_untraced(x, weights, state, dims, groups, lengths.as_deref());
            (out, None)
        }
    });
    (
        B::from_vec(out, [batch * (seq + 1), hidden].into(), &device),
        trace,
    )
}

/// The gradients of x, W, b, U, h_0 and c_0 (see
/// [`crate::LstmKernel::lstm_backward`]).
pub(crate) fn lstm_backward<B: CpuBackend>(
    trace: CpuTrace,
    grad: FloatTensor<B>,
) -> [FloatTensor<B>; 6] {
    let device = B::float_device(&grad);
    let Dims {
        batch,
        seq,
        d_input,
        hidden,
    } = trace.dims;
    let grad = B::into_vec(grad);
    let [d_x, d_input_weight, d_bias, d_recurrent, d_h0, d_c0] =
        pool().install(|| backward(trace, grad, row_groups(batch, hidden)));
    [
        B::from_vec(d_x, [batch, seq, d_input].into(), &device),
        B::from_vec(d_input_weight, [d_input, 4 * hidden].into(), &device),
        B::from_vec(d_bias, [4 * hidden].into(), &device),
        B::from_vec(d_recurrent, [hidden, 4 * hidden].into(), &device),
        B::from_vec(d_h0, [batch, hidden].into(), &device),
        B::from_vec(d_c0, [batch, hidden].into(), &device),
    ]
}

/// The forward pass for training, on plain buffers: x `[B, T, E]`,
/// `hidden` and `cell` the start state `[B, H]`. Returns `[B·T + B, H]` (the
/// hidden states, then the final cells) and the trace.
fn forward(
    x: Vec<f32>,
    weights: Weights,
    mut hidden: Vec<f32>,
    mut cell: Vec<f32>,
    state_mask: Option<Vec<f32>>,
    dims: Dims,
    groups: usize,
) -> (Vec<f32>, CpuTrace) {
    let Dims {
        batch,
        seq,
        d_input,
        hidden: h,
    } = dims;
    let g4 = 4 * h;
    // The pre-activations of every step at once: b + x W. `[B·T, 4H]`
    // (The bias is written into the last step's buffer, not into a fresh
    // one zeroed first: see `recycle`.)
    let mut gates = recycle::take(batch * seq * g4);
    for row in gates.chunks_exact_mut(g4) {
        row.copy_from_slice(&weights.bias);
    }
    matmul(
        &mut gates,
        g4,
        View::rows(&x, batch * seq, d_input),
        View::rows(&weights.input, d_input, g4),
        true,
    );
    let mut out = vec![0.0; batch * (seq + 1) * h];
    // The trace: every element is written below, so the last step's
    // buffers serve as they are.
    let mut hiddens = recycle::take(batch * seq * h);
    let mut prev_cells = recycle::take(batch * seq * h);
    let mut tanh_cells = recycle::take(batch * seq * h);
    let (states, final_cells) = out.split_at_mut(batch * seq * h);
    // The recurrence, by groups of rows (see `forward_untraced`).
    let cut = Cut::new(batch, groups);
    let jobs: Vec<TracedRows> = cut
        .rows_mut(&mut gates, seq * g4)
        .into_iter()
        .zip(cut.rows_mut(&mut hidden, h))
        .zip(cut.rows_mut(&mut cell, h))
        .zip(cut.mask(state_mask.as_deref(), h))
        .zip(cut.rows_mut(states, seq * h))
        .zip(cut.rows_mut(&mut hiddens, seq * h))
        .zip(cut.rows_mut(&mut prev_cells, seq * h))
        .zip(cut.rows_mut(&mut tanh_cells, seq * h))
        .map(
            |(
                ((((((gates, hidden), cell), state_mask), out), hiddens), prev_cells),
                tanh_cells,
            )| {
                TracedRows {
                    gates,
                    hidden,
                    cell,
                    state_mask,
                    out,
                    hiddens,
                    prev_cells,
                    tanh_cells,
                }
            },
        )
        .collect();
    run_groups(cut, jobs, |rows, batch, parallel| {
        traced_rows(rows, &weights, Dims { batch, ..dims }, parallel)
    });
    final_cells.copy_from_slice(&cell);
    let trace = CpuTrace {
        dims,
        x,
        gates,
        prev_cells,
        tanh_cells,
        hiddens,
        weights,
        state_mask,
    };
    (out, trace)
}

/// A group of batch rows of the traced forward pass: its pre-activations
/// `[rows, T, 4H]` (turned into activations), state `[rows, H]`, state mask,
/// outputs and trace `[rows, T, H]`.
struct TracedRows<'a> {
    gates: &'a mut [f32],
    hidden: &'a mut [f32],
    cell: &'a mut [f32],
    state_mask: Option<&'a [f32]>,
    out: &'a mut [f32],
    hiddens: &'a mut [f32],
    prev_cells: &'a mut [f32],
    tanh_cells: &'a mut [f32],
}

/// The recurrence of [`forward`] for one group of rows (`dims.batch` of
/// them); `parallel` as in `inference::untraced_rows`.
fn traced_rows(rows: TracedRows, weights: &Weights, dims: Dims, parallel: bool) {
    let Dims {
        batch,
        seq,
        hidden: h,
        ..
    } = dims;
    let TracedRows {
        gates,
        hidden,
        cell,
        state_mask,
        out,
        hiddens,
        prev_cells,
        tanh_cells,
    } = rows;
    let g4 = 4 * h;
    let parallel_gates = parallel && batch * g4 >= PARALLEL_ROWS;
    let how = How::for_rows(batch, parallel);
    for t in 0..seq {
        if let Some(mask) = state_mask {
            hidden.iter_mut().zip(mask).for_each(|(v, m)| *v *= m);
        }
        for row in 0..batch {
            let at = (row * seq + t) * h;
            hiddens[at..at + h].copy_from_slice(&hidden[row * h..(row + 1) * h]);
            prev_cells[at..at + h].copy_from_slice(&cell[row * h..(row + 1) * h]);
        }
        // gates[:, t, :] += h U
        matmul_with(
            &mut gates[t * g4..],
            seq * g4,
            View::rows(hidden, batch, h),
            View::rows(&weights.recurrent, h, g4),
            true,
            how,
        );
        let step =
            |gate: &mut [f32], c: &mut [f32], hid: &mut [f32], o: &mut [f32], tc: &mut [f32]| {
                let at = t * h..(t + 1) * h;
                cell_forward_best(
                    &mut gate[t * g4..(t + 1) * g4],
                    c,
                    hid,
                    &mut tc[at.clone()],
                    &mut o[at],
                )
            };
        let row = seq * h;
        if parallel_gates {
            (
                gates.par_chunks_mut(seq * g4),
                cell.par_chunks_mut(h),
                hidden.par_chunks_mut(h),
                out.par_chunks_mut(row),
                tanh_cells.par_chunks_mut(row),
            )
                .into_par_iter()
                .for_each(|(gate, c, hid, o, tc)| step(gate, c, hid, o, tc));
        } else {
            for ((((gate, c), hid), o), tc) in gates
                .chunks_mut(seq * g4)
                .zip(cell.chunks_mut(h))
                .zip(hidden.chunks_mut(h))
                .zip(out.chunks_mut(row))
                .zip(tanh_cells.chunks_mut(row))
            {
                step(gate, c, hid, o, tc);
            }
        }
    }
}

best_instructions!(pub(crate) fn cell_forward_best = cell_forward(
    gate: &mut [f32],
    c: &mut [f32],
    hid: &mut [f32],
    tc: &mut [f32],
    out: &mut [f32],
));

best_instructions!(fn cell_backward_best = cell_backward(
    gate: &mut [f32],
    dh_next: &[f32],
    dc: &mut [f32],
    grad_h: &[f32],
    prev_cell: &[f32],
    tanh_cell: &[f32],
));

/// One step of one sequence: `gate` `[4H]` from pre-activations to
/// activations; the cell `c` and hidden state `hid` `[H]` to the next step's;
/// tanh of the new cell into `tc`; h into `out` `[H]`.
#[inline(always)]
fn cell_forward(gate: &mut [f32], c: &mut [f32], hid: &mut [f32], tc: &mut [f32], out: &mut [f32]) {
    let h = c.len();
    let (ifg, o) = gate.split_at_mut(3 * h);
    let (i_f, g) = ifg.split_at_mut(2 * h);
    i_f.iter_mut().for_each(|v| *v = sigmoid(*v));
    g.iter_mut().for_each(|v| *v = tanh(*v));
    o.iter_mut().for_each(|v| *v = sigmoid(*v));
    let (i, f) = i_f.split_at(h);
    for j in 0..h {
        c[j] = f[j] * c[j] + i[j] * g[j];
        tc[j] = tanh(c[j]);
        hid[j] = o[j] * tc[j];
        out[j] = hid[j];
    }
}

/// One step of one sequence backwards: turns `gate` `[4H]` from the
/// activations into the gradients of the pre-activations, given the
/// gradient reaching h from the next step `dh_next` and the step's own output
/// gradient `grad_h` `[H]`; `dc` `[H]` goes from the cell gradient
/// of the next step to that of this step's start.
#[inline(always)]
fn cell_backward(
    gate: &mut [f32],
    dh_next: &[f32],
    dc: &mut [f32],
    grad_h: &[f32],
    prev_cell: &[f32],
    tanh_cell: &[f32],
) {
    let h = dc.len();
    let (ifg, o) = gate.split_at_mut(3 * h);
    let (i_f, g) = ifg.split_at_mut(2 * h);
    let (i, f) = i_f.split_at_mut(h);
    for j in 0..h {
        let dh = grad_h[j] + dh_next[j];
        let (ij, fj, gj, oj, tcj) = (i[j], f[j], g[j], o[j], tanh_cell[j]);
        let dcj = dc[j] + dh * oj * (1.0 - tcj * tcj);
        i[j] = dcj * gj * ij * (1.0 - ij);
        f[j] = dcj * prev_cell[j] * fj * (1.0 - fj);
        g[j] = dcj * ij * (1.0 - gj * gj);
        o[j] = dh * tcj * oj * (1.0 - oj);
        dc[j] = dcj * fj;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::matmul::SMALL_BATCH;
    use crate::cpu::test_data::{random, values};
    use crate::lstm::tensor_ops;
    use burn::backend::NdArray;
    use burn::prelude::*;
    use burn::tensor::TensorPrimitive;

    /// Deterministic inputs: x and the start state spread over ±√3, the
    /// input and recurrent weights over ±√3 times `scales`, and a state mask
    /// `[B, H]` if given.
    fn inputs(
        [batch, seq, d_input, h]: [usize; 4],
        scales: [f32; 2],
        mask: Option<Vec<f32>>,
    ) -> LstmInputs<NdArray> {
        LstmInputs {
            x: random([batch, seq, d_input], 1.0),
            input_weight: random([d_input, 4 * h], scales[0]),
            input_bias: random([4 * h], 0.5),
            recurrent: random([h, 4 * h], scales[1]),
            h0: random([batch, h], 1.0),
            c0: random([batch, h], 1.0),
            state_mask: mask
                .map(|mask| NdArray::from_vec(mask, [batch, h].into(), &Default::default())),
            lengths: None,
        }
    }

    /// The kernel's weights, read from `inputs`.
    fn weights(inputs: &LstmInputs<NdArray>) -> Weights {
        Weights {
            input: values(inputs.input_weight.clone()),
            bias: values(inputs.input_bias.clone()),
            recurrent: values(inputs.recurrent.clone()),
        }
    }

    /// x, h_0, c_0 and the state mask, read from `inputs`.
    fn state(inputs: &LstmInputs<NdArray>) -> (Vec<f32>, Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
        (
            values(inputs.x.clone()),
            values(inputs.h0.clone()),
            values(inputs.c0.clone()),
            inputs.state_mask.clone().map(values),
        )
    }

    /// Cutting the batch into groups of rows, each run on its own thread
    /// with single-threaded products, changes no bit of the outputs, the
    /// trace or the gradients: each row's sums are the same products in the
    /// same order. (So training is the same whatever the machine's cores.)
    #[test]
    fn groups_of_rows_give_the_same_bits_as_one_group() {
        let (batch, seq, d_input, h) = (72, 9, 24, 128);
        let mask: Vec<f32> = (0..batch * h)
            .map(|i| if i % 3 == 0 { 0.0 } else { 1.5 })
            .collect();
        let inputs = inputs([batch, seq, d_input, h], [0.2, 0.1], Some(mask));
        let grad = values(random([batch * (seq + 1), h], 1.0));
        let run = |groups: usize| {
            let dims = Dims {
                batch,
                seq,
                d_input,
                hidden: h,
            };
            pool().install(|| {
                let (x, h0, c0, mask) = state(&inputs);
                let (out, trace) = forward(x, weights(&inputs), h0, c0, mask, dims, groups);
                let (x, h0, c0, mask) = state(&inputs);
                let untraced =
                    forward_untraced(x, weights(&inputs), (h0, c0, mask), dims, groups, None);
                let gates = trace.gates.clone();
                let grads = backward(trace, grad.clone(), groups);
                (out, untraced, gates, grads)
            })
        };
        let (one, several) = (run(1), run(3));
        assert!(one.0 == several.0, "the traced outputs differ");
        assert!(one.1 == several.1, "the untraced outputs differ");
        assert!(one.2 == several.2, "the traces differ");
        assert!(one.3 == several.3, "the gradients differ");
        assert!(one.0 == one.1, "traced and untraced differ");
    }

    /// The pre-activations' and the trace's buffers are taken from the last
    /// step's (`recycle`) without being cleared: a run that gets buffers
    /// full of NaN gives the same bits as one that gets fresh ones, so no
    /// stale element is read.
    /// (The shape is this test's own, so no other test takes its buffers.)
    #[test]
    fn recycled_trace_buffers_change_no_bit() {
        let (batch, seq, d_input, h) = (6, 7, 10, 40);
        let inputs = inputs([batch, seq, d_input, h], [0.3, 0.2], None);
        let grad = values(random([batch * (seq + 1), h], 1.0));
        let dims = Dims {
            batch,
            seq,
            d_input,
            hidden: h,
        };
        let run = || {
            let (x, h0, c0, mask) = state(&inputs);
            pool().install(|| {
                let (out, trace) = forward(x, weights(&inputs), h0, c0, mask, dims, 1);
                (out, backward(trace, grad.clone(), 1))
            })
        };
        let fresh = run();
        let trace = batch * seq * h;
        for len in [4 * trace, trace, trace, trace, h * 4 * h] {
            recycle::give(vec![f32::NAN; len]);
        }
        let stale = run();
        assert!(fresh.0.iter().all(|v| v.is_finite()));
        assert!(fresh.0 == stale.0, "the outputs differ");
        assert!(fresh.1 == stale.1, "the gradients differ");
    }

    /// With the lengths of a padded batch, the pass without a trace skips
    /// the padded steps: every real position gets the same bits as the same
    /// pass over everything, padded positions are zero, and the final cell is
    /// the one after the last real step (taken from the traced pass, whose
    /// input projection is one product over all B·T rows: within rounding).
    /// Batches of 72 (two groups) and of 3 (one group, the few-rows matmul),
    /// with a state mask.
    #[test]
    fn a_padded_batch_skips_its_padding_and_keeps_every_real_bit() {
        for (batch, d_input, h) in [(72, 24, 128), (3, 10, 16)] {
            let seq = 9;
            let mask: Vec<f32> = (0..batch * h)
                .map(|i| if i % 3 == 0 { 0.0 } else { 1.5 })
                .collect();
            let inputs = inputs([batch, seq, d_input, h], [0.2, 0.1], Some(mask));
            // Row 0 alone runs all T steps (so some steps have one row running).
            let lengths: Vec<usize> = (0..batch)
                .map(|b| if b == 0 { seq } else { 1 + (b * 7) % (seq - 1) })
                .collect();
            let (full, _) = lstm_forward::<NdArray>(inputs.clone(), false);
            let (_, trace) = lstm_forward::<NdArray>(inputs.clone(), true);
            let (full, trace) = (values(full), trace.unwrap());
            let padded = LstmInputs {
                lengths: Some(
                    Tensor::<NdArray, 1, Int>::from_data(
                        TensorData::new(lengths.iter().map(|&l| l as i64).collect(), [batch]),
                        &Default::default(),
                    )
                    .into_primitive(),
                ),
                ..inputs
            };
            let (packed, none) = lstm_forward::<NdArray>(padded, false);
            assert!(none.is_none());
            let packed = values(packed);
            for (b, &len) in lengths.iter().enumerate() {
                for t in 0..seq {
                    let at = (b * seq + t) * h..(b * seq + t + 1) * h;
                    if t < len {
                        assert!(
                            packed[at.clone()] == full[at],
                            "batch {batch}: row {b} step {t}"
                        );
                    } else {
                        assert!(packed[at].iter().all(|&v| v == 0.0), "row {b} step {t}");
                    }
                }
                // The cell after step len − 1: what step len started from.
                let last = if len == seq {
                    &full[(batch * seq + b) * h..(batch * seq + b + 1) * h]
                } else {
                    &trace.prev_cells[(b * seq + len) * h..(b * seq + len + 1) * h]
                };
                let cell = &packed[(batch * seq + b) * h..(batch * seq + b + 1) * h];
                let diff = cell
                    .iter()
                    .zip(last)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    diff < 1e-6,
                    "batch {batch}: row {b}'s final cell is off by {diff}"
                );
            }
        }
    }

    /// The inference forward at a batch of one (the few-rows matmul) and
    /// of a few rows on one thread, with and without a state mask.
    #[test]
    fn the_untraced_forward_equals_the_reference_at_small_batches() {
        for (batch, masked) in [(1, false), (3, true), (6, false)] {
            let (seq, d_input, h) = (7, 10, 16);
            let mask: Vec<f32> = (0..batch * h)
                .map(|i| if i % 4 == 1 { 0.0 } else { 1.25 })
                .collect();
            let inputs = inputs([batch, seq, d_input, h], [0.3, 0.3], masked.then_some(mask));
            let (out, _) = lstm_forward::<NdArray>(inputs.clone(), false);
            let (reference, _) = tensor_ops::forward::<NdArray>(inputs, false);
            let (ours, theirs) = (values(out), values(reference.into_primitive().tensor()));
            assert_eq!(ours.len(), batch * (seq + 1) * h);
            let diff = ours
                .iter()
                .zip(&theirs)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff < 1e-5, "batch {batch}: differs by {diff}");
        }
    }

    /// The kernel against the tensor-operation version, forward (traced and
    /// untraced) and every gradient, at a batch large enough for gemm,
    /// threads on the matmuls and the rows split across threads (72 × 4·128
    /// gate values per step), and with a state mask.
    #[test]
    fn the_kernel_equals_the_tensor_operation_version() {
        let (batch, seq, d_input, h) = (72, 9, 24, 128);
        assert!(batch * 4 * h >= PARALLEL_ROWS && batch > SMALL_BATCH);
        let mask: Vec<f32> = (0..batch * h)
            .map(|i| if i % 3 == 0 { 0.0 } else { 1.5 })
            .collect();
        let inputs = inputs([batch, seq, d_input, h], [0.2, 0.1], Some(mask));
        let grad = random([batch * (seq + 1), h], 1.0);

        let inputs_untraced = inputs.clone();
        let (out, trace) = lstm_forward::<NdArray>(inputs.clone(), true);
        let out_again = out.clone();
        let (reference, reference_trace) = tensor_ops::forward::<NdArray>(inputs, true);
        let worst = |a: Vec<f32>, b: Vec<f32>| {
            assert_eq!(a.len(), b.len());
            let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let diff = a
                .iter()
                .zip(&b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            (diff, scale)
        };
        let (diff, _) = worst(values(out), values(reference.into_primitive().tensor()));
        assert!(diff < 1e-5, "outputs differ by {diff}");

        let (untraced, none) = lstm_forward::<NdArray>(inputs_untraced, false);
        assert!(none.is_none());
        let (diff, _) = worst(values(untraced), values(out_again));
        assert!(diff < 1e-5, "the untraced forward differs by {diff}");

        let grads = lstm_backward::<NdArray>(trace.unwrap(), grad.clone());
        let reference = tensor_ops::backward(
            reference_trace.unwrap(),
            Tensor::from_primitive(TensorPrimitive::Float(grad)),
        );
        let names = ["x", "W", "b", "U", "h0", "c0"];
        for ((name, ours), theirs) in names.iter().zip(grads).zip(reference) {
            let (diff, scale) = worst(values(ours), values(theirs));
            assert!(scale > 1e-2, "d{name} should not vanish");
            assert!(
                diff < 2e-5 * scale.max(1.0),
                "d{name} differs by {diff} (largest {scale})"
            );
        }
    }
}
