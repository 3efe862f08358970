//! `cargo run --release -p train`: trains the LSTM + attention classifier on
//! `datasets/mr` and writes the artifact `artifacts/mr`. Subcommands run the
//! fundamentals: `mlp` (the 2-3-1 network) and `adding` (long-range memory);
//! `lm` trains the character language model on `datasets/shakespeare`;
//! `translate` the English→French translator on `datasets/gettext-en-fr`;
//! `compress` quantizes, prunes or distills a trained classifier; `import`
//! makes a classifier artifact from PyTorch-trained weights.
//!
//! The backend is chosen here and nowhere else: ndarray by default, wgpu with
//! `--features wgpu`.

use clap::{Parser, Subcommand};
use train::{adding, classify, compress, import, lm, mlp, translate};

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

type TrainBackend = burn::backend::Autodiff<backend::Backend>;

/// Train the sequence models. With no subcommand, trains the text classifier.
#[derive(Parser)]
#[command(name = "train", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    classify: classify::ClassifyArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Train the text classifier (the default; same options as without a subcommand).
    Classify(classify::ClassifyArgs),
    /// The 2-3-1 network case study, by autodiff or by hand (--manual).
    Mlp(mlp::MlpArgs),
    /// The adding problem: long-range memory of RNN, GRU, LSTM and attention.
    Adding(adding::AddingArgs),
    /// The character-level LSTM language model on Shakespeare.
    Lm(lm::LmArgs),
    /// The encoder–decoder translator (LSTM with attention, or --arch transformer) on datasets/gettext-en-fr.
    Translate(translate::TranslateArgs),
    /// Make a trained classifier smaller: quantize, prune or distill it.
    Compress(compress::CompressArgs),
    /// Build a classifier artifact from PyTorch-trained weights (safetensors, as `infer export` writes).
    Import(import::ImportArgs),
}

fn main() {
    let cli = Cli::parse();
    model::keep_freed_memory();
    model::configure_threads();
    let device = Default::default();
    let result = match cli.command.unwrap_or(Command::Classify(cli.classify)) {
        Command::Classify(args) => classify::run::<TrainBackend>(&args, &device, backend::NAME),
        Command::Mlp(args) => mlp::run::<TrainBackend>(&args, &device),
        Command::Adding(args) => adding::run::<TrainBackend>(&args, &device).map(|_| ()),
        Command::Lm(args) => lm::run::<TrainBackend>(&args, &device, backend::NAME),
        Command::Translate(args) => translate::run::<TrainBackend>(&args, &device, backend::NAME),
        Command::Compress(args) => compress::run::<TrainBackend>(&args, &device, backend::NAME),
        Command::Import(args) => import::run::<backend::Backend>(&args, &device, backend::NAME),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
