//! `train adding`: the long-range memory experiment. A recurrent network reads
//! T steps of (value, marker) and must output the sum of the two marked
//! values; predicting 1 every time gives a test MSE of about 0.167.

use crate::TrainBackend;
use anyhow::{Context, Result};
use artifact::args::{non_negative_f64, positive_f64, positive_usize};
use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use clap::{Args, ValueEnum};
use data::synthetic::{AddingBatch, adding_batch};
use model::{
    CellKind, EncoderConfig, LstmBackend, SequenceRegressor, SequenceRegressorConfig,
    transformer_width_fits,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// The test MSE that counts as solved.
pub const SOLVED_MSE: f64 = 0.01;
/// The header of the CSV `--grad-norms` writes.
pub const GRADIENTS_HEADER: &str = "model,seq_len,phase,distance_from_end,grad_norm";

/// Train a recurrent network on the adding problem (Hochreiter & Schmidhuber 1997).
#[derive(Args, Debug, Clone)]
pub struct AddingArgs {
    #[arg(long, value_enum, default_value_t = CellChoice::Lstm)]
    pub encoder: CellChoice,
    /// Pool the encoder's outputs with attention instead of reading its last state.
    #[arg(long)]
    pub attention: bool,
    /// T, the number of steps per sequence.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(2..))]
    pub seq_len: u64,
    #[arg(long, default_value_t = 64, value_parser = positive_usize)]
    pub d_hidden: usize,
    #[arg(long, default_value_t = 32, value_parser = positive_usize)]
    pub batch_size: usize,
    /// Training steps, each on a fresh batch.
    #[arg(long, default_value_t = 2000, value_parser = positive_usize)]
    pub steps: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 2e-3, value_parser = positive_f64)]
    pub lr: f64,
    /// Rescale each parameter tensor's gradient to at most this L2 norm
    /// (Burn's norm clipping, per tensor; 0 = off).
    #[arg(long, alias = "clip", default_value_t = 1.0, value_parser = non_negative_f64)]
    pub clip_norm: f64,
    /// Seeds the weights, the training batches and the test set.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Size of the fixed held-out test set.
    #[arg(long, default_value_t = 1000, value_parser = positive_usize)]
    pub test_size: usize,
    /// Evaluate on the test set every this many steps.
    #[arg(long, default_value_t = 50, value_parser = positive_usize)]
    pub eval_every: usize,
    /// The LSTM's initial forget-gate bias (default 1; --encoder lstm only).
    #[arg(long)]
    pub forget_bias: Option<f64>,
    /// Stop at the first evaluation with test MSE below 0.01 (the step is
    /// what the experiment measures; the steps after it only cost time).
    #[arg(long)]
    pub until_solved: bool,
    /// Append ‖∂L/∂x_t‖ per time step, at initialisation and after training, to this CSV.
    #[arg(long)]
    pub grad_norms: Option<PathBuf>,
    /// Print the result as one JSON line at the end.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellChoice {
    Rnn,
    Gru,
    Lstm,
    /// One self-attention layer (Vaswani et al. 2017), --d-hidden wide with 4 heads.
    Transformer,
}

impl From<CellChoice> for CellKind {
    fn from(c: CellChoice) -> Self {
        match c {
            CellChoice::Rnn => CellKind::Rnn,
            CellChoice::Gru => CellKind::Gru,
            CellChoice::Lstm => CellKind::Lstm,
            CellChoice::Transformer => CellKind::Transformer,
        }
    }
}

/// The outcome of one run, as printed with `--json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AddingResult {
    pub encoder: CellChoice,
    pub attention: bool,
    pub seq_len: usize,
    pub steps: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// At the last step run: `steps`, or with `--until-solved` the step
    /// that solved it.
    pub test_mse: f64,
    /// The first evaluated step with test MSE below [`SOLVED_MSE`].
    pub steps_to_solve: Option<usize>,
    /// With `--attention`: the mean attention weight on the two marked
    /// steps, summed, over the test set at the last evaluation (1 = all of it).
    pub attention_on_markers: Option<f64>,
    /// `--forget-bias`, when given.
    pub forget_bias: Option<f64>,
    pub seconds: f64,
}

pub fn run<B: TrainBackend>(args: &AddingArgs, device: &B::Device) -> Result<AddingResult> {
    let seq_len = args.seq_len as usize;
    let batch_size = args.batch_size;
    // No dropout, for the Transformer either (its default is 0.1): every
    // batch is fresh, so there is no overfitting to guard against, and the
    // recurrent encoders here run without dropout too.
    let mut encoder =
        EncoderConfig::new(args.encoder.into(), 2, args.d_hidden).with_transformer_dropout(0.0);
    if let Some(bias) = args.forget_bias {
        anyhow::ensure!(
            matches!(args.encoder, CellChoice::Lstm),
            "--forget-bias applies to --encoder lstm only"
        );
        anyhow::ensure!(bias.is_finite(), "--forget-bias must be finite, not {bias}");
        encoder = encoder.with_lstm_forget_bias(bias);
    }
    if let CellChoice::Transformer = args.encoder {
        anyhow::ensure!(
            transformer_width_fits(args.d_hidden, encoder.heads),
            "--d-hidden {} must be even and a multiple of {} (the Transformer's heads) for --encoder transformer",
            args.d_hidden,
            encoder.heads
        );
    }
    let config = SequenceRegressorConfig::new(encoder).with_attention(args.attention);
    B::seed(device, args.seed);
    let mut model = config.init::<B>(device);
    let name = format!(
        "{}{}",
        CellKind::from(args.encoder),
        if args.attention { "+attention" } else { "" }
    );

    let mut train_rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut test_rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x7e57);
    let test = adding_batch(args.test_size, seq_len, &mut test_rng);
    let (test_x, test_y) = tensors::<B::InnerBackend>(test, device);

    if let Some(path) = &args.grad_norms {
        write_grad_norms(path, &name, seq_len, "init", &model, &test_x, &test_y)?;
    }

    let mut optimizer = AdamConfig::new();
    if args.clip_norm > 0.0 {
        optimizer =
            optimizer.with_grad_clipping(Some(GradientClippingConfig::Norm(args.clip_norm as f32)));
    }
    let mut optimizer = optimizer.init::<B, SequenceRegressor<B>>();
    println!(
        "adding problem, T = {seq_len}: {name}, hidden {}, batch {batch_size}, {} steps (baseline MSE 0.167)",
        args.d_hidden, args.steps
    );
    let started = Instant::now();
    let mut steps_to_solve = None;
    let mut test_mse = f64::NAN;
    let mut attention_on_markers = None;
    for step in 1..=args.steps {
        let batch = adding_batch(batch_size, seq_len, &mut train_rng);
        let (x, y) = tensors::<B>(batch, device);
        let loss = mse(model.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(args.lr, model, grads);

        if step % args.eval_every == 0 || step == args.steps {
            (test_mse, attention_on_markers) = evaluate(&model.valid(), &test_x, &test_y);
            if steps_to_solve.is_none() && test_mse < SOLVED_MSE {
                steps_to_solve = Some(step);
            }
            let attention = attention_on_markers.map_or(String::new(), |a| {
                format!(", attention on the markers {:.1}%", 100.0 * a)
            });
            println!(
                "step {step:>6}: test MSE {test_mse:.5}{attention} ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
            if args.until_solved && steps_to_solve.is_some() {
                break;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(path) = &args.grad_norms {
        write_grad_norms(path, &name, seq_len, "trained", &model, &test_x, &test_y)?;
    }
    let result = AddingResult {
        encoder: args.encoder,
        attention: args.attention,
        seq_len,
        steps: args.steps,
        batch_size,
        seed: args.seed,
        test_mse,
        steps_to_solve,
        attention_on_markers,
        forget_bias: args.forget_bias,
        seconds,
    };
    match steps_to_solve {
        Some(s) => println!(
            "{name} at T = {seq_len}: test MSE {test_mse:.5}; below {SOLVED_MSE} after {s} steps"
        ),
        None => println!(
            "{name} at T = {seq_len}: test MSE {test_mse:.5}; never below {SOLVED_MSE} in {} steps",
            args.steps
        ),
    }
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(result)
}

fn tensors<B: Backend>(batch: AddingBatch, device: &B::Device) -> (Tensor<B, 3>, Tensor<B, 1>) {
    let shape = [batch.batch, batch.seq_len, 2];
    let x = Tensor::from_data(TensorData::new(batch.inputs, shape), device);
    let y = Tensor::from_data(TensorData::new(batch.targets, [batch.batch]), device);
    (x, y)
}

fn mse<B: Backend>(prediction: Tensor<B, 1>, target: Tensor<B, 1>) -> Tensor<B, 1> {
    (prediction - target).powi_scalar(2).mean()
}

/// Sequences per forward pass of the test set: a Transformer's attention
/// scores of all 1000 test sequences at T = 200 would be 640 MB per tensor.
const EVAL_CHUNK: usize = 100;

/// The test MSE of `model` on `x` `[N, T, 2]`, `y` `[N]`, `EVAL_CHUNK`
/// sequences at a time, and for a model with attention the weight it puts
/// on the two marked steps (the sum of both, averaged over the sequences).
fn evaluate<B: LstmBackend>(
    model: &SequenceRegressor<B>,
    x: &Tensor<B, 3>,
    y: &Tensor<B, 1>,
) -> (f64, Option<f64>) {
    let [n, t, _] = x.dims();
    let mut squared_error = 0.0;
    let mut on_markers = None;
    for start in (0..n).step_by(EVAL_CHUNK) {
        let end = (start + EVAL_CHUNK).min(n);
        let chunk = x.clone().slice([start..end, 0..t, 0..2]);
        let (prediction, weights) = model.forward_with_attention(chunk.clone());
        let error = prediction - y.clone().slice([start..end]);
        squared_error += error.powi_scalar(2).sum().into_scalar().elem::<f64>();
        if let Some(weights) = weights {
            let markers = chunk
                .slice([0..end - start, 0..t, 1..2])
                .reshape([end - start, t]);
            let mass = (weights * markers).sum().into_scalar().elem::<f64>();
            *on_markers.get_or_insert(0.0) += mass;
        }
    }
    (squared_error / n as f64, on_markers.map(|m| m / n as f64))
}

/// ‖∂L_n/∂x_{n,t}‖ averaged over the first 256 test sequences `x` `[N, T, 2]`
/// with targets `y` `[N]`, for every t: how strongly the loss still feels
/// each input step.
pub fn input_gradient_norms<B: TrainBackend>(
    model: &SequenceRegressor<B>,
    x: &Tensor<B::InnerBackend, 3>,
    y: &Tensor<B::InnerBackend, 1>,
) -> Vec<f32> {
    let [n, t, _] = x.dims();
    let n = n.min(256);
    let x = Tensor::<B, 3>::from_inner(x.clone().slice([0..n, 0..t, 0..2])).require_grad();
    let y = Tensor::<B, 1>::from_inner(y.clone().slice([0..n]));
    // The sum of per-sample losses: each sample's gradient is its own.
    let loss = (model.forward(x.clone()) - y).powi_scalar(2).sum();
    let grads = loss.backward();
    let g = x.grad(&grads).expect("the input requires a gradient"); // [n, T, 2]
    let norms = g.powi_scalar(2).sum_dim(2).sqrt().mean_dim(0); // [1, T, 1]
    norms.into_data().convert::<f32>().to_vec().unwrap()
}

fn write_grad_norms<B: TrainBackend>(
    path: &PathBuf,
    name: &str,
    seq_len: usize,
    phase: &str,
    model: &SequenceRegressor<B>,
    test_x: &Tensor<B::InnerBackend, 3>,
    test_y: &Tensor<B::InnerBackend, 1>,
) -> Result<()> {
    let norms = input_gradient_norms(model, test_x, test_y);
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut text = String::new();
    if new {
        text.push_str(GRADIENTS_HEADER);
        text.push('\n');
    }
    for (t, norm) in norms.iter().enumerate() {
        text.push_str(&format!(
            "{name},{seq_len},{phase},{},{norm:e}\n",
            seq_len - 1 - t
        ));
    }
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo xtask experiment adding` reads this output with types of its
    /// own (it does not build Burn): every field of its committed results
    /// (but the model name it adds) is one this struct writes, and the CSV
    /// header is the one it expects.
    #[test]
    fn the_output_has_what_the_experiment_reads() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/experiments/adding");
        let committed = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
        let row: serde_json::Value =
            serde_json::from_str(committed.lines().next().unwrap()).unwrap();
        let written = serde_json::to_value(AddingResult {
            encoder: CellChoice::Lstm,
            attention: false,
            seq_len: 10,
            steps: 1,
            batch_size: 1,
            seed: 1,
            test_mse: 0.5,
            steps_to_solve: None,
            attention_on_markers: None,
            forget_bias: None,
            seconds: 1.0,
        })
        .unwrap();
        for field in row.as_object().unwrap().keys() {
            if field != "model" {
                assert!(written.get(field).is_some(), "{field} is not written");
            }
        }
        let csv = std::fs::read_to_string(dir.join("gradients.csv")).unwrap();
        assert_eq!(csv.lines().next(), Some(GRADIENTS_HEADER));
    }
}
