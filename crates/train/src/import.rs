//! `train import`: an artifact from weights trained in PyTorch.
//!
//! The weights are a safetensors file in the names and layouts of the
//! team's PyTorch module (`AttnLstmClassifier` of
//! `../shared/bench/pytorch_reference.py`; `artifact::pytorch` has the
//! table), such as `infer export` writes. The sizes of the model are read
//! from the tensors' shapes; the token ids must be those of `--tokenizer`
//! (PyTorch was fed its ids). The artifact is evaluated on the dataset's
//! splits like a trained one, so its metrics say how good the weights are.

use crate::classifier::Splits;
use anyhow::{Context, Result, bail, ensure};
use artifact::args::positive_usize;
use artifact::pytorch::PytorchWeights;
use artifact::{ArtifactWriter, Classifier, ClassifierConfig, ClassifierMetrics};
use clap::Args;
use data::WordTokenizer;
use model::{CellKind, LstmBackend, Pooling, TextClassifierConfig};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The safetensors file (`infer export --to`, or `torch.save`d through safetensors).
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The vocabulary the weights were trained with (an artifact's tokenizer.json).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: PathBuf,
    /// Evaluated on this dataset's train, valid and test splits (the metrics of the artifact).
    #[arg(long, default_value = "datasets/mr")]
    pub data_dir: PathBuf,
    /// The classes in the order of the model's outputs (default: the file's
    /// metadata when `infer export` wrote it, else the training split's labels).
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// Longer texts are truncated (default: the file's metadata, else 64 as `train`).
    #[arg(long, value_parser = positive_usize)]
    pub max_seq_len: Option<usize>,
    /// Where the artifact is written.
    #[arg(long, default_value = "artifacts/mr-imported")]
    pub artifact_dir: PathBuf,
}

pub fn run<B: LstmBackend>(args: &ImportArgs, device: &B::Device, backend: &str) -> Result<()> {
    let weights = PytorchWeights::read(&args.from)?;
    // What `infer export` recorded of the artifact (other writers record nothing).
    let exported: serde_json::Value = weights
        .metadata
        .get("config")
        .and_then(|config| serde_json::from_str(config).ok())
        .unwrap_or_default();
    let exported_labels: Option<Vec<String>> =
        serde_json::from_value(exported["labels"].clone()).ok();
    let exported_max_seq_len = exported["max_seq_len"].as_u64().map(|n| n as usize);
    let file = args.from.display();
    let shape = |name: &str| -> Result<Vec<usize>> {
        match weights.shape(name) {
            Some(shape) => Ok(shape.to_vec()),
            None if name == "score.weight" && weights.shape("out.weight").is_some() => bail!(
                "{file} has no `score.weight`: it is not the attention classifier (a language model's weights?)"
            ),
            None => bail!("{file}: tensor `{name}` is missing"),
        }
    };
    let embedding = shape("embedding.weight")?;
    let recurrent = shape("lstm.weight_hh_l0")?;
    let output = shape("out.weight")?;
    shape("score.weight")?;
    ensure!(
        embedding.len() == 2 && recurrent.len() == 2 && output.len() == 2,
        "{file}: embedding.weight, lstm.weight_hh_l0 and out.weight must be matrices"
    );
    let bidirectional = weights.shape("lstm.weight_ih_l0_reverse").is_some();
    // The output layer reads the pooled vector: the encoder's outputs alone
    // (attention pooling) or three times as many (concat pooling).
    let d_encoder = recurrent[1] * if bidirectional { 2 } else { 1 };
    let pooling = [Pooling::Attention, Pooling::Concat]
        .into_iter()
        .find(|pooling| pooling.d_output(d_encoder) == output[1])
        .with_context(|| {
            format!(
                "{file}: out.weight reads {} values, but the LSTM gives {d_encoder} per step: \
                 {} for attention pooling or {} for concat pooling",
                output[1],
                Pooling::Attention.d_output(d_encoder),
                Pooling::Concat.d_output(d_encoder)
            )
        })?;
    let model = TextClassifierConfig::new(embedding[0], output[0])
        .with_d_embed(embedding[1])
        .with_d_hidden(recurrent[1])
        .with_cell(CellKind::Lstm)
        .with_layers(weights.lstm_layers().max(1))
        .with_bidirectional(bidirectional)
        .with_pooling(Some(pooling));

    let tokenizer = WordTokenizer::load(&args.tokenizer)?;
    ensure!(
        tokenizer.vocab_size() == model.vocab_size,
        "{} has {} tokens but {file}'s embedding.weight has {} rows: the weights were trained with another vocabulary",
        args.tokenizer.display(),
        tokenizer.vocab_size(),
        model.vocab_size
    );
    let labels = args.labels.clone().or(exported_labels);
    let splits = Splits::read(&args.data_dir, labels.as_deref(), None)?;
    ensure!(
        splits.labels.len() == model.num_classes,
        "{file}'s out.weight has {} rows but there are {} classes ({}): give --labels in the order of the model's outputs",
        model.num_classes,
        splits.labels.len(),
        splits.labels.join(", ")
    );
    let max_seq_len = args
        .max_seq_len
        .or(exported_max_seq_len)
        .filter(|&n| n > 0)
        .unwrap_or(64);
    let config = ClassifierConfig {
        model,
        labels: splits.labels.clone(),
        max_seq_len,
        training: None,
    };
    artifact::memory::check_fits(
        config.model.num_params(),
        false,
        &format!("the model of {file}"),
    )?;
    let network = weights
        .load_into(config.model.init::<B>(device))
        .with_context(|| format!("importing {file}"))?;
    let classifier = Classifier::new(network, tokenizer, config, device);

    let writer = ArtifactWriter::create(
        &args.artifact_dir,
        "classifier",
        &[&args.from, &args.tokenizer, &args.data_dir],
    )?;
    let test = classifier.evaluate(&splits.test, 256)?;
    let valid = classifier.evaluate(&splits.valid, 256)?;
    let train = classifier.evaluate(&splits.train, 256)?;
    println!(
        "imported {} parameters from {file}: test accuracy {:.2}% ({}/{}), validation {:.2}%, training split {:.2}%",
        classifier.config.model.num_params(),
        100.0 * test.accuracy,
        test.correct,
        test.total,
        100.0 * valid.accuracy,
        100.0 * train.accuracy
    );
    classifier.write_into(&writer)?;
    writer.write_metrics(&ClassifierMetrics {
        test_accuracy: test.accuracy,
        valid_accuracy: valid.accuracy,
        best_epoch: 0,
        epochs_run: 0,
        train_seconds: 0.0,
        backend: backend.to_string(),
        profile: artifact::metrics::build_profile(),
        train_accuracy: Some(train.accuracy),
        selected_by: format!("imported from {file}"),
        history: Default::default(),
        compression: None,
        averaged_from: None,
    })?;
    let path = writer.commit()?;
    println!("artifact written to {}", path.display());
    Ok(())
}
