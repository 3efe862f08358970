//! Sequence models, each generic over a Burn [`Backend`](burn::tensor::backend::Backend)
//! so that one definition runs on the ndarray CPU backend and, unchanged, on wgpu.
//!
//! This crate knows nothing of files, datasets or training loops: it takes
//! tensors and returns tensors. Shapes in comments use B = batch size,
//! T = sequence length, E = embedding size, H = hidden size, C = classes.
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::prelude::*;
//! use model::TextClassifierConfig;
//!
//! let device = Default::default();
//! let model = TextClassifierConfig::new(100, 2).init::<NdArray>(&device);
//! let tokens = Tensor::<NdArray, 2, Int>::from_ints([[5, 6, 7], [8, 9, 0]], &device);
//! let mask = tokens.clone().not_equal_elem(0); // [B, T], false at padding
//! let out = model.forward(tokens, mask);
//! assert_eq!(out.logits.dims(), [2, 2]); // [B, C]
//! assert_eq!(out.attention.dims(), [2, 3]); // [B, T]
//! ```

mod attention;
mod classifier;
mod lstm;

pub use attention::{AttentionPooling, AttentionPoolingConfig};
pub use classifier::{ClassifierOutput, TextClassifier, TextClassifierConfig};
pub use lstm::{Lstm, LstmConfig, LstmState};
