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

#[cfg(test)]
mod tests {
    /// `cargo run -p P`, as the README writes it, needs one binary to run:
    /// a package with several names its default (`default-run`).
    #[test]
    fn every_package_with_several_binaries_names_the_one_cargo_run_runs() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let packages = metadata["packages"].as_array().unwrap();
        assert!(packages.iter().any(|p| p["name"] == "infer"));
        for package in packages {
            let bins: Vec<&str> = package["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            if bins.len() > 1 {
                let default = package["default_run"].as_str();
                assert!(
                    default.is_some_and(|d| bins.contains(&d)),
                    "{}: binaries {bins:?} and no default-run",
                    package["name"]
                );
            }
        }
    }
}
