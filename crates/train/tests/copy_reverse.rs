//! The classic sanity tasks of sequence-to-sequence models: a small LSTM
//! encoder–decoder with Bahdanau attention learns to copy a sequence of
//! symbols, and to reverse one, from random sequences, then gets sequences
//! it never saw exactly right with greedy decoding. Trained with the same
//! loss as `train translate` (`TranslateStep`, real target tokens only).

use burn::backend::{Autodiff, NdArray};
use burn::data::dataloader::batcher::Batcher;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use data::{BOS_ID, EOS_ID, EncodedPair, PairBatcher};
use model::{SearchOptions, Seq2SeqModel, TranslatorConfig, translate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use train::translate::TranslateStep;

type A = Autodiff<NdArray>;

/// Symbols 4..14 (ids 0–3 are the special tokens).
const SYMBOLS: std::ops::Range<u32> = 4..14;

fn random_sequence(rng: &mut ChaCha8Rng) -> Vec<u32> {
    let length = rng.random_range(3..=6);
    (0..length).map(|_| rng.random_range(SYMBOLS)).collect()
}

/// Trains on `task`'s pairs of fresh random sequences, then decodes 20
/// sequences that never appeared in training and returns how many came out
/// exactly right.
fn learn(task: fn(&[u32]) -> Vec<u32>) -> (usize, usize) {
    let device = Default::default();
    <A as burn::tensor::backend::Backend>::seed(&device, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let vocab = SYMBOLS.end as usize;
    let mut step = TranslateStep {
        model: Seq2SeqModel::Lstm(
            TranslatorConfig::new(vocab, vocab)
                .with_d_embed(32)
                .with_d_hidden(64)
                .with_dropout(0.0)
                .init::<A>(&device),
        ),
    };
    let mut optimizer = AdamConfig::new().init::<A, TranslateStep<A>>();
    let batcher = PairBatcher::new(16, 16);
    let mut seen = HashSet::new();
    for _ in 0..400 {
        let pairs: Vec<EncodedPair> = (0..32)
            .map(|_| {
                let source = random_sequence(&mut rng);
                seen.insert(source.clone());
                EncodedPair {
                    target: task(&source),
                    source,
                }
            })
            .collect();
        let batch = batcher.batch(pairs, &device);
        let loss = step.forward_batch(batch).loss;
        let grads = GradientsParams::from_grads(loss.backward(), &step);
        step = optimizer.step(5e-3, step, grads);
    }

    let model = step.valid().model;
    let held_out: Vec<Vec<u32>> = std::iter::repeat_with(|| random_sequence(&mut rng))
        .filter(|s| !seen.contains(s))
        .take(20)
        .collect();
    let sources: Vec<&[u32]> = held_out.iter().map(Vec::as_slice).collect();
    let (source, mask) = batcher.sources(&sources, &device);
    let options = SearchOptions {
        beam: 1,
        max_len: 12,
        alpha: 0.0,
        bos: BOS_ID,
        eos: EOS_ID,
    };
    let hypotheses = translate(&model, source, mask, &options);
    let right = held_out
        .iter()
        .zip(&hypotheses)
        .filter(|(s, h)| h.tokens == task(s))
        .count();
    (right, held_out.len())
}

#[test]
fn a_small_attention_model_learns_to_copy() {
    let (right, all) = learn(|s| s.to_vec());
    assert!(
        right == all,
        "{right} of {all} held-out sequences copied exactly"
    );
}

#[test]
fn a_small_attention_model_learns_to_reverse() {
    let (right, all) = learn(|s| s.iter().rev().copied().collect());
    assert!(
        right == all,
        "{right} of {all} held-out sequences reversed exactly"
    );
}
