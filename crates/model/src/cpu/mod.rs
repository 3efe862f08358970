//! The CPU backends' own code (ndarray and flex): plain `f32` buffers
//! instead of a dozen tensor operations per time step.
//!
//! - [`host`]: float tensors read as and made from plain memory ([`CpuBackend`]).
//! - [`threads`]: the process's thread policy ([`configure_threads`]).
//! - [`memory`]: the binaries' memory policy ([`keep_freed_memory`]).
//! - [`matmul`]: strided matrix products (gemm, and a few-rows path).
//! - [`simd`]: code compiled for AVX-512 or AVX2 when the CPU has them, and
//!   the exp-based sigmoid and tanh.
//! - [`lstm`]: the LSTM layer's forward and backward passes.
//! - [`embedding`]: the gradient of an embedding table.
//! - [`dropout`]: dropout masks from a fast seeded generator.
//! - [`transpose`]: the weight gradient of a Linear over rows.
//! - [`adamw`]: AdamW's update as one pass over the weights, the gradient
//!   and the moments.
//! - [`int8`]: the int8 product (AVX-512 VNNI, or a portable loop).
//! - [`classifier`]: the text classifier for inference on plain buffers,
//!   with f32 or int8 weights ([`HostClassifier`](classifier::HostClassifier)).

mod adamw;
pub mod classifier;
pub(crate) mod dropout;
pub(crate) mod embedding;
mod host;
mod int8;
pub(crate) mod lstm;
mod matmul;
mod memory;
mod simd;
mod threads;
pub(crate) mod transpose;

pub use adamw::{AdamWUpdate, adamw_update};
pub use host::CpuBackend;
pub use memory::keep_freed_memory;
pub use threads::{configure_threads, kernel_threads};

#[cfg(test)]
pub(crate) mod test_data {
    use super::CpuBackend;
    use burn::backend::NdArray;
    use burn::prelude::*;
    use burn::tensor::ops::FloatTensor;

    /// Deterministic values spread over ±scale·√3 (a small LCG).
    pub fn random(shape: impl Into<Shape>, scale: f32) -> FloatTensor<NdArray> {
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

    pub fn values(tensor: FloatTensor<NdArray>) -> Vec<f32> {
        NdArray::to_vec(&tensor)
    }
}
