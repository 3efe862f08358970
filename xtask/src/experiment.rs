//! `cargo xtask experiment adding`: reruns the long-range memory experiment
//! of the fundamentals (every model at every sequence length) through the
//! release `train` binary, and writes the table, the gradient-norm CSV and
//! its plot under `docs/experiments/adding/`.
//!
//! `cargo xtask experiment lm`: trains the character language model with the
//! default command, plots its loss per epoch and keeps a generated sample,
//! under `docs/experiments/lm/`.
//!
//! `cargo xtask experiment regularization` is in `regularization.rs`, and
//! `cargo xtask experiment compress` in `compress.rs`.

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, Subcommand};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Subcommand)]
pub enum Experiment {
    /// The adding problem: rnn, gru, lstm, rnn+attention, lstm+attention at several T.
    Adding(AddingArgs),
    /// The character language model on Shakespeare: train, plot the loss, generate a sample.
    Lm(LmArgs),
    /// The MR classifier without regularization, with each technique alone, and with all.
    Regularization(crate::regularization::RegularizationArgs),
    /// The MR classifier quantized, pruned and distilled, with the report of all of them.
    Compress(crate::compress::CompressArgs),
}

#[derive(Args)]
pub struct LmArgs {
    /// The artifact `train lm` writes (and this reads).
    #[arg(long, default_value = "artifacts/shakespeare")]
    artifact_dir: PathBuf,
    #[arg(long, default_value = "docs/experiments/lm")]
    out: PathBuf,
    /// Use target/release/{train,infer} as they are instead of building them first.
    #[arg(long)]
    no_build: bool,
    /// Train nothing: redraw the plot and the sample from the artifact.
    #[arg(long)]
    plot_only: bool,
}

#[derive(Args)]
pub struct AddingArgs {
    /// Sequence lengths T.
    #[arg(long, default_value = "10,50,100,200", value_delimiter = ',')]
    seq_lens: Vec<usize>,
    /// Training steps per run (batch 32 each).
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// The T at which the input-gradient norms of rnn, gru and lstm are recorded.
    #[arg(long, default_value_t = 100)]
    gradient_seq_len: usize,
    #[arg(long, default_value = "docs/experiments/adding")]
    out: PathBuf,
    /// Rerun only these models (as named in the table), keeping the other
    /// rows from the previous run's results.jsonl.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Use target/release/train as it is instead of building it first.
    #[arg(long)]
    no_build: bool,
    /// Train nothing: redraw the table and the plot from the files in --out.
    #[arg(long)]
    plot_only: bool,
}

/// The test MSE `train adding` counts as solved.
const SOLVED_MSE: f64 = 0.01;

/// The models of the table, as `train adding` options.
const MODELS: [(&str, &str, bool); 5] = [
    ("rnn", "rnn", false),
    ("gru", "gru", false),
    ("lstm", "lstm", false),
    ("rnn+attention", "rnn", true),
    ("lstm+attention", "lstm", true),
];

/// One line of `train adding --json`, plus the model's name in the table.
#[derive(Deserialize, Serialize)]
struct RunResult {
    #[serde(default)]
    model: String,
    seq_len: usize,
    test_mse: f64,
    steps_to_solve: Option<usize>,
    seconds: f64,
}

pub fn run(experiment: &Experiment) -> Result<()> {
    match experiment {
        Experiment::Adding(args) => adding(args),
        Experiment::Lm(args) => lm(args),
        Experiment::Regularization(args) => crate::regularization::run(args),
        Experiment::Compress(args) => crate::compress::run(args),
    }
}

/// The fields of the artifact's metrics.json that the plot and the summary use.
#[derive(Deserialize)]
struct LmMetrics {
    valid_loss: f64,
    valid_bits_per_char: f64,
    best_epoch: usize,
    epochs_run: usize,
    train_seconds: f64,
    chars_per_second: f64,
    train_loss_per_epoch: Vec<f64>,
    valid_loss_per_epoch: Vec<f64>,
}

fn lm(args: &LmArgs) -> Result<()> {
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
        let status = Command::new("target/release/train")
            .args(["lm", "--artifact-dir"])
            .arg(&args.artifact_dir)
            .stdout(std::fs::File::create(&log)?)
            .status()?;
        ensure!(status.success(), "train lm failed: see {}", log.display());
    }
    let metrics_path = args.artifact_dir.join("metrics.json");
    let metrics: LmMetrics = serde_json::from_str(
        &std::fs::read_to_string(&metrics_path)
            .with_context(|| format!("cannot read {}", metrics_path.display()))?,
    )
    .with_context(|| {
        format!(
            "{} is not a language-model metrics file",
            metrics_path.display()
        )
    })?;
    let png = args.out.join("loss.png");
    plot_lm_loss(&metrics, &png)?;
    println!("wrote {}", png.display());

    let sample = Command::new("target/release/infer")
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

fn plot_lm_loss(metrics: &LmMetrics, png: &Path) -> Result<()> {
    register_font()?;
    let epochs = metrics.train_loss_per_epoch.len().max(1);
    let all = metrics
        .train_loss_per_epoch
        .iter()
        .chain(&metrics.valid_loss_per_epoch);
    let high = all.clone().fold(0.0, |a: f64, &b| a.max(b)) + 0.1;
    let low = all.fold(f64::INFINITY, |a: f64, &b| a.min(b)).min(1.7) - 0.1;
    let seconds_per_epoch = metrics.train_seconds / metrics.epochs_run.max(1) as f64;

    let root = BitMapBackend::new(png, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Character LSTM on Shakespeare: loss per epoch (about {:.0} s each)",
                seconds_per_epoch
            ),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..epochs as f64 + 0.5, low..high)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("cross-entropy (nats per character)")
        .draw()?;
    for (label, values, color) in [
        (
            "training (mean over the epoch, dropout on)",
            &metrics.train_loss_per_epoch,
            RED,
        ),
        ("validation", &metrics.valid_loss_per_epoch, BLUE),
    ] {
        let style = color.stroke_width(3);
        chart
            .draw_series(LineSeries::new(
                values.iter().enumerate().map(|(i, &v)| (i as f64 + 1.0, v)),
                style,
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    let target = BLACK.mix(0.5).stroke_width(1);
    chart
        .draw_series(LineSeries::new(
            [(0.5, 1.7), (epochs as f64 + 0.5, 1.7)],
            target,
        ))?
        .label("target 1.70")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], target));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// `cargo build --release` of the given packages' binaries.
pub(crate) fn build_release(packages: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--release"]);
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command.status()?;
    ensure!(
        status.success(),
        "building {} failed ({status})",
        packages.join(" and ")
    );
    Ok(())
}

/// Plotters draws text with ab_glyph, which needs a font file: the system's DejaVu Sans.
pub(crate) fn register_font() -> Result<()> {
    let font = Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
    let bytes = std::fs::read(font).with_context(|| {
        format!(
            "the plot needs a font: {} (apt-get install fonts-dejavu-core)",
            font.display()
        )
    })?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("{} is not a usable font", font.display()))
}

fn adding(args: &AddingArgs) -> Result<()> {
    if !args.no_build && !args.plot_only {
        build_release(&["train"])?;
    }
    let train = Path::new("target/release/train");
    ensure!(
        train.is_file(),
        "{} not found: build it or drop --no-build",
        train.display()
    );
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
    let mut results: BTreeMap<(usize, String), RunResult> = BTreeMap::new();
    if (args.plot_only || !args.models.is_empty()) && jsonl.exists() {
        for (i, line) in std::fs::read_to_string(&jsonl)?.lines().enumerate() {
            let r: RunResult = serde_json::from_str(line)
                .with_context(|| format!("{}:{}", jsonl.display(), i + 1))?;
            results.insert((r.seq_len, r.model.clone()), r);
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
            let mut cmd = Command::new(train);
            cmd.args(["adding", "--json", "--encoder", cell])
                .args(["--seq-len", &seq_len.to_string()])
                .args(["--steps", &args.steps.to_string()]);
            if attention {
                cmd.arg("--attention");
            }
            if !attention && seq_len == args.gradient_seq_len {
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
            println!(
                "T = {seq_len:>3} {name:<15} test MSE {:.5}, {} ({:.0} s)",
                result.test_mse,
                result
                    .steps_to_solve
                    .map_or(format!("never below {SOLVED_MSE}"), |s| format!(
                        "below {SOLVED_MSE} after {s} steps"
                    )),
                result.seconds
            );
            results.insert((seq_len, name.to_string()), result);
        }
    }
    if !kept_csv.is_empty() {
        let header = if csv.exists() {
            ""
        } else {
            "model,seq_len,phase,distance_from_end,grad_norm\n"
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

fn markdown_table(args: &AddingArgs, results: &BTreeMap<(usize, String), RunResult>) -> String {
    let mut s = format!(
        "Test MSE after {} steps of batch 32 (steps until test MSE < 0.01, or — if never). \
         Predicting 1 always gives 0.167.\n\n| model |",
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
            match results.get(&(t, name.to_string())) {
                Some(r) => {
                    let solved = r.steps_to_solve.map_or("—".to_string(), |s| s.to_string());
                    s.push_str(&format!(" {:.4} ({solved}) |", r.test_mse));
                }
                None => s.push_str(" not run |"),
            }
        }
        s.push('\n');
    }
    s
}

/// Draws ‖∂L/∂x_t‖ against the distance from the end, one line per
/// (model, phase), on a log scale.
fn plot_gradients(csv: &Path, png: &Path) -> Result<()> {
    register_font()?;

    let text = std::fs::read_to_string(csv)?;
    let mut series: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let [model, _, phase, distance, norm] = fields[..] else {
            bail!("{}:{}: expected 5 fields", csv.display(), i + 1);
        };
        let distance: usize = distance
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
    let max_distance = series.values().flatten().map(|p| p.0).max().unwrap_or(1);
    let positive = series.values().flatten().map(|p| p.1).filter(|v| *v > 0.0);
    let low = positive.clone().fold(f64::INFINITY, f64::min).max(1e-30) / 2.0;
    let high = positive.fold(0.0, f64::max) * 2.0;

    let root = BitMapBackend::new(png, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Adding problem: gradient of the loss w.r.t. each input step",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(80)
        .build_cartesian_2d(0..max_distance, (low..high).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("distance from the last step (t = T-1 is 0)")
        .y_desc("mean ||dL/dx_t|| (log scale)")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()?;
    // One color per model: a thin line at initialisation, a thick one after training.
    let models: Vec<&str> = series.keys().filter_map(|k| k.split(", ").next()).collect();
    let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    for (label, points) in &series {
        let model = label.split(", ").next().unwrap_or_default();
        let color = colors[models.iter().position(|m| *m == model).unwrap_or(0) / 2 % colors.len()];
        let style = if label.ends_with("init") {
            color.stroke_width(1)
        } else {
            color.stroke_width(3)
        };
        chart
            .draw_series(LineSeries::new(
                points.iter().filter(|p| p.1 > 0.0).map(|&(d, v)| (d, v)),
                style,
            ))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
