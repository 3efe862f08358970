//! Looks inside a language-model checkpoint (a `model-N` of a run's
//! `training/checkpoint/`, kept while the run goes on): its validation loss
//! with the state carried from window to window (what training logs) and
//! with the state reset at every window, the largest |c| and |h| of each
//! layer along the validation text, and its loss on the training text along
//! the cut of 32 streams and along a cut of 31, with and without dropout.
//! This is how docs/generation.md found that a model trained on one fixed
//! cut recites the training text by position.
//!
//! cargo run --release -p train --example lm_validation -- --checkpoint DIR/model-10

use anyhow::{Context, Result};
use artifact::weights::WeightsRecorder;
use burn::backend::{Autodiff, NdArray};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use clap::Parser;
use model::{CharLmConfig, LstmState};
use std::path::PathBuf;
use train::lm::{LmData, LmStep, Pass, mean_loss_of_windows};

type B = NdArray;

#[derive(Parser)]
struct Args {
    /// The checkpoint, without its `.mpk`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The options the run was trained with.
    #[arg(long, default_value = "datasets/shakespeare/input.txt")]
    data: PathBuf,
    #[arg(long, default_value_t = 0.1)]
    valid_fraction: f64,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 64)]
    seq_len: usize,
    #[arg(long, default_value_t = 64)]
    d_embed: usize,
    #[arg(long, default_value_t = 512)]
    d_hidden: usize,
    #[arg(long, default_value_t = 2)]
    layers: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = Default::default();
    let read = |batch| LmData::read(&args.data, None, args.valid_fraction, batch, args.seq_len);
    let data = read(args.batch_size)?;
    let config = CharLmConfig::new(data.vocab.len())
        .with_d_embed(args.d_embed)
        .with_d_hidden(args.d_hidden)
        .with_layers(args.layers);
    let load = |path: &PathBuf| {
        LmStep::new(config.init::<B>(&device))
            .load_file(path.clone(), &WeightsRecorder::new(), &device)
            .with_context(|| format!("cannot load {}", path.display()))
    };
    let step = load(&args.checkpoint)?;
    let model = &step.model;

    let largest = |t: Tensor<B, 2>| t.abs().max().into_scalar().elem::<f32>();
    let (mut carried_total, mut reset_total) = (0.0, 0.0);
    let mut state: Option<Vec<LstmState<B>>> = None;
    let windows = data.valid.len();
    for k in 0..windows {
        let batch = data.valid.batch::<B>(k, &device);
        let carried = step
            .forward_window(batch.clone(), Pass::Valid)
            .loss
            .into_scalar()
            .elem::<f64>();
        let logits = model.forward(batch.inputs.clone(), None).logits;
        let [b, t, v] = logits.dims();
        let reset = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.reshape([b * t, v]), batch.targets.reshape([b * t]))
            .into_scalar()
            .elem::<f64>();
        let out = model.forward(batch.inputs, state.take());
        let c: Vec<f32> = out.state.iter().map(|s| largest(s.cell.clone())).collect();
        let h: Vec<f32> = out
            .state
            .iter()
            .map(|s| largest(s.hidden.clone()))
            .collect();
        state = Some(out.state);
        carried_total += carried;
        reset_total += reset;
        println!(
            "validation window {k:3}: carried {carried:.4}, reset {reset:.4}, max |c| {c:?}, max |h| {h:?}"
        );
    }
    println!(
        "validation, {windows} windows: carried {:.4}, reset at every window {:.4}",
        carried_total / windows as f64,
        reset_total / windows as f64
    );
    let n = windows.min(data.train.len());
    let along = mean_loss_of_windows(model.clone(), &data.train, n, &device);
    let other = read(args.batch_size - 1)?;
    let across = mean_loss_of_windows(model.clone(), &other.train, n, &device);
    println!(
        "training text, first {n} windows, no dropout: {along:.4} cut into {} streams, {across:.4} cut into {}",
        args.batch_size,
        args.batch_size - 1
    );
    let trained = LmStep::new(config.init::<Autodiff<B>>(&device)).load_file(
        args.checkpoint.clone(),
        &WeightsRecorder::new(),
        &device,
    )?;
    let with_dropout = mean_loss_of_windows(trained.model, &data.valid, windows, &device);
    println!("validation with dropout on (as in training): {with_dropout:.4}");
    Ok(())
}
