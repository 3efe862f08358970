//! `train import`: a classifier artifact from weights in PyTorch's layout
//! (here written by `artifact::pytorch::export`, as `infer export` does)
//! predicts exactly as the model the weights came from, and files that do
//! not fit are refused with a message.

mod common;

use artifact::Classifier;
use artifact::pytorch::export;
use burn::backend::NdArray;
use common::{check, load, metrics, mr_dir, mr_split, stderr, train};
use data::WordTokenizer;
use model::{CharLmConfig, Pooling, TextClassifierConfig};

/// A classifier with concat pooling (the default) imports as one: its
/// output layer reads three times the LSTM's width, and that is how the
/// pooling is told.
#[test]
fn concat_pooling_is_read_from_the_output_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let tokenizer = mr_tokenizer(tmp.path());
    let config = TextClassifierConfig::new(tokenizer.vocab_size(), 2)
        .with_d_embed(8)
        .with_d_hidden(6)
        .with_pooling(Some(Pooling::Concat));
    let original = config.init::<NdArray>(&Default::default());
    let weights = tmp.path().join("concat.safetensors");
    export(&original, "classifier", &serde_json::json!({}), &weights).unwrap();
    let imported_dir = tmp.path().join("imported");
    let out = train(&[
        "import",
        "--from",
        weights.to_str().unwrap(),
        "--tokenizer",
        tmp.path().join("tokenizer.json").to_str().unwrap(),
        "--data-dir",
        mr_dir().to_str().unwrap(),
        "--artifact-dir",
        imported_dir.to_str().unwrap(),
    ]);
    check(&out);
    let imported = load(&imported_dir);
    assert_eq!(imported.config.model.pooling(), Pooling::Concat);
    predicts_as(&imported, original, tokenizer);
}

/// The tokenizer `train` would build from MR's training split, saved as
/// `dir/tokenizer.json`.
fn mr_tokenizer(dir: &std::path::Path) -> WordTokenizer {
    let texts = mr_split("train");
    let tokenizer = WordTokenizer::train(texts.iter().map(|t| t.text.as_str()), 2, 30_000).unwrap();
    tokenizer
        .save(dir.join("tokenizer.json").as_path())
        .unwrap();
    tokenizer
}

/// `imported` gives exactly the logits of the model its weights came from.
fn predicts_as(
    imported: &Classifier<NdArray>,
    original: model::TextClassifier<NdArray>,
    tokenizer: WordTokenizer,
) {
    let sentences = ["an utterly charming film", "a dull , lifeless plot", ""];
    let reference = Classifier::new(
        original,
        tokenizer,
        imported.config.clone(),
        &Default::default(),
    );
    assert_eq!(
        imported.logits(&sentences, 8).unwrap(),
        reference.logits(&sentences, 8).unwrap()
    );
}

/// A safetensors file of zeros with these f32 tensors (name, shape).
fn write_safetensors(path: &std::path::Path, tensors: &[(&str, &[usize])]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (name, shape) in tensors {
        let bytes = 4 * shape.iter().product::<usize>();
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let header = serde_json::Value::Object(header).to_string();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.resize(file.len() + offset, 0);
    std::fs::write(path, file).unwrap();
}

#[test]
fn imported_weights_predict_as_the_model_they_came_from() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let tokenizer = mr_tokenizer(tmp.path());
    let device = Default::default();
    let config = TextClassifierConfig::new(tokenizer.vocab_size(), 2)
        .with_d_embed(8)
        .with_d_hidden(8);
    let original = config.init::<NdArray>(&device);
    let meta = serde_json::json!({"labels": ["neg", "pos"], "max_seq_len": 32});
    let weights = tmp.path().join("model.safetensors");
    export(&original, "classifier", &meta, &weights).unwrap();

    let data = mr_dir();
    let out = train(&[
        "import",
        "--from",
        &path("model.safetensors"),
        "--tokenizer",
        &path("tokenizer.json"),
        "--data-dir",
        data.to_str().unwrap(),
        "--artifact-dir",
        &path("imported"),
    ]);
    check(&out);
    let imported = load(&tmp.path().join("imported"));
    assert_eq!(imported.config.max_seq_len, 32);
    assert_eq!(imported.config.labels, ["neg", "pos"]);
    predicts_as(&imported, original, tokenizer);
    let test = imported.evaluate(&mr_split("test"), 256).unwrap();
    assert_eq!(
        metrics(&tmp.path().join("imported")).test_accuracy,
        test.accuracy
    );

    // Refusals, each naming what does not fit.
    let import = |extra: &[&str], from: &str, tokenizer: &str| {
        let mut args = vec![
            "import",
            "--from",
            from,
            "--tokenizer",
            tokenizer,
            "--data-dir",
            data.to_str().unwrap(),
            "--artifact-dir",
        ];
        let target = path("refused");
        args.push(&target);
        args.extend_from_slice(extra);
        let out = train(&args);
        assert!(!out.status.success());
        assert!(!tmp.path().join("refused").exists());
        stderr(&out)
    };
    let small = WordTokenizer::train(["a b c"].into_iter(), 1, 100).unwrap();
    small.save(tmp.path().join("small.json").as_path()).unwrap();
    let err = import(&[], &path("model.safetensors"), &path("small.json"));
    assert!(err.contains("another vocabulary"), "{err}");
    let err = import(
        &["--labels", "neg,pos,neutral"],
        &path("model.safetensors"),
        &path("tokenizer.json"),
    );
    assert!(
        err.contains("out.weight has 2 rows but there are 3 classes"),
        "{err}"
    );
    let lm = CharLmConfig::new(10)
        .with_d_embed(4)
        .with_d_hidden(4)
        .init::<NdArray>(&device);
    export(
        &lm,
        "language-model",
        &serde_json::json!({}),
        &tmp.path().join("lm.safetensors"),
    )
    .unwrap();
    let err = import(&[], &path("lm.safetensors"), &path("tokenizer.json"));
    assert!(err.contains("not the attention classifier"), "{err}");
    // An output layer that reads neither the LSTM's 4 values nor 3 × 4.
    write_safetensors(
        &tmp.path().join("odd.safetensors"),
        &[
            ("embedding.weight", &[30, 3]),
            ("lstm.weight_ih_l0", &[16, 3]),
            ("lstm.weight_hh_l0", &[16, 4]),
            ("lstm.bias_ih_l0", &[16]),
            ("lstm.bias_hh_l0", &[16]),
            ("score.weight", &[1, 4]),
            ("score.bias", &[1]),
            ("out.weight", &[2, 5]),
            ("out.bias", &[2]),
        ],
    );
    let err = import(&[], &path("odd.safetensors"), &path("tokenizer.json"));
    assert!(
        err.contains("out.weight reads 5 values") && err.contains("12 for concat pooling"),
        "{err}"
    );
    let err = import(&[], &path("nowhere.safetensors"), &path("tokenizer.json"));
    assert!(
        err.contains("cannot read") && err.contains("nowhere.safetensors"),
        "{err}"
    );
}
