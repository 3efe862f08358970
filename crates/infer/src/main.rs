//! `cargo run --release -p infer -- "an utterly charming and hilarious film"`
//!
//! Predicts with a trained artifact: texts as arguments or one per line on
//! stdin; `--json` for probabilities and attention weights; `--eval FILE` for
//! accuracy and a confusion matrix on a labelled TSV.
//!
//! `cargo run --release -p infer -- generate --prompt "Romeo."` continues a
//! prompt with the character language model of `train lm`, printing each
//! character as it is drawn.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use data::read_labelled_tsv;
use infer::{Classifier, Evaluation, Generator, Sampling};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// See the workspace Cargo.toml: glibc's malloc returns large blocks to the
/// kernel on free, and every tensor operation allocates one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(feature = "wgpu"))]
type Backend = burn::backend::NdArray;
#[cfg(feature = "wgpu")]
type Backend = burn::backend::Wgpu;

/// Classify text with a trained artifact, or generate text with a language model.
#[derive(Parser)]
#[command(name = "infer", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    classify: ClassifyArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Classify texts (the default; same options as without a subcommand).
    Classify(ClassifyArgs),
    /// Generate text with a character language model (`train lm`).
    Generate(GenerateArgs),
}

#[derive(Args)]
struct ClassifyArgs {
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

#[derive(Args)]
struct GenerateArgs {
    /// The artifact directory written by `train lm`.
    #[arg(long, default_value = "artifacts/shakespeare")]
    artifact_dir: PathBuf,
    /// Text that primes the model's state; generation continues it.
    #[arg(long, default_value = "Romeo.\n")]
    prompt: String,
    /// Characters to generate.
    #[arg(long, default_value_t = 500)]
    length: usize,
    /// Below 1 is more conservative, above 1 more adventurous; 0 always takes the most likely character.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Draw only among the k most likely characters (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Same seed, same text.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() {
    let cli = Cli::parse();
    model::configure_threads();
    let result = match cli.command.unwrap_or(Command::Classify(cli.classify)) {
        Command::Classify(args) => classify(args),
        Command::Generate(args) => generate(args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn generate(args: GenerateArgs) -> Result<()> {
    if !args.temperature.is_finite() || args.temperature < 0.0 {
        bail!(
            "--temperature must be a number at least 0, got {}",
            args.temperature
        );
    }
    let device = Default::default();
    let generator = Generator::<Backend>::load(&args.artifact_dir, &device)?;
    // The shell passes "\n" literally; a prompt written on one line still
    // means a line break there.
    let prompt = args.prompt.replace("\\n", "\n");
    let (ids, skipped) = generator.vocab.encode_lossy(&prompt);
    if !skipped.is_empty() {
        let skipped: Vec<String> = skipped.iter().map(|c| format!("{c:?}")).collect();
        eprintln!(
            "note: the model never saw {} in training; skipped from the prompt",
            skipped.join(" ")
        );
    }
    if ids.is_empty() {
        bail!(
            "--prompt {:?} has no character the model knows (it knows {} characters, from {})",
            args.prompt,
            generator.vocab.len(),
            args.artifact_dir
                .join(infer::generate::VOCAB_FILE)
                .display()
        );
    }
    let sampling = Sampling {
        temperature: args.temperature,
        top_k: (args.top_k > 0).then_some(args.top_k),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut out = std::io::stdout().lock();
    write!(out, "{}", generator.vocab.decode(&ids))?;
    out.flush()?;
    let mut failed = None;
    generator.generate(&ids, args.length, sampling, &mut rng, |c| {
        // One character at a time, so that a person sees the text appear.
        if failed.is_none() {
            if let Err(err) = write!(out, "{c}").and_then(|()| out.flush()) {
                failed = Some(err);
            }
        }
    })?;
    if let Some(err) = failed {
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(err).context("writing to stdout");
        }
        return Ok(());
    }
    writeln!(out)?;
    Ok(())
}

fn classify(cli: ClassifyArgs) -> Result<()> {
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
