//! The benchmark cases of the team's spec (`../shared/bench/SPEC.md`, beside
//! this repository; `docs/perf/README.md` lists them): one training step (forward,
//! cross-entropy, backward, Adam), inference (forward, argmax read back) and
//! one training step of the character language model (`train_lm_b32_t64`),
//! timed per iteration after warm-up; the median is reported as one JSON line
//! per case, then a markdown table. Run it through `cargo xtask bench`.

use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use clap::Parser;
use data::CharBatch;
use model::{CharLmConfig, LstmBackend, LstmKernel, TextClassifierConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// As in the train and infer binaries (see the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use train::adamw::{AdamWKernel, FusedAdamWConfig};
use train::lm::{LmStep, Pass};
use train::step::{ClassifierStep, TrainBatch};

/// Runs the benchmark cases of SPEC.md.
#[derive(Parser)]
struct Cli {
    /// Fewer iterations: a smoke run, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Only the cases whose name contains this string.
    #[arg(long)]
    case: Option<String>,
}

struct Case {
    name: &'static str,
    batch: usize,
    seq_len: usize,
    kind: Kind,
}

/// What a case times.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// One training step of the classifier.
    Train,
    /// The classifier's forward pass without autodiff, argmax read back.
    Infer,
    /// One training step of the character language model, state carried.
    TrainLm,
}

const CASES: [Case; 5] = [
    Case {
        name: "train_b32_t64",
        batch: 32,
        seq_len: 64,
        kind: Kind::Train,
    },
    Case {
        name: "train_b64_t256",
        batch: 64,
        seq_len: 256,
        kind: Kind::Train,
    },
    Case {
        name: "infer_b1_t32",
        batch: 1,
        seq_len: 32,
        kind: Kind::Infer,
    },
    Case {
        name: "infer_b256_t64",
        batch: 256,
        seq_len: 64,
        kind: Kind::Infer,
    },
    Case {
        name: "train_lm_b32_t64",
        batch: 32,
        seq_len: 64,
        kind: Kind::TrainLm,
    },
];
const VOCAB: usize = 20_000;
const EMBED: usize = 128;
const HIDDEN: usize = 128;
const CLASSES: usize = 2;
/// The characters of datasets/shakespeare/input.txt, as SPEC.md's LM case says.
const LM_VOCAB: usize = 76;
/// The language model's defaults (`train lm`): Adam's rate and the clipping norm.
const LM_LR: f64 = 2e-3;
const LM_CLIP: f64 = 5.0;

struct Measurement {
    case: &'static str,
    backend: &'static str,
    batch: usize,
    seq_len: usize,
    median_ms: f64,
    /// Medians of forward, backward and optimizer step, for training cases.
    phases_ms: Option<[f64; 3]>,
}

fn main() {
    let cli = Cli::parse();
    model::keep_freed_memory();
    model::configure_threads();
    let mut results = Vec::new();
    for case in CASES
        .iter()
        .filter(|c| cli.case.as_deref().is_none_or(|f| c.name.contains(f)))
    {
        results.push(run_case::<burn::backend::NdArray>(
            case, "ndarray", cli.quick,
        ));
        if case.kind == Kind::Infer {
            results.push(run_host_case::<model::F32>(case, "ndarray-host", cli.quick));
            results.push(run_host_case::<model::Int8>(
                case,
                "ndarray-int8",
                cli.quick,
            ));
        }
        #[cfg(feature = "flex")]
        results.push(run_case::<burn::backend::Flex>(case, "flex", cli.quick));
        #[cfg(feature = "wgpu")]
        results.push(run_case::<burn::backend::Wgpu>(case, "wgpu", cli.quick));
    }
    println!();
    println!("| case | backend | median ms | sequences/s | tokens/s |");
    println!("|---|---|---|---|---|");
    for m in &results {
        let seqs = m.batch as f64 / (m.median_ms / 1e3);
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.0} |",
            m.case,
            m.backend,
            m.median_ms,
            seqs,
            seqs * m.seq_len as f64
        );
    }
    if results.iter().any(|m| m.phases_ms.is_some()) {
        println!();
        println!("| case | backend | forward + loss ms | backward ms | Adam step ms |");
        println!("|---|---|---|---|---|");
        for m in &results {
            if let Some([forward, backward, optimizer]) = m.phases_ms {
                println!(
                    "| {} | {} | {forward:.2} | {backward:.2} | {optimizer:.2} |",
                    m.case, m.backend
                );
            }
        }
    }
}

/// Token ids `[batch, seq_len]` random in 1..VOCAB, each row of a random
/// length in seq_len/2..=seq_len and padded with 0 up to seq_len, as SPEC.md
/// says; the mask; and random labels.
fn make_batch<B: Backend>(
    batch: usize,
    seq_len: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>, Tensor<B, 1, Int>) {
    let mut rng = StdRng::seed_from_u64(0);
    let mut ids = vec![0i64; batch * seq_len];
    let mut mask = vec![false; batch * seq_len];
    for row in 0..batch {
        let len = rng.random_range(seq_len / 2..=seq_len);
        for t in 0..len {
            ids[row * seq_len + t] = rng.random_range(1..VOCAB as i64);
            mask[row * seq_len + t] = true;
        }
    }
    let labels: Vec<i64> = (0..batch)
        .map(|_| rng.random_range(0..CLASSES as i64))
        .collect();
    (
        Tensor::from_data(TensorData::new(ids, [batch, seq_len]), device),
        Tensor::from_data(TensorData::new(mask, [batch, seq_len]), device),
        Tensor::from_data(TensorData::new(labels, [batch]), device),
    )
}

/// Records a training step that started at `start` and had finished its
/// forward pass (with the loss) after `forward` and its backward pass after
/// `backward`: the whole step's seconds, and those of its three phases
/// (forward, backward, optimizer step with the loss read back).
fn record_step(
    start: Instant,
    forward: Duration,
    backward: Duration,
    times: &mut Vec<f64>,
    phases: &mut Vec<[f64; 3]>,
) {
    let total = start.elapsed();
    times.push(total.as_secs_f64());
    phases.push([forward, backward - forward, total - backward].map(|d| d.as_secs_f64()));
}

fn run_case<B: LstmKernel + LstmBackend + AdamWKernel>(
    case: &Case,
    backend: &'static str,
    quick: bool,
) -> Measurement {
    let (warmup, iters) = match (quick, case.kind) {
        (true, _) => (1, 3),
        (false, Kind::Train | Kind::TrainLm) => (3, 20),
        (false, Kind::Infer) => (5, 50),
    };
    let device: B::Device = Default::default();
    B::seed(&device, 0);
    // SPEC.md's model has no dropout.
    let config = TextClassifierConfig::new(VOCAB, CLASSES)
        .with_d_embed(EMBED)
        .with_d_hidden(HIDDEN)
        .with_embedding_dropout(0.0)
        .with_output_dropout(0.0);

    let mut times = Vec::with_capacity(iters);
    // Forward with the loss, backward, optimizer step: on the CPU backends,
    // which run each operation as it is issued, where a step's time goes.
    let mut phases: Vec<[f64; 3]> = Vec::new();
    type AD<B> = burn::backend::Autodiff<B>;
    if case.kind == Kind::TrainLm {
        // SPEC.md's model (embedding 64, 2 × LSTM 256, dropout 0.2: the
        // model's own defaults, and `train lm`'s until it went to 512 wide)
        // and `train lm`'s optimizer: Adam with each tensor's gradient clipped.
        let mut step = LmStep::new(CharLmConfig::new(LM_VOCAB).init::<AD<B>>(&device));
        let mut optim = train::fit::adam(LM_CLIP).init::<AD<B>, LmStep<AD<B>>>();
        let mut rng = StdRng::seed_from_u64(0);
        let ids = |rng: &mut StdRng| -> Tensor<AD<B>, 2, Int> {
            let values: Vec<i64> = (0..case.batch * case.seq_len)
                .map(|_| rng.random_range(0..LM_VOCAB as i64))
                .collect();
            Tensor::from_data(TensorData::new(values, [case.batch, case.seq_len]), &device)
        };
        for window in 0..warmup + iters {
            let batch = CharBatch {
                inputs: ids(&mut rng),
                targets: ids(&mut rng),
                window,
            };
            let start = Instant::now();
            // Window > 0 starts from the state the previous one left, detached.
            let output = step.forward_window(batch, Pass::Train);
            let forward = start.elapsed();
            let grads = GradientsParams::from_grads(output.loss.backward(), &step);
            let backward = start.elapsed();
            step = optim.step(LM_LR, step, grads);
            let _loss: f32 = output.loss.into_scalar().elem();
            if window >= warmup {
                record_step(start, forward, backward, &mut times, &mut phases);
            }
        }
    } else if case.kind == Kind::Train {
        let mut step = ClassifierStep::new(config.init::<AD<B>>(&device));
        // What training uses: AdamW, here with no decay, which is Adam.
        let mut optim = FusedAdamWConfig::new(0.0).init::<AD<B>, ClassifierStep<AD<B>>>();
        let (tokens, mask, labels) = make_batch::<AD<B>>(case.batch, case.seq_len, &device);
        for i in 0..warmup + iters {
            let start = Instant::now();
            let batch = TrainBatch {
                text: data::TextBatch {
                    tokens: tokens.clone(),
                    mask: mask.clone(),
                    lengths: vec![],
                    labels: labels.clone(),
                },
                teacher_logits: None,
            };
            let output = step.forward_loss(batch, true);
            let forward = start.elapsed();
            let grads = GradientsParams::from_grads(output.loss.backward(), &step);
            let backward = start.elapsed();
            step = optim.step(1e-3, step, grads);
            let _loss: f32 = output.loss.into_scalar().elem();
            if i >= warmup {
                record_step(start, forward, backward, &mut times, &mut phases);
            }
        }
    } else {
        let model = config.init::<B>(&device);
        let (tokens, mask, _) = make_batch::<B>(case.batch, case.seq_len, &device);
        for i in 0..warmup + iters {
            let start = Instant::now();
            let logits = model.forward(tokens.clone(), mask.clone()).logits;
            let _classes = logits.argmax(1).into_data();
            if i >= warmup {
                times.push(start.elapsed().as_secs_f64());
            }
        }
    }
    measurement(case, backend, times, &phases)
}

/// An inference case through the host classifier (`model::HostClassifier`)
/// in format `F`, reported as `backend`: the same model, the same batch and
/// the argmax read back as the case through Burn's operations. In f32
/// (`ndarray-host`) it is what `infer` runs on the CPU; in int8
/// (`ndarray-int8`, the weights quantized from the f32 ones) what a `train
/// compress quantize` artifact runs on.
fn run_host_case<F: model::Format>(case: &Case, backend: &'static str, quick: bool) -> Measurement {
    let (warmup, iters) = if quick { (1, 3) } else { (5, 50) };
    let device = Default::default();
    <burn::backend::NdArray as Backend>::seed(&device, 0);
    let config = TextClassifierConfig::new(VOCAB, CLASSES)
        .with_d_embed(EMBED)
        .with_d_hidden(HIDDEN)
        .with_embedding_dropout(0.0)
        .with_output_dropout(0.0);
    let float = config.init::<burn::backend::NdArray>(&device);
    let model = model::HostClassifier::<F>::from_model(&float).expect("an LSTM classifier");
    let (tokens, mask, _) = make_batch::<burn::backend::NdArray>(case.batch, case.seq_len, &device);
    let ids: Vec<u32> = tokens
        .into_data()
        .iter::<i64>()
        .map(|id| id as u32)
        .collect();
    let lengths: Vec<usize> = mask
        .int()
        .sum_dim(1)
        .into_data()
        .iter::<i64>()
        .map(|len| len as usize)
        .collect();
    let mut times = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let start = Instant::now();
        let out = model.forward(&ids, case.seq_len, &lengths);
        let _classes: Vec<usize> = out
            .logits
            .chunks(CLASSES)
            .map(|row| (0..CLASSES).fold(0, |best, c| if row[c] > row[best] { c } else { best }))
            .collect();
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    measurement(case, backend, times, &[])
}

/// The median of `times` (seconds) and of each phase, printed as SPEC.md's
/// JSON line.
fn measurement(
    case: &Case,
    backend: &'static str,
    mut times: Vec<f64>,
    phases: &[[f64; 3]],
) -> Measurement {
    times.sort_by(f64::total_cmp);
    let median_ms = 1e3 * times[times.len() / 2];
    let seqs = case.batch as f64 / (median_ms / 1e3);
    let tokens = seqs * case.seq_len as f64;
    // The language model's throughput is characters: every position is one.
    let chars = if case.kind == Kind::TrainLm {
        format!(", \"chars_per_s\": {tokens:.1}")
    } else {
        String::new()
    };
    println!(
        "{{\"impl\": \"{}-{}\", \"case\": \"{}\", \"backend\": \"{backend}\", \"threads\": {}, \"batch\": {}, \"seq_len\": {}, \"median_ms\": {median_ms:.3}, \"sequences_per_s\": {seqs:.1}, \"tokens_per_s\": {tokens:.1}{chars}}}",
        "burn-seq",
        env!("CARGO_PKG_VERSION"),
        case.name,
        model::kernel_threads(),
        case.batch,
        case.seq_len,
    );
    let phases_ms = (!phases.is_empty()).then(|| {
        [0, 1, 2].map(|k| {
            let mut times: Vec<f64> = phases.iter().map(|p| p[k]).collect();
            times.sort_by(f64::total_cmp);
            1e3 * times[times.len() / 2]
        })
    });
    Measurement {
        case: case.name,
        backend,
        batch: case.batch,
        seq_len: case.seq_len,
        median_ms,
        phases_ms,
    }
}
