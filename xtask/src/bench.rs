//! `cargo xtask bench`: builds the `bench` binary of the `train` crate in
//! release and runs it, so the figures always come from an optimized build.

use anyhow::{Result, ensure};
use clap::Args;
use std::process::Command;

#[derive(Args)]
pub struct BenchArgs {
    /// Fewer iterations per case (a smoke run, not a measurement).
    #[arg(long)]
    quick: bool,
    /// Also run the cases on the wgpu backend (compiles the `wgpu` feature).
    #[arg(long)]
    wgpu: bool,
    /// Only the cases whose name contains this string.
    #[arg(long)]
    case: Option<String>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "train",
        "--bin",
        "bench",
    ]);
    if args.wgpu {
        cmd.args(["--features", "wgpu"]);
    }
    cmd.arg("--");
    if args.quick {
        cmd.arg("--quick");
    }
    if let Some(case) = &args.case {
        cmd.args(["--case", case]);
    }
    let status = cmd.status()?;
    ensure!(status.success(), "the bench binary failed ({status})");
    Ok(())
}
