//! `cargo xtask experiment defaults`: the MR classifier's default command
//! beside the candidates that were measured for its defaults, each over
//! several seeds, through the release `train` binary; writes the table under
//! `docs/experiments/defaults/`. The default is chosen by the validation
//! mean, never by test.

use super::seeds::{
    SeedArgs, SeedRun, Variant, accuracy_table, mean_sd, run_and_tabulate, runs_of,
};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct DefaultsArgs {
    #[command(flatten)]
    seeds: SeedArgs,
    #[arg(long, default_value = "docs/experiments/defaults")]
    out: PathBuf,
    /// Where the runs' artifacts and logs go, one directory per run.
    #[arg(long, default_value = "artifacts/defaults")]
    artifacts: PathBuf,
}

/// The rows: a short name, what the table calls it, and the options added
/// to the default `train` command (the first row adds none).
const VARIANTS: [(&str, &str, &[&str]); 17] = [
    ("default", "the default command (LSTM)", &[]),
    ("gru", "GRU encoder", &["--encoder", "gru"]),
    ("bilstm", "bidirectional LSTM", &["--encoder", "bilstm"]),
    ("layers2", "two LSTM layers", &["--layers", "2"]),
    ("hidden256", "hidden size 256", &["--d-hidden", "256"]),
    (
        "recurrent",
        "variational recurrent dropout 0.25",
        &["--recurrent-dropout", "0.25"],
    ),
    (
        "embedding06",
        "embedding dropout 0.6",
        &["--embedding-dropout", "0.6"],
    ),
    ("decay", "weight decay 0.05", &["--weight-decay", "0.05"]),
    ("bucket", "length bucketing", &["--bucket"]),
    (
        "lr1e3",
        "learning rate 1e-3, 15 epochs",
        &["--lr", "0.001", "--epochs", "15"],
    ),
    (
        "cosine",
        "cosine learning-rate decay",
        &["--lr-schedule", "cosine"],
    ),
    (
        "cosine3e3",
        "cosine decay from 3e-3",
        &["--lr-schedule", "cosine", "--lr", "0.003"],
    ),
    ("average3", "mean weights of 3 epochs", &["--average", "3"]),
    ("average5", "mean weights of 5 epochs", &["--average", "5"]),
    (
        "smoothing01",
        "label smoothing 0.1",
        &["--label-smoothing", "0.1"],
    ),
    (
        "smoothing02",
        "label smoothing 0.2",
        &["--label-smoothing", "0.2"],
    ),
    (
        "concat",
        "attention, max and mean pooling concatenated",
        &["--pooling", "concat"],
    ),
];

pub fn run(args: &DefaultsArgs) -> Result<()> {
    let variants: Vec<Variant> = VARIANTS
        .iter()
        .map(|(name, _, options)| (*name, options.iter().map(|o| o.to_string()).collect()))
        .collect();
    run_and_tabulate(
        &args.seeds,
        &variants,
        &args.out,
        &args.artifacts,
        markdown_table,
    )?;
    Ok(())
}

fn markdown_table(results: &[SeedRun]) -> String {
    let rows: Vec<(&str, String)> = VARIANTS
        .iter()
        .map(|(name, label, options)| {
            let options = if options.is_empty() {
                String::new()
            } else {
                format!(" (`{}`)", options.join(" "))
            };
            (*name, format!("{label}{options}"))
        })
        .collect();
    let mut table = accuracy_table(
        "MR: the default `train` command and the candidates measured for its defaults (the \
         epoch of best validation accuracy kept), seeds 1..=N; mean ± sample standard deviation \
         over the seeds, in %. A default is chosen by the validation mean, never by test. \
         Command: `cargo xtask experiment defaults`. Training times are left out: these runs \
         shared the machine with builds (the encoders table has clean times).",
        &rows,
        results,
        false,
    );
    table.push_str(
        "\nThe kept epoch's validation accuracy is the best of ten noisy ones. A steadier \
         validation figure: each run's logged validation accuracy averaged over its epochs 6 \
         onward, then mean ± sd over the seeds, in %.\n\n\
         | run | late validation accuracy |\n|---|---:|\n",
    );
    for (name, label) in &rows {
        let runs = runs_of(results, name);
        if runs.is_empty() {
            continue;
        }
        let late: Vec<f64> = runs
            .iter()
            .map(|r| {
                let tail = r.metrics.history.valid_accuracy.get(5..).unwrap_or(&[]);
                tail.iter().sum::<f64>() / tail.len().max(1) as f64
            })
            .collect();
        let (mean, sd) = mean_sd(&late);
        table.push_str(&format!("| {label} | {mean:.2} ± {sd:.2} |\n"));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed results parse, with every variant's row.
    #[test]
    fn the_committed_results_parse() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/experiments/defaults/results.jsonl");
        let results = super::super::seeds::read_jsonl(&path).unwrap();
        let table = markdown_table(&results);
        for (name, label, _) in VARIANTS {
            assert!(results.iter().any(|r| r.variant == name), "{name}");
            assert!(table.contains(label), "{label}");
        }
    }
}
