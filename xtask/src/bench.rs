//! `cargo xtask bench`: builds the `bench` binary of the `train` crate in
//! release and runs it, so the figures always come from an optimized build.
//! With `--compare-pytorch`, runs the PyTorch reference of the same cases
//! right after it, with the same thread count, and prints the ratios: int8
//! (`ndarray-int8`) against PyTorch's dynamic quantization
//! (`pytorch_int8.py`), float against float.

use anyhow::{Context, Result, ensure};
use clap::Args;
use serde::Deserialize;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Args)]
pub struct BenchArgs {
    /// Fewer iterations per case (a smoke run, not a measurement).
    #[arg(long)]
    quick: bool,
    /// Also run the cases on the wgpu backend (compiles the `wgpu` feature).
    #[arg(long)]
    wgpu: bool,
    /// Also run the cases on the flex backend (compiles the `flex` feature).
    #[arg(long)]
    flex: bool,
    /// Only the cases whose name contains this string.
    #[arg(long)]
    case: Option<String>,
    /// Then run xtask/pytorch_reference.py (needs `pip install torch numpy`)
    /// with the same thread count, and print both and the ratios.
    #[arg(long)]
    compare_pytorch: bool,
}

/// One line of SPEC.md's output.
#[derive(Deserialize, Debug, Clone)]
struct Measurement {
    #[serde(rename = "impl")]
    implementation: String,
    case: String,
    /// Absent from the language model's reference.
    #[serde(default)]
    backend: String,
    threads: usize,
    median_ms: f64,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "train",
        "--bin",
        "bench",
    ]);
    let features: Vec<&str> = [(args.wgpu, "wgpu"), (args.flex, "flex")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    cmd.arg("--");
    if args.quick {
        cmd.arg("--quick");
    }
    if let Some(case) = &args.case {
        cmd.args(["--case", case]);
    }
    // The output goes to the terminal as it comes and is kept for the
    // comparison.
    let output = cmd.stderr(Stdio::inherit()).output()?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    ensure!(
        output.status.success(),
        "the bench binary failed ({})",
        output.status
    );
    if !args.compare_pytorch {
        return Ok(());
    }
    let ours = measurements(&output.stdout);
    let Some(threads) = ours.first().map(|m| m.threads) else {
        anyhow::bail!("the bench printed no measurements to compare");
    };
    let torch = Command::new("python3")
        .args(["-c", "import torch"])
        .stderr(Stdio::null())
        .status();
    if !torch.is_ok_and(|s| s.success()) {
        println!(
            "\n--compare-pytorch: python3 cannot import torch; install it with\n    python3 -m pip install torch numpy\nand rerun. Our figures are above."
        );
        return Ok(());
    }
    let mut reference = vec!["--threads".to_string(), threads.to_string()];
    if args.quick {
        reference.push("--quick".into());
    }
    let mut cases: Vec<&str> = ours.iter().map(|m| m.case.as_str()).collect();
    cases.dedup();
    for case in &cases {
        reference.extend(["--case".to_string(), case.to_string()]);
    }
    let mut theirs = run_python("pytorch_reference.py", &reference)?;
    if cases.contains(&LM_CASE) {
        theirs.extend(pytorch_char_lm(threads, args.quick)?);
    }
    // Dynamic quantization of the same model, timed beside its f32 model
    // by the same script: its speed-up is read from its own pair, and only
    // its int8 lines join the comparison (pytorch_reference.py has the f32).
    let mut theirs_int8 = Vec::new();
    if ours.iter().any(Measurement::is_int8) {
        theirs_int8 = run_python(
            "pytorch_int8.py",
            &["--threads".into(), threads.to_string()],
        )?;
        theirs.extend(theirs_int8.iter().filter(|m| m.is_int8()).cloned());
    }
    println!("\n{}", comparison(&ours, &theirs));
    println!("{}", int8_speedups(&ours, &theirs_int8));
    Ok(())
}

impl Measurement {
    /// Ours `ndarray-int8`, PyTorch's `cpu-int8`.
    fn is_int8(&self) -> bool {
        self.backend.ends_with("-int8")
    }
}

/// The PyTorch figure to hold `m` against: the same case, int8 against int8
/// and float against float.
fn reference_for<'a>(m: &Measurement, theirs: &'a [Measurement]) -> Option<&'a Measurement> {
    theirs
        .iter()
        .find(|t| t.case == m.case && t.is_int8() == m.is_int8())
}

/// For each case with an int8 figure on both sides: how much faster int8
/// is than f32, ours (against our fastest f32 path in the sitting) and
/// PyTorch's (`theirs`: pytorch_int8.py's f32 and int8 lines, from one run).
fn int8_speedups(ours: &[Measurement], theirs: &[Measurement]) -> String {
    let mut table = String::new();
    for int8 in ours.iter().filter(|m| m.is_int8()) {
        let float = |side: &[Measurement]| {
            side.iter()
                .filter(|m| m.case == int8.case && !m.is_int8())
                .map(|m| m.median_ms)
                .min_by(f64::total_cmp)
        };
        let (Some(ours_f32), Some(theirs_f32), Some(theirs_int8)) =
            (float(ours), float(theirs), reference_for(int8, theirs))
        else {
            continue;
        };
        if table.is_empty() {
            table.push_str("| case | ours f32 ms | ours int8 ms | int8 speed-up | PyTorch f32 ms | PyTorch int8 ms | PyTorch's int8 speed-up |\n|---|---|---|---|---|---|---|\n");
        }
        table.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            int8.case,
            ours_f32,
            int8.median_ms,
            ours_f32 / int8.median_ms,
            theirs_f32,
            theirs_int8.median_ms,
            theirs_f32 / theirs_int8.median_ms
        ));
    }
    table
}

/// Our language-model case; `pytorch_char_lm.py` calls it `char_lm_train_b32_t64`.
const LM_CASE: &str = "train_lm_b32_t64";

/// Runs xtask/pytorch_char_lm.py (the same model, batch and optimizer as
/// `train lm`) with `threads`, and returns its measurement under our case name.
fn pytorch_char_lm(threads: usize, quick: bool) -> Result<Vec<Measurement>> {
    let mut options = vec!["--threads".to_string(), threads.to_string()];
    if quick {
        options.extend(["--steps", "3", "--warmup", "1"].map(String::from));
    }
    Ok(run_python("pytorch_char_lm.py", &options)?
        .into_iter()
        .map(|mut m| {
            if m.case == "char_lm_train_b32_t64" {
                m.case = LM_CASE.to_string();
            }
            m
        })
        .collect())
}

/// Runs the PyTorch script `name` beside this crate's manifest with
/// `options`, echoes what it prints, and returns its measurements.
fn run_python(name: &str, options: &[String]) -> Result<Vec<Measurement>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    let output = Command::new("python3")
        .arg(&script)
        .args(options)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    ensure!(
        output.status.success(),
        "{} failed ({})",
        script.display(),
        output.status
    );
    Ok(measurements(&output.stdout))
}

/// The JSON lines of SPEC.md's output; the table after them is skipped.
fn measurements(stdout: &[u8]) -> Vec<Measurement> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|line| line.starts_with('{'))
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// A markdown table: each of our measurements beside PyTorch's for the same
/// case, and the ratio of throughputs (theirs over ours in time): above 1.0
/// we are faster.
fn comparison(ours: &[Measurement], theirs: &[Measurement]) -> String {
    let mut table = String::from(
        "| case | backend | ours ms | PyTorch backend | PyTorch ms | ratio (ours/theirs throughput) |\n|---|---|---|---|---|---|\n",
    );
    for m in ours {
        let Some(reference) = reference_for(m, theirs) else {
            continue;
        };
        let their_backend = if reference.backend.is_empty() {
            "cpu"
        } else {
            &reference.backend
        };
        table.push_str(&format!(
            "| {} | {} | {:.2} | {their_backend} | {:.2} | {:.2} |\n",
            m.case,
            m.backend,
            m.median_ms,
            reference.median_ms,
            reference.median_ms / m.median_ms
        ));
    }
    if let (Some(a), Some(b)) = (ours.first(), theirs.first()) {
        table.push_str(&format!(
            "\n{} against {}, {} threads each, one sitting.\n",
            a.implementation, b.implementation, a.threads
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comparison_pairs_cases_and_divides_their_time_by_ours() {
        let line = |implementation: &str, case: &str, backend: &str, ms: f64| {
            format!(
                "{{\"impl\": \"{implementation}\", \"case\": \"{case}\", \"backend\": \"{backend}\", \"threads\": 2, \"batch\": 1, \"seq_len\": 32, \"median_ms\": {ms}, \"sequences_per_s\": 1.0, \"tokens_per_s\": 1.0}}"
            )
        };
        let ours = format!(
            "{}\n{}\n\n| case | table |\n",
            line("burn-seq-0.1.0", "infer_b1_t32", "ndarray", 0.5),
            line("burn-seq-0.1.0", "train_b32_t64", "ndarray", 40.0)
        );
        let theirs = line("pytorch-2.15.0", "train_b32_t64", "cpu", 20.0);
        let (ours, theirs) = (
            measurements(ours.as_bytes()),
            measurements(theirs.as_bytes()),
        );
        assert_eq!(ours.len(), 2);
        let table = comparison(&ours, &theirs);
        assert!(
            table.contains("| train_b32_t64 | ndarray | 40.00 | cpu | 20.00 | 0.50 |"),
            "{table}"
        );
        assert!(
            !table.contains("infer_b1_t32"),
            "no PyTorch figure, no row: {table}"
        );
        assert!(table.contains("2 threads"));
    }

    /// int8 is held against PyTorch's int8 and float against float (each of
    /// our f32 paths), and the speed-up of int8 over f32 is given for both
    /// sides, ours against our faster f32 path.
    #[test]
    fn int8_is_compared_with_int8() {
        let line = |implementation: &str, backend: &str, ms: f64| {
            format!(
                "{{\"impl\": \"{implementation}\", \"case\": \"infer_b256_t64\", \"backend\": \"{backend}\", \"threads\": 2, \"batch\": 256, \"seq_len\": 64, \"median_ms\": {ms}, \"sequences_per_s\": 1.0, \"tokens_per_s\": 1.0}}"
            )
        };
        let ours = measurements(
            format!(
                "{}\n{}\n{}",
                line("ours", "ndarray", 30.0),
                line("ours", "ndarray-host", 20.0),
                line("ours", "ndarray-int8", 10.0)
            )
            .as_bytes(),
        );
        let theirs = measurements(
            format!(
                "{}\n{}",
                line("pt", "cpu", 36.0),
                line("pt", "cpu-int8", 80.0)
            )
            .as_bytes(),
        );
        let table = comparison(&ours, &theirs);
        assert!(
            table.contains("| infer_b256_t64 | ndarray | 30.00 | cpu | 36.00 | 1.20 |"),
            "{table}"
        );
        assert!(
            table.contains("| infer_b256_t64 | ndarray-host | 20.00 | cpu | 36.00 | 1.80 |"),
            "{table}"
        );
        assert!(
            table.contains("| infer_b256_t64 | ndarray-int8 | 10.00 | cpu-int8 | 80.00 | 8.00 |"),
            "{table}"
        );
        let speedups = int8_speedups(&ours, &theirs);
        assert!(
            speedups.contains("| infer_b256_t64 | 20.00 | 10.00 | 2.00 | 36.00 | 80.00 | 0.45 |"),
            "{speedups}"
        );
    }
}
