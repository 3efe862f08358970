//! Building the workspace's release binaries and finding them, wherever
//! `CARGO_TARGET_DIR` puts them.

use anyhow::{Result, ensure};
use std::path::PathBuf;
use std::process::Command;

/// `cargo build --release` of the given packages' binaries.
pub fn build_release(packages: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--release"]);
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command.status()?;
    ensure!(
        status.success(),
        "building {} failed ({status})",
        packages.join(" and ")
    );
    Ok(())
}

/// The release binary `name` (`train`, `infer`, `bench`): under
/// `$CARGO_TARGET_DIR/release`, or `target/release` of the workspace root
/// (xtask runs there).
pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("release").join(name)
}

/// [`binary`], built first unless `no_build`, and checked to exist.
pub fn release_binary(name: &str, package: &str, no_build: bool) -> Result<PathBuf> {
    if !no_build {
        build_release(&[package])?;
    }
    let path = binary(name);
    ensure!(
        path.is_file(),
        "{} not found: build it (cargo build --release -p {package}) or drop --no-build",
        path.display()
    );
    Ok(path)
}
