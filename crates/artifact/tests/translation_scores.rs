//! BLEU and chrF against the figures sacreBLEU 2.6.0 printed for the same
//! files (tests/sacrebleu/README.md has the command).

use artifact::bleu::corpus_bleu;
use artifact::chrf::corpus_chrf;
use std::path::Path;

fn lines(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sacrebleu")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// sacreBLEU's (score, verbose line) for BLEU and its chrF score.
fn sacrebleu(name: &str) -> (f64, String, f64) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sacrebleu")
        .join(name);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    (
        json[0]["score"].as_f64().unwrap(),
        json[0]["verbose_score"].as_str().unwrap().to_string(),
        json[1]["score"].as_f64().unwrap(),
    )
}

#[test]
fn bleu_and_chrf_equal_sacrebleus() {
    let references = lines("refs.fr");
    for system in ["copy", "noisy"] {
        let hypotheses = lines(&format!("{system}.hyp"));
        let (bleu, verbose, chrf) = sacrebleu(&format!("{system}.json"));
        let ours = corpus_bleu(&hypotheses, &references);
        // sacreBLEU printed six decimals.
        assert!(
            (ours.score - bleu).abs() < 1e-6,
            "{system}: BLEU {} vs {bleu}",
            ours.score
        );
        assert!(
            ours.summary().ends_with(&verbose),
            "{system}: {}\nvs {verbose}",
            ours.summary()
        );
        let ours = corpus_chrf(&hypotheses, &references);
        assert!(
            (ours - chrf).abs() < 1e-6,
            "{system}: chrF {ours} vs {chrf}"
        );
    }
}
