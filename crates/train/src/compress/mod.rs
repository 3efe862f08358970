//! `train compress`: smaller classifiers made from a trained artifact, each
//! written as an artifact that `infer` loads like any other.
//!
//! - [`quantize`]: post-training int8 weight quantization with Burn's
//!   quantization API (symmetric, min–max calibrated, per tensor or per
//!   block). The weights file stores the int8 values and their scales.
//! - [`prune`]: magnitude pruning of the weight matrices to a target sparsity
//!   (per layer or global), then fine-tuning with the mask re-applied after
//!   every optimizer step, so pruned weights stay exactly zero.
//! - [`shrink`]: structured pruning — whole embedding dimensions and LSTM
//!   hidden units removed, the least important first, leaving a smaller
//!   dense model that is then fine-tuned.
//! - [`distill`]: a small student trained on the teacher's temperature-softened
//!   outputs mixed with the labels ([`crate::step::distillation_loss`]);
//!   `--alpha 0` trains the same student on the labels alone.
//!
//! The side-by-side report of artifacts is `infer report` (it trains nothing).

pub mod distill;
pub mod prune;
pub mod quantize;
pub mod shrink;

use crate::TrainBackend;
use crate::classifier::Splits;
use crate::classifier::evaluate_and_write;
use crate::fit::RunInfo;
use crate::step::TrainItem;
use anyhow::{Result, bail};
use artifact::files::{METRICS_FILE, read_json};
use artifact::{
    ArtifactWriter, Classifier, ClassifierConfig, ClassifierMetrics, Compression,
    CompressionSettings,
};
use burn::module::Module;
use burn::prelude::*;
use clap::{Args, Subcommand};
use data::encode_all;
use model::TextClassifier;
use model::{LstmBackend, ParamCounts};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct CompressArgs {
    #[command(subcommand)]
    pub method: Method,
}

#[derive(Subcommand, Debug)]
pub enum Method {
    /// Post-training int8 weight quantization (Burn's quantization API).
    Quantize(quantize::QuantizeArgs),
    /// Magnitude pruning to a target sparsity, then fine-tuning that keeps pruned weights at zero.
    Prune(prune::PruneArgs),
    /// Structured pruning: whole embedding dimensions and hidden units removed, a smaller model fine-tuned.
    Shrink(shrink::ShrinkArgs),
    /// A small student trained on the teacher's softened outputs and the labels.
    Distill(distill::DistillArgs),
    /// Moved to `infer report` (it trains nothing).
    #[command(hide = true)]
    Report {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

/// The artifact a method compresses, where the result goes, and the data.
#[derive(Args, Debug, Clone)]
pub struct SourceAndTarget {
    /// The trained artifact to compress.
    #[arg(long, default_value = "artifacts/mr")]
    pub from: PathBuf,
    /// Where the compressed artifact goes.
    #[arg(long, alias = "to")]
    pub artifact_dir: PathBuf,
    /// The dataset the artifact was trained on (for evaluation and fine-tuning).
    #[arg(long, default_value = "datasets/mr")]
    pub data_dir: PathBuf,
}

pub fn run<B: TrainBackend>(args: &CompressArgs, device: &B::Device, backend: &str) -> Result<()> {
    match &args.method {
        Method::Quantize(args) => quantize::run::<B>(args, device, backend),
        Method::Prune(args) => prune::run::<B>(args, device, backend),
        Method::Shrink(args) => shrink::run::<B>(args, device, backend),
        Method::Distill(args) => distill::run::<B>(args, device, backend),
        Method::Report { rest } => bail!(
            "the report moved to infer (it trains nothing): cargo run --release -p infer -- report {}",
            rest.join(" ")
        ),
    }
}

/// The source artifact: the classifier, its metrics and its dataset.
pub(crate) struct Source<B: Backend> {
    pub classifier: Classifier<B>,
    pub metrics: ClassifierMetrics,
    pub splits: Splits,
}

impl<B: LstmBackend> Source<B> {
    /// Loads `paths.from` and its dataset (the first `limit` training
    /// examples), refusing to write over the source.
    pub fn load(paths: &SourceAndTarget, limit: Option<usize>, device: &B::Device) -> Result<Self> {
        if same_path(&paths.from, &paths.artifact_dir) {
            bail!(
                "--artifact-dir must differ from --from ({}): compression writes a new artifact",
                paths.from.display()
            );
        }
        let classifier = Classifier::<B>::load(&paths.from, device)?;
        let metrics: ClassifierMetrics =
            read_json(&paths.from.join(METRICS_FILE), "a classifier's metrics")?;
        if let Some(Compression { method, from, .. }) = &metrics.compression
            && method == "quantize"
        {
            bail!(
                "{} holds int8 weights already: compress the f32 artifact it was made from ({from})",
                paths.from.display(),
            );
        }
        let splits = Splits::read(&paths.data_dir, Some(&classifier.config.labels), limit)?;
        Ok(Self {
            classifier,
            metrics,
            splits,
        })
    }

    /// The training and validation splits tokenized by the source's
    /// tokenizer, as training items: what a fine-tuning of the source's
    /// weights trains and validates on.
    pub fn train_and_valid_items(&self) -> Result<(Vec<TrainItem>, Vec<TrainItem>)> {
        let encode = |items| -> Result<Vec<TrainItem>> {
            Ok(encode_all(&self.classifier.tokenizer, items)?
                .into_iter()
                .map(TrainItem::from)
                .collect())
        };
        Ok((encode(&self.splits.train)?, encode(&self.splits.valid)?))
    }

    /// Writes `model`, made from the source by `method` with `settings`
    /// and the source's tokenizer, as an artifact into `writer`, once it is
    /// evaluated on the source's splits.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        writer: ArtifactWriter,
        model: TextClassifier<B>,
        config: ClassifierConfig,
        run: RunInfo,
        (method, settings): (&str, CompressionSettings),
        from: &Path,
        backend: &str,
        device: &B::Device,
    ) -> Result<()> {
        let compression = compression(method, from, &model, settings);
        let tokenizer = self.classifier.tokenizer.clone();
        let classifier = Classifier::new(model, tokenizer, config, device);
        evaluate_and_write(
            writer,
            classifier,
            &self.splits,
            run,
            backend,
            Some(compression),
        )?;
        Ok(())
    }

    /// The source model's logits for each training text, in order: the
    /// soft targets when it teaches (distillation, and pruning's
    /// fine-tuning with `--distill-alpha`).
    pub fn train_logits(&self) -> Result<Vec<Vec<f32>>> {
        let texts: Vec<&str> = self.splits.train.iter().map(|t| t.text.as_str()).collect();
        self.classifier.logits(&texts, 256)
    }
}

/// Whether two paths name the same place (compared after canonicalization
/// where they exist).
fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// What `method` made of `from`: the model's parameter counts and sparsity,
/// and the method's settings.
pub(crate) fn compression<B: Backend, M: Module<B>>(
    method: &str,
    from: &Path,
    model: &M,
    settings: CompressionSettings,
) -> Compression {
    let counts = ParamCounts::of(model);
    Compression {
        method: method.into(),
        from: from.display().to_string(),
        sparsity: counts.sparsity(),
        parameters: counts.total,
        nonzero_parameters: counts.nonzero,
        settings: Some(settings),
    }
}

/// A fixed padded batch of three sentences (tokens, mask), for the methods' tests.
#[cfg(test)]
pub(crate) fn test_batch<B: Backend>(
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>) {
    let tokens = Tensor::<B, 2, Int>::from_ints(
        [
            [5, 9, 14, 3, 21, 7],
            [11, 2, 30, 0, 0, 0],
            [40, 41, 42, 43, 44, 0],
        ],
        device,
    );
    let mask = tokens.clone().not_equal_elem(0);
    (tokens, mask)
}
