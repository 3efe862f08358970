//! `train translate` end to end, on a small synthetic corpus with French
//! word order (`I see two red cars` → `je vois deux voitures rouges`: the adjective moves
//! behind the noun, and the plural is marked on both): a small attention
//! model learns it and translates held-out phrases, its artifact loads and
//! reproduces the BLEU its metrics report, and bad data gets a clear error.

use artifact::{TranslationModel, TranslatorMetrics};
use burn::backend::NdArray;
use std::path::Path;

mod common;
use common::{check, stderr, train};

const NUMBERS: [(&str, &str); 4] = [
    ("one", "un"),
    ("two", "deux"),
    ("three", "trois"),
    ("four", "quatre"),
];
const COLOURS: [(&str, &str); 5] = [
    ("red", "rouge"),
    ("green", "vert"),
    ("black", "noir"),
    ("grey", "gris"),
    ("brown", "brun"),
];
const NOUNS: [(&str, &str); 5] = [
    ("car", "voiture"),
    ("dog", "chien"),
    ("house", "maison"),
    ("book", "livre"),
    ("tree", "arbre"),
];

/// Every phrase and its translation, in a fixed scrambled order.
fn phrases() -> Vec<(String, String)> {
    let mut all = Vec::new();
    for (n, (en_n, fr_n)) in NUMBERS.iter().enumerate() {
        for (en_c, fr_c) in COLOURS {
            for (en_noun, fr_noun) in NOUNS {
                let plural = n > 0;
                let s = if plural { "s" } else { "" };
                // "un" stays masculine: the grammar is a toy, the order is not.
                // Five words: BLEU counts 4-grams, and a corpus without
                // any scores 0 (as in sacreBLEU).
                all.push((
                    format!("I see {en_n} {en_c} {en_noun}{s}"),
                    format!("je vois {fr_n} {fr_noun}{s} {fr_c}{s}"),
                ));
            }
        }
    }
    // 100 phrases; 37 is coprime with 100.
    (0..all.len())
        .map(|i| all[(i * 37) % all.len()].clone())
        .collect()
}

fn write_split(dir: &Path, name: &str, pairs: &[(String, String)]) {
    let text: String = pairs.iter().map(|(s, t)| format!("{s}\t{t}\n")).collect();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn a_small_attention_model_learns_word_order_and_its_artifact_reproduces_its_bleu() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let all = phrases();
    write_split(&data, "train.tsv", &all[..84]);
    write_split(&data, "valid.tsv", &all[84..92]);
    write_split(&data, "test.tsv", &all[92..]);
    let artifact = tmp.path().join("tr");
    let out = train(&[
        "translate",
        "--data-dir",
        data.to_str().unwrap(),
        "--artifact-dir",
        artifact.to_str().unwrap(),
        "--vocab-size",
        "80",
        "--d-embed",
        "32",
        "--d-hidden",
        "32",
        "--dropout",
        "0",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--epochs",
        "30",
        "--patience",
        "0",
        "--minutes",
        "0",
    ]);
    check(&out);
    let metrics: TranslatorMetrics =
        serde_json::from_str(&std::fs::read_to_string(artifact.join("metrics.json")).unwrap())
            .unwrap();
    // Eight phrases it never saw, each a new combination of seen words.
    assert!(metrics.test_bleu > 80.0, "test BLEU {}", metrics.test_bleu);
    assert!(metrics.test_chrf > 90.0, "test chrF {}", metrics.test_chrf);

    // The artifact, loaded as `infer translate` loads it, translates the
    // test split to the same BLEU.
    let device = Default::default();
    let model = TranslationModel::<NdArray>::load(&artifact, &device).unwrap();
    let test = data::read_pairs(&data.join("test.tsv")).unwrap();
    let scores = train::translate::score(&model, &test, &device).unwrap();
    assert!((scores.bleu - metrics.test_bleu).abs() < 1e-9);
    // And a held-out phrase comes out in French order.
    let (source, target) = &all[95];
    let out = model
        .translate(&[source.as_str()], &model.search(5, 1.0), 1, &device)
        .unwrap();
    assert_eq!(&out[0].translation, target, "{source}");
}

#[test]
fn a_line_without_a_tab_is_named_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let all = phrases();
    write_split(&data, "train.tsv", &all[..20]);
    std::fs::write(
        data.join("valid.tsv"),
        "one red car\tun voiture rouge\njust english\n",
    )
    .unwrap();
    write_split(&data, "test.tsv", &all[20..25]);
    let artifact = tmp.path().join("tr");
    let out = train(&[
        "translate",
        "--data-dir",
        data.to_str().unwrap(),
        "--artifact-dir",
        artifact.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("valid.tsv:2: no tab: expected `source<TAB>target`"),
        "{err}"
    );
    assert!(!artifact.exists());
}
