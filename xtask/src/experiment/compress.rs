//! `cargo xtask experiment compress`: trains the MR classifier with the
//! default command (the teacher), makes every compressed model of
//! `train compress` from it, and writes `infer report`'s table under
//! `docs/experiments/compress/`.

use crate::cargo::{binary, build_release};
use anyhow::{Result, ensure};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args)]
pub struct CompressArgs {
    #[arg(long, default_value = "docs/experiments/compress")]
    out: PathBuf,
    /// Where the teacher and the compressed artifacts go.
    #[arg(long, default_value = "artifacts/compress")]
    artifacts: PathBuf,
    /// Rerun only these steps (teacher, int8, int8-block, prune50, prune80,
    /// prune90, student, alone); the report always covers all of them.
    #[arg(long, value_delimiter = ',')]
    steps: Vec<String>,
    /// Use the release train and infer as they are instead of building them first.
    #[arg(long)]
    no_build: bool,
}

/// The steps: the artifact each writes, and the `train` arguments after
/// `--from teacher --artifact-dir <artifact>` (the teacher's are the whole command).
const STEPS: [(&str, &[&str]); 8] = [
    ("teacher", &[]),
    ("int8", &["compress", "quantize"]),
    (
        "int8-block",
        &[
            "compress",
            "quantize",
            "--granularity",
            "block",
            "--block-size",
            "32",
        ],
    ),
    ("prune50", &["compress", "prune", "--sparsity", "0.5"]),
    ("prune80", &["compress", "prune", "--sparsity", "0.8"]),
    ("prune90", &["compress", "prune", "--sparsity", "0.9"]),
    ("student", &["compress", "distill"]),
    ("alone", &["compress", "distill", "--alpha", "0"]),
];

pub fn run(args: &CompressArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)?;
    std::fs::create_dir_all(&args.artifacts)?;
    if !args.no_build {
        build_release(&["train", "infer"])?;
    }
    let teacher = args.artifacts.join("teacher");
    for (name, command) in STEPS {
        if !args.steps.is_empty() && !args.steps.iter().any(|s| s == name) {
            continue;
        }
        let artifact = args.artifacts.join(name);
        let log = args.artifacts.join(format!("{name}.log"));
        let mut train = Command::new(binary("train"));
        if command.is_empty() {
            train.arg("--artifact-dir").arg(&artifact);
        } else {
            train
                .args(command)
                .arg("--from")
                .arg(&teacher)
                .arg("--artifact-dir")
                .arg(&artifact);
        }
        println!(
            "{name}: train {}, log in {}",
            command.join(" "),
            log.display()
        );
        let status = train.stdout(std::fs::File::create(&log)?).status()?;
        ensure!(status.success(), "{name} failed: see {}", log.display());
    }
    let json = args.out.join("results.json");
    let report = Command::new(binary("infer"))
        .arg("report")
        .args(STEPS.iter().map(|(name, _)| args.artifacts.join(name)))
        .arg("--json-file")
        .arg(&json)
        .output()?;
    ensure!(
        report.status.success(),
        "the report failed: {}",
        String::from_utf8_lossy(&report.stderr)
    );
    let table: String = String::from_utf8_lossy(&report.stdout)
        .lines()
        .filter(|line| !line.starts_with("data:"))
        .map(|line| relative(line, &args.artifacts) + "\n")
        .collect();
    let text = format!(
        "Command: `cargo xtask experiment compress`. The teacher is the default \
         `cargo run --release -p train`; every other row is made from it by the \
         `train compress` command in its artifact's metrics.json (`compression.settings`).\n\n{table}"
    );
    std::fs::write(args.out.join("results.md"), &text)?;
    print!("{text}");
    Ok(())
}

/// The table names artifacts by their path; keep the last component.
fn relative(line: &str, artifacts: &Path) -> String {
    line.replace(&format!("{}/", artifacts.display()), "")
}
