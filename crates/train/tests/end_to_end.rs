//! The `train` binary end to end: one short epoch on a slice of datasets/mr
//! into a temporary directory, then the artifact is loaded and used the way
//! `infer` uses it. And the errors a user gets for bad input.

mod common;

use common::{load, metrics, mr_dir, mr_split, stderr, train};
use std::path::Path;
use std::process::Output;

/// One epoch of training on datasets/mr into `artifact`, with `extra` options.
fn one_epoch_on_mr(artifact: &Path, extra: &[&str]) -> Output {
    let data = mr_dir();
    let mut args = vec![
        "--data-dir",
        data.to_str().unwrap(),
        "--artifact-dir",
        artifact.to_str().unwrap(),
        "--epochs",
        "1",
    ];
    args.extend(extra);
    train(&args)
}

#[test]
fn one_short_epoch_then_infer() {
    let tmp = tempfile::tempdir().unwrap();
    let artifact = tmp.path().join("mr");
    let out = one_epoch_on_mr(
        &artifact,
        &["--limit", "640", "--d-embed", "32", "--d-hidden", "32"],
    );
    assert!(
        out.status.success(),
        "train failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test accuracy"), "{stdout}");

    for file in ["config.json", "tokenizer.json", "model.mpk", "metrics.json"] {
        assert!(
            artifact.join(file).is_file(),
            "{file} missing from the artifact"
        );
    }
    assert!(
        !artifact.join("training/checkpoint").exists(),
        "checkpoints should not be shipped"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["mr"],
        "no staging directory should be left behind"
    );

    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(artifact.join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(metrics["epochs_run"], 1);
    assert_eq!(metrics["best_epoch"], 1);
    assert_eq!(metrics["backend"], "ndarray");
    let test_accuracy = metrics["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&test_accuracy));

    // The artifact loads from its directory alone and predicts.
    let classifier = load(&artifact);
    let texts = ["an utterly charming and hilarious film", "", "zzzz qqqq"];
    let predictions = classifier.predict(&texts, 2).unwrap();
    assert_eq!(predictions.len(), 3);
    for p in &predictions {
        assert!(p.label == "neg" || p.label == "pos");
        let sum: f32 = p.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "probabilities sum to {sum}");
        let attention: f32 = p.attention.iter().map(|t| t.weight).sum();
        assert!(
            (attention - 1.0).abs() < 1e-5,
            "attention sums to {attention}"
        );
    }
    assert_eq!(predictions[0].attention.len(), 6);
    assert_eq!(predictions[1].attention[0].token, "[UNK]");

    // The test accuracy in metrics.json is what evaluating the artifact gives.
    let test = mr_split("test");
    let evaluation = classifier.evaluate(&test, 256).unwrap();
    assert!((evaluation.accuracy - test_accuracy).abs() < 1e-9);
}

/// `--embeddings` (the default's GloVe file): the vocabulary keeps the words
/// seen once that have a vector, the embedding is the file's width, each
/// word starts from its vector (after one short epoch "film" still points
/// where GloVe's does), and the artifact records the file.
#[test]
fn pretrained_vectors_start_the_embedding_and_the_artifact_records_them() {
    let glove = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/glove-mr/vectors.txt");
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    let pretrained = tmp.path().join("glove");
    let small = ["--limit", "640", "--d-hidden", "16", "--max-seq-len", "16"];
    let out = one_epoch_on_mr(&plain, &small);
    common::check(&out);
    let mut options = small.to_vec();
    options.extend(["--embeddings", glove.to_str().unwrap()]);
    let out = one_epoch_on_mr(&pretrained, &options);
    common::check(&out);
    assert!(
        common::stdout(&out).contains(" words start from the 15518 vectors of "),
        "{}",
        common::stdout(&out)
    );

    let plain = load(&plain);
    let pretrained = load(&pretrained);
    assert_eq!(pretrained.config.model.d_embed, 100);
    assert_eq!(
        pretrained
            .config
            .training
            .as_ref()
            .unwrap()
            .embeddings
            .as_deref(),
        Some(glove.as_path())
    );
    assert_eq!(plain.config.training.as_ref().unwrap().embeddings, None);
    // 640 sentences see most words once: the ones with a vector stay.
    let (with, without) = (
        pretrained.tokenizer.vocab_size(),
        plain.tokenizer.vocab_size(),
    );
    assert!(with > 2 * without, "{with} words against {without}");

    let vectors = data::WordVectors::read(&glove).unwrap();
    let film = pretrained.tokenizer.encode("film").unwrap()[0] as usize;
    let weight: Vec<f32> = pretrained
        .model()
        .embedding()
        .weight
        .val()
        .into_data()
        .to_vec()
        .unwrap();
    let row = &weight[film * 100..(film + 1) * 100];
    let glove_film = vectors.get("film").unwrap();
    let dot: f32 = row.iter().zip(glove_film).map(|(a, b)| a * b).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cosine = dot / (norm(row) * norm(glove_film));
    assert!(
        cosine > 0.9,
        "cosine {cosine} between the kept and GloVe's \"film\""
    );
}

#[test]
fn bad_data_gets_an_error_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("valid.tsv"), "pos\tfine\n").unwrap();
    std::fs::write(data.join("test.tsv"), "neg\tdull\n").unwrap();
    let artifact = tmp.path().join("out");
    let run = |train_tsv: &[u8]| {
        std::fs::write(data.join("train.tsv"), train_tsv).unwrap();
        train(&[
            "--data-dir",
            data.to_str().unwrap(),
            "--artifact-dir",
            artifact.to_str().unwrap(),
        ])
    };
    let cases: [(&[u8], &str); 4] = [
        (b"pos\tgood\nno tab on this line\n", "train.tsv:2: no tab"),
        (
            b"pos\tgood\npos\tfine\n",
            "train.tsv has only the label \"pos\"",
        ),
        (
            b"pos\tgood\nneg\t\xc3\x28\n",
            "train.tsv:2: not valid UTF-8",
        ),
        (b"", "train.tsv is empty"),
    ];
    for (contents, expected) in cases {
        let out = run(contents);
        let err = stderr(&out);
        assert!(!out.status.success());
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // The classes come from the training split: a label that only the
    // validation split has is an error naming its file and line.
    std::fs::write(data.join("train.tsv"), "pos\tgood\nneg\tbad\n").unwrap();
    std::fs::write(data.join("valid.tsv"), "pos\tfine\nmaybe\tmeh\n").unwrap();
    let out = train(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--artifact-dir",
        artifact.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("valid.tsv:2: unknown label \"maybe\""),
        "{err}"
    );
    std::fs::remove_file(data.join("valid.tsv")).unwrap();
    let out = train(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--artifact-dir",
        artifact.to_str().unwrap(),
    ]);
    assert!(stderr(&out).contains("valid.tsv"), "{}", stderr(&out));
    assert!(
        !artifact.exists(),
        "a failed run must not leave an artifact"
    );

    let out = train(&["--batch-size", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--batch-size"), "{}", stderr(&out));
}

/// The encoder choice goes into the artifact's config, and `infer` rebuilds
/// that encoder: loading gives the test accuracy that training reported.
/// A config naming another encoder than the weights hold is refused.
#[test]
fn encoder_choice_round_trips_through_the_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    for (encoder, cell, other) in [
        ("bigru", model::CellKind::Gru, "lstm"),
        ("transformer", model::CellKind::Transformer, "gru"),
    ] {
        let artifact = tmp.path().join(encoder);
        let out = one_epoch_on_mr(
            &artifact,
            &[
                "--limit",
                "320",
                "--d-embed",
                "16",
                "--d-hidden",
                "8",
                "--encoder",
                encoder,
                "--layers",
                "2",
                "--heads",
                "2",
            ],
        );
        assert!(out.status.success(), "train failed:\n{}", stderr(&out));

        let classifier = load(&artifact);
        let config = &classifier.config.model;
        assert_eq!(config.cell, cell);
        assert_eq!(config.bidirectional, encoder == "bigru");
        assert_eq!(config.layers, 2);
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(artifact.join("metrics.json")).unwrap())
                .unwrap();
        let test = mr_split("test");
        let evaluation = classifier.evaluate(&test, 256).unwrap();
        assert!((evaluation.accuracy - metrics["test_accuracy"].as_f64().unwrap()).abs() < 1e-9);

        // Another encoder built over the same weights file does not load:
        // the shapes differ, or its layers are not in the file at all.
        let mut config_json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(artifact.join("config.json")).unwrap())
                .unwrap();
        config_json["model"]["cell"] = other.into();
        config_json["model"]["bidirectional"] = false.into();
        std::fs::write(artifact.join("config.json"), config_json.to_string()).unwrap();
        let err =
            artifact::Classifier::<burn::backend::NdArray>::load(&artifact, &Default::default())
                .err()
                .expect("a mismatched encoder must not load");
        assert!(
            format!("{err:#}").contains("model.mpk"),
            "{encoder}: {err:#}"
        );
        if encoder == "bigru" {
            config_json["model"]["cell"] = "transformer".into();
            std::fs::write(artifact.join("config.json"), config_json.to_string()).unwrap();
            let err = artifact::Classifier::<burn::backend::NdArray>::load(
                &artifact,
                &Default::default(),
            )
            .err()
            .expect("a Transformer config over GRU weights must not load");
            assert!(
                format!("{err:#}").contains("different model"),
                "transformer over gru: {err:#}"
            );
        }
    }
}

/// With early stopping on validation loss, training stops once the loss has
/// not improved for `patience` epochs, and the artifact holds the weights of
/// the epoch with the lowest logged validation loss, not the last one.
#[test]
fn early_stopping_keeps_the_epoch_of_lowest_validation_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let artifact = tmp.path().join("mr");
    // A small slice and a high learning rate overfit within a few epochs.
    let data = mr_dir();
    let out = train(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--artifact-dir",
        artifact.to_str().unwrap(),
        "--limit",
        "320",
        "--d-embed",
        "32",
        "--d-hidden",
        "32",
        "--lr",
        "0.01",
        "--epochs",
        "30",
        "--select",
        "loss",
        "--patience",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let metrics = metrics(&artifact);
    let losses = &metrics.history.valid_loss;
    assert_eq!(losses.len(), metrics.epochs_run);
    assert!(
        metrics.epochs_run < 30,
        "early stopping never stopped: {losses:?}"
    );
    let lowest = (0..losses.len())
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
        .unwrap()
        + 1;
    assert_eq!(metrics.best_epoch, lowest, "{losses:?}");
    // It restored an earlier epoch than the last one it ran.
    assert!(lowest < metrics.epochs_run, "{losses:?}");
    assert_eq!(metrics.selected_by, "loss");

    // The weights are that epoch's: they score its validation accuracy.
    let classifier = load(&artifact);
    let valid = mr_split("valid");
    let accuracy = 100.0 * classifier.evaluate(&valid, 256).unwrap().accuracy;
    let logged = metrics.history.valid_accuracy[lowest - 1];
    assert!((accuracy - logged).abs() < 0.01, "{accuracy} vs {logged}");
    let last = metrics.history.valid_accuracy[metrics.epochs_run - 1];
    println!("kept epoch {lowest}: {accuracy:.2}%; last epoch: {last:.2}%");
}

/// `--average 3` keeps the mean weights of the last three epochs: the
/// metrics say so, and their validation accuracy is that of the weights in
/// the artifact (evaluated, since no logged epoch had them). The schedule
/// and the averaging are recorded with the training options.
#[test]
fn checkpoint_averaging_keeps_and_evaluates_the_mean_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let artifact = tmp.path().join("mr");
    let data = mr_dir();
    let out = train(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--artifact-dir",
        artifact.to_str().unwrap(),
        "--limit",
        "320",
        "--d-embed",
        "16",
        "--d-hidden",
        "16",
        "--epochs",
        "3",
        "--select",
        "last",
        "--average",
        "3",
        "--lr-schedule",
        "cosine",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let metrics = metrics(&artifact);
    assert_eq!((metrics.averaged_from, metrics.best_epoch), (Some(1), 3));
    let classifier = load(&artifact);
    let accuracy = classifier
        .evaluate(&mr_split("valid"), 256)
        .unwrap()
        .accuracy;
    assert!(
        (accuracy - metrics.valid_accuracy).abs() < 1e-12,
        "{accuracy} vs {}",
        metrics.valid_accuracy
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(artifact.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["training"]["average"], 3);
    assert_eq!(config["training"]["lr_schedule"], "cosine");
}
