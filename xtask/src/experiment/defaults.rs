//! `cargo xtask experiment defaults`: the MR classifier's default command
//! beside the candidates that were measured for its defaults, each over
//! several seeds, through the release `train` binary; writes the table under
//! `docs/experiments/defaults/`. The default is chosen by the validation
//! mean, never by test.

use super::seeds::{SeedArgs, SeedRun, Variant, accuracy_table, run_variants};
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

/// The rows: a short name, what the table calls it, and the options added
/// to the default `train` command (the first row adds none).
const VARIANTS: [(&str, &str, &[&str]); 1] = [("default", "the default command", &[])];

pub fn run(args: &DefaultsArgs) -> Result<()> {
    let variants: Vec<Variant> = VARIANTS
        .iter()
        .map(|(name, _, options)| (*name, options.iter().map(|o| o.to_string()).collect()))
        .collect();
    let results = run_variants(&args.seeds, &variants, &args.out, &args.artifacts)?;
    let table = markdown_table(&results);
    std::fs::write(args.out.join("results.md"), &table)?;
    print!("{table}");
    Ok(())
}

fn markdown_table(results: &[SeedRun]) -> String {
    let rows: Vec<(&str, String)> = VARIANTS
        .iter()
        .map(|(name, label, options)| {
            let options = if options.is_empty() {
                String::new()
            } else {
                format!(" (`{}`)", options.join(" "))
            };
            (*name, format!("{label}{options}"))
        })
        .collect();
    accuracy_table(
        "MR: the default `train` command and the candidates measured for its defaults (the \
         epoch of best validation accuracy kept), seeds 1..=N; mean ± sample standard deviation \
         over the seeds, in %. The default is the row with the best validation mean. \
         Command: `cargo xtask experiment defaults`.",
        &rows,
        results,
    )
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
        for (name, label, _) in VARIANTS {
            assert!(results.iter().any(|r| r.variant == name), "{name}");
            assert!(table.contains(label), "{label}");
        }
    }
}
