//! `train compress distill`: a small student classifier trained on the
//! teacher's temperature-softened outputs mixed with the labels (Hinton et
//! al. 2015; [`crate::step::distillation_loss`]), through the classifier's
//! training loop. `--alpha 0` trains the same student on the labels alone.

use super::{Source, SourceAndTarget, compression};
use crate::TrainBackend;
use crate::adamw::FusedAdamWConfig;
use crate::classifier::{evaluate_and_write, fit_classifier};
use crate::cli::FitArgs;
use crate::fit::{Start, log_dir};
use crate::step::{ClassifierStep, Distillation, TrainItem};
use anyhow::Result;
use artifact::args::{dropout, positive_f64, positive_usize, unit_interval};
use artifact::{
    ArtifactWriter, Classifier, ClassifierConfig, ClassifierTraining, CompressionSettings,
};
use burn::module::Module;
use clap::Args;
use data::{WordTokenizer, encode_all};
use model::ParamCounts;

#[derive(Args, Debug, Clone)]
pub struct DistillArgs {
    #[command(flatten)]
    pub paths: SourceAndTarget,
    /// The student's embedding size.
    #[arg(long, default_value_t = 32, value_parser = positive_usize)]
    pub d_embed: usize,
    /// The student's LSTM size.
    #[arg(long, default_value_t = 32, value_parser = positive_usize)]
    pub d_hidden: usize,
    /// The student's vocabulary, special tokens included: the embedding is
    /// most of a small model's parameters.
    #[arg(long, default_value_t = 3000, value_parser = positive_usize)]
    pub max_vocab: usize,
    #[arg(long, default_value_t = 2)]
    pub min_freq: u64,
    /// Softens the teacher's and the student's outputs (Hinton et al. use 2–20).
    #[arg(long, default_value_t = 4.0, value_parser = positive_f64)]
    pub temperature: f64,
    /// The weight of the teacher's soft targets; the labels get 1 − alpha
    /// (0 trains the student on the labels alone).
    #[arg(long, default_value_t = 0.7, value_parser = unit_interval)]
    pub alpha: f64,
    #[arg(long, default_value_t = 0.25, value_parser = dropout)]
    pub embedding_dropout: f64,
    #[arg(long, default_value_t = 0.25, value_parser = dropout)]
    pub output_dropout: f64,
    #[arg(long, default_value_t = 15, value_parser = positive_usize)]
    pub epochs: usize,
    #[arg(long, default_value_t = 3e-3, value_parser = positive_f64)]
    pub lr: f64,
    #[command(flatten)]
    pub fit: FitArgs,
}

pub fn run<B: TrainBackend>(args: &DistillArgs, device: &B::Device, backend: &str) -> Result<()> {
    let plan = args.fit.plan(args.epochs, args.lr);
    plan.check()?;
    let source = Source::<B::InnerBackend>::load(&args.paths, args.fit.limit, device)?;
    let teacher = &source.classifier;
    let texts: Vec<&str> = source
        .splits
        .train
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    let teacher_logits = source.train_logits()?;
    let teacher_parameters = ParamCounts::of(teacher.model()).total;

    let tokenizer = WordTokenizer::train(texts.iter().copied(), args.min_freq, args.max_vocab)?;
    let config = ClassifierConfig {
        model: model::TextClassifierConfig::new(
            tokenizer.vocab_size(),
            teacher.config.labels.len(),
        )
        .with_d_embed(args.d_embed)
        .with_d_hidden(args.d_hidden)
        .with_embedding_dropout(args.embedding_dropout)
        .with_output_dropout(args.output_dropout)
        // The teacher's architecture, smaller: its pooling too.
        .with_pooling(teacher.config.model.pooling),
        labels: teacher.config.labels.clone(),
        max_seq_len: teacher.config.max_seq_len,
        training: Some(ClassifierTraining {
            data_dir: args.paths.data_dir.clone(),
            epochs: args.epochs,
            batch_size: args.fit.batch_size,
            lr: args.lr,
            lr_schedule: args.fit.lr_schedule,
            weight_decay: 0.0,
            label_smoothing: 0.0,
            clip_norm: 0.0,
            seed: args.fit.seed,
            select: args.fit.select,
            patience: args.fit.patience,
            average: args.fit.average,
            bucket: false,
            min_freq: args.min_freq,
            max_vocab: args.max_vocab,
            limit: args.fit.limit,
            pretraining: None,
            embeddings: None,
        }),
    };
    artifact::memory::check_fits(
        config.model.num_params(),
        true,
        &format!(
            "the student of these options (vocabulary {}, --d-embed {}, --d-hidden {})",
            config.model.vocab_size, config.model.d_embed, config.model.d_hidden
        ),
    )?;
    B::seed(device, args.fit.seed);
    let mut step = ClassifierStep::new(config.model.init::<B>(device));
    step.distillation = Some(Distillation {
        temperature: args.temperature,
        alpha: args.alpha,
    });
    let student_parameters = step.num_params();
    println!(
        "student: {} parameters ({:.1}% of the teacher's {teacher_parameters}), vocabulary {}; {}",
        student_parameters,
        100.0 * student_parameters as f64 / teacher_parameters as f64,
        tokenizer.vocab_size(),
        if args.alpha > 0.0 {
            format!(
                "distilling at T = {} with alpha = {}",
                args.temperature, args.alpha
            )
        } else {
            "alpha = 0: trained on the labels alone".to_string()
        }
    );
    let train: Vec<TrainItem> = encode_all(&tokenizer, &source.splits.train)?
        .into_iter()
        .zip(teacher_logits)
        .map(|(text, logits)| TrainItem {
            text,
            teacher_logits: Some(logits),
        })
        .collect();
    let valid = encode_all(&tokenizer, &source.splits.valid)?
        .into_iter()
        .map(TrainItem::from)
        .collect();
    let writer = ArtifactWriter::create_or_resume(
        &args.paths.artifact_dir,
        "classifier",
        &[&args.paths.from, &args.paths.data_dir],
        args.fit.resume,
    )?;
    let options = serde_json::json!({
        "config": &config,
        "teacher": &args.paths.from,
        "temperature": args.temperature,
        "alpha": args.alpha,
    });
    let start = Start::prepare(&log_dir(writer.dir()), &options, args.fit.resume)?;
    let fitted = fit_classifier(
        step,
        FusedAdamWConfig::new(0.0).init(),
        &plan,
        &args.fit.batching(false, config.max_seq_len),
        train,
        valid,
        &start,
        device,
    )?;
    let settings = CompressionSettings::Distill {
        temperature: args.temperature,
        alpha: args.alpha,
        teacher_parameters,
    };
    let compression = compression("distill", &args.paths.from, &fitted.model, settings);
    let classifier = Classifier::new(fitted.model, tokenizer, config, device);
    evaluate_and_write(
        writer,
        classifier,
        &source.splits,
        fitted.run,
        backend,
        Some(compression),
    )?;
    Ok(())
}
