//! Weights in PyTorch's layout: exported and imported back they give the
//! same logits bit for bit; loaded into the PyTorch module of the team's
//! reference they give the same logits within 1e-4 (when torch is
//! installed); and a file that does not fit is refused, naming the tensor.

use artifact::pytorch::{PytorchWeights, export};
use burn::backend::NdArray;
use burn::prelude::*;
use model::{CellKind, CharLmConfig, Pooling, TextClassifierConfig};
use std::path::Path;
use std::process::Command;

type B = NdArray;

/// Right-padded token ids and their mask.
fn batch(rows: &[Vec<i64>]) -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>) {
    let device = Default::default();
    let t = rows.iter().map(Vec::len).max().unwrap();
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for row in rows {
        for i in 0..t {
            ids.push(row.get(i).copied().unwrap_or(0));
            mask.push(i < row.len());
        }
    }
    (
        Tensor::from_data(TensorData::new(ids, [rows.len(), t]), &device),
        Tensor::from_data(TensorData::new(mask, [rows.len(), t]), &device),
    )
}

fn rows() -> Vec<Vec<i64>> {
    vec![
        vec![5, 17, 3, 9, 2],
        vec![40, 7],
        vec![1, 1, 30, 22, 8, 11, 6],
    ]
}

fn config() -> TextClassifierConfig {
    TextClassifierConfig::new(50, 2)
        .with_d_embed(6)
        .with_d_hidden(5)
}

fn logits(model: &model::TextClassifier<B>) -> Vec<f32> {
    let (tokens, mask) = batch(&rows());
    model
        .forward(tokens, mask)
        .logits
        .into_data()
        .to_vec()
        .unwrap()
}

#[test]
fn a_classifier_round_trips_bit_for_bit_in_pytorch_names() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("model.safetensors");
    let device = Default::default();
    let original = config().init::<B>(&device);
    let meta = serde_json::json!({"labels": ["neg", "pos"], "max_seq_len": 16});
    let names = export(&original, "classifier", &meta, &file).unwrap();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "embedding.weight",
            "lstm.bias_hh_l0",
            "lstm.bias_ih_l0",
            "lstm.weight_hh_l0",
            "lstm.weight_ih_l0",
            "out.bias",
            "out.weight",
            "score.bias",
            "score.weight"
        ]
    );
    let weights = PytorchWeights::read(&file).unwrap();
    assert_eq!(weights.shape("lstm.weight_ih_l0"), Some(&[20, 6][..]));
    assert_eq!(weights.shape("lstm.weight_hh_l0"), Some(&[20, 5][..]));
    assert_eq!(weights.shape("out.weight"), Some(&[2, 5][..]));
    assert_eq!(weights.metadata["kind"], "classifier");

    let imported = weights.load_into(config().init::<B>(&device)).unwrap();
    assert_eq!(logits(&original), logits(&imported));
    // A fresh model is another model: the comparison above can fail.
    assert_ne!(logits(&original), logits(&config().init::<B>(&device)));

    // Re-exporting over our own file is allowed; over someone else's file, not.
    export(&original, "classifier", &meta, &file).unwrap();
    let foreign = tmp.path().join("notes.txt");
    std::fs::write(&foreign, "mine").unwrap();
    let err = export(&original, "classifier", &meta, &foreign).unwrap_err();
    assert!(
        format!("{err:#}").contains("was not written by `infer export`"),
        "{err:#}"
    );
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "mine");
}

#[test]
fn bidirectional_layers_and_the_language_model_round_trip_too() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Default::default();
    let file = tmp.path().join("bi.safetensors");
    let bi = config().with_layers(2).with_bidirectional(true);
    let original = bi.init::<B>(&device);
    let names = export(&original, "classifier", &serde_json::json!({}), &file).unwrap();
    assert!(
        names.contains(&"lstm.weight_ih_l1_reverse".to_string()),
        "{names:?}"
    );
    let weights = PytorchWeights::read(&file).unwrap();
    assert_eq!(weights.shape("lstm.weight_ih_l1"), Some(&[20, 10][..]));
    let imported = weights.load_into(bi.init::<B>(&device)).unwrap();
    assert_eq!(logits(&original), logits(&imported));

    let file = tmp.path().join("lm.safetensors");
    let lm = CharLmConfig::new(12).with_d_embed(4).with_d_hidden(6);
    let original = lm.init::<B>(&device);
    let names = export(&original, "language-model", &serde_json::json!({}), &file).unwrap();
    assert!(
        names.contains(&"lstm.weight_hh_l1".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"out.weight".to_string()), "{names:?}");
    let imported = PytorchWeights::read(&file)
        .unwrap()
        .load_into(lm.init::<B>(&device))
        .unwrap();
    let chars =
        Tensor::<B, 2, Int>::from_data(TensorData::new(vec![3i64, 1, 7, 0], [1, 4]), &device);
    let a: Vec<f32> = original
        .forward(chars.clone(), None)
        .logits
        .into_data()
        .to_vec()
        .unwrap();
    let b: Vec<f32> = imported
        .forward(chars, None)
        .logits
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn files_that_do_not_fit_are_refused_naming_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Default::default();
    let file = tmp.path().join("model.safetensors");
    export(
        &config().init::<B>(&device),
        "classifier",
        &serde_json::json!({}),
        &file,
    )
    .unwrap();
    let load = |config: TextClassifierConfig| {
        PytorchWeights::read(&file)
            .and_then(|w| w.load_into(config.init::<B>(&device)))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let err = load(config().with_d_hidden(7));
    assert!(
        err.contains("lstm.weight_ih_l0") && err.contains("[20, 6]"),
        "{err}"
    );
    let err = load(config().with_layers(2));
    assert!(err.contains("`lstm.weight_ih_l1` is missing"), "{err}");
    let err = load(config().with_cell(CellKind::Gru));
    assert!(err.contains("no counterpart in PyTorch"), "{err}");
    let gru = config().with_cell(CellKind::Gru).init::<B>(&device);
    let err = export(
        &gru,
        "classifier",
        &serde_json::json!({}),
        &tmp.path().join("gru.safetensors"),
    )
    .unwrap_err();
    assert!(format!("{err}").contains("LSTM"), "{err}");

    let garbage = tmp.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file at all").unwrap();
    let err = PytorchWeights::read(&garbage)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("garbage.safetensors is not a safetensors file"),
        "{err}"
    );

    // A NaN in a tensor: the header is JSON, the data follows it.
    let mut bytes = std::fs::read(&file).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let at = 8 + header;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let poisoned = tmp.path().join("nan.safetensors");
    std::fs::write(&poisoned, bytes).unwrap();
    let err = PytorchWeights::read(&poisoned)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("NaN at index 0"), "{err}");
}

/// The PyTorch side: docs/pytorch/logits.py loads the file into the
/// reference module (concat pooling too) and prints its logits for the
/// same ids.
#[test]
fn pytorch_gives_the_same_logits() {
    let torch = Command::new("python3")
        .args(["-c", "import torch"])
        .output();
    if !torch.is_ok_and(|out| out.status.success()) {
        eprintln!(
            "SKIPPED: python3 cannot import torch (python3 -m pip install torch numpy to compare with PyTorch)"
        );
        return;
    }
    for pooling in [Pooling::Attention, Pooling::Concat] {
        let ours = config()
            .with_pooling(Some(pooling))
            .init::<B>(&Default::default());
        pytorch_logits_match(&ours);
    }
}

fn pytorch_logits_match(ours: &model::TextClassifier<B>) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("model.safetensors");
    export(ours, "classifier", &serde_json::json!({}), &file).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/pytorch/logits.py");
    let ids = serde_json::to_string(&rows()).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg("--weights")
        .arg(&file)
        .args(["--ids", &ids])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<f64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .flat_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            serde_json::from_value::<Vec<f64>>(value["logits"].clone()).unwrap()
        })
        .collect();
    // Each sentence alone in PyTorch, all three padded together here.
    let ours = logits(ours);
    assert_eq!(theirs.len(), ours.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert!(
            (f64::from(*a) - b).abs() < 1e-4,
            "ours {ours:?}\ntheirs {theirs:?}"
        );
    }
}
