//! int8 arithmetic on the CPU: weights stored as 8-bit integers with one
//! scale per output column (or per embedding row), activations quantized
//! per row on the fly, products summed in 32-bit integers — AVX-512 VNNI
//! where the CPU has it, a portable loop giving the same integers elsewhere.
//! Faster than f32 as well as four times smaller, where Burn's own int8
//! tensors are dequantized on every read (`docs/compression.md`). The
//! classifier runs on it as [`Int8`](crate::cpu::classifier::Int8), one of
//! the host classifier's weight formats.

mod matmul;

pub(crate) use matmul::{Int8Matrix, Int8Rows, matmul};
