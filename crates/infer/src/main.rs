//! `cargo run --release -p infer -- "an utterly charming and hilarious film"`
//!
//! Predicts with a trained artifact: texts as arguments or one per line on
//! stdin; `--json` for probabilities and attention weights; `--eval FILE` for
//! accuracy and a confusion matrix on a labelled TSV.
//!
//! `cargo run --release -p infer -- generate --prompt "Romeo."` continues a
//! prompt with the character language model of `train lm`, printing each
//! character as it is drawn.
//!
//! `cargo run --release -p infer -- translate "Open the file"` translates
//! with the encoder–decoder of `train translate` (`--beam`, `--json` with
//! the attention matrix, `--plot` its heatmap, `--eval` BLEU and chrF).
//!
//! `cargo run --release -p infer -- report A B …` compares classifier
//! artifacts: parameters, size, test accuracy, latency.
//!
//! `cargo run --release -p infer -- serve --artifact-dir artifacts/mr` serves
//! artifacts over HTTP (JSON endpoints, a web page, Prometheus metrics);
//! `infer export --to model.safetensors` writes the weights for PyTorch.
//!
//! Output is written as each batch is done, and a closed stdout (`| head`)
//! ends the program quietly.

use anyhow::{Context, Result, bail};
use artifact::args::{non_negative_f64, positive_usize};
use artifact::files::{TOKENIZER_FILE, VOCAB_FILE};
use artifact::pytorch;
use artifact::{Classifier, Evaluation};
use clap::{Args, Parser, Subcommand};
use data::labelled_rows;
use infer::report::{ReportRequest, markdown, report};
use infer::serve::{BatchPolicy, ModelSource, ServeOptions, serve};
use infer::{Generator, Sampling};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io::{BufRead, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

/// See the workspace Cargo.toml: glibc's malloc returns large blocks to the
/// kernel on free, and every tensor operation allocates one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(feature = "wgpu"))]
mod backend {
    pub type Backend = burn::backend::NdArray;
    pub const NAME: &str = "ndarray";
}
#[cfg(feature = "wgpu")]
mod backend {
    pub type Backend = burn::backend::Wgpu;
    pub const NAME: &str = "wgpu";
}
use backend::Backend;

/// Classify text with a trained artifact, or generate text with a language model.
#[derive(Parser)]
#[command(name = "infer", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    classify: PredictArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Classify texts (the default; same options as without a subcommand).
    Classify(PredictArgs),
    /// Generate text with a character language model (`train lm`).
    Generate(GenerateArgs),
    /// Translate sentences with an encoder–decoder artifact (`train translate`): beam search, attention, BLEU.
    Translate(infer::translate::TranslateArgs),
    /// Parameters, size on disk, test accuracy and latency of classifier artifacts (a markdown table).
    Report(ReportArgs),
    /// Serve artifacts over HTTP: JSON endpoints, a web page at /, metrics at /metrics.
    Serve(ServeArgs),
    /// Write an artifact's weights as safetensors in PyTorch's names and layouts.
    Export(ExportArgs),
}

#[derive(Args)]
struct ExportArgs {
    /// A classifier (LSTM encoder) or language-model artifact.
    #[arg(long, default_value = "artifacts/mr")]
    artifact_dir: PathBuf,
    /// The safetensors file to write (an existing one only if `infer export` wrote it).
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
}

#[derive(Args)]
struct PredictArgs {
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
    #[arg(long, default_value_t = 256, value_parser = positive_usize)]
    batch_size: usize,
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
    #[arg(long, default_value_t = 0.8, value_parser = non_negative_f64)]
    temperature: f64,
    /// Draw only among the k most likely characters (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Same seed, same text.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Args)]
struct ReportArgs {
    /// The artifacts to compare; the first is the reference for the accuracy change.
    #[arg(required = true)]
    artifacts: Vec<PathBuf>,
    /// The dataset whose test split (test.tsv) is evaluated and timed.
    #[arg(long, default_value = "datasets/mr")]
    data_dir: PathBuf,
    /// Test sentences predicted one at a time for the batch-1 latency.
    #[arg(long, default_value_t = 200, value_parser = positive_usize)]
    sentences: usize,
    /// Also write the rows as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json_file: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// An artifact to serve, under its directory's name (or NAME=DIR); repeat for more.
    #[arg(long = "artifact-dir", value_name = "[NAME=]DIR", default_value = "artifacts/mr",
          value_parser = ModelSource::parse)]
    artifacts: Vec<ModelSource>,
    /// The address to listen on; 0.0.0.0 takes connections from other machines.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port; 0 takes a free one (the first line on stdout says which).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Texts run through a classifier at once. 32 served MR sentences
    /// fastest at 128 clients on 2 cores: 7,800-8,300 requests/s, against
    /// 4,700-7,500 with 8 and 5,300-6,900 with 128 (two runs each of
    /// `cargo xtask loadtest -- --max-batch N --concurrency 128`).
    #[arg(long, default_value_t = 32, value_parser = positive_usize)]
    max_batch: usize,
    /// How long the first request of a batch waits for others to join it.
    /// 0 batches only what queued while the model was busy: no latency
    /// added to a lone request, and under load the batches fill by
    /// themselves (`cargo xtask loadtest`, one run each: at 1 client a wait
    /// of 5 ms cut throughput from 2,240 to 170 requests/s; at 128 clients
    /// it raised it from 6,050 to 7,060).
    #[arg(long, default_value_t = 0)]
    max_wait_ms: u64,
    /// Requests that may wait for each model; one more is answered 429.
    #[arg(long, default_value_t = 256, value_parser = positive_usize)]
    queue: usize,
    /// A request not answered within this many milliseconds gets 504.
    #[arg(long, default_value_t = 10_000, value_parser = positive_usize)]
    timeout_ms: usize,
    /// The largest request body in bytes; larger gets 413.
    #[arg(long, default_value_t = 1 << 20, value_parser = positive_usize)]
    body_limit: usize,
    /// The most texts in one classify request; more gets 413.
    #[arg(long, default_value_t = 256, value_parser = positive_usize)]
    max_texts: usize,
    /// The most characters one generate request may ask for.
    #[arg(long, default_value_t = 5_000, value_parser = positive_usize)]
    max_chars: usize,
}

fn main() {
    let cli = Cli::parse();
    model::keep_freed_memory();
    model::configure_threads();
    let result = match cli.command.unwrap_or(Command::Classify(cli.classify)) {
        Command::Classify(args) => classify(args),
        Command::Generate(args) => generate(args),
        Command::Translate(args) => infer::translate::run::<Backend>(&args, &Default::default()),
        Command::Report(args) => report_command(args),
        Command::Serve(args) => serve_command(args),
        Command::Export(args) => export_command(args),
    };
    if let Err(err) = result {
        if is_broken_pipe(&err) {
            // The reader has gone (`| head`): not an error.
            return;
        }
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// Whether `err` comes from writing to a closed pipe.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn export_command(args: ExportArgs) -> Result<()> {
    let device = Default::default();
    let dir = &args.artifact_dir;
    let (names, vocabulary) = if dir.join(VOCAB_FILE).is_file() {
        let lm = Generator::<Backend>::load(dir, &device)?.lm;
        let config = serde_json::to_value(&lm.config)?;
        let names = pytorch::export(&lm.model, "language-model", &config, &args.to)?;
        (names, dir.join(VOCAB_FILE))
    } else {
        let classifier = Classifier::<Backend>::load(dir, &device)?;
        let config = serde_json::to_value(&classifier.config)?;
        let names = pytorch::export(classifier.model(), "classifier", &config, &args.to)?;
        (names, dir.join(TOKENIZER_FILE))
    };
    println!(
        "wrote {} tensors to {}: {}",
        names.len(),
        args.to.display(),
        names.join(", ")
    );
    println!(
        "the token ids are those of {}; docs/pytorch/logits.py loads the weights into PyTorch",
        vocabulary.display()
    );
    Ok(())
}

fn serve_command(args: ServeArgs) -> Result<()> {
    let options = ServeOptions {
        host: args.host,
        port: args.port,
        batching: BatchPolicy {
            max_batch: args.max_batch,
            max_wait: Duration::from_millis(args.max_wait_ms),
            queue: args.queue,
        },
        timeout: Duration::from_millis(args.timeout_ms as u64),
        body_limit: args.body_limit,
        max_texts: args.max_texts,
        max_chars: args.max_chars,
    };
    serve::<Backend>(&args.artifacts, options, &Default::default())
}

fn report_command(args: ReportArgs) -> Result<()> {
    let device = Default::default();
    let request = ReportRequest {
        artifacts: &args.artifacts,
        test: &args.data_dir.join("test.tsv"),
        sentences: args.sentences,
    };
    let rows = report::<Backend>(&request, &device)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", markdown(&rows, backend::NAME, args.sentences))?;
    if let Some(path) = &args.json_file {
        std::fs::write(path, serde_json::to_string_pretty(&rows)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn generate(args: GenerateArgs) -> Result<()> {
    let device = Default::default();
    let generator = Generator::<Backend>::load(&args.artifact_dir, &device)?;
    // The shell passes "\n" literally; a prompt written on one line still
    // means a line break there.
    let prompt = args.prompt.replace("\\n", "\n");
    let (ids, skipped) = generator.lm.vocab.encode_lossy(&prompt);
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
            generator.lm.vocab.len(),
            args.artifact_dir.join(VOCAB_FILE).display()
        );
    }
    let sampling = Sampling {
        temperature: args.temperature as f32,
        top_k: (args.top_k > 0).then_some(args.top_k),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut out = std::io::stdout().lock();
    write!(out, "{}", generator.lm.vocab.decode(&ids))?;
    out.flush()?;
    let mut failed = None;
    generator.generate(&ids, args.length, sampling, &mut rng, |c| {
        // One character at a time, so that a person sees the text appear.
        match write!(out, "{c}").and_then(|()| out.flush()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(err) => {
                failed = Some(err);
                ControlFlow::Break(())
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

fn classify(cli: PredictArgs) -> Result<()> {
    let device = Default::default();
    let classifier = Classifier::<Backend>::load(&cli.artifact_dir, &device)?;
    let mut out = std::io::stdout().lock();

    if let Some(path) = &cli.eval {
        let labels: Vec<&str> = classifier
            .config
            .labels
            .iter()
            .map(String::as_str)
            .collect();
        let evaluation =
            classifier.evaluate_stream(labelled_rows(path, &labels)?, cli.batch_size)?;
        if evaluation.total == 0 {
            bail!(
                "{} is empty: expected lines of `label<TAB>text`",
                path.display()
            );
        }
        if cli.json {
            writeln!(out, "{}", serde_json::to_string(&evaluation)?)?;
        } else {
            write!(out, "{}", evaluation_text(&evaluation))?;
        }
        return Ok(());
    }

    let mut emit = |prediction: artifact::Prediction| -> Result<()> {
        if cli.json {
            writeln!(out, "{}", serde_json::to_string(&prediction)?)?;
        } else {
            let probs: Vec<String> = prediction
                .labels
                .iter()
                .zip(&prediction.probabilities)
                .map(|(label, p)| format!("{label} {p:.3}"))
                .collect();
            writeln!(
                out,
                "{}\t{}\t{}",
                prediction.label,
                probs.join(" "),
                prediction.text
            )?;
        }
        // Each answer as soon as its batch is done, even into a pipe.
        out.flush()?;
        Ok(())
    };
    if !cli.texts.is_empty() {
        let texts: Vec<&str> = cli.texts.iter().map(String::as_str).collect();
        return classifier.predict_each(&texts, cli.batch_size, &mut emit);
    }
    // One batch of stdin at a time: memory stays bounded however long the
    // input, and the first answers come before the input ends.
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading texts from stdin, one per line (Ctrl-D to end)");
    }
    let mut lines = stdin.lock().lines();
    loop {
        let batch = lines
            .by_ref()
            .take(cli.batch_size)
            .collect::<Result<Vec<_>, _>>()
            .context("reading stdin")?;
        if batch.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
        classifier.predict_each(&texts, cli.batch_size, &mut emit)?;
    }
}

/// Accuracy and the confusion matrix, as text.
fn evaluation_text(eval: &Evaluation) -> String {
    use std::fmt::Write;
    let mut text = format!(
        "accuracy {:.2}% ({}/{})\n\n",
        100.0 * eval.accuracy,
        eval.correct,
        eval.total
    );
    let width = eval
        .labels
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(4)
        .max(6);
    let _ = write!(text, "{:>width$}", "true \\ predicted");
    for label in &eval.labels {
        let _ = write!(text, "  {label:>width$}");
    }
    text.push('\n');
    for (label, row) in eval.labels.iter().zip(&eval.confusion) {
        let _ = write!(text, "{:>w$}", label, w = width.max(16));
        for count in row {
            let _ = write!(text, "  {count:>width$}");
        }
        text.push('\n');
    }
    text
}
