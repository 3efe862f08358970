//! Corpus BLEU as sacreBLEU computes it by default (Post 2018, "A Call for
//! Clarity in Reporting BLEU Scores"): the `13a` tokenization of WMT's
//! mteval-v13a, n-grams of 1 to 4 words clipped by the reference counts and
//! summed over the corpus, the brevity penalty, and the `exp` smoothing of
//! a precision with no match. One reference per hypothesis.
//!
//! `tests/translation_scores.rs` checks the scores against sacreBLEU's own
//! output for committed files.

use regex::Regex;
use std::collections::HashMap;
use std::sync::LazyLock;

const MAX_ORDER: usize = 4;

/// A corpus BLEU score with the statistics behind it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bleu {
    /// 0 to 100.
    pub score: f64,
    /// Modified n-gram precisions for n = 1..4, in percent.
    pub precisions: [f64; MAX_ORDER],
    pub brevity_penalty: f64,
    /// Tokens of all hypotheses and of all references.
    pub hyp_len: usize,
    pub ref_len: usize,
}

impl Bleu {
    /// How sacreBLEU names this configuration (its version left out).
    pub const SIGNATURE: &'static str = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp";

    /// sacreBLEU's one-line summary: `BLEU = 59.86 98.1/74.0/62.0/53.0 (BP = …)`.
    pub fn summary(&self) -> String {
        format!(
            "BLEU = {:.2} {:.1}/{:.1}/{:.1}/{:.1} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            self.score,
            self.precisions[0],
            self.precisions[1],
            self.precisions[2],
            self.precisions[3],
            self.brevity_penalty,
            self.hyp_len as f64 / self.ref_len.max(1) as f64,
            self.hyp_len,
            self.ref_len
        )
    }
}

/// Corpus BLEU of `hypotheses` against one reference each.
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(hypotheses: &[H], references: &[R]) -> Bleu {
    assert_eq!(
        hypotheses.len(),
        references.len(),
        "one reference per hypothesis"
    );
    let mut correct = [0usize; MAX_ORDER];
    let mut total = [0usize; MAX_ORDER];
    let (mut hyp_len, mut ref_len) = (0, 0);
    for (hypothesis, reference) in hypotheses.iter().zip(references) {
        let hyp = tokenize_13a(hypothesis.as_ref().trim_end());
        let refs = tokenize_13a(reference.as_ref().trim_end());
        let hyp: Vec<&str> = hyp.split_whitespace().collect();
        let refs: Vec<&str> = refs.split_whitespace().collect();
        hyp_len += hyp.len();
        ref_len += refs.len();
        let reference_counts = ngram_counts(&refs);
        for (ngram, count) in ngram_counts(&hyp) {
            let n = ngram.len() - 1;
            total[n] += count;
            correct[n] += count.min(reference_counts.get(&ngram).copied().unwrap_or(0));
        }
    }
    score(correct, total, hyp_len, ref_len)
}

/// sacreBLEU's `compute_bleu` with `smooth_method = "exp"`.
fn score(
    correct: [usize; MAX_ORDER],
    total: [usize; MAX_ORDER],
    hyp_len: usize,
    ref_len: usize,
) -> Bleu {
    let brevity_penalty = if hyp_len >= ref_len {
        1.0
    } else if hyp_len > 0 {
        (1.0 - ref_len as f64 / hyp_len as f64).exp()
    } else {
        0.0
    };
    let mut precisions = [0.0; MAX_ORDER];
    let bleu = |score, precisions| Bleu {
        score,
        precisions,
        brevity_penalty,
        hyp_len,
        ref_len,
    };
    if correct.iter().all(|&c| c == 0) {
        return bleu(0.0, precisions);
    }
    let mut smooth = 1.0;
    for n in 0..MAX_ORDER {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    // A precision of 0 (an order with no n-gram at all) makes the score 0,
    // as sacreBLEU's log of 0 (-9999999999) does.
    let log_sum: f64 = precisions
        .iter()
        .map(|&p| if p == 0.0 { -9_999_999_999.0 } else { p.ln() })
        .sum();
    bleu(
        brevity_penalty * (log_sum / MAX_ORDER as f64).exp(),
        precisions,
    )
}

/// Every n-gram of 1 to 4 tokens, with its count.
fn ngram_counts<'a>(tokens: &[&'a str]) -> HashMap<Vec<&'a str>, usize> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_ORDER {
        for window in tokens.windows(n) {
            *counts.entry(window.to_vec()).or_insert(0) += 1;
        }
    }
    counts
}

/// The `13a` tokenization (sacreBLEU's `Tokenizer13a`, after mteval-v13a):
/// punctuation and symbols split from words, a period or comma split unless
/// it sits between digits, a dash split after a digit.
pub fn tokenize_13a(line: &str) -> String {
    static RULES: LazyLock<[(Regex, &str); 4]> = LazyLock::new(|| {
        let rule = |pattern: &str, replacement| (Regex::new(pattern).expect("valid"), replacement);
        [
            rule(r"([\{-~\[-` -&\(-\+:-@/])", " $1 "),
            rule(r"([^0-9])([\.,])", "$1 $2 "),
            rule(r"([\.,])([^0-9])", " $1 $2"),
            rule(r"([0-9])(-)", "$1 $2 "),
        ]
    });
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (pattern, replacement) in RULES.iter() {
        line = pattern.replace_all(&line, *replacement).into_owned();
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_as_mteval_13a() {
        assert_eq!(tokenize_13a("Hello, world."), "Hello , world .");
        assert_eq!(tokenize_13a("It costs 1,000.50 $"), "It costs 1,000.50 $");
        assert_eq!(
            tokenize_13a("pages 3-4 (see &quot;A&quot;)"),
            "pages 3 - 4 ( see \" A \" )"
        );
        // The apostrophe is not among 13a's symbols (sacreBLEU: "l'arbre").
        assert_eq!(tokenize_13a("l'arbre"), "l'arbre");
    }

    #[test]
    fn a_perfect_corpus_scores_100_and_an_empty_one_0() {
        let refs = ["the cat sat on the mat", "a dog barked twice today"];
        let perfect = corpus_bleu(&refs, &refs);
        assert!((perfect.score - 100.0).abs() < 1e-9, "{perfect:?}");
        let empty = corpus_bleu(&["", ""], &refs);
        assert_eq!(empty.score, 0.0);
        assert_eq!(empty.brevity_penalty, 0.0);
    }
}
