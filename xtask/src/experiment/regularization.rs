//! `cargo xtask experiment regularization`: trains the MR classifier with no
//! regularization, with each technique alone and with all of them, through
//! the release `train` binary, and writes the table and the loss plot under
//! `docs/experiments/regularization/`.

use super::seeds::{
    SeedArgs, SeedRun, Variant, kept_epochs, mean_sd, mean_seconds, percent, run_and_tabulate,
    runs_of,
};
use crate::plot::{self, Chart, Series, per_epoch};
use anyhow::{Result, ensure};
use artifact::ClassifierMetrics;
use clap::Args;
use plotters::prelude::{BLUE, RED, SeriesLabelPosition};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct RegularizationArgs {
    #[command(flatten)]
    seeds: SeedArgs,
    /// Epochs of every run (early stopping may end a run sooner).
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    #[arg(long, default_value = "docs/experiments/regularization")]
    out: PathBuf,
    /// Where the runs' artifacts go, one directory per run.
    #[arg(long, default_value = "artifacts/regularization")]
    artifacts: PathBuf,
}

/// No regularization at all: no dropout, no decay, no clipping, and the
/// weights of the last epoch; and a random embedding, as when the table
/// was measured (GloVe became the default on 2026-12-05).
const NONE: [&str; 8] = [
    "--embeddings",
    "none",
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

pub fn run(args: &RegularizationArgs) -> Result<()> {
    let variants: Vec<Variant> = RUNS
        .iter()
        .map(|(name, _, options)| {
            let mut all = vec!["--epochs".to_string(), args.epochs.to_string()];
            all.extend(merged(options).iter().map(|o| o.to_string()));
            (*name, all)
        })
        .collect();
    let results = run_and_tabulate(&args.seeds, &variants, &args.out, &args.artifacts, |r| {
        markdown_table(args.epochs, r)
    })?;
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

fn markdown_table(epochs: usize, results: &[SeedRun]) -> String {
    let mut out = format!(
        "Command: `cargo xtask experiment regularization` ({epochs} epochs at most, seeds 1..=N, \
         ndarray). Accuracies are of the weights each run kept, on each whole split with \
         dropout off, as mean ± sample standard deviation over the seeds, in %; the gap is \
         the mean train minus the mean test accuracy.\n\n\
         | run | options | seeds | train | valid | test | gap | epochs kept | seconds (mean) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for (name, label, options) in RUNS {
        let runs = runs_of(results, name);
        if runs.is_empty() {
            continue;
        }
        let train = |m: &ClassifierMetrics| m.train_accuracy.unwrap_or(f64::NAN);
        let gap = 100.0
            * (mean_sd(&runs.iter().map(|r| train(&r.metrics)).collect::<Vec<_>>()).0
                - mean_sd(
                    &runs
                        .iter()
                        .map(|r| r.metrics.test_accuracy)
                        .collect::<Vec<_>>(),
                )
                .0);
        let options = if options.is_empty() {
            "`".to_string() + &NONE.join(" ") + "`"
        } else {
            "`".to_string() + &options.join(" ") + "`"
        };
        out += &format!(
            "| {label} | {options} | {} | {} | {} | {} | {gap:+.2} | {} | {:.0} |\n",
            runs.len(),
            percent(&runs, train),
            percent(&runs, |m| m.valid_accuracy),
            percent(&runs, |m| m.test_accuracy),
            kept_epochs(&runs),
            mean_seconds(&runs),
        );
    }
    out
}

/// Training and validation loss per epoch of the unregularized and the fully
/// regularized runs of the first seed.
fn plot(results: &[SeedRun], png: &Path) -> Result<()> {
    let runs: Vec<(&str, &ClassifierMetrics)> =
        [("none", "no regularization"), ("all", "all together")]
            .into_iter()
            .filter_map(|(name, label)| runs_of(results, name).first().map(|r| (label, &r.metrics)))
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
    use super::super::seeds::read_jsonl;
    use super::*;

    /// The committed results parse as the classifier's metrics of today.
    #[test]
    fn the_committed_results_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/experiments/regularization/results.jsonl");
        for result in read_jsonl(&path).unwrap() {
            assert!(
                RUNS.iter().any(|r| r.0 == result.variant),
                "{}",
                result.variant
            );
            assert_eq!(
                result.metrics.history.valid_loss.len(),
                result.metrics.epochs_run
            );
        }
    }
}
