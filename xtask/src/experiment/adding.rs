//! `cargo xtask experiment adding`: reruns the long-range memory experiment
//! of the fundamentals (every model at every sequence length) through the
//! release `train` binary, and writes the table, the gradient-norm CSV and
//! its plot under `docs/experiments/adding/`.

use super::seeds::mean_sd;
use crate::cargo::release_binary;
use crate::plot::{self, Chart, Series};
use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use plotters::prelude::{BLACK, BLUE, CYAN, GREEN, MAGENTA, RED, SeriesLabelPosition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args)]
pub struct AddingArgs {
    /// Sequence lengths T.
    #[arg(long, default_value = "10,50,100,200", value_delimiter = ',')]
    seq_lens: Vec<usize>,
    /// Training steps per run (batch 32 each).
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Run every model at every T with seeds 1..=N (the gradient norms are
    /// recorded for seed 1).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// The T at which the input-gradient norms of rnn, gru, lstm and the transformer are recorded.
    #[arg(long, default_value_t = 100)]
    gradient_seq_len: usize,
    #[arg(long, default_value = "docs/experiments/adding")]
    out: PathBuf,
    /// Rerun only these models (as named in the table), keeping the other
    /// rows from the previous run's results.jsonl.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Use the release train binary as it is instead of building it first.
    #[arg(long)]
    no_build: bool,
    /// Train nothing: redraw the table and the plot from the files in --out.
    #[arg(long)]
    plot_only: bool,
}

/// The test MSE `train adding` counts as solved (`train::adding::SOLVED_MSE`).
const SOLVED_MSE: f64 = 0.01;
/// The header of the gradient-norm CSV `train adding --grad-norms` writes.
const GRADIENTS_HEADER: &str = "model,seq_len,phase,distance_from_end,grad_norm";

/// The models of the table, as `train adding` options.
const MODELS: [(&str, &str, bool); 6] = [
    ("rnn", "rnn", false),
    ("gru", "gru", false),
    ("lstm", "lstm", false),
    ("rnn+attention", "rnn", true),
    ("lstm+attention", "lstm", true),
    ("transformer", "transformer", false),
];

/// One line of `train adding --json`, plus the model's name in the table.
/// (xtask does not build Burn, so it cannot use `train::adding::AddingResult`;
/// a test here and one in `train` parse the committed results instead, and
/// fail if either side drifts.)
#[derive(Deserialize, Serialize)]
struct RunResult {
    #[serde(default)]
    model: String,
    /// Absent from results written before seeds: `train adding`'s default, 1.
    #[serde(default = "first_seed")]
    seed: u64,
    seq_len: usize,
    test_mse: f64,
    steps_to_solve: Option<usize>,
    seconds: f64,
}

fn first_seed() -> u64 {
    1
}

/// Results by (T, model, seed).
type Results = BTreeMap<(usize, String, u64), RunResult>;

pub fn run(args: &AddingArgs) -> Result<()> {
    ensure!(args.seeds >= 1, "--seeds must be at least 1");
    let train = if args.plot_only {
        PathBuf::new()
    } else {
        release_binary("train", "train", args.no_build)?
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for model in &args.models {
        ensure!(
            MODELS.iter().any(|m| m.0 == model),
            "--models: unknown model {model:?} (one of {})",
            MODELS.map(|m| m.0).join(", ")
        );
    }
    let rerun = |name: &str| {
        !args.plot_only && (args.models.is_empty() || args.models.iter().any(|m| m == name))
    };
    let jsonl = args.out.join("results.jsonl");
    let mut results: Results = BTreeMap::new();
    if (args.plot_only || !args.models.is_empty()) && jsonl.exists() {
        for (i, line) in std::fs::read_to_string(&jsonl)?.lines().enumerate() {
            let r: RunResult = serde_json::from_str(line)
                .with_context(|| format!("{}:{}", jsonl.display(), i + 1))?;
            results.insert((r.seq_len, r.model.clone(), r.seed), r);
        }
    }
    // Gradient norms are rewritten only for the models rerun.
    let csv = args.out.join("gradients.csv");
    let mut kept_csv = String::new();
    if csv.exists() {
        for line in std::fs::read_to_string(&csv)?.lines().skip(1) {
            if !rerun(line.split(',').next().unwrap_or_default()) {
                kept_csv.push_str(line);
                kept_csv.push('\n');
            }
        }
        std::fs::remove_file(&csv)?;
    }

    for &seq_len in &args.seq_lens {
        for (name, cell, attention) in MODELS {
            if !rerun(name) {
                continue;
            }
            results.retain(|(t, model, _), _| !(*t == seq_len && model == name));
            for seed in 1..=args.seeds {
                let mut cmd = Command::new(&train);
                cmd.args(["adding", "--json", "--encoder", cell])
                    .args(["--seq-len", &seq_len.to_string()])
                    .args(["--steps", &args.steps.to_string()])
                    .args(["--seed", &seed.to_string()]);
                if attention {
                    cmd.arg("--attention");
                }
                if !attention && seq_len == args.gradient_seq_len && seed == 1 {
                    cmd.arg("--grad-norms").arg(&csv);
                }
                let output = cmd.output().context("running train adding")?;
                let stdout = String::from_utf8_lossy(&output.stdout);
                if !output.status.success() {
                    bail!(
                        "train adding failed for {name} at T = {seq_len}:\n{stdout}{}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
                let json = stdout.lines().last().unwrap_or_default();
                let mut result: RunResult = serde_json::from_str(json)
                    .with_context(|| format!("unexpected output of train adding: {json}"))?;
                result.model = name.to_string();
                result.seed = seed;
                println!(
                    "T = {seq_len:>3} {name:<15} seed {seed}: test MSE {:.5}, {} ({:.0} s)",
                    result.test_mse,
                    result
                        .steps_to_solve
                        .map_or(format!("never below {SOLVED_MSE}"), |s| format!(
                            "below {SOLVED_MSE} after {s} steps"
                        )),
                    result.seconds
                );
                results.insert((seq_len, name.to_string(), seed), result);
            }
        }
    }
    if !kept_csv.is_empty() {
        let header = if csv.exists() {
            String::new()
        } else {
            format!("{GRADIENTS_HEADER}\n")
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&csv)?;
        std::io::Write::write_all(&mut file, format!("{header}{kept_csv}").as_bytes())?;
    }
    let lines: Vec<String> = results
        .values()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    std::fs::write(&jsonl, lines.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", jsonl.display()))?;

    let table = markdown_table(args, &results);
    let path = args.out.join("results.md");
    std::fs::write(&path, &table).with_context(|| format!("cannot write {}", path.display()))?;
    println!("\n{table}\nwritten to {}", path.display());
    if csv.exists() {
        let png = args.out.join("gradients.png");
        plot_gradients(&csv, &png)?;
        println!("gradient norms: {} and {}", csv.display(), png.display());
    }
    Ok(())
}

fn markdown_table(args: &AddingArgs, results: &Results) -> String {
    let mut s = format!(
        "Command: `cargo xtask experiment adding`. Test MSE after {} steps of batch 32, mean ± \
         sample standard deviation over the seeds, and how many seeds solved it (test MSE < \
         {SOLVED_MSE}) with the mean steps they took. Predicting 1 always gives 0.167.\n\n| model |",
        args.steps
    );
    // Every T run, this time or (with --models) before.
    let seq_lens: std::collections::BTreeSet<usize> = results.keys().map(|k| k.0).collect();
    for t in &seq_lens {
        s.push_str(&format!(" T = {t} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(seq_lens.len()));
    s.push('\n');
    for (name, _, _) in MODELS {
        s.push_str(&format!("| {name} |"));
        for &t in &seq_lens {
            let runs: Vec<&RunResult> = results
                .iter()
                .filter(|((seq_len, model, _), _)| *seq_len == t && model == name)
                .map(|(_, r)| r)
                .collect();
            if runs.is_empty() {
                s.push_str(" not run |");
                continue;
            }
            let (mean, sd) = mean_sd(&runs.iter().map(|r| r.test_mse).collect::<Vec<_>>());
            let solved: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.steps_to_solve.map(|s| s as f64))
                .collect();
            let steps = if solved.is_empty() {
                String::new()
            } else {
                format!(", {:.0} steps", mean_sd(&solved).0)
            };
            s.push_str(&format!(
                " {mean:.4} ± {sd:.4} ({}/{} solved{steps}) |",
                solved.len(),
                runs.len()
            ));
        }
        s.push('\n');
    }
    s
}

/// Draws ‖∂L/∂x_t‖ against the distance from the end, one line per
/// (model, phase), on a log scale.
fn plot_gradients(csv: &Path, png: &Path) -> Result<()> {
    let text = std::fs::read_to_string(csv)?;
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let [model, _, phase, distance, norm] = fields[..] else {
            bail!("{}:{}: expected 5 fields", csv.display(), i + 1);
        };
        let distance: f64 = distance
            .parse()
            .with_context(|| format!("{}:{}", csv.display(), i + 1))?;
        let norm: f64 = norm
            .parse()
            .with_context(|| format!("{}:{}", csv.display(), i + 1))?;
        series
            .entry(format!("{model}, {phase}"))
            .or_default()
            .push((distance, norm));
    }
    let max_distance = series.values().flatten().map(|p| p.0).fold(1.0, f64::max);
    let positive = series.values().flatten().map(|p| p.1).filter(|v| *v > 0.0);
    let low = positive.clone().fold(f64::INFINITY, f64::min).max(1e-30) / 2.0;
    let high = positive.fold(0.0, f64::max) * 2.0;
    // One color per model: a thin line at initialisation, a thick one after training.
    let models: Vec<&str> = series.keys().filter_map(|k| k.split(", ").next()).collect();
    let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    let lines: Vec<Series> = series
        .iter()
        .map(|(label, points)| {
            let model = label.split(", ").next().unwrap_or_default();
            let color =
                colors[models.iter().position(|m| *m == model).unwrap_or(0) / 2 % colors.len()];
            Series {
                label: label.clone(),
                points: points.clone(),
                color,
                width: if label.ends_with("init") { 1 } else { 3 },
            }
        })
        .collect();
    let chart = Chart {
        caption: "Adding problem: gradient of the loss w.r.t. each input step",
        x_desc: "distance from the last step (t = T-1 is 0)",
        y_desc: "mean ||dL/dx_t|| (log scale)",
        x: 0.0..max_distance,
        y: low..high,
        log_y: true,
        legend: SeriesLabelPosition::LowerLeft,
    };
    plot::draw(png, &chart, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed results parse with this crate's types: a change to what
    /// `train adding` writes that xtask would misread fails here (and in the
    /// twin test in `train`).
    #[test]
    fn the_committed_results_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/experiments/adding");
        let jsonl = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
        let mut rows = 0;
        for line in jsonl.lines() {
            let result: RunResult = serde_json::from_str(line).unwrap();
            assert!(MODELS.iter().any(|m| m.0 == result.model), "{line}");
            rows += 1;
        }
        assert!(rows > 0);
        let csv = std::fs::read_to_string(dir.join("gradients.csv")).unwrap();
        assert_eq!(csv.lines().next(), Some(GRADIENTS_HEADER));
    }
}
