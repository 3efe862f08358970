//! The `infer` binary: predictions from arguments and stdin, `--json`,
//! `--eval`, and a clear error for every broken artifact.

mod common;

use common::{make_artifact, make_lm_artifact};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn infer(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_infer"))
        .arg("--artifact-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or("").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn predicts_from_arguments_stdin_and_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mr");
    make_artifact(&dir);

    let out = infer(&dir, &["a good film", ""], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("neg\t") || lines[0].starts_with("pos\t"),
        "{stdout}"
    );

    let out = infer(
        &dir,
        &[],
        Some("charming\nunseen words only\nDULL and long\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 3);

    let out = infer(
        &dir,
        &[
            "--json",
            "--batch-size",
            "1",
            "Charming and hilarious!",
            "x",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let tokens: Vec<&str> = first["attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, ["Charming", "and", "hilarious", "!"]);
    let weights: f64 = first["attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["weight"].as_f64().unwrap())
        .sum();
    assert!((weights - 1.0).abs() < 1e-5);
    let probs: f64 = first["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .sum();
    assert!((probs - 1.0).abs() < 1e-5);
}

#[test]
fn eval_prints_accuracy_and_confusion_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mr");
    make_artifact(&dir);
    let file = tmp.path().join("labelled.tsv");
    std::fs::write(&file, "pos\ta good film\nneg\ta bad film\nneg\tdull\n").unwrap();
    let out = infer(&dir, &["--eval", file.to_str().unwrap(), "--json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let eval: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(eval["total"], 3);
    let confusion: Vec<Vec<u64>> = serde_json::from_value(eval["confusion"].clone()).unwrap();
    assert_eq!(confusion.iter().flatten().sum::<u64>(), 3);
    assert_eq!(confusion[1].iter().sum::<u64>(), 1, "one true pos");
    let correct = confusion[0][0] + confusion[1][1];
    assert_eq!(eval["correct"], correct);

    let out = infer(&dir, &["--eval", file.to_str().unwrap()], None);
    assert!(
        text(&out.stdout).starts_with("accuracy "),
        "{}",
        text(&out.stdout)
    );

    std::fs::write(&file, "pos\tok\nunsure\tmaybe\n").unwrap();
    let out = infer(&dir, &["--eval", file.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("labelled.tsv:2: unknown label \"unsure\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn broken_artifacts_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let check = |dir: &Path, expected: &str| {
        let out = infer(dir, &["some text"], None);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "expected failure for {expected}");
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    check(&tmp.path().join("nowhere"), "does not exist");

    let dir = tmp.path().join("mr");
    make_artifact(&dir);
    let config_path = dir.join("config.json");
    let original = std::fs::read_to_string(&config_path).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&original).unwrap();

    config["model"]["d_hidden"] = 16.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    check(&dir, "does not match");

    config["model"]["d_hidden"] = 8.into();
    config["model"]["vocab_size"] = 1000.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    check(&dir, "vocab_size");

    config["model"]["vocab_size"] = original_config(&original)["model"]["vocab_size"].clone();
    config["max_seq_len"] = 0.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    check(&dir, "config.json: max_seq_len must be at least 1");

    config["max_seq_len"] = 16.into();
    config["labels"] = serde_json::json!(["neg", "pos", "mixed"]);
    std::fs::write(&config_path, config.to_string()).unwrap();
    check(&dir, "3 labels for a model of 2 classes");

    config["labels"] = serde_json::json!(["neg", "pos"]);
    config["model"]["layers"] = 0.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    check(&dir, "config.json: model.layers must be at least 1");

    // One label for two classes would read the wrong column.
    config["model"]["layers"] = 1.into();
    config["labels"] = serde_json::json!(["neg"]);
    std::fs::write(&config_path, config.to_string()).unwrap();
    check(&dir, "1 labels for a model of 2 classes");

    // A size that would hang the allocator: refused from the file's size.
    config["labels"] = serde_json::json!(["neg", "pos"]);
    config["model"]["d_hidden"] = 100_000_000.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    check(&dir, "parameters, more than");

    config["model"]["d_hidden"] = 8.into();
    config["model"]["embedding_dropout"] = 1.5.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    check(&dir, "model.embedding_dropout is 1.5");

    std::fs::write(&config_path, "{ \"model\": 3 }").unwrap();
    check(&dir, "config.json is not a classifier's artifact config");

    // A tokenizer whose ids run past the embedding.
    std::fs::write(&config_path, &original).unwrap();
    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer_text = std::fs::read_to_string(&tokenizer_path).unwrap();
    let mut tokenizer: serde_json::Value = serde_json::from_str(&tokenizer_text).unwrap();
    tokenizer["model"]["vocab"]["good"] = 5000.into();
    std::fs::write(&tokenizer_path, tokenizer.to_string()).unwrap();
    check(&dir, "token \"good\" has id 5000");
    std::fs::write(&tokenizer_path, &tokenizer_text).unwrap();

    std::fs::write(&config_path, &original).unwrap();
    std::fs::write(dir.join("model.mpk"), b"not a record").unwrap();
    check(&dir, "more than");
    check(&dir, "model.mpk (12 bytes) can hold");
    // A file large enough for the parameters, but not a record.
    std::fs::write(dir.join("model.mpk"), vec![b'x'; 100_000]).unwrap();
    check(&dir, "cannot load weights from");

    std::fs::remove_file(dir.join("model.mpk")).unwrap();
    check(&dir, "model.mpk is missing");
}

fn original_config(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// Reading one line and closing the pipe (`infer … | head -1`) ends the
/// program quietly, and answers come while the input is still being read.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mr");
    make_artifact(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_infer"))
        .arg("--artifact-dir")
        .arg(&dir)
        .args(["--batch-size", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The first answer arrives before stdin ends.
    stdin.write_all(b"a good film\n").unwrap();
    stdin.flush().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("neg\t") || first.starts_with("pos\t"),
        "{first}"
    );
    drop(stdout);
    // Writing the next answers now fails: the reader has gone.
    for _ in 0..2000 {
        if stdin.write_all(b"dull and long\n").is_err() {
            break;
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {err}", out.status.code());
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
}

/// `infer report` compares artifacts on a dataset's test split.
#[test]
fn report_compares_artifacts() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    make_artifact(&a);
    // The same weights under a second name: initialisation is random, and a
    // second `make_artifact` would be a different model.
    std::fs::create_dir(&b).unwrap();
    for entry in std::fs::read_dir(&a).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), b.join(entry.file_name())).unwrap();
    }
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // 260 sentences: the batch-256 latency needs one full batch.
    std::fs::write(
        data.join("test.tsv"),
        "pos\ta good film\nneg\ta bad film\nneg\tdull\npos\tcharming\n".repeat(65),
    )
    .unwrap();
    let json = tmp.path().join("rows.json");
    let out = Command::new(env!("CARGO_BIN_EXE_infer"))
        .arg("report")
        .args([&a, &b])
        .arg("--data-dir")
        .arg(&data)
        .args(["--sentences", "2", "--json-file"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| ")).count(),
        3,
        "{table}"
    );
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // Two copies of the same untrained model: the same counts and accuracy.
    assert_eq!(rows[0]["parameters"], rows[1]["parameters"]);
    assert_eq!(rows[0]["test_accuracy"], rows[1]["test_accuracy"]);
    // An f32 LSTM classifier on ndarray runs through the host classifier.
    assert_eq!(rows[0]["predicts_through"], "host f32");
    assert!(table.contains("| host f32 |"), "{table}");
    let accuracy = rows[0]["test_accuracy"].as_f64().unwrap();
    assert!(
        [0.0, 0.25, 0.5, 0.75, 1.0].contains(&accuracy),
        "{accuracy}"
    );
}

/// A small untrained language model over the characters "abc .\n".
fn generate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infer"))
        .arg("generate")
        .arg("--artifact-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn generate_continues_the_prompt_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lm");
    make_lm_artifact(&dir);
    let run = |args: &[&str]| {
        let out = generate(&dir, args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let first = run(&["--prompt", "ab", "--length", "40", "--seed", "7"]);
    assert!(first.starts_with("ab"), "{first:?}");
    let generated = first.strip_suffix('\n').unwrap();
    assert_eq!(generated.chars().count(), 42, "{first:?}");
    assert!(
        generated.chars().all(|c| "abc .\n".contains(c)),
        "{first:?}"
    );
    assert_eq!(
        run(&["--prompt", "ab", "--length", "40", "--seed", "7"]),
        first
    );
    let other = run(&["--prompt", "ab", "--length", "40", "--seed", "8"]);
    assert_ne!(other, first, "another seed should draw other characters");
    // Greedy decoding ignores the seed.
    let greedy = run(&[
        "--prompt",
        "ab",
        "--length",
        "20",
        "--temperature",
        "0",
        "--seed",
        "1",
    ]);
    assert_eq!(
        run(&[
            "--prompt",
            "ab",
            "--length",
            "20",
            "--temperature",
            "0",
            "--seed",
            "2"
        ]),
        greedy
    );
    // "\n" in a one-line prompt is a line break.
    assert!(run(&["--prompt", "a\\nb", "--length", "1"]).starts_with("a\nb"));
}

#[test]
fn generate_explains_bad_prompts_options_and_artifacts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lm");
    make_lm_artifact(&dir);

    let out = generate(&dir, &["--prompt", "aZbQ", "--length", "5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("'Z' 'Q'") && err.contains("skipped"), "{err}");
    assert!(text(&out.stdout).starts_with("ab"));

    let out = generate(&dir, &["--prompt", "XYZ"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no character the model knows"));

    let out = generate(&dir, &["--temperature=-1"]);
    assert_eq!(out.status.code(), Some(2), "a command-line error");
    assert!(text(&out.stderr).contains("--temperature"));

    // A classifier artifact given to generate, and the other way round.
    let classifier = tmp.path().join("mr");
    make_artifact(&classifier);
    let out = generate(&classifier, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is a classifier artifact"),
        "{}",
        text(&out.stderr)
    );
    let out = infer(&dir, &["some text"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is a language-model artifact"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(dir.join("vocab.json"), "[\"a\"]").unwrap();
    let out = generate(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("vocab_size"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn export_writes_pytorch_names_and_never_replaces_a_foreign_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (mr, lm) = (tmp.path().join("mr"), tmp.path().join("lm"));
    make_artifact(&mr);
    make_lm_artifact(&lm);
    let export = |dir: &Path, to: &Path| {
        Command::new(env!("CARGO_BIN_EXE_infer"))
            .args(["export", "--artifact-dir"])
            .arg(dir)
            .arg("--to")
            .arg(to)
            .output()
            .unwrap()
    };
    let file = tmp.path().join("mr.safetensors");
    let out = export(&mr, &file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("lstm.weight_ih_l0") && stdout.contains("score.weight"),
        "{stdout}"
    );
    // Its own file may be written again.
    assert!(export(&mr, &file).status.success());

    let out = export(&lm, &tmp.path().join("lm.safetensors"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("lstm.weight_hh_l0"),
        "{}",
        text(&out.stdout)
    );

    let foreign = tmp.path().join("thesis.tex");
    std::fs::write(&foreign, "years of work").unwrap();
    let out = export(&mr, &foreign);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("was not written by `infer export`"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "years of work");
    let out = export(
        &tmp.path().join("nowhere"),
        &tmp.path().join("x.safetensors"),
    );
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
}
