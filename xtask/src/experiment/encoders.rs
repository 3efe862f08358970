//! `cargo xtask experiment encoders`: the MR classifier's default command
//! with each encoder (rnn, gru, lstm, bilstm, transformer), over several
//! seeds, through the release `train` binary; writes the table of mean and
//! spread under `docs/experiments/encoders/`.

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

pub fn run(args: &EncodersArgs) -> Result<()> {
    let variants: Vec<Variant> = ENCODERS
        .iter()
        .map(|e| {
            let options = ["--embeddings", "none", "--encoder", e];
            (*e, options.iter().map(|o| o.to_string()).collect())
        })
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
    let rows: Vec<(&str, String)> = ENCODERS.iter().map(|e| (*e, e.to_string())).collect();
    accuracy_table(
        "MR, the default `train` command with `--embeddings none --encoder E` (the \
         random embedding of the default before 2026-12-05; the epoch of best validation \
         accuracy kept), seeds 1..=N; mean ± sample standard deviation over the seeds, in %. \
         Command: `cargo xtask experiment encoders`.",
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
        for encoder in ENCODERS {
            assert!(results.iter().any(|r| r.variant == encoder), "{encoder}");
        }
        assert!(markdown_table(&results).contains("| transformer | 1321219 |"));
    }
}
