//! Corrupted and hostile inputs, generated: a seeded generator mutates a
//! valid artifact's config, vocabulary and weights, and writes TSV files of
//! random bytes, and every outcome must be a result or a clean error — no
//! panic, no non-finite answer, no label the model does not have. A failing
//! case prints its number and the mutation, and replays from the seed.

use artifact::{
    ArtifactWriter, Classifier, ClassifierConfig, ClassifierMetrics, LanguageModel, LmConfig,
};
use burn::backend::NdArray;
use data::{CharVocab, WordTokenizer};
use model::{CharLmConfig, TextClassifierConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Enough cases to reach every field of the config several times, few
/// enough to run in seconds (each case loads a small model).
const CASES: usize = 400;
const SEED: u64 = 20261202;

fn metrics() -> ClassifierMetrics {
    ClassifierMetrics {
        test_accuracy: 0.5,
        valid_accuracy: 0.5,
        best_epoch: 1,
        epochs_run: 1,
        train_seconds: 0.0,
        backend: "ndarray".into(),
        profile: "test".into(),
        train_accuracy: None,
        selected_by: "accuracy".into(),
        history: Default::default(),
        compression: None,
        averaged_from: None,
    }
}

fn make_classifier(dir: &Path) {
    let texts = [
        "a good film",
        "a bad film",
        "charming and hilarious",
        "dull and long",
    ];
    let tokenizer = WordTokenizer::train(texts.into_iter(), 1, 100).unwrap();
    let config = ClassifierConfig {
        model: TextClassifierConfig::new(tokenizer.vocab_size(), 3)
            .with_d_embed(6)
            .with_d_hidden(5),
        labels: vec!["neg".into(), "mixed".into(), "pos".into()],
        max_seq_len: 16,
        training: None,
    };
    let writer = ArtifactWriter::create(dir, "classifier", &[]).unwrap();
    let device = Default::default();
    let model = config.model.init::<NdArray>(&device);
    Classifier::new(model, tokenizer, config, &device)
        .write_into(&writer)
        .unwrap();
    writer.write_metrics(&metrics()).unwrap();
    writer.commit().unwrap();
}

fn make_language_model(dir: &Path) {
    let vocab = CharVocab::from_text("to be or not to be");
    let config = LmConfig {
        model: CharLmConfig::new(vocab.len())
            .with_d_embed(4)
            .with_d_hidden(6)
            .with_layers(2),
        training: None,
    };
    let writer = ArtifactWriter::create(dir, "language-model", &[]).unwrap();
    let model = config.model.init::<NdArray>(&Default::default());
    LanguageModel {
        model,
        vocab,
        config,
    }
    .write_into(&writer)
    .unwrap();
    writer.write_metrics(&json!({})).unwrap();
    writer.commit().unwrap();
}

/// A value a hostile or careless editor might put in a field.
fn strange_value(rng: &mut ChaCha8Rng) -> Value {
    match rng.random_range(0..12) {
        0 => json!(0),
        1 => json!(1),
        2 => json!(-1),
        3 => json!(u64::MAX),
        4 => json!(1e300),
        5 => json!(rng.random_range(0..100_000)),
        6 => json!(0.5),
        7 => json!("ten"),
        8 => Value::Null,
        9 => json!(true),
        10 => json!([]),
        _ => json!(rng.random_range(2..40)),
    }
}

/// Every path to a scalar or a list inside `value`.
fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(key.clone());
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(i.to_string());
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |v, key| match v {
        Value::Object(map) => map.get_mut(key).unwrap(),
        Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
        _ => unreachable!("paths only lead through objects and lists"),
    })
}

/// Mutates one JSON file: a field set to a strange value, removed, a list
/// shortened or lengthened. Returns what it did.
fn mutate_json(path: &Path, rng: &mut ChaCha8Rng) -> String {
    let mut value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut all = Vec::new();
    paths(&value, &mut Vec::new(), &mut all);
    let target = all[rng.random_range(0..all.len())].clone();
    let (parent, key) = target.split_at(target.len() - 1);
    let what = match rng.random_range(0..4) {
        0 => {
            let parent = at(&mut value, parent);
            match parent {
                Value::Object(map) => {
                    map.remove(&key[0]);
                }
                Value::Array(items) => {
                    items.remove(key[0].parse::<usize>().unwrap());
                }
                _ => unreachable!(),
            }
            format!("removed {}", target.join("."))
        }
        1 => {
            let slot = at(&mut value, parent);
            if let Value::Array(items) = slot {
                let copy = items[key[0].parse::<usize>().unwrap()].clone();
                items.push(copy);
                format!("duplicated {}", target.join("."))
            } else {
                let new = strange_value(rng);
                *at(&mut value, &target) = new.clone();
                format!("{} = {new}", target.join("."))
            }
        }
        _ => {
            let new = strange_value(rng);
            *at(&mut value, &target) = new.clone();
            format!("{} = {new}", target.join("."))
        }
    };
    std::fs::write(path, serde_json::to_vec(&value).unwrap()).unwrap();
    what
}

/// Mutates the bytes of a file: truncated, some bytes overwritten, or
/// emptied.
fn mutate_bytes(path: &Path, rng: &mut ChaCha8Rng) -> String {
    let mut bytes = std::fs::read(path).unwrap();
    let what = match rng.random_range(0..3) {
        0 => {
            let keep = rng.random_range(0..bytes.len());
            bytes.truncate(keep);
            format!("truncated to {keep} bytes")
        }
        1 => {
            let n = rng.random_range(1..8);
            for _ in 0..n {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
            format!("{n} bytes overwritten")
        }
        _ => {
            bytes.clear();
            "emptied".to_string()
        }
    };
    std::fs::write(path, bytes).unwrap();
    what
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A clean error: one line, naming a file of the artifact.
fn check_error(err: &anyhow::Error, case: usize, what: &str) {
    let message = format!("{err:#}");
    assert!(
        !message.contains('\n'),
        "case {case} ({what}): a multi-line error: {message}"
    );
    assert!(
        [".json", ".mpk", "artifact"]
            .iter()
            .any(|f| message.contains(f)),
        "case {case} ({what}): the error names no file: {message}"
    );
}

#[test]
fn mutated_artifacts_load_correctly_or_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let classifier = tmp.path().join("classifier");
    let lm = tmp.path().join("lm");
    make_classifier(&classifier);
    make_language_model(&lm);
    let device = Default::default();
    let long = "good ".repeat(300);
    let texts = [
        "a good film",
        "",
        "unseen words only",
        long.as_str(),
        "\u{0}\t\u{feff}",
    ];

    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let (mut loaded, mut refused) = (0, 0);
    for case in 0..CASES {
        let dir = tmp.path().join(format!("case-{case}"));
        let is_lm = rng.random_bool(0.25);
        copy_dir(if is_lm { &lm } else { &classifier }, &dir);
        let file = match (is_lm, rng.random_range(0..3)) {
            (false, 0) => "tokenizer.json",
            (true, 0) => "vocab.json",
            (_, 1) => "model.mpk",
            _ => "config.json",
        };
        let path = dir.join(file);
        let what = if file.ends_with(".json") && rng.random_bool(0.8) {
            mutate_json(&path, &mut rng)
        } else {
            mutate_bytes(&path, &mut rng)
        };
        let what = format!("{file}: {what}");

        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if is_lm {
                LanguageModel::<NdArray>::load(&dir, &device).map(|_| ())
            } else {
                Classifier::<NdArray>::load(&dir, &device).and_then(|model| {
                    let predictions = model.predict(&texts, 2)?;
                    for p in &predictions {
                        assert!(
                            p.probabilities.iter().all(|x| x.is_finite()),
                            "case {case} ({what}): probabilities {:?}",
                            p.probabilities
                        );
                        assert!(model.config.labels.contains(&p.label));
                        assert_eq!(p.probabilities.len(), model.config.labels.len());
                    }
                    Ok(())
                })
            }
        }));
        match outcome {
            Err(_) => panic!("case {case} ({what}) panicked"),
            Ok(Ok(())) => loaded += 1,
            Ok(Err(err)) => {
                check_error(&err, case, &what);
                refused += 1;
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!("{loaded} mutated artifacts loaded and answered, {refused} refused");
    // The generator must exercise both outcomes, or it tests nothing.
    assert!(
        refused > CASES / 4,
        "only {refused} of {CASES} mutations refused"
    );
    assert!(loaded > 0, "no mutation left a loadable artifact");
}

#[test]
fn random_tsv_files_read_or_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data.tsv");
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let labels: [&[u8]; 6] = [b"neg", b"pos", b"mixed", b"", b"\xef\xbb\xbfneg", b" pos "];
    let words: [&[u8]; 7] = [b"a", b"good", b"film", b"\t", b" ", b"\xff", b"\xc3"];
    let (mut read, mut refused) = (0, 0);
    for case in 0..CASES {
        // Mostly well-formed lines, each with a chance of a strange label,
        // a missing or extra tab, a CRLF, invalid UTF-8 or no end.
        let mut bytes = Vec::new();
        for _ in 0..rng.random_range(0..8) {
            let label = if rng.random_bool(0.8) {
                labels[rng.random_range(0..2)]
            } else {
                labels[rng.random_range(0..labels.len())]
            };
            bytes.extend_from_slice(label);
            if rng.random_bool(0.95) {
                bytes.push(b'\t');
            }
            for _ in 0..rng.random_range(0..6) {
                let word = if rng.random_bool(0.9) {
                    words[rng.random_range(0..3)]
                } else {
                    words[rng.random_range(0..words.len())]
                };
                bytes.extend_from_slice(word);
                bytes.push(b' ');
            }
            bytes.extend_from_slice(match rng.random_range(0..10) {
                0 => &b"\r\n"[..],
                1 => b"\n\n",
                _ => b"\n",
            });
        }
        std::fs::write(&path, &bytes).unwrap();
        let outcome = catch_unwind(|| data::read_labelled_tsv(&path, &data::MR_LABELS));
        match outcome {
            Err(_) => panic!("case {case}: reading {bytes:?} panicked"),
            Ok(Ok(rows)) => {
                for row in rows {
                    assert!(row.label < 2, "case {case}: label {}", row.label);
                }
                read += 1;
            }
            Ok(Err(err)) => {
                let message = err.to_string();
                assert!(
                    message.contains("data.tsv") && !message.contains('\n'),
                    "case {case}: {message}"
                );
                refused += 1;
            }
        }
    }
    eprintln!("{read} random TSV files read, {refused} refused");
    assert!(read > 0 && refused > 0, "read {read}, refused {refused}");
}
