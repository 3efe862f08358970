//! `train mlp`: the classic 2-3-1 network case study, trained with Burn's
//! autodiff or (`--manual`) with backpropagation written out by hand.

use anyhow::Result;
use artifact::args::{positive_f64, positive_usize};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, ValueEnum};
use data::synthetic::unit_square;
use model::{Activation, Loss, Mlp, MlpConfig, backprop, sgd_step};

/// Train a small dense network on 2-feature points (label: x1 + x2 > 1).
#[derive(Args, Debug, Clone)]
pub struct MlpArgs {
    /// Number of generated training samples.
    #[arg(long, default_value_t = 100, value_parser = positive_usize)]
    pub samples: usize,
    /// Seeds the samples and the initial weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Hidden layer widths, comma-separated (`3` gives the 2-3-1 network).
    #[arg(long, default_value = "3", value_delimiter = ',', value_parser = positive_usize)]
    pub hidden: Vec<usize>,
    /// Nonlinearity of the hidden layers.
    #[arg(long, value_enum, default_value_t = ActivationChoice::Sigmoid)]
    pub activation: ActivationChoice,
    /// squared-error: one sigmoid output; cross-entropy: two logits and softmax.
    #[arg(long, value_enum, default_value_t = LossChoice::SquaredError)]
    pub loss: LossChoice,
    /// SGD learning rate.
    #[arg(long, default_value_t = 0.01, value_parser = positive_f64)]
    pub lr: f64,
    /// Passes over the samples, one SGD update per sample.
    #[arg(long, default_value_t = 1000, value_parser = positive_usize)]
    pub epochs: usize,
    /// Train with the hand-written backpropagation instead of autodiff.
    #[arg(long)]
    pub manual: bool,
    /// Print the loss and accuracy every this many epochs (`--log-every`
    /// counts batches elsewhere; this network trains one sample at a time).
    #[arg(long, alias = "log-every", default_value_t = 100, value_parser = positive_usize)]
    pub log_every_epochs: usize,
    /// The input whose prediction is printed at the end.
    #[arg(long, default_value = "0.5,0.7", value_delimiter = ',', num_args = 2)]
    pub query: Vec<f32>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ActivationChoice {
    Sigmoid,
    Tanh,
    Relu,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum LossChoice {
    SquaredError,
    CrossEntropy,
}

pub fn run<B: AutodiffBackend>(args: &MlpArgs, device: &B::Device) -> Result<()> {
    let hidden = match args.activation {
        ActivationChoice::Sigmoid => Activation::Sigmoid,
        ActivationChoice::Tanh => Activation::Tanh,
        ActivationChoice::Relu => Activation::Relu,
    };
    let (loss, outputs, last) = match args.loss {
        LossChoice::SquaredError => (Loss::SquaredError, 1, Activation::Sigmoid),
        LossChoice::CrossEntropy => (Loss::CrossEntropy, 2, Activation::Identity),
    };
    let mut sizes = vec![2];
    sizes.extend(&args.hidden);
    sizes.push(outputs);
    let mut activations = vec![hidden; args.hidden.len()];
    activations.push(last);
    let config = MlpConfig::new(sizes.clone(), activations);

    let (points, labels) = unit_square(args.samples, args.seed);
    let x = Tensor::<B::InnerBackend, 2>::from_data(
        TensorData::new(points.concat(), [args.samples, 2]),
        device,
    );
    let y = match loss {
        Loss::SquaredError => Tensor::<B::InnerBackend, 2>::from_data(
            TensorData::new(labels.clone(), [args.samples, 1]),
            device,
        ),
        Loss::CrossEntropy => Tensor::<B::InnerBackend, 2>::from_data(
            TensorData::new(
                labels
                    .iter()
                    .flat_map(|&l| [1.0 - l, l])
                    .collect::<Vec<f32>>(),
                [args.samples, 2],
            ),
            device,
        ),
    };
    println!(
        "{} network ({:?} hidden, {:?}), {} samples, SGD lr {} for {} epochs of single-sample updates, {}",
        sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-"),
        args.activation,
        loss,
        args.samples,
        args.lr,
        args.epochs,
        if args.manual {
            "hand-written backpropagation"
        } else {
            "Burn autodiff"
        }
    );

    B::seed(device, args.seed);
    let start = config.init::<B>(device);
    let report = |epoch: usize, mlp: &Mlp<B::InnerBackend>| {
        let output = mlp.forward(x.clone());
        let value: f32 = loss.forward(output.clone(), y.clone()).into_scalar().elem();
        println!(
            "epoch {epoch:>5}: loss {value:.5}, training accuracy {:.1}%",
            100.0 * accuracy(output, &labels, loss)
        );
    };
    let sample = |i: usize| {
        let k = y.dims()[1];
        (
            x.clone().slice([i..i + 1, 0..2]),
            y.clone().slice([i..i + 1, 0..k]),
        )
    };

    let trained = if args.manual {
        let mut mlp = start.valid();
        for epoch in 1..=args.epochs {
            for i in 0..args.samples {
                let (xi, yi) = sample(i);
                let (_, grads) = backprop(&mlp, xi, yi, loss);
                mlp = sgd_step(mlp, grads, args.lr);
            }
            if epoch % args.log_every_epochs == 0 || epoch == args.epochs {
                report(epoch, &mlp);
            }
        }
        mlp
    } else {
        let mut mlp = start;
        let mut optimizer = SgdConfig::new().init::<B, Mlp<B>>();
        for epoch in 1..=args.epochs {
            for i in 0..args.samples {
                let (xi, yi) = sample(i);
                let output = mlp.forward(Tensor::from_inner(xi));
                let grads = loss.forward(output, Tensor::from_inner(yi)).backward();
                let grads = GradientsParams::from_grads(grads, &mlp);
                mlp = optimizer.step(args.lr, mlp, grads);
            }
            if epoch % args.log_every_epochs == 0 || epoch == args.epochs {
                report(epoch, &mlp.valid());
            }
        }
        mlp.valid()
    };

    let output = trained.forward(x);
    println!(
        "training accuracy: {:.1}%",
        100.0 * accuracy(output, &labels, loss)
    );
    let query = Tensor::<B::InnerBackend, 2>::from_data(
        TensorData::new(args.query.clone(), [1, 2]),
        device,
    );
    let p = positive_probability(trained.forward(query), loss);
    println!(
        "prediction for ({}, {}): {p:.4} (class {})",
        args.query[0],
        args.query[1],
        u8::from(p > 0.5)
    );
    Ok(())
}

/// P(label 1) for each row of the network's output.
fn positive_probability<B: Backend>(output: Tensor<B, 2>, loss: Loss) -> f32 {
    match loss {
        Loss::SquaredError => output.into_scalar().elem(),
        Loss::CrossEntropy => burn::tensor::activation::softmax(output, 1)
            .slice([0..1, 1..2])
            .into_scalar()
            .elem(),
    }
}

fn accuracy<B: Backend>(output: Tensor<B, 2>, labels: &[f32], loss: Loss) -> f64 {
    let predicted: Vec<bool> = match loss {
        Loss::SquaredError => output.greater_elem(0.5).into_data().to_vec().unwrap(),
        Loss::CrossEntropy => {
            let [n, _] = output.dims();
            let p = output.clone().slice([0..n, 1..2]);
            let q = output.slice([0..n, 0..1]);
            p.greater(q).into_data().to_vec().unwrap()
        }
    };
    let correct = predicted
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p == (**l == 1.0))
        .count();
    correct as f64 / labels.len() as f64
}
