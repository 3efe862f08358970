//! `cargo xtask experiment compress`: for each seed, trains the MR
//! classifier with the default command (the teacher) and makes every
//! compressed model of `train compress` from it; writes `infer report`'s
//! table of the first seed (sizes, latency) and the accuracies of all seeds
//! (mean ± sd, and the change from each seed's own teacher) under
//! `docs/experiments/compress/`.

use super::seeds::mean_sd;
use crate::cargo::{binary, build_release};
use anyhow::{Result, ensure};
use artifact::ClassifierMetrics;
use artifact::files::{METRICS_FILE, read_json};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args)]
pub struct CompressArgs {
    /// Teachers (and their compressed models) with seeds 1..=N.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    #[arg(long, default_value = "docs/experiments/compress")]
    out: PathBuf,
    /// Where the teachers and the compressed artifacts go, one directory per seed.
    #[arg(long, default_value = "artifacts/compress")]
    artifacts: PathBuf,
    /// Rerun only these steps (teacher, int8, int8-block, prune50, prune80,
    /// prune90, shrink80, student, alone); the report always covers all of them.
    #[arg(long, value_delimiter = ',')]
    steps: Vec<String>,
    /// Use the release train and infer as they are instead of building them first.
    #[arg(long)]
    no_build: bool,
    /// Train nothing: rewrite the tables from the artifacts there are.
    #[arg(long)]
    table_only: bool,
}

/// The steps: the artifact each writes, the `train` arguments after `--from
/// teacher --artifact-dir <artifact>` (the teacher's are the whole command),
/// and whether the command takes `--seed`. The teacher is the default
/// classifier of before GloVe became the default (2026-12-05): its random
/// embedding is what docs/compression.md measured.
const STEPS: [(&str, &[&str], bool); 9] = [
    ("teacher", &["--embeddings", "none"], true),
    ("int8", &["compress", "quantize"], false),
    (
        "int8-block",
        &[
            "compress",
            "quantize",
            "--granularity",
            "block",
            "--block-size",
            "32",
        ],
        false,
    ),
    ("prune50", &["compress", "prune", "--sparsity", "0.5"], true),
    ("prune80", &["compress", "prune", "--sparsity", "0.8"], true),
    ("prune90", &["compress", "prune", "--sparsity", "0.9"], true),
    (
        "shrink80",
        &["compress", "shrink", "--sparsity", "0.8"],
        true,
    ),
    ("student", &["compress", "distill"], true),
    ("alone", &["compress", "distill", "--alpha", "0"], true),
];

pub fn run(args: &CompressArgs) -> Result<()> {
    for step in &args.steps {
        ensure!(
            STEPS.iter().any(|s| s.0 == step),
            "--steps: unknown step {step:?}"
        );
    }
    ensure!(args.seeds >= 1, "--seeds must be at least 1");
    std::fs::create_dir_all(&args.out)?;
    if !args.no_build && !args.table_only {
        build_release(&["train", "infer"])?;
    }
    for seed in 1..=args.seeds {
        let dir = seed_dir(&args.artifacts, seed);
        std::fs::create_dir_all(&dir)?;
        let teacher = dir.join("teacher");
        for (name, command, seeded) in STEPS {
            if args.table_only || (!args.steps.is_empty() && !args.steps.iter().any(|s| s == name))
            {
                continue;
            }
            let artifact = dir.join(name);
            let log = dir.join(format!("{name}.log"));
            let mut train = Command::new(binary("train"));
            train.args(command);
            if name != "teacher" {
                train.arg("--from").arg(&teacher);
            }
            if seeded {
                train.args(["--seed", &seed.to_string()]);
            }
            train.arg("--artifact-dir").arg(&artifact);
            println!(
                "seed {seed}, {name}: train {}, log in {}",
                command.join(" "),
                log.display()
            );
            let status = train.stdout(std::fs::File::create(&log)?).status()?;
            ensure!(status.success(), "{name} failed: see {}", log.display());
        }
    }
    let first = seed_dir(&args.artifacts, 1);
    let json = args.out.join("results.json");
    let report = Command::new(binary("infer"))
        .arg("report")
        .args(STEPS.iter().map(|(name, _, _)| first.join(name)))
        .arg("--json-file")
        .arg(&json)
        .output()?;
    ensure!(
        report.status.success(),
        "the report failed: {}",
        String::from_utf8_lossy(&report.stderr)
    );
    let table: String = String::from_utf8_lossy(&report.stdout)
        .lines()
        .filter(|line| !line.starts_with("data:"))
        .map(|line| relative(line, &first) + "\n")
        .collect();
    let accuracies = accuracy_table(&args.artifacts, args.seeds)?;
    let text = format!(
        "Command: `cargo xtask experiment compress` (seeds 1..={seeds}). Each seed's teacher is the \
         default `cargo run --release -p train --seed S`; every other row is made from it by the \
         `train compress` command in its artifact's metrics.json (`compression.settings`), with \
         the same seed where the command takes one.\n\n\
         Accuracy over the seeds (mean ± sample standard deviation, in %; the change is from each \
         seed's own teacher, then averaged):\n\n{accuracies}\n\
         Size and latency, seed 1 (`infer report`):\n\n{table}",
        seeds = args.seeds
    );
    std::fs::write(args.out.join("results.md"), &text)?;
    print!("{text}");
    Ok(())
}

fn seed_dir(artifacts: &Path, seed: u64) -> PathBuf {
    artifacts.join(format!("seed{seed}"))
}

/// Validation and test accuracy of every step over the seeds, and the test
/// change from each seed's teacher.
fn accuracy_table(artifacts: &Path, seeds: u64) -> Result<String> {
    let metrics = |seed: u64, name: &str| -> Result<ClassifierMetrics> {
        read_json(
            &seed_dir(artifacts, seed).join(name).join(METRICS_FILE),
            "a classifier's metrics",
        )
    };
    let teachers: Vec<ClassifierMetrics> = (1..=seeds)
        .map(|s| metrics(s, "teacher"))
        .collect::<Result<_>>()?;
    let mut out = String::from(
        "| artifact | seeds | valid | test | test vs teacher |\n|---|---:|---:|---:|---:|\n",
    );
    for (name, _, _) in STEPS {
        let runs: Vec<ClassifierMetrics> = (1..=seeds)
            .map(|s| metrics(s, name))
            .collect::<Result<_>>()?;
        let stat = |values: Vec<f64>, sign: bool| {
            let (m, sd) = mean_sd(&values);
            if sign {
                format!("{m:+.2} ± {sd:.2}")
            } else {
                format!("{m:.2} ± {sd:.2}")
            }
        };
        // Quantization trains nothing: its metrics carry the teacher's validation.
        let quantized = runs.iter().any(|m| {
            m.compression
                .as_ref()
                .is_some_and(|c| c.method == "quantize")
        });
        let valid = if quantized {
            "— (not retrained)".to_string()
        } else {
            stat(
                runs.iter().map(|m| 100.0 * m.valid_accuracy).collect(),
                false,
            )
        };
        out += &format!(
            "| {name} | {seeds} | {valid} | {} | {} |\n",
            stat(
                runs.iter().map(|m| 100.0 * m.test_accuracy).collect(),
                false
            ),
            stat(
                runs.iter()
                    .zip(&teachers)
                    .map(|(m, t)| 100.0 * (m.test_accuracy - t.test_accuracy))
                    .collect(),
                true
            ),
        );
    }
    Ok(out)
}

/// The table names artifacts by their path; keep the last component.
fn relative(line: &str, artifacts: &Path) -> String {
    line.replace(&format!("{}/", artifacts.display()), "")
}
