//! Corpus chrF as sacreBLEU computes it by default (Popović 2015): character
//! n-grams of 1 to 6 with whitespace removed, precision and recall of each
//! order summed over the corpus, averaged over the orders both sides have,
//! and combined as an F-score with β = 2 (recall counts twice). One
//! reference per hypothesis.

use std::collections::HashMap;

const ORDER: usize = 6;
const BETA: f64 = 2.0;

/// How sacreBLEU names this configuration (its version left out).
pub const CHRF_SIGNATURE: &str = "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no";

/// Corpus chrF2 of `hypotheses` against one reference each, 0 to 100.
pub fn corpus_chrf<H: AsRef<str>, R: AsRef<str>>(hypotheses: &[H], references: &[R]) -> f64 {
    assert_eq!(
        hypotheses.len(),
        references.len(),
        "one reference per hypothesis"
    );
    // [hypothesis n-grams, reference n-grams, matches] per order.
    let mut stats = [[0usize; 3]; ORDER];
    for (hypothesis, reference) in hypotheses.iter().zip(references) {
        let hyp: Vec<char> = hypothesis
            .as_ref()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let refs: Vec<char> = reference
            .as_ref()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        for n in 1..=ORDER {
            let reference_counts = counts(&refs, n);
            let hyp_counts = counts(&hyp, n);
            let reference_total: usize = reference_counts.values().sum();
            let mut hyp_total = 0;
            let mut matches = 0;
            for (gram, count) in hyp_counts {
                hyp_total += count;
                matches += count.min(reference_counts.get(gram).copied().unwrap_or(0));
            }
            // sacreBLEU counts no hypothesis n-grams where the reference has none.
            let stat = &mut stats[n - 1];
            stat[0] += if reference_counts.is_empty() {
                0
            } else {
                hyp_total
            };
            stat[1] += reference_total;
            stat[2] += matches;
        }
    }
    f_score(&stats)
}

fn counts(chars: &[char], n: usize) -> HashMap<&[char], usize> {
    let mut counts = HashMap::new();
    for gram in chars.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}

/// sacreBLEU's `_compute_f_score` without eps smoothing: the precisions and
/// recalls of the orders where both sides have n-grams, averaged, then F_β.
fn f_score(stats: &[[usize; 3]; ORDER]) -> f64 {
    let (mut precision, mut recall, mut orders) = (0.0, 0.0, 0);
    for &[hyp, reference, matches] in stats {
        if hyp > 0 && reference > 0 {
            precision += matches as f64 / hyp as f64;
            recall += matches as f64 / reference as f64;
            orders += 1;
        }
    }
    if orders == 0 {
        return 0.0;
    }
    let (precision, recall) = (precision / orders as f64, recall / orders as f64);
    let factor = BETA * BETA;
    if precision + recall == 0.0 {
        return 0.0;
    }
    100.0 * (1.0 + factor) * precision * recall / (factor * precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_scores_100_and_disjoint_text_0() {
        assert!((corpus_chrf(&["le chat"], &["le chat"]) - 100.0).abs() < 1e-9);
        assert_eq!(corpus_chrf(&["xyz"], &["abc"]), 0.0);
        // Whitespace does not count.
        assert!((corpus_chrf(&["lechat"], &["le chat"]) - 100.0).abs() < 1e-9);
    }
}
