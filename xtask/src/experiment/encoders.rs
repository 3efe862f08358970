//! `cargo xtask experiment encoders`: the MR classifier's default command
//! with each encoder (rnn, gru, lstm, bilstm, transformer), over several
//! seeds, through the release `train` binary; writes the table of mean and
//! spread under `docs/experiments/encoders/`.

use crate::cargo::release_binary;
use anyhow::{Context, Result, ensure};
use artifact::ClassifierMetrics;
use artifact::files::{METRICS_FILE, read_json};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Command;

#[derive(Args)]
pub struct EncodersArgs {
    /// Seeds 1..=N for every encoder.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    #[arg(long, default_value = "docs/experiments/encoders")]
    out: PathBuf,
    /// Where the runs' artifacts and logs go, one directory per run.
    #[arg(long, default_value = "artifacts/encoders")]
    artifacts: PathBuf,
    /// Rerun only these encoders, keeping the other rows from the previous
    /// results.jsonl.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Use the release train binary as it is instead of building it first.
    #[arg(long)]
    no_build: bool,
    /// Train nothing: rewrite the table from results.jsonl.
    #[arg(long)]
    table_only: bool,
}

/// The encoders, as `train --encoder` names them, in the table's order.
const ENCODERS: [&str; 5] = ["rnn", "gru", "lstm", "bilstm", "transformer"];

/// One run: its encoder, seed, parameter count and metrics.json.
#[derive(Deserialize, Serialize)]
struct RunResult {
    encoder: String,
    seed: u64,
    parameters: u64,
    #[serde(flatten)]
    metrics: ClassifierMetrics,
}

pub fn run(args: &EncodersArgs) -> Result<()> {
    for name in &args.only {
        ensure!(
            ENCODERS.contains(&name.as_str()),
            "--only: unknown encoder {name:?} (one of {})",
            ENCODERS.join(", ")
        );
    }
    ensure!(args.seeds >= 1, "--seeds must be at least 1");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let jsonl = args.out.join("results.jsonl");
    let mut results: Vec<RunResult> = Vec::new();
    if (args.table_only || !args.only.is_empty()) && jsonl.exists() {
        for (i, line) in std::fs::read_to_string(&jsonl)?.lines().enumerate() {
            results.push(
                serde_json::from_str(line)
                    .with_context(|| format!("{}:{}", jsonl.display(), i + 1))?,
            );
        }
    }
    if !args.table_only {
        let train = release_binary("train", "train", args.no_build)?;
        std::fs::create_dir_all(&args.artifacts)?;
        for encoder in ENCODERS {
            if !args.only.is_empty() && !args.only.iter().any(|o| o == encoder) {
                continue;
            }
            results.retain(|r| r.encoder != encoder);
            for seed in 1..=args.seeds {
                let artifact = args.artifacts.join(format!("{encoder}-seed{seed}"));
                let log = args.artifacts.join(format!("{encoder}-seed{seed}.log"));
                println!("{encoder}, seed {seed}: training, log in {}", log.display());
                let status = Command::new(&train)
                    .args(["--encoder", encoder, "--seed", &seed.to_string()])
                    .arg("--artifact-dir")
                    .arg(&artifact)
                    .stdout(std::fs::File::create(&log)?)
                    .status()?;
                ensure!(
                    status.success(),
                    "{encoder}, seed {seed}: train failed, see {}",
                    log.display()
                );
                let metrics: ClassifierMetrics =
                    read_json(&artifact.join(METRICS_FILE), "a classifier's metrics")?;
                println!(
                    "  valid {:.2}%, test {:.2}%, kept epoch {}, {:.0} s",
                    100.0 * metrics.valid_accuracy,
                    100.0 * metrics.test_accuracy,
                    metrics.best_epoch,
                    metrics.train_seconds
                );
                results.push(RunResult {
                    encoder: encoder.to_string(),
                    seed,
                    parameters: parameters(&std::fs::read_to_string(&log)?)
                        .with_context(|| format!("no parameter count in {}", log.display()))?,
                    metrics,
                });
                let lines: Vec<String> = results
                    .iter()
                    .map(serde_json::to_string)
                    .collect::<Result<_, _>>()?;
                std::fs::write(&jsonl, lines.join("\n") + "\n")?;
            }
        }
    }
    let table = markdown_table(&results);
    std::fs::write(args.out.join("results.md"), &table)?;
    print!("{table}");
    Ok(())
}

/// The count in train's line "model: … encoder, … layer(s), N parameters".
fn parameters(log: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.starts_with("model: "))?;
    line.strip_suffix(" parameters")?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// Mean and sample standard deviation (0 for one value).
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

fn markdown_table(results: &[RunResult]) -> String {
    let mut s = String::from(
        "MR, the default `train` command with `--encoder E` (10 epochs, the epoch of best \
         validation accuracy kept), seeds 1..=N; mean ± sample standard deviation over the seeds.\n\n\
         | encoder | parameters | seeds | valid accuracy | test accuracy | kept epochs | training s (mean) |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for encoder in ENCODERS {
        let runs: Vec<&RunResult> = results.iter().filter(|r| r.encoder == encoder).collect();
        if runs.is_empty() {
            continue;
        }
        let pct = |f: fn(&ClassifierMetrics) -> f64| {
            let (m, sd) = mean_sd(
                &runs
                    .iter()
                    .map(|r| 100.0 * f(&r.metrics))
                    .collect::<Vec<_>>(),
            );
            format!("{m:.2} ± {sd:.2}%")
        };
        let epochs: Vec<String> = runs
            .iter()
            .map(|r| r.metrics.best_epoch.to_string())
            .collect();
        let (seconds, _) = mean_sd(
            &runs
                .iter()
                .map(|r| r.metrics.train_seconds)
                .collect::<Vec<_>>(),
        );
        s.push_str(&format!(
            "| {encoder} | {} | {} | {} | {} | {} | {seconds:.0} |\n",
            runs[0].parameters,
            runs.len(),
            pct(|m| m.valid_accuracy),
            pct(|m| m.test_accuracy),
            epochs.join(", "),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parameter_count_of_train_s_model_line() {
        let log =
            "vocabulary: 9 tokens\nmodel: transformer encoder, 1 layer(s), 123456 parameters\n";
        assert_eq!(parameters(log), Some(123456));
        assert_eq!(parameters("model: lstm encoder\n"), None);
    }

    /// The committed results parse with this crate's types, one row per
    /// encoder and seed.
    #[test]
    fn the_committed_results_parse() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/experiments/encoders/results.jsonl");
        let jsonl = std::fs::read_to_string(path).unwrap();
        let results: Vec<RunResult> = jsonl
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        for encoder in ENCODERS {
            assert!(results.iter().any(|r| r.encoder == encoder), "{encoder}");
        }
        assert!(markdown_table(&results).contains("| transformer |"));
    }

    #[test]
    fn mean_and_sample_standard_deviation() {
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (sd - 1.0).abs() < 1e-12);
        assert_eq!(mean_sd(&[5.0]), (5.0, 0.0));
    }
}
