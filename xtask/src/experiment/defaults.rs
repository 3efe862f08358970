//! `cargo xtask experiment defaults`: the MR classifier's default command
//! beside the candidates that were measured for its defaults, each over
//! several seeds, through the release `train` binary; writes the table under
//! `docs/experiments/defaults/`. The default is chosen by the validation
//! mean, never by test.

use super::seeds::{
    SeedArgs, SeedRun, Variant, accuracy_table, mean_sd, run_and_tabulate, runs_of,
};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct DefaultsArgs {
    #[command(flatten)]
    seeds: SeedArgs,
    #[arg(long, default_value = "docs/experiments/defaults")]
    out: PathBuf,
    /// Where the runs' artifacts and logs go, one directory per run.
    #[arg(long, default_value = "artifacts/defaults")]
    artifacts: PathBuf,
}

/// What rounds 1–3 started from: the random embedding of the default of
/// their time. Their rows add these options, so that the command
/// reproduces them now that GloVe, round 4's winner, is the default.
const RANDOM_EMBEDDING: [&str; 2] = ["--embeddings", "none"];

/// Round 1's base, the default when it ran (2026-12-03): attention pooling
/// alone. Each round-1 row adds these options (after [`RANDOM_EMBEDDING`]),
/// so the command reproduces round 1 as it was now that concat pooling, its
/// winner, is the default.
const ROUND_1_BASE: [&str; 2] = ["--pooling", "attention"];

/// Round 1: a short name, what the table calls it, and the options added to
/// [`ROUND_1_BASE`] (the first row adds none).
const ROUND_1: [(&str, &str, &[&str]); 16] = [
    ("attention", "round 1's base: attention pooling alone", &[]),
    ("gru", "GRU encoder", &["--encoder", "gru"]),
    ("bilstm", "bidirectional LSTM", &["--encoder", "bilstm"]),
    ("layers2", "two LSTM layers", &["--layers", "2"]),
    ("hidden256", "hidden size 256", &["--d-hidden", "256"]),
    (
        "recurrent",
        "variational recurrent dropout 0.25",
        &["--recurrent-dropout", "0.25"],
    ),
    (
        "embedding06",
        "embedding dropout 0.6",
        &["--embedding-dropout", "0.6"],
    ),
    ("decay", "weight decay 0.05", &["--weight-decay", "0.05"]),
    ("bucket", "length bucketing", &["--bucket"]),
    (
        "lr1e3",
        "learning rate 1e-3, 15 epochs",
        &["--lr", "0.001", "--epochs", "15"],
    ),
    (
        "cosine",
        "cosine learning-rate decay",
        &["--lr-schedule", "cosine"],
    ),
    (
        "cosine3e3",
        "cosine decay from 3e-3",
        &["--lr-schedule", "cosine", "--lr", "0.003"],
    ),
    ("average3", "mean weights of 3 epochs", &["--average", "3"]),
    ("average5", "mean weights of 5 epochs", &["--average", "5"]),
    (
        "smoothing01",
        "label smoothing 0.1",
        &["--label-smoothing", "0.1"],
    ),
    (
        "smoothing02",
        "label smoothing 0.2",
        &["--label-smoothing", "0.2"],
    ),
];

/// The default command: no options.
const DEFAULT: (&str, &str) = (
    "default",
    "the default command (LSTM, concat pooling, the embedding started from GloVe)",
);

/// Round 2: its base (the first row: the default from round 1 to round 4)
/// and the round-1 candidates that came closest, on top of concat pooling.
/// Rounds 2 and 3 add [`RANDOM_EMBEDDING`] to these options.
const ROUND_2: [(&str, &str, &[&str]); 7] = [
    (
        "concat",
        "rounds 2–4's base, the default of 2026-12-04 (LSTM, concat pooling, a random embedding)",
        &[],
    ),
    ("concat-gru", "round 2: GRU encoder", &["--encoder", "gru"]),
    (
        "concat-bilstm",
        "round 2: bidirectional LSTM",
        &["--encoder", "bilstm"],
    ),
    (
        "concat-decay",
        "round 2: weight decay 0.05",
        &["--weight-decay", "0.05"],
    ),
    ("concat-bucket", "round 2: length bucketing", &["--bucket"]),
    (
        "concat-pretrain",
        "round 2: embedding and encoder pretrained as a word language model, 3 epochs",
        &["--pretrain-epochs", "3"],
    ),
    (
        "concat-ulmfit",
        "round 2: the same, then gradual unfreezing (ULMFiT)",
        &["--pretrain-epochs", "3", "--unfreeze"],
    ),
];

/// Round 3 (2026-12-05): the language model's new schedule on the
/// classifier — the rate held, then a line down to zero over the last 20%
/// of the run — alone and with the two round-2 candidates whose validation
/// was closest.
const ROUND_3: [(&str, &str, &[&str]); 3] = [
    (
        "concat-cooldown",
        "round 3: the rate held, then a line to zero over the last 20%",
        &["--lr-schedule", "cooldown:0.2"],
    ),
    (
        "concat-cooldown-decay",
        "round 3: the same with weight decay 0.05",
        &["--lr-schedule", "cooldown:0.2", "--weight-decay", "0.05"],
    ),
    (
        "concat-cooldown-bilstm",
        "round 3: the same with a bidirectional LSTM",
        &["--lr-schedule", "cooldown:0.2", "--encoder", "bilstm"],
    ),
];

/// The pretrained vectors of round 4 (`cargo xtask data glove-mr`).
const GLOVE: &str = "datasets/glove-mr/vectors.txt";

/// Round 4 (2026-12-05): the word embedding started from GloVe's vectors,
/// alone and with the candidates a pretrained embedding might change:
/// lighter embedding dropout, round 3's best by validation, a BiLSTM.
const ROUND_4: [(&str, &str, &[&str]); 4] = [
    (
        "glove",
        "round 4: the embedding started from GloVe 6B 100d",
        &["--embeddings", GLOVE],
    ),
    (
        "glove-embedding03",
        "round 4: the same with embedding dropout 0.3",
        &["--embeddings", GLOVE, "--embedding-dropout", "0.3"],
    ),
    (
        "glove-cooldown-decay",
        "round 4: the same with round 3's cooldown and weight decay 0.05",
        &[
            "--embeddings",
            GLOVE,
            "--lr-schedule",
            "cooldown:0.2",
            "--weight-decay",
            "0.05",
        ],
    ),
    (
        "glove-bilstm",
        "round 4: the same with a bidirectional LSTM",
        &["--embeddings", GLOVE, "--encoder", "bilstm"],
    ),
];

/// Every row in the table's order — the default, round 1, round 2 with its
/// base, rounds 3 and 4 — with its whole options.
fn variants() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    let random = |options: &[&'static str]| -> Vec<&'static str> {
        RANDOM_EMBEDDING.iter().chain(options).copied().collect()
    };
    let round_1 = ROUND_1.iter().map(|(name, label, options)| {
        let options: Vec<&str> = ROUND_1_BASE.iter().chain(options.iter()).copied().collect();
        (*name, *label, random(&options))
    });
    let rounds_2_3 = ROUND_2
        .iter()
        .chain(ROUND_3.iter())
        .map(|(name, label, options)| (*name, *label, random(options)));
    let round_4 = ROUND_4
        .iter()
        .map(|(name, label, options)| (*name, *label, options.to_vec()));
    std::iter::once((DEFAULT.0, DEFAULT.1, Vec::new()))
        .chain(round_1)
        .chain(rounds_2_3)
        .chain(round_4)
        .collect()
}

pub fn run(args: &DefaultsArgs) -> Result<()> {
    let variants: Vec<Variant> = variants()
        .into_iter()
        .map(|(name, _, options)| (name, options.iter().map(|o| o.to_string()).collect()))
        .collect();
    run_and_tabulate(
        &args.seeds,
        &variants,
        &args.out,
        &args.artifacts,
        markdown_table,
    )?;
    Ok(())
}

fn markdown_table(results: &[SeedRun]) -> String {
    let rows: Vec<(&str, String)> = variants()
        .into_iter()
        .map(|(name, label, options)| {
            let options = if options.is_empty() {
                String::new()
            } else {
                format!(" (`{}`)", options.join(" "))
            };
            (name, format!("{label}{options}"))
        })
        .collect();
    let mut table = accuracy_table(
        "MR: the default `train` command and the candidates measured for its defaults (the \
         epoch of best validation accuracy kept), seeds 1..=N; mean ± sample standard deviation \
         over the seeds, in %. A default is chosen by the validation mean, never by test. \
         Round 1 measured each candidate as one change from attention pooling, the default of \
         the time; concat pooling won it. Round 2 measures the closest candidates on top of \
         concat pooling; round 3 the language model's cooldown schedule on top of it; rounds \
         1–3 start from a random embedding (`--embeddings none`). Round 4 starts the embedding \
         from GloVe's vectors, which won it and made the default. \
         Command: `cargo xtask experiment defaults`. Training times are left out: these runs \
         shared the machine with builds (the encoders table has clean times).",
        &rows,
        results,
        false,
    );
    table.push_str(
        "\nThe kept epoch's validation accuracy is the best of ten noisy ones. A steadier \
         validation figure: each run's logged validation accuracy averaged over its epochs 6 \
         onward, then mean ± sd over the seeds, in %.\n\n\
         | run | late validation accuracy |\n|---|---:|\n",
    );
    for (name, label) in &rows {
        let runs = runs_of(results, name);
        if runs.is_empty() {
            continue;
        }
        let late: Vec<f64> = runs
            .iter()
            .map(|r| {
                let tail = r.metrics.history.valid_accuracy.get(5..).unwrap_or(&[]);
                tail.iter().sum::<f64>() / tail.len().max(1) as f64
            })
            .collect();
        let (mean, sd) = mean_sd(&late);
        table.push_str(&format!("| {label} | {mean:.2} ± {sd:.2} |\n"));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed results parse, with every variant's row.
    #[test]
    fn the_committed_results_parse() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/experiments/defaults/results.jsonl");
        let results = super::super::seeds::read_jsonl(&path).unwrap();
        let table = markdown_table(&results);
        for (name, label, _) in variants() {
            assert!(results.iter().any(|r| r.variant == name), "{name}");
            assert!(table.contains(label), "{label}");
        }
    }
}
