//! The LSTM recurrence as a CPU kernel, for the ndarray and flex backends.
//!
//! Written with tensor operations ([`crate::lstm_op`]'s reference version),
//! a time step is about a dozen backend calls, each allocating its result and
//! each handed to a thread pool; at the bench's shapes that overhead, and the
//! CPU backends' slow `tanh`, cost more than the arithmetic
//! (`shared/bench/FINDINGS.md`, `docs/perf/README.md`). Here a step is one
//! matmul — the `gemm` crate, which picks AVX-512, AVX2 or SSE kernels when it
//! runs — and one pass over the batch rows that applies the gates in place,
//! with exp-based sigmoid and tanh that the compiler vectorizes (compiled for
//! the best instruction set the CPU has: AVX-512 or AVX2, chosen when it runs).
//!
//! The buffers live for the whole sequence. The forward pass turns the
//! pre-activations `[B, T, 4H]` into the gate activations in place, and the
//! backward pass turns those into their gradients in place; everything is
//! kept batch-major, as the tensors are, so no transposes are needed.
//! The equations are those of [`crate::lstm_op`].

use burn::prelude::*;
use burn::tensor::{TensorMetadata, TensorPrimitive};

use crate::LstmInputs;
use burn::tensor::ops::FloatTensor;
use gemm::Parallelism;
use rayon::prelude::*;

/// Problems at least this large (multiply-adds) are split across threads;
/// below it a matmul is over before the pool would have woken up.
const PARALLEL_MATMUL: usize = 1 << 20;
/// Products with at most this many rows skip gemm (see `small_matmul`).
const SMALL_BATCH: usize = 4;
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
    let (out, trace) = pool().install(|| forward(x, weights, h0, c0, state_mask, dims, keep_trace));
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
        pool().install(|| backward(trace, grad));
    [
        B::from_vec(d_x, [batch, seq, d_input].into(), &device),
        B::from_vec(d_input_weight, [d_input, 4 * hidden].into(), &device),
        B::from_vec(d_bias, [4 * hidden].into(), &device),
        B::from_vec(d_recurrent, [hidden, 4 * hidden].into(), &device),
        B::from_vec(d_h0, [batch, hidden].into(), &device),
        B::from_vec(d_c0, [batch, hidden].into(), &device),
    ]
}

/// The kernel's threads: one per core, in a pool of its own, so that its
/// matmuls use every core whatever the global rayon pool (the one Burn's CPU
/// backends run their operations on) is set to. The binaries give that one a
/// single thread: waking a second thread for each of Burn's many small
/// operations costs more than it saves (`docs/perf/README.md`).
fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(kernel_threads())
            .thread_name(|i| format!("lstm-kernel-{i}"))
            .build()
            .expect("starting the LSTM kernel's thread pool")
    })
}

/// Gives the global rayon pool, on which Burn's ndarray and flex backends
/// run their operations, a single thread, unless `RAYON_NUM_THREADS` sets it;
/// the LSTM kernel keeps one thread per core in its own pool. For binaries,
/// at start-up: on the 2-core development machine this made every bench case
/// faster (a training step at batch 32 × 64 from 69 to 46 ms), because most
/// of Burn's operations on these models are too small to pay for waking a
/// second thread (`docs/perf/README.md`). Does nothing if the global pool
/// has already started.
pub fn configure_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // An error means the pool is already running; it is left as it is.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build_global();
    }
}

/// How many threads the CPU LSTM kernel runs its matmuls on: one per core.
pub fn kernel_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A CPU backend whose float tensors can be read and made as plain memory:
/// the LSTM kernel's inputs and outputs, and the training crate's fused
/// optimizer.
pub trait CpuBackend: Backend {
    /// The tensor's values, row-major.
    fn to_vec(tensor: &FloatTensor<Self>) -> Vec<f32>;

    /// The tensor's values, row-major, without a copy when the tensor is the
    /// only owner of contiguous memory.
    fn into_vec(tensor: FloatTensor<Self>) -> Vec<f32> {
        Self::to_vec(&tensor)
    }

    /// A tensor of `shape` holding `values` (moved, not copied).
    fn from_vec(values: Vec<f32>, shape: Shape, device: &Self::Device) -> FloatTensor<Self> {
        Self::float_from_data(TensorData::new(values, shape), device)
    }
}

const F32_ONLY: &str = "the CPU LSTM kernel runs on f32 tensors";

impl CpuBackend for burn::backend::NdArray {
    fn to_vec(tensor: &FloatTensor<Self>) -> Vec<f32> {
        // Not `into_data`: for a tensor that is shared (a parameter) or a
        // view, it walks the elements one by one through a dynamic-rank
        // iterator, at about 30 ns each.
        match tensor {
            burn::backend::ndarray::NdArrayTensor::F32(storage) => {
                let view = storage.view();
                match view.as_slice() {
                    Some(values) => values.to_vec(),
                    None => view.iter().copied().collect(),
                }
            }
            _ => panic!("{F32_ONLY}"),
        }
    }

    fn into_vec(tensor: FloatTensor<Self>) -> Vec<f32> {
        let unique = match &tensor {
            burn::backend::ndarray::NdArrayTensor::F32(storage) => {
                storage.is_unique() && storage.view().as_slice().is_some()
            }
            _ => panic!("{F32_ONLY}"),
        };
        if !unique {
            return Self::to_vec(&tensor);
        }
        // Contiguous and unshared: `into_data` hands over the buffer itself.
        Tensor::<Self, 1>::from_primitive(TensorPrimitive::Float(tensor))
            .into_data()
            .into_vec::<f32>()
            .expect(F32_ONLY)
    }
}

#[cfg(feature = "flex")]
impl CpuBackend for burn::backend::Flex {
    fn to_vec(tensor: &FloatTensor<Self>) -> Vec<f32> {
        match tensor.as_slice::<f32>() {
            Some(values) => values.to_vec(),
            None => Tensor::<Self, 1>::from_primitive(TensorPrimitive::Float(tensor.clone()))
                .into_data()
                .into_vec::<f32>()
                .expect(F32_ONLY),
        }
    }
}

/// The forward pass on plain buffers: x `[B, T, E]`, `hidden` and `cell`
/// the start state `[B, H]`. Returns `[B·T + B, H]` (the hidden states, then
/// the final cells) and, when asked, the trace.
fn forward(
    x: Vec<f32>,
    weights: Weights,
    mut hidden: Vec<f32>,
    mut cell: Vec<f32>,
    state_mask: Option<Vec<f32>>,
    dims: Dims,
    keep_trace: bool,
) -> (Vec<f32>, Option<CpuTrace>) {
    let Dims {
        batch,
        seq,
        d_input,
        hidden: h,
    } = dims;
    let g4 = 4 * h;
    // The pre-activations of every step at once: b + x W. `[B·T, 4H]`
    let mut gates = vec![0.0; batch * seq * g4];
    gates
        .chunks_mut(g4)
        .for_each(|row| row.copy_from_slice(&weights.bias));
    matmul(
        &mut gates,
        g4,
        View::rows(&x, batch * seq, d_input),
        View::rows(&weights.input, d_input, g4),
        true,
    );
    let recurrent = &weights.recurrent;
    let mut out = vec![0.0; batch * (seq + 1) * h];
    let traced = |len| {
        if keep_trace {
            vec![0.0; len]
        } else {
            Vec::new()
        }
    };
    let mut hiddens = traced(batch * seq * h);
    let mut prev_cells = traced(batch * seq * h);
    // tanh(c_t): every step's when tracing, else only the current step's.
    let mut tanh_cells = vec![
        0.0;
        if keep_trace {
            batch * seq * h
        } else {
            batch * h
        }
    ];
    let (tanh_row_len, tanh_at) = if keep_trace { (seq * h, h) } else { (h, 0) };
    let parallel = batch * g4 >= PARALLEL_ROWS;

    for t in 0..seq {
        if let Some(mask) = &state_mask {
            hidden.iter_mut().zip(mask).for_each(|(v, m)| *v *= m);
        }
        if keep_trace {
            for row in 0..batch {
                let at = (row * seq + t) * h;
                hiddens[at..at + h].copy_from_slice(&hidden[row * h..(row + 1) * h]);
                prev_cells[at..at + h].copy_from_slice(&cell[row * h..(row + 1) * h]);
            }
        }
        // gates[:, t, :] += h U
        matmul(
            &mut gates[t * g4..],
            seq * g4,
            View::rows(&hidden, batch, h),
            View::rows(recurrent, h, g4),
            true,
        );
        let step =
            |gate: &mut [f32], c: &mut [f32], hid: &mut [f32], o: &mut [f32], tc: &mut [f32]| {
                cell_forward_best(
                    &mut gate[t * g4..(t + 1) * g4],
                    c,
                    hid,
                    &mut tc[tanh_at * t..tanh_at * t + h],
                    &mut o[t * h..(t + 1) * h],
                )
            };
        if parallel {
            (
                gates.par_chunks_mut(seq * g4),
                cell.par_chunks_mut(h),
                hidden.par_chunks_mut(h),
                out[..batch * seq * h].par_chunks_mut(seq * h),
                tanh_cells.par_chunks_mut(tanh_row_len),
            )
                .into_par_iter()
                .for_each(|(gate, c, hid, o, tc)| step(gate, c, hid, o, tc));
        } else {
            for ((((gate, c), hid), o), tc) in gates
                .chunks_mut(seq * g4)
                .zip(cell.chunks_mut(h))
                .zip(hidden.chunks_mut(h))
                .zip(out[..batch * seq * h].chunks_mut(seq * h))
                .zip(tanh_cells.chunks_mut(tanh_row_len))
            {
                step(gate, c, hid, o, tc);
            }
        }
    }
    out[batch * seq * h..].copy_from_slice(&cell);
    let trace = keep_trace.then(|| CpuTrace {
        dims,
        x,
        gates,
        prev_cells,
        tanh_cells,
        hiddens,
        weights,
        state_mask,
    });
    (out, trace)
}

/// `$name` runs `$inner` compiled for the best instruction set the CPU has
/// (AVX-512, else AVX2 with FMA, else the build's baseline). `$inner` must be
/// `#[inline(always)]`, so that its loops are compiled inside each
/// `#[target_feature]` copy and vectorized for it.
macro_rules! best_instructions {
    (fn $name:ident = $inner:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?) => {
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $inner($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $inner($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the instructions `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above, for `avx2`.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $inner($($arg),*)
        }
    };
}

best_instructions!(fn cell_forward_best = cell_forward(
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

best_instructions!(fn small_matmul_best = small_matmul(
    dst: &mut [f32],
    dst_row_stride: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
) -> bool);

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

/// The backward pass on plain buffers, from the gradient `[B·T + B, H]` of the
/// forward output: the gradients of x `[B, T, E]`, W `[E, 4H]`, b `[4H]`,
/// U `[H, 4H]`, h_0 and c_0 `[B, H]`.
fn backward(trace: CpuTrace, grad: Vec<f32>) -> [Vec<f32>; 6] {
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
    let parallel = batch * g4 >= PARALLEL_ROWS;

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
        if parallel {
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
        matmul(
            &mut dh_next,
            h,
            View {
                data: &d_gates[t * g4..],
                rows: batch,
                cols: g4,
                row_stride: seq * g4,
                col_stride: 1,
            },
            View::rows(&weights.recurrent, h, g4).transposed(),
            false,
        );
        if let Some(mask) = &state_mask {
            dh_next.iter_mut().zip(mask).for_each(|(v, m)| *v *= m);
        }
    }
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
    [d_x, d_input_weight, d_bias, d_recurrent, dh_next, dc_next]
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

/// A matrix inside a buffer: element (r, c) is
/// `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows × cols` matrix.
    fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    fn transposed(self) -> Self {
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
/// `dst_row_stride`; adds to what `dst` holds when `accumulate`.
fn matmul(dst: &mut [f32], dst_row_stride: usize, lhs: View, rhs: View, accumulate: bool) {
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
    if m <= SMALL_BATCH && lhs.col_stride == 1 {
        let done = small_matmul_best(dst, dst_row_stride, lhs, rhs, accumulate);
        if done {
            return;
        }
    }
    let parallelism = if m * n * k >= PARALLEL_MATMUL {
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

/// eˣ for |x| up to about 88, to within a couple of ulps: 2ⁿ · e^r with
/// n = round(x / ln 2) and a degree-7 polynomial for e^r (Cephes' expf).
/// Branch-free, so the loops calling it vectorize.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Adding 1.5 · 2²³ rounds to an integer, which lands in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // x − n ln 2, with ln 2 in two parts so that the product is exact.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let e_r = p * r * r + r + 1.0;
    let two_n = f32::from_bits(
        (shifted
            .to_bits()
            .wrapping_sub(ROUND.to_bits())
            .wrapping_add(127))
            << 23,
    );
    e_r * two_n
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lstm_op::tensor_ops;
    use burn::backend::NdArray;

    /// Deterministic values spread over ±scale·√3 (a small LCG).
    fn random(shape: impl Into<Shape>, scale: f32) -> FloatTensor<NdArray> {
        let shape = shape.into();
        let mut state = shape.num_elements() as u64 * 2_654_435_761 + 1;
        let values = (0..shape.num_elements())
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.46 * scale
            })
            .collect();
        NdArray::from_vec(values, shape.into(), &Default::default())
    }

    fn values(tensor: FloatTensor<NdArray>) -> Vec<f32> {
        NdArray::to_vec(&tensor)
    }

    /// The kernel against the tensor-operation version, forward and every
    /// gradient, at a batch large enough for gemm, threads on the matmuls and
    /// the rows split across threads (72 × 4·128 gate values per step), and
    /// with a state mask.
    #[test]
    fn the_kernel_equals_the_tensor_operation_version() {
        let (batch, seq, d_input, h) = (72, 9, 24, 128);
        assert!(batch * 4 * h >= PARALLEL_ROWS && batch > SMALL_BATCH);
        let mask: Vec<f32> = (0..batch * h)
            .map(|i| if i % 3 == 0 { 0.0 } else { 1.5 })
            .collect();
        let inputs = LstmInputs::<NdArray> {
            x: random([batch, seq, d_input], 1.0),
            input_weight: random([d_input, 4 * h], 0.2),
            input_bias: random([4 * h], 0.5),
            recurrent: random([h, 4 * h], 0.1),
            h0: random([batch, h], 1.0),
            c0: random([batch, h], 1.0),
            state_mask: Some(NdArray::from_vec(
                mask,
                [batch, h].into(),
                &Default::default(),
            )),
        };
        let grad = random([batch * (seq + 1), h], 1.0);

        let (out, trace) = lstm_forward::<NdArray>(inputs.clone(), true);
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

    #[test]
    fn exp_sigmoid_and_tanh_match_the_standard_library() {
        let mut worst = [0.0f32; 3];
        for k in -20_000..=20_000 {
            let x = k as f32 * 0.005; // −100 … 100
            let e = x.clamp(-87.0, 88.0);
            worst[0] = worst[0].max(((exp(e) - e.exp()) / e.exp()).abs());
            worst[1] = worst[1].max((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs());
            worst[2] = worst[2].max((tanh(x) - x.tanh()).abs());
        }
        assert!(worst[0] < 3e-7, "exp: relative error {}", worst[0]);
        assert!(worst[1] < 2e-7, "sigmoid: error {}", worst[1]);
        assert!(worst[2] < 3e-7, "tanh: error {}", worst[2]);
        assert_eq!(exp(0.0), 1.0);
        assert!(sigmoid(-200.0) < 1e-37);
        assert_eq!(tanh(200.0), 1.0);
        assert_eq!(tanh(-200.0), -1.0);
    }

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
