//! `train compress shrink`: structured pruning. Whole embedding dimensions
//! and whole hidden units of the LSTM go, the least important first
//! ([`model::TextClassifier::unit_importance`]), leaving a smaller dense
//! classifier ([`model::TextClassifier::keep_units`]) that is then
//! fine-tuned through the classifier's training loop. Unlike magnitude
//! pruning, which writes zeros into matrices of the same size, the result
//! is a smaller model: a smaller file and fewer operations per word.

use super::{Source, SourceAndTarget};
use crate::TrainBackend;
use crate::adamw::FusedAdamWConfig;
use crate::classifier::fit_classifier;
use crate::cli::FitArgs;
use crate::fit::{RunInfo, Start, log_dir};
use crate::step::ClassifierStep;
use anyhow::{Result, ensure};
use artifact::args::positive_f64;
use artifact::weights::load_weights;
use artifact::{ArtifactWriter, Classifier, CompressionSettings};
use burn::module::{AutodiffModule, Module};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ShrinkArgs {
    #[command(flatten)]
    pub paths: SourceAndTarget,
    /// The fraction of embedding dimensions and of the hidden units of
    /// every LSTM layer removed, in [0, 1): 0.8 keeps a fifth of each, and
    /// with them about a fifth of the parameters.
    #[arg(long, default_value_t = 0.8, value_parser = artifact::args::dropout)]
    pub sparsity: f64,
    /// Fine-tuning epochs after the cut (0 = none). The smaller model
    /// trains fast, and on MR at 0.8 its validation accuracy was still
    /// rising at epoch 20 (docs/compression.md).
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    /// The fine-tuning learning rate (AdamW).
    #[arg(long, default_value_t = 1e-3, value_parser = positive_f64)]
    pub lr: f64,
    #[command(flatten)]
    pub fit: FitArgs,
}

/// How many of `n` units a cut of `sparsity` keeps: at least one.
pub fn kept(n: usize, sparsity: f64) -> usize {
    (((1.0 - sparsity) * n as f64).round() as usize).clamp(1, n)
}

pub fn run<B: TrainBackend>(args: &ShrinkArgs, device: &B::Device, backend: &str) -> Result<()> {
    let plan = args.fit.plan(args.epochs, args.lr);
    if args.epochs > 0 {
        plan.check()?;
    }
    let source = Source::<B::InnerBackend>::load(&args.paths, args.fit.limit, device)?;
    let tokenizer = source.classifier.tokenizer.clone();
    let mut config = source.classifier.config.clone();
    let model = load_weights(&args.paths.from, config.model.init::<B>(device), device)?;
    let Some(importance) = model.unit_importance() else {
        anyhow::bail!(
            "{}: shrink removes hidden units of forward LSTM layers; this model's encoder is {}{}",
            args.paths.from.display(),
            if config.model.bidirectional {
                "bidirectional "
            } else {
                ""
            },
            config.model.cell
        );
    };
    let (d_embed, d_hidden) = (config.model.d_embed, config.model.d_hidden);
    let units = importance.top(kept(d_embed, args.sparsity), kept(d_hidden, args.sparsity));
    let model = model.keep_units(&units);
    let teacher_parameters = config.model.num_params() as usize;
    config.model.d_embed = units.embedding.len();
    config.model.d_hidden = units.hidden[0].len();
    let accuracy = Classifier::new(model.valid(), tokenizer.clone(), config.clone(), device)
        .evaluate(&source.splits.valid, 256)?
        .accuracy;
    println!(
        "kept {} of {d_embed} embedding dimensions and {} of {d_hidden} hidden units per layer: {} of {teacher_parameters} parameters; validation accuracy {:.2}% (before: {:.2}%)",
        config.model.d_embed,
        config.model.d_hidden,
        model.num_params(),
        100.0 * accuracy,
        100.0 * source.metrics.valid_accuracy
    );
    let writer = ArtifactWriter::create_or_resume(
        &args.paths.artifact_dir,
        "classifier",
        &[&args.paths.from, &args.paths.data_dir],
        args.fit.resume,
    )?;
    let (model, run) = if args.epochs > 0 {
        // What a resume must repeat.
        let options = serde_json::json!({
            "from": &args.paths.from,
            "sparsity": args.sparsity,
            "epochs": args.epochs,
            "lr": args.lr,
            "lr_schedule": args.fit.lr_schedule,
            "batch_size": args.fit.batch_size,
            "seed": args.fit.seed,
            "select": args.fit.select,
            "patience": args.fit.patience,
            "average": args.fit.average,
            "limit": args.fit.limit,
        });
        let start = Start::prepare(&log_dir(writer.dir()), &options, args.fit.resume)?;
        let (train, valid) = source.train_and_valid_items()?;
        B::seed(device, args.fit.seed);
        let fitted = fit_classifier(
            ClassifierStep::new(model),
            FusedAdamWConfig::new(0.0).init(),
            &plan,
            &args.fit.batching(false, config.max_seq_len),
            train,
            valid,
            &start,
            device,
        )?;
        (fitted.model, fitted.run)
    } else {
        (model.valid(), RunInfo::of(&source.metrics))
    };
    ensure!(
        model.num_params() as f64 == config.model.num_params(),
        "the shrunk model does not match its config"
    );
    let settings = CompressionSettings::Shrink {
        sparsity: args.sparsity,
        d_embed: (d_embed, config.model.d_embed),
        d_hidden: (d_hidden, config.model.d_hidden),
        teacher_parameters,
        epochs: args.epochs,
        lr: args.lr,
        lr_schedule: args.fit.lr_schedule,
        valid_accuracy_before_fine_tuning: accuracy,
    };
    source.write(
        writer,
        model,
        config,
        run,
        ("shrink", settings),
        &args.paths.from,
        backend,
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::kept;

    #[test]
    fn a_cut_keeps_the_rounded_rest_and_at_least_one() {
        assert_eq!(kept(128, 0.8), 26);
        assert_eq!(kept(128, 0.0), 128);
        assert_eq!(kept(5, 0.99), 1);
        assert_eq!(kept(10, 0.5), 5);
    }
}
