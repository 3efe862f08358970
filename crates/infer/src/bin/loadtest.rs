//! `cargo xtask loadtest`: starts `infer serve` on a loopback port, sends a
//! bounded number of classify requests at a few concurrency levels, and
//! reports throughput and latency percentiles — once with dynamic batching
//! (`--max-batch`, default 32) and once with `--max-batch 1`, so the table
//! shows what batching buys. Each request carries one sentence of the test
//! split. It stops the servers and ends by itself.

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "loadtest")]
struct Args {
    /// The classifier artifact to serve.
    #[arg(long, default_value = "artifacts/mr")]
    artifact_dir: PathBuf,
    /// The texts sent, one per request: the text column of a `label<TAB>text` file.
    #[arg(long, default_value = "datasets/mr/test.tsv")]
    texts: PathBuf,
    /// Requests measured at each concurrency level (after 50 to warm up).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Clients sending at once, one level after another.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    concurrency: Vec<usize>,
    /// The batched server's --max-batch (the other server runs with 1).
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// The batched server's --max-wait-ms (`infer serve`'s default).
    #[arg(long, default_value_t = 0)]
    max_wait_ms: u64,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json_file: Option<PathBuf>,
}

/// The name the server is told to serve the artifact under.
const MODEL: &str = "loadtest";

#[derive(serde::Serialize)]
struct Row {
    max_batch: usize,
    concurrency: usize,
    requests: usize,
    errors: usize,
    seconds: f64,
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// A running `infer serve`, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(args: &Args, max_batch: usize) -> Result<Self> {
        let infer = std::env::current_exe()?.with_file_name("infer");
        ensure!(
            infer.is_file(),
            "{} not found: build it with `cargo build --release -p infer`",
            infer.display()
        );
        let mut child = Command::new(&infer)
            .arg("serve")
            .arg("--artifact-dir")
            .arg(format!("{MODEL}={}", args.artifact_dir.display()))
            .args(["--port", "0", "--queue", "4096"])
            .args(["--max-batch", &max_batch.to_string()])
            .args(["--max-wait-ms", &args.max_wait_ms.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", infer.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .context("reading the server's address")?;
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            bail!("the server did not start (see its error above)");
        };
        Ok(Self {
            url: url.to_string(),
            child,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.artifact_dir.is_dir(),
        "{} does not exist: train it first (cargo run --release -p train)",
        args.artifact_dir.display()
    );
    let texts: Vec<String> = std::fs::read_to_string(&args.texts)
        .with_context(|| format!("cannot read {}", args.texts.display()))?
        .lines()
        .filter_map(|line| line.split_once('\t').map(|(_, text)| text.to_string()))
        .collect();
    ensure!(
        !texts.is_empty(),
        "{} has no `label<TAB>text` line",
        args.texts.display()
    );
    let texts = Arc::new(texts);
    let runtime = tokio::runtime::Runtime::new()?;
    let mut rows = Vec::new();
    println!("| --max-batch | clients | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|");
    for max_batch in [args.max_batch, 1] {
        let server = Server::start(&args, max_batch)?;
        let endpoint = format!("{}/v1/models/{MODEL}/classify", server.url);
        for &concurrency in &args.concurrency {
            let client = reqwest::Client::new();
            runtime.block_on(send(&client, &endpoint, &texts, 50, concurrency))?;
            let measured =
                runtime.block_on(send(&client, &endpoint, &texts, args.requests, concurrency))?;
            let row = measured.row(max_batch, concurrency);
            println!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {} |",
                row.max_batch,
                row.concurrency,
                row.requests_per_s,
                row.p50_ms,
                row.p99_ms,
                row.errors
            );
            rows.push(row);
        }
    }
    if let Some(path) = &args.json_file {
        std::fs::write(path, serde_json::to_string_pretty(&rows)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

struct Measured {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Measured {
    fn row(mut self, max_batch: usize, concurrency: usize) -> Row {
        self.latencies.sort();
        let at = |q: f64| {
            let i = ((self.latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
            self.latencies
                .get(i)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
        };
        let requests = self.latencies.len() + self.errors;
        Row {
            max_batch,
            concurrency,
            requests,
            errors: self.errors,
            seconds: self.elapsed.as_secs_f64(),
            requests_per_s: requests as f64 / self.elapsed.as_secs_f64(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
        }
    }
}

/// `total` requests from `concurrency` clients, each sending its next
/// request when the last is answered.
async fn send(
    client: &reqwest::Client,
    endpoint: &str,
    texts: &Arc<Vec<String>>,
    total: usize,
    concurrency: usize,
) -> Result<Measured> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, endpoint, texts, next) = (
            client.clone(),
            endpoint.to_string(),
            texts.clone(),
            next.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return (latencies, errors);
                }
                let body = serde_json::json!({ "texts": [texts[i % texts.len()]] });
                let sent = Instant::now();
                match client.post(&endpoint).json(&body).send().await {
                    Ok(response) if response.status().is_success() => {
                        // The answer counts once its body is read.
                        if response.bytes().await.is_ok() {
                            latencies.push(sent.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    _ => errors += 1,
                }
            }
        }));
    }
    let mut measured = Measured {
        latencies: Vec::with_capacity(total),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for client in clients {
        let (latencies, errors) = client.await?;
        measured.latencies.extend(latencies);
        measured.errors += errors;
    }
    measured.elapsed = start.elapsed();
    Ok(measured)
}
