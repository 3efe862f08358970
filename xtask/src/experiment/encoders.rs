//! `cargo xtask experiment encoders`: the MR classifier's default command
//! with each encoder (rnn, gru, lstm, bilstm, transformer), from a random
//! embedding and from GloVe's vectors (the default since 2026-12-05), over
//! several seeds, through the release `train` binary; writes the table of
//! mean and spread under `docs/experiments/encoders/`.

use super::seeds::{SeedArgs, SeedRun, Variant, accuracy_table, run_and_tabulate};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct EncodersArgs {
    #[command(flatten)]
    seeds: SeedArgs,
    #[arg(long, default_value = "docs/experiments/encoders")]
    out: PathBuf,
    /// Where the runs' artifacts and logs go, one directory per run.
    #[arg(long, default_value = "artifacts/encoders")]
    artifacts: PathBuf,
}

/// The encoders, as `train --encoder` names them, in the table's order.
const ENCODERS: [&str; 5] = ["rnn", "gru", "lstm", "bilstm", "transformer"];

/// Every row: each encoder from a random embedding (as the table was first
/// measured), then from GloVe (the default's vectors), as its short name
/// (`glove-` before the encoder for the second), the table's label and its
/// `train` options.
fn rows() -> Vec<(String, String, Vec<String>)> {
    [false, true]
        .into_iter()
        .flat_map(|glove| {
            ENCODERS.iter().map(move |e| {
                let (name, label, embedding): (String, String, &[&str]) = if glove {
                    (format!("glove-{e}"), format!("{e}, GloVe"), &[])
                } else {
                    (e.to_string(), e.to_string(), &["--embeddings", "none"])
                };
                let encoder = ["--encoder", e];
                let options = embedding.iter().chain(&encoder);
                (name, label, options.map(|o| o.to_string()).collect())
            })
        })
        .collect()
}

pub fn run(args: &EncodersArgs) -> Result<()> {
    let rows = rows();
    let variants: Vec<Variant> = rows
        .iter()
        .map(|(name, _, options)| (name.as_str(), options.clone()))
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
    let rows = rows();
    let rows: Vec<(&str, String)> = rows
        .iter()
        .map(|(name, label, _)| (name.as_str(), label.clone()))
        .collect();
    accuracy_table(
        "MR, the default `train` command with `--encoder E` (the epoch of best validation \
         accuracy kept), from a random embedding (`--embeddings none`, the default before \
         2026-12-05; the first five rows) and from GloVe's vectors (the default since; the \
         rows marked GloVe), seeds 1..=N; mean ± sample standard deviation over the seeds, \
         in %. Command: `cargo xtask experiment encoders`.",
        &rows,
        results,
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed results parse with this crate's types, one row per
    /// encoder and seed.
    #[test]
    fn the_committed_results_parse() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/experiments/encoders/results.jsonl");
        let results = super::super::seeds::read_jsonl(&path).unwrap();
        for (name, _, _) in rows() {
            assert!(results.iter().any(|r| r.variant == name), "{name}");
        }
        assert!(markdown_table(&results).contains("| transformer | 1321219 |"));
    }
}
