//! The forward pass for inference and validation: no trace, one step's
//! gates at a time, and a padded batch packed by length.

use super::groups::packed_order;
use super::*;

/// The forward pass for inference: what [`forward`] returns, without the
/// trace. One step's pre-activations at a time, b + x_t W + h U in a
/// `[B, 4H]` buffer that stays in cache, instead of all `[B, T, 4H]` at once:
/// at batch 256 × 64 that array is 33 MB of fresh memory, written, then read
/// back, on every call.
///
/// Sequences are independent, so a large batch is cut into one group of
/// rows per thread, and each group runs the whole sequence on its own thread
/// with single-threaded products: no fork and join at every step (three per
/// step otherwise: two products and the gates). Each row's sums are the
/// same either way.
pub(super) fn forward_untraced(
    x: Vec<f32>,
    weights: Weights,
    state: (Vec<f32>, Vec<f32>, Option<Vec<f32>>),
    dims: Dims,
    groups: usize,
    lengths: Option<&[usize]>,
) -> Vec<f32> {
    let (hidden, cell, state_mask) = state;
    let Dims {
        batch,
        seq,
        hidden: h,
        ..
    } = dims;
    let cut = Cut::new(batch, groups);
    // A padded batch runs packed: its rows sorted longest first and dealt to
    // the groups in turn (so each group's rows are sorted too, and the
    // groups get similar work), each step over the rows still running. The
    // rows are not moved: each group reads its inputs and writes its outputs
    // through their indices.
    let order: Vec<usize> = match lengths {
        Some(lengths) => packed_order(lengths, cut),
        None => (0..batch).collect(),
    };
    let gather = |buffer: &[f32]| -> Vec<f32> {
        order
            .iter()
            .flat_map(|&row| &buffer[row * h..(row + 1) * h])
            .copied()
            .collect()
    };
    let (mut hidden, mut cell) = (gather(&hidden), gather(&cell));
    let state_mask = state_mask.map(|mask| gather(&mask));
    let sorted: Option<Vec<usize>> =
        lengths.map(|lengths| order.iter().map(|&row| lengths[row]).collect());

    let mut out = vec![0.0; batch * (seq + 1) * h];
    let (states, final_cells) = out.split_at_mut(batch * seq * h);
    let mut by_row: Vec<Option<&mut [f32]>> = states.chunks_mut(seq * h).map(Some).collect();
    let mut outputs = order
        .iter()
        .map(|&row| by_row[row].take().expect("a permutation"));
    let group_lengths = match &sorted {
        Some(sorted) => cut.rows(sorted, 1).into_iter().map(Some).collect(),
        None => vec![None; cut.groups()],
    };
    let jobs: Vec<Rows> = cut
        .rows(&order, 1)
        .into_iter()
        .zip(cut.rows_mut(&mut hidden, h))
        .zip(cut.rows_mut(&mut cell, h))
        .zip(cut.mask(state_mask.as_deref(), h))
        .zip(group_lengths)
        .map(|((((rows, hidden), cell), state_mask), lengths)| Rows {
            x: &x,
            rows,
            hidden,
            cell,
            state_mask,
            out: outputs.by_ref().take(rows.len()).collect(),
            lengths,
        })
        .collect();
    run_groups(cut, jobs, |rows, batch, parallel| {
        untraced_rows(rows, &weights, Dims { batch, ..dims }, parallel)
    });
    for (at, &row) in order.iter().enumerate() {
        final_cells[row * h..(row + 1) * h].copy_from_slice(&cell[at * h..(at + 1) * h]);
    }
    out
}

/// A group of batch rows of the pass without a trace: which rows, their
/// state `[rows, H]` and state mask, where their outputs go.
struct Rows<'a> {
    /// The whole batch's inputs `[B, T, E]`.
    x: &'a [f32],
    /// The batch rows of this group, in the order it runs them.
    rows: &'a [usize],
    hidden: &'a mut [f32],
    cell: &'a mut [f32],
    state_mask: Option<&'a [f32]>,
    /// Each row's outputs `[T, H]`, in the same order.
    out: Vec<&'a mut [f32]>,
    /// Each row's real steps, longest first (`None`: all T).
    lengths: Option<&'a [usize]>,
}

/// [`forward_untraced`] for one group of rows (`dims.batch` of them).
/// `parallel`: the products and the gates may use the thread pool (when
/// this group is the whole batch).
fn untraced_rows(rows: Rows, weights: &Weights, dims: Dims, parallel: bool) {
    let Dims {
        batch,
        seq,
        d_input,
        hidden: h,
    } = dims;
    let Rows {
        x,
        rows: batch_rows,
        hidden,
        cell,
        state_mask,
        mut out,
        lengths,
    } = rows;
    let mut x_t = vec![0.0; batch * d_input];
    let g4 = 4 * h;
    let mut gates = vec![0.0; batch * g4];
    let mut tanh_cells = vec![0.0; batch * h];
    let how = How::for_rows(batch, parallel);

    for t in 0..seq {
        // The rows still running: a prefix, the rows being sorted.
        let running = lengths.map_or(batch, |lengths| lengths.partition_point(|&len| len > t));
        if running == 0 {
            break;
        }
        // gemm multiplies a single row another way (as a matrix-vector
        // product, summing in another order), so the products keep a second,
        // finished row whose results are dropped: each row then gets the bits
        // of the pass over everything.
        let rows = if how.few_rows {
            running
        } else {
            running.max(2).min(batch)
        };
        // gates = b + x[:, t, :] W + h U
        if let Some(mask) = state_mask {
            hidden[..running * h]
                .iter_mut()
                .zip(mask)
                .for_each(|(v, m)| *v *= m);
        }
        gates[..rows * g4]
            .chunks_mut(g4)
            .for_each(|row| row.copy_from_slice(&weights.bias));
        // This step's inputs, gathered into a buffer that stays in cache.
        for (x_row, &row) in x_t.chunks_mut(d_input).zip(&batch_rows[..rows]) {
            x_row.copy_from_slice(&x[(row * seq + t) * d_input..][..d_input]);
        }
        matmul_with(
            &mut gates[..rows * g4],
            g4,
            View::rows(&x_t[..rows * d_input], rows, d_input),
            View::rows(&weights.input, d_input, g4),
            true,
            how,
        );
        matmul_with(
            &mut gates[..rows * g4],
            g4,
            View::rows(&hidden[..rows * h], rows, h),
            View::rows(&weights.recurrent, h, g4),
            true,
            how,
        );
        let batch = running;
        let parallel_gates = parallel && batch * g4 >= PARALLEL_ROWS;
        let (hidden, cell) = (&mut hidden[..batch * h], &mut cell[..batch * h]);
        let (gates, tanh_cells) = (&mut gates[..batch * g4], &mut tanh_cells[..batch * h]);
        let out = &mut out[..batch];
        let step =
            |gate: &mut [f32], c: &mut [f32], hid: &mut [f32], o: &mut [f32], tc: &mut [f32]| {
                cell_forward_best(gate, c, hid, tc, &mut o[t * h..(t + 1) * h])
            };
        if parallel_gates {
            (
                gates.par_chunks_mut(g4),
                cell.par_chunks_mut(h),
                hidden.par_chunks_mut(h),
                out.par_iter_mut(),
                tanh_cells.par_chunks_mut(h),
            )
                .into_par_iter()
                .for_each(|(gate, c, hid, o, tc)| step(gate, c, hid, o, tc));
        } else {
            for ((((gate, c), hid), o), tc) in gates
                .chunks_mut(g4)
                .zip(cell.chunks_mut(h))
                .zip(hidden.chunks_mut(h))
                .zip(out.iter_mut())
                .zip(tanh_cells.chunks_mut(h))
            {
                step(gate, c, hid, o, tc);
            }
        }
    }
}
