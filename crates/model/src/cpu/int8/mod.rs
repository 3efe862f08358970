//! int8 inference on the CPU: weights stored as 8-bit integers with one
//! scale per output column (or per embedding row), activations quantized
//! per row on the fly, products summed in 32-bit integers — AVX-512 VNNI
//! where the CPU has it, a portable loop giving the same integers elsewhere.
//! Faster than f32 as well as four times smaller, where Burn's own int8
//! tensors are dequantized on every read (`docs/compression.md`).
//!
//! - [`matmul`]: the int8 product and the packed weight layout.
//! - [`lstm`]: one LSTM direction over a batch packed by length.
//! - [`classifier`]: the text classifier on them ([`Int8Classifier`]).

mod classifier;
mod lstm;
mod matmul;

pub use classifier::{Int8Classifier, Int8Output, Unsupported};
