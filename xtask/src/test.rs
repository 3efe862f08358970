//! `cargo xtask test`: the README's test command. It makes sure the wgpu
//! tests can run — the wgpu backend runs on the CPU through Mesa's lavapipe
//! Vulkan driver where there is no GPU — and that the web page's test has a
//! browser (Debian's `chromium`) and the alignment picture a font
//! (`fonts-dejavu-core`), installing each with apt-get when it is
//! missing and this user may, then runs every test in release.
//!
//! The page's test (`crates/infer/tests/page.rs`) skips with a message when
//! there is no Chromium, except under CI; this command repeats that at the
//! end.
//!
//! The wgpu test reads `BURN_SEQ_WGPU`: `require` (set here when a Vulkan
//! driver is present, and always under CI) makes a missing adapter a
//! failure; `skip` (set here only when no driver could be installed, off
//! CI) makes the test say it skipped and pass, and this command repeats
//! that at the end. A plain `cargo test` without the variable fails on a
//! machine without an adapter, with what to install.

use anyhow::{Result, bail};
use clap::Args;
use std::path::Path;
use std::process::Command;

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Arguments passed on to `cargo test` (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

/// Where Vulkan loaders look for installable client drivers.
const ICD_DIRS: [&str; 3] = [
    "/usr/share/vulkan/icd.d",
    "/etc/vulkan/icd.d",
    "/usr/local/share/vulkan/icd.d",
];

pub fn run(args: &TestArgs) -> Result<()> {
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    let mut driver = vulkan_driver_present();
    if !driver {
        println!(
            "xtask test: no Vulkan driver found (looked in {})",
            ICD_DIRS.join(", ")
        );
        driver = apt_install("mesa-vulkan-drivers") && vulkan_driver_present();
    }
    let mut browser = chromium_present();
    if !browser {
        println!("xtask test: no chromium on PATH (the web page's test drives it)");
        browser = apt_install("chromium") && chromium_present();
    }
    // The alignment picture's labels (crates/infer/tests/translate.rs).
    let font = Path::new(FONT).is_file()
        || (apt_install("fonts-dejavu-core") && Path::new(FONT).is_file());
    if !font && in_ci {
        bail!("CI is set and {FONT} is missing: apt-get install fonts-dejavu-core");
    }
    let mode = if driver || in_ci { "require" } else { "skip" };
    if !driver && in_ci {
        println!("xtask test: CI is set, so the wgpu tests are required and will fail");
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--release", "--workspace"])
        .args(&args.cargo_args)
        .env("BURN_SEQ_WGPU", mode)
        .status()?;
    if mode == "skip" {
        println!(
            "\nxtask test: THE WGPU TESTS WERE SKIPPED: no Vulkan driver, and apt-get could not install one. \
             Install Mesa's lavapipe (`sudo apt-get install mesa-vulkan-drivers` on Debian/Ubuntu) or a GPU driver, then rerun."
        );
    }
    if !browser && !in_ci {
        println!(
            "\nxtask test: THE WEB PAGE'S BROWSER TEST WAS SKIPPED: no chromium, and apt-get could not install it. \
             Install it (`sudo apt-get install chromium`), then rerun."
        );
    }
    if !font {
        println!(
            "\nxtask test: THE ALIGNMENT PICTURE'S TEST WAS SKIPPED: no {FONT}. \
             Install it (`sudo apt-get install fonts-dejavu-core`), then rerun."
        );
    }
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

/// The font `infer translate --plot` draws its labels with.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Whether any Vulkan client driver is installed.
fn vulkan_driver_present() -> bool {
    ICD_DIRS.iter().any(|dir| {
        std::fs::read_dir(Path::new(dir)).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
    })
}

/// Whether `chromium` is on PATH.
fn chromium_present() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("chromium").is_file()))
}

/// Installs a Debian package with apt-get, as root or through password-less
/// sudo; says what happened. Returns whether apt-get succeeded.
fn apt_install(package: &str) -> bool {
    if Command::new("apt-get").arg("--version").output().is_err() {
        println!("xtask test: no apt-get here; install {package} (or its equivalent) by hand");
        return false;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let prefix: &[&str] = if root { &[] } else { &["sudo", "-n"] };
    println!(
        "xtask test: installing {package} ({}apt-get install)",
        if root { "" } else { "sudo -n " }
    );
    let apt = |args: &[&str]| {
        let mut all: Vec<&str> = prefix.to_vec();
        all.push("apt-get");
        all.extend_from_slice(args);
        Command::new(all[0])
            .args(&all[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed = apt(&["update", "-q"]) && apt(&["install", "-y", "-q", package]);
    if !installed {
        println!(
            "xtask test: apt-get could not install {package} (not root, and no password-less sudo?)"
        );
    }
    installed
}
