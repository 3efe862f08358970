//! `cargo xtask loadtest`: builds `infer` in release and runs its `loadtest`
//! binary (crates/infer/src/bin/loadtest.rs), which starts `infer serve` on a
//! loopback port, measures throughput and latency with and without dynamic
//! batching, and stops the server. The arguments after `--` go to it.

use crate::cargo;
use anyhow::{Result, ensure};
use clap::Args;
use std::process::Command;

#[derive(Args)]
pub struct LoadtestArgs {
    /// Use the release binaries as they are.
    #[arg(long)]
    no_build: bool,
    /// Passed to the load test (`cargo xtask loadtest -- --help` lists them).
    #[arg(last = true)]
    rest: Vec<String>,
}

pub fn run(args: &LoadtestArgs) -> Result<()> {
    let loadtest = cargo::release_binary("loadtest", "infer", args.no_build)?;
    let status = Command::new(&loadtest).args(&args.rest).status()?;
    ensure!(status.success(), "the load test failed ({status})");
    Ok(())
}
