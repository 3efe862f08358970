//! Using a trained artifact: classifying (through [`artifact::Classifier`],
//! the one prediction path, shared with `train`'s test evaluation),
//! generating text with a language model ([`generate`]), the side-by-side
//! report of classifiers ([`report`]), the HTTP server ([`serve`]) and
//! translation with its alignment pictures ([`translate`]).
//!
//! The artifact format itself is the `artifact` crate's; this crate needs
//! nothing but the directory, and no trainer.

pub mod generate;
pub mod report;
pub mod serve;
pub mod translate;

pub use generate::{Generator, Sampling};
