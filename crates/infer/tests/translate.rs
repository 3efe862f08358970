//! `infer translate`: translations from arguments and stdin, `--json` with
//! the attention matrix, `--eval` against BLEU computed from the plain
//! output, `--plot`, and clear errors.

mod common;

use artifact::bleu::{Bleu, corpus_bleu};
use common::{make_artifact, make_transformer_artifact, make_translation_artifact};
use model::AlignmentKind;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn translate(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_infer"))
        .arg("translate")
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

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn translates_arguments_and_stdin_and_explains_the_attention_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tr");
    make_translation_artifact(&dir, Some(AlignmentKind::Bahdanau));

    // An empty sentence gets an empty line; a character no training text
    // had is the tokenizer's [UNK], not an error.
    let lines = ok(&translate(&dir, &["open the file", "", "zzz ☃"], None));
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert_eq!(lines.lines().nth(1), Some(""));
    let from_stdin = ok(&translate(&dir, &[], Some("open the file\n\nzzz ☃\n")));
    assert_eq!(from_stdin, lines);

    for beam in ["1", "3"] {
        let out = ok(&translate(
            &dir,
            &["--json", "--beam", beam, "save the file as"],
            None,
        ));
        let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let sources = json["source_tokens"].as_array().unwrap().len();
        let targets = json["target_tokens"].as_array().unwrap();
        assert_eq!(targets.last().unwrap(), "[EOS]");
        let attention = json["attention"].as_array().unwrap();
        assert_eq!(attention.len(), targets.len(), "one row per target piece");
        for row in attention {
            let row: Vec<f64> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_f64().unwrap())
                .collect();
            assert_eq!(row.len(), sources, "one column per source piece");
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        }
        let score = json["score"].as_f64().unwrap();
        let log_prob = json["log_prob"].as_f64().unwrap();
        assert!(
            (score - log_prob / targets.len() as f64).abs() < 1e-9,
            "alpha 1"
        );
    }
}

#[test]
fn eval_reports_the_bleu_of_the_translations_it_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tr");
    make_translation_artifact(&dir, Some(AlignmentKind::General));
    let file = tmp.path().join("pairs.tsv");
    let pairs = [
        ("open the file", "ouvrir le fichier"),
        ("close the file", "fermer le fichier"),
        ("save the window as", "enregistrer la fenêtre sous"),
    ];
    let tsv: String = pairs.iter().map(|(s, t)| format!("{s}\t{t}\n")).collect();
    std::fs::write(&file, tsv).unwrap();
    let sources: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let plain = ok(&translate(&dir, &sources, None));
    let hypotheses: Vec<&str> = plain.lines().collect();
    let references: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    let expected = corpus_bleu(&hypotheses, &references);

    let out = ok(&translate(&dir, &["--eval", file.to_str().unwrap()], None));
    assert!(out.contains(&expected.summary()), "{out}");
    assert!(out.contains(Bleu::SIGNATURE), "{out}");
    let json = ok(&translate(
        &dir,
        &["--json", "--eval", file.to_str().unwrap()],
        None,
    ));
    let json: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(json["sentences"], 3);
    assert!((json["bleu"].as_f64().unwrap() - expected.score).abs() < 1e-9);

    std::fs::write(&file, "open the file\touvrir le fichier\nno tab\n").unwrap();
    let out = translate(&dir, &["--eval", file.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("pairs.tsv:2: no tab"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plot_draws_one_cell_per_source_and_target_piece() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tr");
    make_translation_artifact(&dir, Some(AlignmentKind::Dot));
    let png = tmp.path().join("align.png");
    let out = translate(
        &dir,
        &["--plot", png.to_str().unwrap(), "open the window"],
        None,
    );
    if !Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").exists() {
        assert!(
            text(&out.stderr).contains("fonts-dejavu-core"),
            "{}",
            text(&out.stderr)
        );
        eprintln!("SKIPPED: no DejaVu font to draw the alignment's labels");
        return;
    }
    ok(&out);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // The IHDR chunk: width and height grow with the pieces.
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    let json = ok(&translate(&dir, &["--json", "open the window"], None));
    let json: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let sources = json["source_tokens"].as_array().unwrap().len() as u32;
    let targets = json["target_tokens"].as_array().unwrap().len() as u32;
    assert!(
        width >= 36 * sources && height >= 36 * targets,
        "{width}×{height}"
    );

    let out = translate(&dir, &["--plot", png.to_str().unwrap(), "one", "two"], None);
    assert!(
        text(&out.stderr).contains("exactly one sentence"),
        "{}",
        text(&out.stderr)
    );
    let none = tmp.path().join("none");
    make_translation_artifact(&none, None);
    let out = translate(&none, &["--plot", png.to_str().unwrap(), "open"], None);
    assert!(
        text(&out.stderr).contains("has no attention"),
        "{}",
        text(&out.stderr)
    );
    let transformer = tmp.path().join("transformer");
    make_transformer_artifact(&transformer);
    let out = translate(
        &transformer,
        &["--plot", png.to_str().unwrap(), "open"],
        None,
    );
    assert!(
        text(&out.stderr).contains("is a Transformer"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_transformer_artifact_translates_greedily_and_with_a_beam() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("transformer");
    make_transformer_artifact(&dir);
    let greedy = ok(&translate(
        &dir,
        &["--beam", "1", "open the file", "", "close it"],
        None,
    ));
    assert_eq!(greedy.lines().count(), 3, "{greedy}");
    let json = ok(&translate(
        &dir,
        &["--json", "--beam", "4", "save the file as"],
        None,
    ));
    let json: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(json["attention"].as_array().unwrap().len(), 0);
    assert_eq!(
        json["target_tokens"].as_array().unwrap().last().unwrap(),
        "[EOS]"
    );
    // A config written before the architecture was recorded is the LSTM's.
    let lstm = tmp.path().join("lstm");
    make_translation_artifact(&lstm, Some(AlignmentKind::Bahdanau));
    let before = ok(&translate(&lstm, &["--json", "open the file"], None));
    let config = lstm.join("config.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(value["model"]["arch"], "lstm");
    value["model"].as_object_mut().unwrap().remove("arch");
    std::fs::write(&config, value.to_string()).unwrap();
    assert_eq!(
        ok(&translate(&lstm, &["--json", "open the file"], None)),
        before
    );
}

#[test]
fn other_artifacts_and_bad_options_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let classifier = tmp.path().join("mr");
    make_artifact(&classifier);
    let out = translate(&classifier, &["open"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is a classifier artifact"),
        "{}",
        text(&out.stderr)
    );
    let dir = tmp.path().join("tr");
    make_translation_artifact(&dir, None);
    let out = translate(&dir, &["--beam", "0", "open"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--beam"),
        "{}",
        text(&out.stderr)
    );
    // The model without attention translates, with no matrix.
    let json = ok(&translate(&dir, &["--json", "open the file"], None));
    let json: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(json["attention"].as_array().unwrap().len(), 0);
    // A config that does not match the tokenizer is refused, naming both.
    let config = dir.join("config.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    value["model"]["target_vocab"] = serde_json::json!(7);
    std::fs::write(&config, value.to_string()).unwrap();
    let out = translate(&dir, &["open"], None);
    assert!(
        text(&out.stderr).contains("target_tokenizer.json has")
            && text(&out.stderr).contains("model.target_vocab = 7"),
        "{}",
        text(&out.stderr)
    );
}
