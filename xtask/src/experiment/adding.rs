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

/// The defaults of the options that [`options`] writes out when they differ.
const SEQ_LENS: &str = "10,50,100,200";
/// Enough for the LSTM to solve T = 100 in most seeds (docs/fundamentals.md);
/// runs stop when solved, so more steps cost only the runs that do not.
const STEPS: usize = 3000;
const SEEDS: u64 = 3;
const OUT: &str = "docs/experiments/adding";

#[derive(Args)]
pub struct AddingArgs {
    /// Sequence lengths T.
    #[arg(long, default_value = SEQ_LENS, value_delimiter = ',')]
    seq_lens: Vec<usize>,
    /// Training steps per run (batch 32 each).
    #[arg(long, default_value_t = STEPS)]
    steps: usize,
    /// Run every model at every T with seeds 1..=N (the gradient norms are
    /// recorded for seed 1).
    #[arg(long, default_value_t = SEEDS)]
    seeds: u64,
    /// The T at which the input-gradient norms of rnn, gru, lstm and the transformer are recorded.
    #[arg(long, default_value_t = 100)]
    gradient_seq_len: usize,
    #[arg(long, default_value = OUT)]
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
    /// Train every run for all --steps, instead of stopping it at the first
    /// evaluation that solves the task (`train adding --until-solved`).
    #[arg(long)]
    all_steps: bool,
    /// Runs at a time (each is one `train adding` process; the seconds
    /// recorded are then not comparable between runs).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
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
    ensure!(args.jobs >= 1, "--jobs must be at least 1");
    ensure!(
        args.seq_lens.iter().all(|&t| t >= 2),
        "--seq-lens: every T must be at least 2 (one marker in each half)"
    );
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
    }

    // Every run, in the order of the table; the gradient norms of each run
    // that records them go to a file of their own, joined below in this order.
    let mut runs = Vec::new();
    for &seq_len in &args.seq_lens {
        for (name, cell, attention) in MODELS {
            if !rerun(name) {
                continue;
            }
            results.retain(|(t, model, _), _| !(*t == seq_len && model == name));
            for seed in 1..=args.seeds {
                let grad_norms = (!attention && seq_len == args.gradient_seq_len && seed == 1)
                    .then(|| args.out.join(format!("gradients.{cell}.{seq_len}.part")));
                runs.push(Run {
                    name,
                    cell,
                    attention,
                    seq_len,
                    seed,
                    grad_norms,
                });
            }
        }
    }
    let (done, errors) = run_all(args, &train, &runs);
    for result in done {
        results.insert((result.seq_len, result.model.clone(), result.seed), result);
    }
    let mut parts = String::new();
    for path in runs.iter().filter_map(|r| r.grad_norms.as_ref()) {
        // Absent when that run failed.
        if let Ok(text) = std::fs::read_to_string(path) {
            parts.extend(text.lines().skip(1).map(|line| format!("{line}\n")));
            std::fs::remove_file(path)?;
        }
    }
    if !parts.is_empty() || !kept_csv.is_empty() {
        std::fs::write(&csv, format!("{GRADIENTS_HEADER}\n{parts}{kept_csv}"))
            .with_context(|| format!("cannot write {}", csv.display()))?;
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
    if let Some(first) = errors.into_iter().next() {
        bail!("the results of the runs that succeeded are written; a run failed: {first:#}");
    }
    Ok(())
}

/// One `train adding` run of the experiment.
struct Run {
    name: &'static str,
    cell: &'static str,
    attention: bool,
    seq_len: usize,
    seed: u64,
    /// Where it records its input-gradient norms, if it does.
    grad_norms: Option<PathBuf>,
}

/// Runs `runs`, `--jobs` at a time, and returns the results of those that
/// succeeded (in any order) and the errors of those that did not; a failed
/// run stops no other.
fn run_all(args: &AddingArgs, train: &Path, runs: &[Run]) -> (Vec<RunResult>, Vec<anyhow::Error>) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.jobs)
            .map(|_| {
                scope.spawn(|| {
                    let mut outcomes = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(run) = runs.get(i) else {
                            return outcomes;
                        };
                        outcomes.push(run_one(args, train, run));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a worker thread panicked"))
            .collect::<Vec<_>>()
    });
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for outcome in outcomes {
        match outcome {
            Ok(result) => results.push(result),
            Err(error) => errors.push(error),
        }
    }
    (results, errors)
}

fn run_one(args: &AddingArgs, train: &Path, run: &Run) -> Result<RunResult> {
    let Run {
        name,
        cell,
        attention,
        seq_len,
        seed,
        ..
    } = *run;
    let mut cmd = Command::new(train);
    cmd.args(["adding", "--json", "--encoder", cell])
        .args(["--seq-len", &seq_len.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .args(["--seed", &seed.to_string()]);
    if attention {
        cmd.arg("--attention");
    }
    if !args.all_steps {
        cmd.arg("--until-solved");
    }
    if let Some(path) = &run.grad_norms {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        cmd.arg("--grad-norms").arg(path);
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
    Ok(result)
}

fn markdown_table(args: &AddingArgs, results: &Results) -> String {
    let stopping = if args.all_steps {
        format!("Every run trains for {} steps", args.steps)
    } else {
        format!(
            "A run stops at the first evaluation (every 50 steps) with test MSE below \
             {SOLVED_MSE}, or after {} steps",
            args.steps
        )
    };
    let mut s = format!(
        "Command: `cargo xtask experiment adding{}`. {stopping}, batch 32. Each cell: how \
         many seeds solved it (test MSE < {SOLVED_MSE}) and the steps they took (mean ± \
         sample standard deviation); then the test MSE the other seeds were left at. \
         Predicting 1 always gives 0.167.\n\n| model |",
        options(args)
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
        if !results.keys().any(|(_, model, _)| model == name) {
            continue;
        }
        s.push_str(&format!("| {name} |"));
        for &t in &seq_lens {
            let runs: Vec<&RunResult> = results
                .iter()
                .filter(|((seq_len, model, _), _)| *seq_len == t && model == name)
                .map(|(_, r)| r)
                .collect();
            s.push_str(&format!(" {} |", cell(&runs)));
        }
        s.push('\n');
    }
    s
}

/// The options of `args` that differ from the defaults (those that change
/// the results or where they go), as typed.
fn options(args: &AddingArgs) -> String {
    let mut s = String::new();
    let seq_lens: Vec<String> = args.seq_lens.iter().map(usize::to_string).collect();
    if seq_lens.join(",") != SEQ_LENS {
        s.push_str(&format!(" --seq-lens {}", seq_lens.join(",")));
    }
    if args.steps != STEPS {
        s.push_str(&format!(" --steps {}", args.steps));
    }
    if args.seeds != SEEDS {
        s.push_str(&format!(" --seeds {}", args.seeds));
    }
    if !args.models.is_empty() {
        s.push_str(&format!(" --models {}", args.models.join(",")));
    }
    if args.all_steps {
        s.push_str(" --all-steps");
    }
    if args.out != Path::new(OUT) {
        s.push_str(&format!(" --out {}", args.out.display()));
    }
    s
}

/// "2/3 in 1200 ± 300 steps; 1 left at 0.0543", or "not run".
fn cell(runs: &[&RunResult]) -> String {
    if runs.is_empty() {
        return "not run".into();
    }
    let solved: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.steps_to_solve.map(|s| s as f64))
        .collect();
    let left: Vec<f64> = runs
        .iter()
        .filter(|r| r.steps_to_solve.is_none())
        .map(|r| r.test_mse)
        .collect();
    let mut text = format!("{}/{}", solved.len(), runs.len());
    if !solved.is_empty() {
        text.push_str(&format!(" in {}", mean_sd_text(&solved, 0)));
        text.push_str(if left.is_empty() { " steps" } else { " steps;" });
    }
    if !left.is_empty() {
        let count = if solved.is_empty() {
            ";".to_string()
        } else {
            format!(" {}", left.len())
        };
        text.push_str(&format!("{count} left at {}", mean_sd_text(&left, 4)));
    }
    text
}

/// "m ± sd" with `decimals`, or just "m" for one value.
fn mean_sd_text(values: &[f64], decimals: usize) -> String {
    let (mean, sd) = mean_sd(values);
    if values.len() == 1 {
        format!("{mean:.decimals$}")
    } else {
        format!("{mean:.decimals$} ± {sd:.decimals$}")
    }
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

    fn run(steps_to_solve: Option<usize>, test_mse: f64) -> RunResult {
        RunResult {
            model: "lstm".into(),
            seed: 1,
            seq_len: 100,
            test_mse,
            steps_to_solve,
            seconds: 1.0,
        }
    }

    /// A cell counts the seeds that solved the task, averages their steps,
    /// and gives the MSE the others were left at.
    #[test]
    fn a_cell_splits_solved_from_unsolved_seeds() {
        let (a, b, c) = (
            run(Some(1000), 0.009),
            run(Some(1500), 0.008),
            run(None, 0.05),
        );
        assert_eq!(
            cell(&[&a, &b, &c]),
            "2/3 in 1250 ± 354 steps; 1 left at 0.0500"
        );
        assert_eq!(cell(&[&a, &b]), "2/2 in 1250 ± 354 steps");
        let d = run(None, 0.15);
        assert_eq!(cell(&[&c, &d]), "0/2; left at 0.1000 ± 0.0707");
        assert_eq!(cell(&[]), "not run");
    }

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
