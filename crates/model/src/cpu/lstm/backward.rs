//! The backward pass through time, by groups of rows, then the weight
//! gradients over all B·T rows at once.

use super::*;

/// The backward pass on plain buffers, from the gradient `[B·T + B, H]` of the
/// forward output: the gradients of x `[B, T, E]`, W `[E, 4H]`, b `[4H]`,
/// U `[H, 4H]`, h_0 and c_0 `[B, H]`.
pub(super) fn backward(trace: CpuTrace, grad: Vec<f32>, groups: usize) -> [Vec<f32>; 6] {
    let trace_dims = trace.dims;
    let Dims {
        batch,
        seq,
        d_input,
        hidden: h,
    } = trace.dims;
    let g4 = 4 * h;
    let CpuTrace {
        x,
        gates: mut d_gates,
        prev_cells,
        tanh_cells,
        hiddens,
        weights,
        state_mask,
        ..
    } = trace;
    let mut dh_next = vec![0.0; batch * h];
    // The final cells' gradient; the per-step cells are not outputs.
    let mut dc_next = grad[batch * seq * h..].to_vec();
    let grad = &grad[..batch * seq * h];
    // Uᵀ `[4H, H]`, row-major: the step's product below reads it 8–10× faster
    // than U read through transposed strides, which gemm would otherwise
    // repack on every step (`docs/perf/README.md`).
    let mut recurrent_t = recycle::take(h * g4);
    transpose_into(&weights.recurrent, h, g4, &mut recurrent_t);
    // The steps backwards, by groups of rows (see `forward_untraced`).
    let cut = Cut::new(batch, groups);
    let jobs: Vec<BackwardRows> = cut
        .rows_mut(&mut d_gates, seq * g4)
        .into_iter()
        .zip(cut.rows_mut(&mut dh_next, h))
        .zip(cut.rows_mut(&mut dc_next, h))
        .zip(cut.rows(grad, seq * h))
        .zip(cut.rows(&prev_cells, seq * h))
        .zip(cut.rows(&tanh_cells, seq * h))
        .zip(cut.mask(state_mask.as_deref(), h))
        .map(
            |((((((d_gates, dh_next), dc_next), grad), prev_cells), tanh_cells), state_mask)| {
                BackwardRows {
                    d_gates,
                    dh_next,
                    dc_next,
                    grad,
                    prev_cells,
                    tanh_cells,
                    state_mask,
                }
            },
        )
        .collect();
    run_groups(cut, jobs, |rows, batch, parallel| {
        backward_rows(
            rows,
            &recurrent_t,
            Dims {
                batch,
                ..trace_dims
            },
            parallel,
        )
    });
    // Over all B·T rows at once: dU = [h_0 … h_{T−1}]ᵀ dP, dW = xᵀ dP,
    // db = the column sums of dP, dx = dP Wᵀ.
    let rows = batch * seq;
    let d_pre = View::rows(&d_gates, rows, g4);
    let mut d_recurrent = vec![0.0; h * g4];
    matmul(
        &mut d_recurrent,
        g4,
        View::rows(&hiddens, rows, h).transposed(),
        d_pre,
        false,
    );
    // The trace is read no more: the next forward pass writes into it.
    for buffer in [recurrent_t, hiddens, prev_cells, tanh_cells] {
        recycle::give(buffer);
    }
    let mut d_input_weight = vec![0.0; d_input * g4];
    matmul(
        &mut d_input_weight,
        g4,
        View::rows(&x, rows, d_input).transposed(),
        d_pre,
        false,
    );
    let mut d_bias = vec![0.0; g4];
    for row in d_gates.chunks(g4) {
        d_bias.iter_mut().zip(row).for_each(|(d, v)| *d += v);
    }
    let mut d_x = vec![0.0; rows * d_input];
    matmul(
        &mut d_x,
        d_input,
        d_pre,
        View::rows(&weights.input, d_input, g4).transposed(),
        false,
    );
    recycle::give(d_gates);
    [d_x, d_input_weight, d_bias, d_recurrent, dh_next, dc_next]
}

/// A group of batch rows of the backward pass: its gate activations
/// `[rows, T, 4H]` (turned into the pre-activations' gradients), the
/// gradients flowing into the state `[rows, H]`, the output gradient and the
/// trace `[rows, T, H]`, and the state mask.
struct BackwardRows<'a> {
    d_gates: &'a mut [f32],
    dh_next: &'a mut [f32],
    dc_next: &'a mut [f32],
    grad: &'a [f32],
    prev_cells: &'a [f32],
    tanh_cells: &'a [f32],
    state_mask: Option<&'a [f32]>,
}

/// The steps of [`backward`] from t = T − 1 down to 0 for one group of rows
/// (`dims.batch` of them), `recurrent_t` being Uᵀ `[4H, H]`; `parallel` as
/// in [`untraced_rows`].
fn backward_rows(rows: BackwardRows, recurrent_t: &[f32], dims: Dims, parallel: bool) {
    let Dims {
        batch,
        seq,
        hidden: h,
        ..
    } = dims;
    let BackwardRows {
        d_gates,
        dh_next,
        dc_next,
        grad,
        prev_cells,
        tanh_cells,
        state_mask,
    } = rows;
    let g4 = 4 * h;
    let parallel_gates = parallel && batch * g4 >= PARALLEL_ROWS;
    let how = How::for_rows(batch, parallel);
    for t in (0..seq).rev() {
        let step =
            |gate: &mut [f32], dh: &[f32], dc: &mut [f32], grad: &[f32], cp: &[f32], tc: &[f32]| {
                let at = t * h..(t + 1) * h;
                cell_backward_best(
                    &mut gate[t * g4..(t + 1) * g4],
                    dh,
                    dc,
                    &grad[at.clone()],
                    &cp[at.clone()],
                    &tc[at],
                )
            };
        let row = seq * h;
        if parallel_gates {
            (
                d_gates.par_chunks_mut(seq * g4),
                dh_next.par_chunks(h),
                dc_next.par_chunks_mut(h),
                grad.par_chunks(row),
                prev_cells.par_chunks(row),
                tanh_cells.par_chunks(row),
            )
                .into_par_iter()
                .for_each(|(gate, dh, dc, g, cp, tc)| step(gate, dh, dc, g, cp, tc));
        } else {
            for (((((gate, dh), dc), g), cp), tc) in d_gates
                .chunks_mut(seq * g4)
                .zip(dh_next.chunks(h))
                .zip(dc_next.chunks_mut(h))
                .zip(grad.chunks(row))
                .zip(prev_cells.chunks(row))
                .zip(tanh_cells.chunks(row))
            {
                step(gate, dh, dc, g, cp, tc);
            }
        }
        // dh_next = dP_t Uᵀ, masked
        matmul_with(
            dh_next,
            h,
            View {
                data: &d_gates[t * g4..],
                rows: batch,
                cols: g4,
                row_stride: seq * g4,
                col_stride: 1,
            },
            View::rows(recurrent_t, g4, h),
            false,
            how,
        );
        if let Some(mask) = state_mask {
            dh_next.iter_mut().zip(mask).for_each(|(v, m)| *v *= m);
        }
    }
}
