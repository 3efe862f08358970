//! `cargo xtask experiment regularization`: trains the MR classifier with no
//! regularization, with each technique alone and with all of them, through
//! the release `train` binary, and writes the table and the loss plot under
//! `docs/experiments/regularization/`.

use crate::cargo::release_binary;
use crate::plot::{self, Chart, Series, per_epoch};
use anyhow::{Context, Result, ensure};
use artifact::ClassifierMetrics;
use artifact::files::{METRICS_FILE, read_json};
use clap::Args;
use plotters::prelude::{BLUE, RED, SeriesLabelPosition};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args)]
pub struct RegularizationArgs {
    /// Epochs of every run (early stopping may end a run sooner).
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    #[arg(long, default_value = "docs/experiments/regularization")]
    out: PathBuf,
    /// Where the runs' artifacts go, one directory per run.
    #[arg(long, default_value = "artifacts/regularization")]
    artifacts: PathBuf,
    /// Rerun only these runs (by their short names), keeping the other rows
    /// from the previous results.jsonl.
    #[arg(long, value_delimiter = ',')]
    runs: Vec<String>,
    /// Use the release train binary as it is instead of building it first.
    #[arg(long)]
    no_build: bool,
    /// Train nothing: redraw the table and the plot from results.jsonl.
    #[arg(long)]
    plot_only: bool,
}

/// No regularization at all: no dropout, no decay, no clipping, and the
/// weights of the last epoch.
const NONE: [&str; 6] = [
    "--embedding-dropout",
    "0",
    "--output-dropout",
    "0",
    "--select",
    "last",
];

/// The runs: a short name, what the table calls it, and the options added
/// to (or overriding) [`NONE`].
const RUNS: [(&str, &str, &[&str]); 8] = [
    ("none", "no regularization", &[]),
    (
        "embedding",
        "embedding dropout 0.5",
        &["--embedding-dropout", "0.5"],
    ),
    ("output", "output dropout 0.5", &["--output-dropout", "0.5"]),
    (
        "recurrent",
        "variational recurrent dropout 0.25",
        &["--recurrent-dropout", "0.25"],
    ),
    (
        "decay",
        "weight decay 0.05 (AdamW)",
        &["--weight-decay", "0.05"],
    ),
    ("clip", "gradient clipping at norm 1", &["--clip-norm", "1"]),
    (
        "early",
        "early stopping on validation loss (patience 2)",
        &["--select", "loss", "--patience", "2"],
    ),
    (
        "all",
        "all of the above together",
        &[
            "--embedding-dropout",
            "0.5",
            "--output-dropout",
            "0.5",
            "--recurrent-dropout",
            "0.25",
            "--weight-decay",
            "0.05",
            "--clip-norm",
            "1",
            "--select",
            "loss",
            "--patience",
            "2",
        ],
    ),
];

/// A run's metrics.json, with the run's short name (one line of results.jsonl).
#[derive(Deserialize, Serialize, Clone)]
struct RunResult {
    #[serde(default)]
    run: String,
    #[serde(flatten)]
    metrics: ClassifierMetrics,
}

pub fn run(args: &RegularizationArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let jsonl = args.out.join("results.jsonl");
    let mut results: Vec<RunResult> = if jsonl.exists() {
        std::fs::read_to_string(&jsonl)?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is not a results file", jsonl.display()))?
    } else {
        Vec::new()
    };
    if !args.plot_only {
        let train = release_binary("train", "train", args.no_build)?;
        for (name, label, options) in RUNS {
            if !args.runs.is_empty() && !args.runs.iter().any(|r| r == name) {
                continue;
            }
            let artifact = args.artifacts.join(name);
            let log = args.artifacts.join(format!("{name}.log"));
            std::fs::create_dir_all(&args.artifacts)?;
            println!("{label}: training, log in {}", log.display());
            let status = Command::new(&train)
                .arg("--artifact-dir")
                .arg(&artifact)
                .args(["--epochs", &args.epochs.to_string()])
                .args(merged(options))
                .stdout(std::fs::File::create(&log)?)
                .status()?;
            ensure!(
                status.success(),
                "{label}: train failed, see {}",
                log.display()
            );
            let result = RunResult {
                run: name.to_string(),
                metrics: read_json(&artifact.join(METRICS_FILE), "a classifier's metrics")?,
            };
            println!(
                "  test {:.2}%, kept epoch {} of {}",
                100.0 * result.metrics.test_accuracy,
                result.metrics.best_epoch,
                result.metrics.epochs_run
            );
            results.retain(|r| r.run != name);
            results.push(result);
            let lines: Vec<String> = RUNS
                .iter()
                .filter_map(|(n, _, _)| results.iter().find(|r| r.run == *n))
                .map(serde_json::to_string)
                .collect::<Result<_, _>>()?;
            std::fs::write(&jsonl, lines.join("\n") + "\n")?;
        }
    }
    let table = markdown_table(args.epochs, &results);
    std::fs::write(args.out.join("results.md"), &table)?;
    print!("{table}");
    let png = args.out.join("loss.png");
    plot(&results, &png)?;
    println!("wrote {}", png.display());
    Ok(())
}

/// [`NONE`] with `options` (flag–value pairs) added or replacing its own:
/// clap takes each option once.
fn merged(options: &[&'static str]) -> Vec<&'static str> {
    let mut merged: Vec<[&str; 2]> = NONE.chunks(2).map(|p| [p[0], p[1]]).collect();
    for pair in options.chunks(2) {
        match merged.iter_mut().find(|[flag, _]| *flag == pair[0]) {
            Some(slot) => slot[1] = pair[1],
            None => merged.push([pair[0], pair[1]]),
        }
    }
    merged.concat()
}

fn markdown_table(epochs: usize, results: &[RunResult]) -> String {
    let mut out = format!(
        "Command: `cargo xtask experiment regularization` ({epochs} epochs at most, seed 42, \
         ndarray). Accuracies are of the weights the run kept, on each whole split with \
         dropout off; the gap is train minus test.\n\n\
         | run | options | train | valid | test | gap | epoch kept | seconds |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n"
    );
    for (name, label, options) in RUNS {
        let Some(r) = results.iter().find(|r| r.run == name).map(|r| &r.metrics) else {
            continue;
        };
        let train = r.train_accuracy.unwrap_or(f64::NAN);
        let options = if options.is_empty() {
            "`".to_string() + &NONE.join(" ") + "`"
        } else {
            "`".to_string() + &options.join(" ") + "`"
        };
        out += &format!(
            "| {label} | {options} | {:.2}% | {:.2}% | {:.2}% | {:+.2} | {} of {} | {:.0} |\n",
            100.0 * train,
            100.0 * r.valid_accuracy,
            100.0 * r.test_accuracy,
            100.0 * (train - r.test_accuracy),
            r.best_epoch,
            r.epochs_run,
            r.train_seconds,
        );
    }
    out
}

/// Training and validation loss per epoch of the unregularized and the fully
/// regularized runs.
fn plot(results: &[RunResult], png: &Path) -> Result<()> {
    let runs: Vec<(&str, &ClassifierMetrics)> =
        [("none", "no regularization"), ("all", "all together")]
            .into_iter()
            .filter_map(|(name, label)| {
                results
                    .iter()
                    .find(|r| r.run == name)
                    .map(|r| (label, &r.metrics))
            })
            .collect();
    ensure!(
        !runs.is_empty(),
        "no results for the runs `none` and `all` to plot"
    );
    let epochs = runs
        .iter()
        .map(|(_, r)| r.history.valid_loss.len())
        .max()
        .unwrap_or(1) as f64;
    let high = runs
        .iter()
        .flat_map(|(_, r)| r.history.train_loss.iter().chain(&r.history.valid_loss))
        .fold(0.0f64, |a, &b| a.max(b))
        * 1.05;
    let mut series = Vec::new();
    for ((label, r), color) in runs.iter().zip([RED, BLUE]) {
        for (split, values, width) in [
            ("training", &r.history.train_loss, 1),
            ("validation", &r.history.valid_loss, 3),
        ] {
            series.push(Series {
                label: format!("{label}: {split}"),
                points: per_epoch(values),
                color,
                width,
            });
        }
    }
    let chart = Chart {
        caption: "MR classifier: loss per epoch without and with regularization",
        x_desc: "epoch",
        y_desc: "cross-entropy",
        x: 0.5..epochs + 0.5,
        y: 0.0..high,
        log_y: false,
        legend: SeriesLabelPosition::UpperLeft,
    };
    plot::draw(png, &chart, &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed results parse as the classifier's metrics of today.
    #[test]
    fn the_committed_results_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/experiments/regularization/results.jsonl");
        let text = std::fs::read_to_string(path).unwrap();
        for line in text.lines() {
            let result: RunResult = serde_json::from_str(line).unwrap();
            assert!(RUNS.iter().any(|r| r.0 == result.run), "{line}");
            assert_eq!(
                result.metrics.history.valid_loss.len(),
                result.metrics.epochs_run
            );
        }
    }
}
