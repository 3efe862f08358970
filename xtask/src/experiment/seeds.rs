//! What the classifier experiments share: a `train` command run over seeds
//! 1..=N (one artifact and log per run), the runs kept in a results.jsonl,
//! and each variant summarized as mean ± sample standard deviation over its
//! seeds. One seed is an anecdote; the tables show the spread.

use crate::cargo::release_binary;
use anyhow::{Context, Result, ensure};
use artifact::ClassifierMetrics;
use artifact::files::{METRICS_FILE, read_json};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

/// The options every seeded experiment takes.
#[derive(Args)]
pub struct SeedArgs {
    /// Run every variant with seeds 1..=N.
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Rerun only these variants (by their short names), keeping the other
    /// rows from the previous results.jsonl.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Use the release train binary as it is instead of building it first.
    #[arg(long)]
    pub no_build: bool,
    /// Train nothing: rewrite the table (and plot) from results.jsonl.
    #[arg(long)]
    pub table_only: bool,
}

/// One run: the variant (a row of the table), its seed, the parameter count
/// train printed, and the artifact's metrics.json.
#[derive(Deserialize, Serialize, Clone)]
pub struct SeedRun {
    #[serde(alias = "encoder", alias = "run")]
    pub variant: String,
    pub seed: u64,
    pub parameters: u64,
    #[serde(flatten)]
    pub metrics: ClassifierMetrics,
}

/// A row of an experiment: its short name and the `train` options that make it.
pub type Variant<'a> = (&'a str, Vec<String>);

/// Runs every variant (or those of `--only`) over the seeds, through the
/// release `train`, into `artifacts/<name>-seed<s>`; keeps `out/results.jsonl`
/// current after every run, and returns all the runs, old rows included.
fn run_variants(
    args: &SeedArgs,
    variants: &[Variant],
    out: &Path,
    artifacts: &Path,
) -> Result<Vec<SeedRun>> {
    for name in &args.only {
        ensure!(
            variants.iter().any(|(v, _)| v == name),
            "--only: unknown variant {name:?} (one of {})",
            variants
                .iter()
                .map(|(v, _)| *v)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    ensure!(args.seeds >= 1, "--seeds must be at least 1");
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let jsonl = out.join("results.jsonl");
    let mut results = if (args.table_only || !args.only.is_empty()) && jsonl.exists() {
        read_jsonl(&jsonl)?
    } else {
        Vec::new()
    };
    if args.table_only {
        return Ok(results);
    }
    let train = release_binary("train", "train", args.no_build)?;
    std::fs::create_dir_all(artifacts)
        .with_context(|| format!("cannot create {}", artifacts.display()))?;
    for (name, options) in variants {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        results.retain(|r| r.variant != *name);
        for seed in 1..=args.seeds {
            let run = run_one(&train, artifacts, name, options, seed)?;
            println!(
                "  valid {:.2}%, test {:.2}%, kept epoch {} of {}, {:.0} s",
                100.0 * run.metrics.valid_accuracy,
                100.0 * run.metrics.test_accuracy,
                run.metrics.best_epoch,
                run.metrics.epochs_run,
                run.metrics.train_seconds
            );
            results.push(run);
            write_jsonl(&jsonl, &results)?;
        }
    }
    Ok(results)
}

/// [`run_variants`], then `table` of all the runs written to `out/results.md`
/// and printed. Returns the runs.
pub fn run_and_tabulate(
    args: &SeedArgs,
    variants: &[Variant],
    out: &Path,
    artifacts: &Path,
    table: impl Fn(&[SeedRun]) -> String,
) -> Result<Vec<SeedRun>> {
    let results = run_variants(args, variants, out, artifacts)?;
    let table = table(&results);
    let path = out.join("results.md");
    std::fs::write(&path, &table).with_context(|| format!("cannot write {}", path.display()))?;
    print!("{table}");
    Ok(results)
}

/// `train OPTIONS --seed SEED` into `artifacts/NAME-seedSEED`, its output in the `.log` beside.
fn run_one(
    train: &Path,
    artifacts: &Path,
    name: &str,
    options: &[String],
    seed: u64,
) -> Result<SeedRun> {
    let artifact = artifacts.join(format!("{name}-seed{seed}"));
    let log = artifacts.join(format!("{name}-seed{seed}.log"));
    println!(
        "{name}, seed {seed}: train {}, log in {}",
        options.join(" "),
        log.display()
    );
    let status = Command::new(train)
        .args(options)
        .args(["--seed", &seed.to_string()])
        .arg("--artifact-dir")
        .arg(&artifact)
        .stdout(std::fs::File::create(&log)?)
        .status()?;
    ensure!(
        status.success(),
        "{name}, seed {seed}: train failed, see {}",
        log.display()
    );
    Ok(SeedRun {
        variant: name.to_string(),
        seed,
        parameters: parameters(&std::fs::read_to_string(&log)?)
            .with_context(|| format!("no parameter count in {}", log.display()))?,
        metrics: read_json(&artifact.join(METRICS_FILE), "a classifier's metrics")?,
    })
}

pub fn read_jsonl(path: &Path) -> Result<Vec<SeedRun>> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

fn write_jsonl(path: &Path, results: &[SeedRun]) -> Result<()> {
    let lines: Vec<String> = results
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    std::fs::write(path, lines.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The runs of `variant`, in seed order.
pub fn runs_of<'a>(results: &'a [SeedRun], variant: &str) -> Vec<&'a SeedRun> {
    let mut runs: Vec<&SeedRun> = results.iter().filter(|r| r.variant == variant).collect();
    runs.sort_by_key(|r| r.seed);
    runs
}

/// The count in train's line "model: … N parameters".
pub fn parameters(log: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.starts_with("model: "))?;
    line.strip_suffix(" parameters")?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// "mean ± sd" of `f` over `runs`, as a percentage of a fraction.
pub fn percent(runs: &[&SeedRun], f: impl Fn(&ClassifierMetrics) -> f64) -> String {
    let (mean, sd) = mean_sd(
        &runs
            .iter()
            .map(|r| 100.0 * f(&r.metrics))
            .collect::<Vec<_>>(),
    );
    format!("{mean:.2} ± {sd:.2}")
}

/// The kept epochs of `runs`, "8, 10, 7".
pub fn kept_epochs(runs: &[&SeedRun]) -> String {
    runs.iter()
        .map(|r| r.metrics.best_epoch.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The mean training time of `runs`, in seconds.
pub fn mean_seconds(runs: &[&SeedRun]) -> f64 {
    mean_sd(
        &runs
            .iter()
            .map(|r| r.metrics.train_seconds)
            .collect::<Vec<_>>(),
    )
    .0
}

/// The table of `rows` (short name, what the first column shows): the
/// parameter count, the seeds, validation and test accuracy as mean ± sd,
/// the kept epochs and (with `seconds`) the mean training time. `intro`
/// goes above it.
pub fn accuracy_table(
    intro: &str,
    rows: &[(&str, String)],
    results: &[SeedRun],
    seconds: bool,
) -> String {
    let (time_head, time_rule) = if seconds {
        (" training s (mean) |", "---:|")
    } else {
        ("", "")
    };
    let mut s = format!(
        "{intro}\n\n\
         | run | parameters | seeds | valid accuracy | test accuracy | kept epochs |{time_head}\n\
         |---|---:|---:|---:|---:|---|{time_rule}\n"
    );
    for (name, label) in rows {
        let runs = runs_of(results, name);
        if runs.is_empty() {
            continue;
        }
        let time = if seconds {
            format!(" {:.0} |", mean_seconds(&runs))
        } else {
            String::new()
        };
        s.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} |{time}\n",
            runs[0].parameters,
            runs.len(),
            percent(&runs, |m| m.valid_accuracy),
            percent(&runs, |m| m.test_accuracy),
            kept_epochs(&runs),
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

    #[test]
    fn mean_and_sample_standard_deviation() {
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (sd - 1.0).abs() < 1e-12);
        assert_eq!(mean_sd(&[5.0]), (5.0, 0.0));
    }

    /// An unknown --only is refused before anything trains.
    #[test]
    fn an_unknown_variant_is_refused() {
        let args = SeedArgs {
            seeds: 1,
            only: vec!["nope".into()],
            no_build: true,
            table_only: false,
        };
        let dir = std::env::temp_dir().join("xtask-seeds-test-unknown");
        let err = run_variants(&args, &[("lstm", vec![])], &dir, &dir)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("--only: unknown variant \"nope\""),
            "{err}"
        );
    }
}
