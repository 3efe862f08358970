//! `cargo run --release -p infer -- "an utterly charming and hilarious film"`
//!
//! Predicts with a trained artifact: texts as arguments or one per line on
//! stdin; `--json` for probabilities and attention weights; `--eval FILE` for
//! accuracy and a confusion matrix on a labelled TSV.

use anyhow::{Context, Result};
use clap::Parser;
use data::read_labelled_tsv;
use infer::{Classifier, Evaluation};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

#[cfg(not(feature = "wgpu"))]
type Backend = burn::backend::NdArray;
#[cfg(feature = "wgpu")]
type Backend = burn::backend::Wgpu;

/// Classify text with a trained artifact.
#[derive(Parser)]
#[command(name = "infer", version)]
struct Cli {
    /// Texts to classify. Without any (and without --eval), one text per line is read from stdin.
    texts: Vec<String>,
    /// The artifact directory written by `train`.
    #[arg(long, default_value = "artifacts/mr")]
    artifact_dir: PathBuf,
    /// One JSON object per input: label, probabilities and per-token attention weights.
    #[arg(long)]
    json: bool,
    /// Evaluate on a labelled `label<TAB>text` file: accuracy and confusion matrix.
    #[arg(long, value_name = "FILE", conflicts_with = "texts")]
    eval: Option<PathBuf>,
    /// How many texts go through the model at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let device = Default::default();
    let classifier = Classifier::<Backend>::load(&cli.artifact_dir, &device)?;
    let batch_size = cli.batch_size as usize;

    if let Some(path) = &cli.eval {
        let labels: Vec<&str> = classifier
            .config
            .labels
            .iter()
            .map(String::as_str)
            .collect();
        let items = read_labelled_tsv(path, &labels)?;
        let evaluation = classifier.evaluate(&items, batch_size)?;
        if cli.json {
            println!("{}", serde_json::to_string(&evaluation)?);
        } else {
            print_evaluation(&evaluation);
        }
        return Ok(());
    }

    let texts = if cli.texts.is_empty() {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("reading texts from stdin, one per line (Ctrl-D to end)");
        }
        stdin
            .lock()
            .lines()
            .collect::<Result<Vec<_>, _>>()
            .context("reading stdin")?
    } else {
        cli.texts
    };
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    for prediction in classifier.predict(&texts, batch_size)? {
        if cli.json {
            println!("{}", serde_json::to_string(&prediction)?);
        } else {
            let probs: Vec<String> = prediction
                .labels
                .iter()
                .zip(&prediction.probabilities)
                .map(|(label, p)| format!("{label} {p:.3}"))
                .collect();
            println!(
                "{}\t{}\t{}",
                prediction.label,
                probs.join(" "),
                prediction.text
            );
        }
    }
    Ok(())
}

fn print_evaluation(eval: &Evaluation) {
    println!(
        "accuracy {:.2}% ({}/{})",
        100.0 * eval.accuracy,
        eval.correct,
        eval.total
    );
    println!();
    let width = eval
        .labels
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(4)
        .max(6);
    print!("{:>width$}", "true \\ predicted");
    for label in &eval.labels {
        print!("  {label:>width$}");
    }
    println!();
    for (label, row) in eval.labels.iter().zip(&eval.confusion) {
        print!("{:>w$}", label, w = width.max(16));
        for count in row {
            print!("  {count:>width$}");
        }
        println!();
    }
}
