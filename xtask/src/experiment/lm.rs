//! `cargo xtask experiment lm`: trains the character language model with the
//! default command, plots its loss per epoch and keeps a generated sample,
//! under `docs/experiments/lm/`.

use crate::cargo::{binary, build_release};
use crate::plot::{self, Chart, Series, per_epoch};
use anyhow::{Result, ensure};
use artifact::LmMetrics;
use artifact::files::{METRICS_FILE, read_json};
use clap::Args;
use plotters::prelude::{BLUE, RED, RGBColor, SeriesLabelPosition};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args)]
pub struct LmArgs {
    /// The artifact `train lm` writes (and this reads).
    #[arg(long, default_value = "artifacts/shakespeare")]
    artifact_dir: PathBuf,
    #[arg(long, default_value = "docs/experiments/lm")]
    out: PathBuf,
    /// Use the release train and infer binaries as they are instead of building them first.
    #[arg(long)]
    no_build: bool,
    /// Train nothing: redraw the plot and the sample from the artifact.
    #[arg(long)]
    plot_only: bool,
}

pub fn run(args: &LmArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)?;
    if !args.plot_only {
        if !args.no_build {
            build_release(&["train", "infer"])?;
        }
        let log = args.out.join("train.log");
        println!(
            "training (the default `train lm`, about 30 minutes); log in {}",
            log.display()
        );
        let status = Command::new(binary("train"))
            .args(["lm", "--artifact-dir"])
            .arg(&args.artifact_dir)
            .stdout(std::fs::File::create(&log)?)
            .status()?;
        ensure!(status.success(), "train lm failed: see {}", log.display());
    }
    let metrics: LmMetrics = read_json(
        &args.artifact_dir.join(METRICS_FILE),
        "a language model's metrics",
    )?;
    let png = args.out.join("loss.png");
    plot_lm_loss(&metrics, &png)?;
    println!("wrote {}", png.display());

    let sample = Command::new(binary("infer"))
        .args(["generate", "--artifact-dir"])
        .arg(&args.artifact_dir)
        .args([
            "--prompt",
            "Romeo.\\n",
            "--length",
            "600",
            "--temperature",
            "0.8",
            "--seed",
            "42",
        ])
        .output()?;
    ensure!(
        sample.status.success(),
        "infer generate failed: {}",
        String::from_utf8_lossy(&sample.stderr)
    );
    std::fs::write(args.out.join("sample.txt"), &sample.stdout)?;
    let summary = format!(
        "best validation loss {:.4} nats/char ({:.4} bits/char) at epoch {} of {}; {:.0} s of training, {:.0} characters/s\n",
        metrics.valid_loss,
        metrics.valid_bits_per_char,
        metrics.best_epoch,
        metrics.epochs_run,
        metrics.train_seconds,
        metrics.chars_per_second
    );
    std::fs::write(args.out.join("results.md"), &summary)?;
    print!("{summary}");
    Ok(())
}

/// The validation loss the language model should reach in its 30-minute
/// budget, in nats per character (docs/generation.md; 1.70 until
/// 2026-12-03).
const TARGET: f64 = 1.50;

/// The training and validation loss of every epoch, and the target.
fn plot_lm_loss(metrics: &LmMetrics, png: &Path) -> Result<()> {
    let epochs = metrics.train_loss_per_epoch.len().max(1) as f64;
    let all = metrics
        .train_loss_per_epoch
        .iter()
        .chain(&metrics.valid_loss_per_epoch);
    let high = all.clone().fold(0.0, |a: f64, &b| a.max(b)) + 0.1;
    let low = all.fold(f64::INFINITY, |a: f64, &b| a.min(b)).min(TARGET) - 0.1;
    let seconds_per_epoch = metrics.train_seconds / metrics.epochs_run.max(1) as f64;
    let caption = format!(
        "Character LSTM on Shakespeare: loss per epoch (about {seconds_per_epoch:.0} s each)"
    );
    let chart = Chart {
        caption: &caption,
        x_desc: "epoch",
        y_desc: "cross-entropy (nats per character)",
        x: 0.5..epochs + 0.5,
        y: low..high,
        log_y: false,
        legend: SeriesLabelPosition::UpperRight,
    };
    let series = [
        Series {
            label: "training (mean over the epoch, dropout on)".into(),
            points: per_epoch(&metrics.train_loss_per_epoch),
            color: RED,
            width: 3,
        },
        Series {
            label: "validation".into(),
            points: per_epoch(&metrics.valid_loss_per_epoch),
            color: BLUE,
            width: 3,
        },
        Series {
            label: format!("target {TARGET:.2}"),
            points: vec![(0.5, TARGET), (epochs + 0.5, TARGET)],
            color: RGBColor(128, 128, 128),
            width: 1,
        },
    ];
    plot::draw(png, &chart, &series)
}
