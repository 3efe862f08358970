//! `cargo xtask experiment translation`: trains the LSTM encoder–decoder
//! without attention, with Bahdanau's and with Luong's (general)
//! attention, and the Transformer, each with the same time budget, then decodes the test split greedily and
//! with a beam of 5 and writes the table, example translations and their
//! alignment pictures under `docs/experiments/translation/`.

use crate::cargo::{binary, build_release};
use anyhow::{Context, Result, ensure};
use artifact::TranslatorMetrics;
use artifact::files::{METRICS_FILE, read_json};
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args)]
pub struct TranslationArgs {
    /// The time budget of each model's training, in minutes (the default
    /// command's 30 unless told otherwise).
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where the artifacts go, one directory per model.
    #[arg(long, default_value = "artifacts/translation")]
    artifacts: PathBuf,
    #[arg(long, default_value = "docs/experiments/translation")]
    out: PathBuf,
    #[arg(long, default_value = "datasets/gettext-en-fr")]
    data_dir: PathBuf,
    /// Use the release train and infer binaries as they are instead of building them first.
    #[arg(long)]
    no_build: bool,
    /// Train nothing: decode and tabulate the artifacts already there.
    #[arg(long)]
    table_only: bool,
    /// Train only these models (none, bahdanau, general, transformer); the
    /// others' artifacts are tabulated as they are.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// The models compared: a name, the artifact's directory name, and the options.
const MODELS: [(&str, &str, &[&str]); 4] = [
    (
        "LSTM, no attention (Sutskever et al.)",
        "none",
        &["--no-attention"],
    ),
    ("LSTM, Bahdanau attention (the default)", "bahdanau", &[]),
    (
        "LSTM, Luong attention (general)",
        "general",
        &["--attention", "general"],
    ),
    ("Transformer", "transformer", &["--arch", "transformer"]),
];

/// The models with one alignment to draw.
fn has_alignment(dir: &str) -> bool {
    dir == "bahdanau" || dir == "general"
}

/// Test sentences whose translations and alignments are shown.
const EXAMPLES: usize = 4;

pub fn run(args: &TranslationArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)?;
    if !args.no_build && !args.table_only {
        build_release(&["train", "infer"])?;
    }
    let test = args.data_dir.join("test.tsv");
    let mut table = String::from(
        "| model | search | test BLEU | test chrF | parameters | training | epochs (kept) | sentences/s |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, dir, options) in MODELS {
        let artifact = args.artifacts.join(dir);
        if !args.table_only && (args.only.is_empty() || args.only.iter().any(|o| o == dir)) {
            let log = args.out.join(format!("train-{dir}.log"));
            println!(
                "training {name} ({} minutes); log in {}",
                args.minutes,
                log.display()
            );
            let status = Command::new(binary("train"))
                .arg("translate")
                .args(options)
                .arg("--artifact-dir")
                .arg(&artifact)
                .arg("--data-dir")
                .arg(&args.data_dir)
                .args(["--minutes", &args.minutes.to_string()])
                .args(["--seed", &args.seed.to_string()])
                .stdout(std::fs::File::create(&log)?)
                .status()?;
            ensure!(
                status.success(),
                "train translate failed: see {}",
                log.display()
            );
        }
        let metrics: TranslatorMetrics = read_json(
            &artifact.join(METRICS_FILE),
            "a translation model's metrics",
        )?;
        for beam in [1, 5] {
            let eval = evaluate(&artifact, &test, beam)?;
            let search = if beam == 1 {
                "greedy".to_string()
            } else {
                format!("beam {beam}")
            };
            writeln!(
                table,
                "| {name} | {search} | {:.2} | {:.2} | {:.2} M | {:.1} min | {} ({}) | {:.0} |",
                eval["bleu"].as_f64().unwrap_or(f64::NAN),
                eval["chrf"].as_f64().unwrap_or(f64::NAN),
                metrics.parameters as f64 / 1e6,
                metrics.train_seconds / 60.0,
                metrics.epochs_run,
                metrics.best_epoch,
                eval["sentences_per_second"].as_f64().unwrap_or(f64::NAN),
            )?;
        }
    }
    writeln!(
        table,
        "\nBLEU signature `{}`, chrF signature `{}`; {} minutes of training per model, seed {}, on {} test pairs.",
        artifact::bleu::Bleu::SIGNATURE,
        artifact::chrf::CHRF_SIGNATURE,
        args.minutes,
        args.seed,
        count_lines(&test)?
    )?;
    std::fs::write(args.out.join("results.md"), &table)?;
    print!("{table}");
    examples(args, &test)?;
    Ok(())
}

/// `infer translate --eval` of `artifact` on `test`, as its JSON.
fn evaluate(artifact: &Path, test: &Path, beam: usize) -> Result<serde_json::Value> {
    let output = Command::new(binary("infer"))
        .args([
            "translate",
            "--json",
            "--beam",
            &beam.to_string(),
            "--artifact-dir",
        ])
        .arg(artifact)
        .arg("--eval")
        .arg(test)
        .output()?;
    ensure!(
        output.status.success(),
        "infer translate --eval failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).context("infer translate --eval --json printed no JSON")
}

/// The first test sentences of 5 to 10 words, translated by each model
/// (beam 5), with the attention model's alignment pictures.
fn examples(args: &TranslationArgs, test: &Path) -> Result<()> {
    let text = std::fs::read_to_string(test)?;
    let pairs: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(s, _)| (5..=10).contains(&s.split_whitespace().count()))
        .take(EXAMPLES)
        .collect();
    let mut md = String::from("# Example translations (test split, beam 5)\n\n");
    for (i, (source, reference)) in pairs.iter().enumerate() {
        writeln!(md, "## {}. {source}\n\nreference: {reference}\n", i + 1)?;
        for (name, dir, _) in MODELS {
            let artifact = args.artifacts.join(dir);
            let mut command = Command::new(binary("infer"));
            command
                .arg("translate")
                .arg("--artifact-dir")
                .arg(&artifact);
            let png = format!("align-{}-{dir}.png", i + 1);
            if has_alignment(dir) {
                command.arg("--plot").arg(args.out.join(&png));
            }
            let output = command.arg(source).output()?;
            ensure!(
                output.status.success(),
                "infer translate failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let translation = String::from_utf8_lossy(&output.stdout);
            writeln!(md, "- {name}: {}", translation.trim())?;
            if has_alignment(dir) {
                writeln!(md, "\n  ![alignment]({png})\n")?;
            }
        }
        md.push('\n');
    }
    std::fs::write(args.out.join("examples.md"), md)?;
    Ok(())
}

fn count_lines(path: &Path) -> Result<usize> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count())
}
