//! Decoding a [`Translator`]: greedy search and beam search, both over a
//! batch of source sentences at once.
//!
//! Greedy search takes the most likely token at every step. Beam search
//! keeps the `beam` best partial translations of every sentence: at each
//! step every live hypothesis is extended by every token, and the best
//! `beam` extensions by total log-probability live on (Sutskever et al.
//! 2014; Bahdanau et al. 2015 used a beam of 12). Following fairseq, an
//! extension ending in the end token among the best `beam` is finished; the
//! search of a sentence stops when `beam` hypotheses have finished or at
//! `max_len` tokens. Finished hypotheses are ranked by their log-probability
//! divided by `length^alpha` (length normalization): without it, every extra
//! token lowers a score, so the search favours short translations.
//!
//! Both run on any backend; the choice of tokens happens on the host, one
//! `[N, V]` read per step.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::Seq2Seq;

/// A translation of one source sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// The target ids, without the start and end tokens.
    pub tokens: Vec<u32>,
    /// Sum of the log-probabilities of the tokens and of the end token.
    pub log_prob: f64,
    /// What the search ranked by: `log_prob / length^alpha`, the length
    /// counting the end token.
    pub score: f64,
    /// The attention weights of every step over the real source positions,
    /// one row per token of `tokens` and one for the end token (empty rows
    /// without attention).
    pub attention: Vec<Vec<f32>>,
    /// The search reached `max_len` and ended the translation there, with
    /// the end token's probability at that step.
    pub truncated: bool,
}

/// How to search.
#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    /// 1 is greedy search.
    pub beam: usize,
    /// At most this many target tokens, the end token not counted.
    pub max_len: usize,
    /// Length normalization's exponent (0 = none, 1 = mean log-probability).
    pub alpha: f64,
    pub bos: u32,
    pub eos: u32,
}

/// A hypothesis while the search runs (empty before the first step).
#[derive(Clone, Default)]
struct Live {
    tokens: Vec<u32>,
    log_prob: f64,
    attention: Vec<Vec<f32>>,
}

impl Live {
    /// The hypothesis ended by the end token (already in `log_prob`).
    fn finish(self, alpha: f64, truncated: bool) -> Hypothesis {
        let length = self.tokens.len() + 1;
        Hypothesis {
            score: self.log_prob / (length as f64).powf(alpha),
            tokens: self.tokens,
            log_prob: self.log_prob,
            attention: self.attention,
            truncated,
        }
    }
}

/// Translates the sources `[B, S]` (right-padded, `mask` true at real
/// tokens): greedy when `options.beam` is 1 (one argmax per step for the
/// whole batch), beam search otherwise.
pub fn translate<B: Backend, M: Seq2Seq<B>>(
    model: &M,
    source: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Bool>,
    options: &SearchOptions,
) -> Vec<Hypothesis> {
    assert!(options.beam >= 1, "a beam of at least 1");
    let lengths: Vec<usize> = mask
        .clone()
        .int()
        .sum_dim(1)
        .into_data()
        .convert::<i64>()
        .iter::<i64>()
        .map(|n| n as usize)
        .collect();
    let encoded = model.encode(source, mask);
    if options.beam == 1 {
        greedy(model, &encoded, &lengths, options)
    } else {
        beam_search(model, &encoded, &lengths, options)
    }
}

/// The log-probabilities `[N, V]` and attention weights `[N, S]` of one
/// step, read to the host.
fn host_rows<B: Backend>(
    log_probs: Tensor<B, 2>,
    weights: Option<Tensor<B, 2>>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    (
        log_probs.into_data().convert::<f32>().to_vec().unwrap(),
        weights.map(|w| w.into_data().convert::<f32>().to_vec().unwrap()),
    )
}

fn greedy<B: Backend, M: Seq2Seq<B>>(
    model: &M,
    encoded: &M::Encoded,
    lengths: &[usize],
    options: &SearchOptions,
) -> Vec<Hypothesis> {
    let batch = lengths.len();
    let mask = M::source_mask(encoded);
    let [_, positions] = mask.dims();
    let device = mask.device();
    let mut state = model.start(encoded);
    let mut previous = vec![options.bos; batch];
    let mut live: Vec<Live> = vec![Live::default(); batch];
    let mut done: Vec<Option<Hypothesis>> = vec![None; batch];
    for step in 0..=options.max_len {
        let ids: Vec<i64> = previous.iter().map(|&t| t as i64).collect();
        let tokens = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [batch]), &device);
        let (logits, weights, next) = model.step(encoded, tokens, state);
        state = next;
        let (log_probs, weights) = host_rows(log_softmax(logits, 1), weights);
        let vocab = log_probs.len() / batch;
        for (i, slot) in done.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            let row = &log_probs[i * vocab..(i + 1) * vocab];
            // At max_len only the end token may still come.
            let best = if step == options.max_len {
                options.eos as usize
            } else {
                argmax(row)
            };
            let hyp = &mut live[i];
            hyp.log_prob += row[best] as f64;
            hyp.attention.push(match &weights {
                Some(w) => w[i * positions..i * positions + lengths[i]].to_vec(),
                None => Vec::new(),
            });
            if best as u32 == options.eos {
                *slot = Some(std::mem::take(hyp).finish(options.alpha, step == options.max_len));
            } else {
                hyp.tokens.push(best as u32);
                previous[i] = best as u32;
            }
        }
        if done.iter().all(Option::is_some) {
            break;
        }
    }
    done.into_iter()
        .map(|h| h.expect("every sentence ends at max_len"))
        .collect()
}

/// The index of the largest value (the first of equals).
fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

fn beam_search<B: Backend, M: Seq2Seq<B>>(
    model: &M,
    encoded: &M::Encoded,
    lengths: &[usize],
    options: &SearchOptions,
) -> Vec<Hypothesis> {
    let k = options.beam;
    let batch = lengths.len();
    let mask = M::source_mask(encoded);
    let [_, positions] = mask.dims();
    let device = mask.device();
    let rows = |indices: &[usize]| {
        let ids: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [indices.len()]), &device)
    };

    // Each sentence starts with one live hypothesis; `owner[r]` is the
    // sentence of row r of the decoder's batch.
    let mut live: Vec<Vec<Live>> = vec![vec![Live::default()]; batch];
    let mut finished: Vec<Vec<Hypothesis>> = vec![Vec::new(); batch];
    let mut owner: Vec<usize> = (0..batch).collect();
    let mut sources = encoded.clone();
    let mut state = model.start(encoded);
    for step in 0..=options.max_len {
        let previous: Vec<i64> = live
            .iter()
            .flatten()
            .map(|h| *h.tokens.last().unwrap_or(&options.bos) as i64)
            .collect();
        let n = previous.len();
        let tokens = Tensor::<B, 1, Int>::from_data(TensorData::new(previous, [n]), &device);
        let (logits, weights, next) = model.step(&sources, tokens, state);
        let (log_probs, weights) = host_rows(log_softmax(logits, 1), weights);
        let vocab = log_probs.len() / n;

        // The best extensions of each sentence's hypotheses.
        let mut parents = Vec::new();
        let mut next_live: Vec<Vec<Live>> = vec![Vec::new(); batch];
        let mut row = 0;
        for (sentence, hyps) in live.iter().enumerate() {
            let first_row = row;
            let parents_before = parents.len();
            row += hyps.len();
            if hyps.is_empty() {
                continue;
            }
            let mut candidates: Vec<(f64, usize, usize)> = Vec::with_capacity(hyps.len() * vocab);
            for (h, hyp) in hyps.iter().enumerate() {
                let r = first_row + h;
                let scores = &log_probs[r * vocab..(r + 1) * vocab];
                if step == options.max_len {
                    // Out of room: only the end token may still come.
                    let eos = options.eos as usize;
                    candidates.push((hyp.log_prob + scores[eos] as f64, h, eos));
                } else {
                    candidates.extend(
                        scores
                            .iter()
                            .enumerate()
                            .map(|(t, &lp)| (hyp.log_prob + lp as f64, h, t)),
                    );
                }
            }
            // The 2k best are enough to leave k live after the finished ones.
            let keep = (2 * k).min(candidates.len());
            candidates.select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0));
            candidates.truncate(keep);
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            for (rank, &(log_prob, h, token)) in candidates.iter().enumerate() {
                let r = first_row + h;
                let mut hyp = hyps[h].clone();
                hyp.log_prob = log_prob;
                hyp.attention.push(match &weights {
                    Some(w) => w[r * positions..r * positions + lengths[sentence]].to_vec(),
                    None => Vec::new(),
                });
                if token as u32 == options.eos {
                    if rank < k {
                        finished[sentence].push(hyp.finish(options.alpha, step == options.max_len));
                    }
                } else if next_live[sentence].len() < k {
                    hyp.tokens.push(token as u32);
                    next_live[sentence].push(hyp);
                    parents.push(r);
                }
            }
            if finished[sentence].len() >= k {
                next_live[sentence].clear();
                parents.truncate(parents_before);
            }
        }
        live = next_live;
        if parents.is_empty() {
            break;
        }
        let parent_rows = rows(&parents);
        owner = parents.iter().map(|&p| owner[p]).collect();
        sources = M::select_encoded(encoded, rows(&owner));
        state = M::select_state(&next, parent_rows);
    }
    // At max_len every live hypothesis took the end token: all are finished.
    finished
        .into_iter()
        .map(|done| {
            done.into_iter()
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .expect("every sentence has a hypothesis")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlignmentKind, Translator, TranslatorConfig};
    use burn::backend::NdArray;

    type B = NdArray;

    use crate::test_util::padded as sources;

    fn options(beam: usize) -> SearchOptions {
        SearchOptions {
            beam,
            max_len: 8,
            alpha: 1.0,
            bos: 2,
            eos: 3,
        }
    }

    const ROWS: [&[i64]; 3] = [&[5, 6, 7, 8, 9], &[10, 11], &[12, 13, 14]];

    /// A random model, so that the searches have real choices to make.
    fn model(kind: Option<AlignmentKind>) -> Translator<B> {
        TranslatorConfig::new(16, 12)
            .with_d_embed(8)
            .with_d_hidden(6)
            .with_dropout(0.0)
            .with_attention(kind)
            .init(&Default::default())
    }

    #[test]
    fn a_beam_of_one_is_greedy_search() {
        for kind in [
            Some(AlignmentKind::Bahdanau),
            Some(AlignmentKind::General),
            None,
        ] {
            let model = model(kind);
            let (ids, mask) = sources(&ROWS);
            let greedy = translate(&model, ids.clone(), mask.clone(), &options(1));
            // Beam search's own code, with k = 1.
            let lengths = [5, 2, 3];
            let encoded = model.encode(ids, mask);
            let beam = beam_search(&model, &encoded, &lengths, &options(1));
            for (g, b) in greedy.iter().zip(&beam) {
                assert_eq!(g.tokens, b.tokens, "{kind:?}");
                assert!((g.log_prob - b.log_prob).abs() < 1e-9);
                assert_eq!(g.truncated, b.truncated);
                assert_eq!(g.attention, b.attention);
            }
        }
    }

    #[test]
    fn a_sentence_decodes_the_same_alone_and_in_a_padded_batch() {
        let model = model(Some(AlignmentKind::Bahdanau));
        for beam in [1, 4] {
            let (ids, mask) = sources(&ROWS);
            let together = translate(&model, ids, mask, &options(beam));
            for (row, expected) in ROWS.iter().zip(&together) {
                let (ids, mask) = sources(&[row]);
                let alone = translate(&model, ids, mask, &options(beam));
                assert_eq!(alone[0].tokens, expected.tokens, "beam {beam}");
                assert!((alone[0].log_prob - expected.log_prob).abs() < 1e-4);
                // One attention row per step, over the sentence's own tokens.
                assert_eq!(expected.attention.len(), expected.tokens.len() + 1);
                for weights in &expected.attention {
                    assert_eq!(weights.len(), row.len());
                    assert!((weights.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                }
            }
        }
    }

    /// With a beam wider than every sequence of up to `max_len` tokens,
    /// beam search is exhaustive: it must return the sequence whose
    /// normalized score, computed here by teacher forcing, is the best.
    #[test]
    fn a_beam_wide_enough_to_keep_everything_finds_the_best_normalized_score() {
        let model = model(Some(AlignmentKind::Dot));
        let (vocab, eos, bos) = (12i64, 3i64, 2i64);
        let search = SearchOptions {
            beam: 200,
            max_len: 2,
            ..options(1)
        };
        for row in ROWS {
            let (ids, mask) = sources(&[row]);
            let found = translate(&model, ids.clone(), mask.clone(), &search).remove(0);
            let mut sequences: Vec<Vec<i64>> = vec![vec![]];
            for a in (0..vocab).filter(|&t| t != eos) {
                sequences.push(vec![a]);
                for b in (0..vocab).filter(|&t| t != eos) {
                    sequences.push(vec![a, b]);
                }
            }
            let score = |tokens: &[i64]| {
                let inputs: Vec<i64> = std::iter::once(bos).chain(tokens.iter().copied()).collect();
                let outputs: Vec<i64> =
                    tokens.iter().copied().chain(std::iter::once(eos)).collect();
                let n = inputs.len();
                let target = Tensor::<B, 2, Int>::from_data(
                    TensorData::new(inputs, [1, n]),
                    &Default::default(),
                );
                let logits = model
                    .forward(ids.clone(), mask.clone(), target)
                    .logits
                    .reshape([n, vocab as usize]);
                let lp = log_softmax(logits, 1).into_data().to_vec::<f32>().unwrap();
                let total: f64 = outputs
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| lp[i * vocab as usize + t as usize] as f64)
                    .sum();
                total / n as f64
            };
            let (best, best_score) = sequences
                .iter()
                .map(|s| (s, score(s)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            let found_tokens: Vec<i64> = found.tokens.iter().map(|&t| t as i64).collect();
            assert_eq!(&found_tokens, best, "{row:?}");
            assert!(
                (found.score - best_score).abs() < 1e-4,
                "{} vs {best_score}",
                found.score
            );
        }
    }

    #[test]
    fn the_transformer_is_searched_the_same_way() {
        let model = crate::TransformerTranslatorConfig::new(16, 12)
            .with_d_model(8)
            .with_d_ff(16)
            .with_n_heads(2)
            .with_n_layers(1)
            .with_dropout(0.0)
            .init::<B>(&Default::default());
        let (ids, mask) = sources(&ROWS);
        let greedy = translate(&model, ids.clone(), mask.clone(), &options(1));
        let encoded = model.encode(ids.clone(), mask.clone());
        let beam = beam_search(&model, &encoded, &[5, 2, 3], &options(1));
        let wide = translate(&model, ids, mask, &options(4));
        for (i, row) in ROWS.iter().enumerate() {
            assert_eq!(greedy[i].tokens, beam[i].tokens);
            assert!((greedy[i].log_prob - beam[i].log_prob).abs() < 1e-6);
            // No single alignment to show: empty rows, one per step.
            assert!(greedy[i].attention.iter().all(Vec::is_empty));
            let (ids, mask) = sources(&[row]);
            let alone = translate(&model, ids, mask, &options(4));
            assert_eq!(alone[0].tokens, wide[i].tokens);
            assert!((alone[0].log_prob - wide[i].log_prob).abs() < 1e-4);
        }
    }
}
