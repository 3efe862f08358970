//! Length bucketing: batches of sequences of about the same length, so that
//! padding each batch to its longest sequence wastes few positions.
//!
//! A batch of randomly drawn sentences is padded to the longest of them; on
//! MR that is about twice the average length, so about half of what the LSTM
//! computes is padding. Here the examples are shuffled, cut into pools of
//! [`POOL_BATCHES`] batches, each pool is sorted by length and cut into
//! batches, and the batches are shuffled: batches stay random in order and
//! in which pool they came from, but each holds similar lengths.

use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// How many batches' worth of examples are sorted together.
pub const POOL_BATCHES: usize = 50;

/// Groups `items` into batches of `batch_size` (the last may be smaller) of
/// similar `length`, in a shuffled order drawn from `seed`.
pub fn bucket_by_length<T>(
    mut items: Vec<T>,
    length: impl Fn(&T) -> usize,
    batch_size: usize,
    seed: u64,
) -> Vec<Vec<T>> {
    assert!(batch_size > 0, "batch_size must be at least 1");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    items.shuffle(&mut rng);
    let mut batches = Vec::with_capacity(items.len().div_ceil(batch_size));
    let mut rest = items.into_iter().peekable();
    while rest.peek().is_some() {
        let mut pool: Vec<T> = rest.by_ref().take(batch_size * POOL_BATCHES).collect();
        pool.sort_by_key(|item| length(item));
        let mut pool = pool.into_iter().peekable();
        while pool.peek().is_some() {
            batches.push(pool.by_ref().take(batch_size).collect());
        }
    }
    batches.shuffle(&mut rng);
    batches
}

/// Padded positions (batch × its longest sequence) over `batches`.
pub fn padded_positions<T>(batches: &[Vec<T>], length: impl Fn(&T) -> usize) -> usize {
    batches
        .iter()
        .map(|batch| batch.len() * batch.iter().map(&length).max().unwrap_or(0))
        .sum()
}

/// A batcher over whole pre-formed batches: a data loader with batch size 1
/// over the output of [`bucket_by_length`] hands it one group at a time.
#[derive(Debug, Clone)]
pub struct Bucketed<Bt>(pub Bt);

impl<B: Backend, I, O, Bt: Batcher<B, I, O>> Batcher<B, Vec<I>, O> for Bucketed<Bt> {
    fn batch(&self, groups: Vec<Vec<I>>, device: &B::Device) -> O {
        self.0.batch(groups.into_iter().flatten().collect(), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(n: usize) -> Vec<usize> {
        // Lengths 1..=40 in a scrambled order.
        (0..n).map(|i| (i * 7919) % 40 + 1).collect()
    }

    #[test]
    fn every_item_lands_in_exactly_one_batch_of_the_right_size() {
        let batches = bucket_by_length((0..1003).collect(), |i| *i % 17, 32, 7);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..1003).collect::<Vec<_>>());
        let short: Vec<usize> = batches.iter().map(Vec::len).filter(|&n| n != 32).collect();
        // 1003 = 32 · 31 + 11: one pool of 50 batches is not full, so one batch is short.
        assert_eq!(short, vec![11]);
    }

    #[test]
    fn bucketing_pads_far_less_than_random_batches() {
        let items = lengths(3200);
        let by_length = bucket_by_length(items.clone(), |l| *l, 32, 1);
        let mut shuffled = items.clone();
        shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(1));
        let random: Vec<Vec<usize>> = shuffled.chunks(32).map(<[usize]>::to_vec).collect();
        let real: usize = items.iter().sum();
        let (bucketed, unsorted) = (
            padded_positions(&by_length, |l| *l),
            padded_positions(&random, |l| *l),
        );
        // Uniform lengths 1..=40 average 20.5, and a random batch of 32 pads
        // to about 40: about half is padding. Sorted pools leave almost none.
        assert!(unsorted as f64 > 1.8 * real as f64, "{unsorted} vs {real}");
        assert!(
            (bucketed as f64) < 1.05 * real as f64,
            "{bucketed} vs {real}"
        );
    }

    #[test]
    fn the_order_of_batches_depends_on_the_seed_and_only_on_it() {
        let a = bucket_by_length(lengths(640), |l| *l, 32, 3);
        let b = bucket_by_length(lengths(640), |l| *l, 32, 3);
        let c = bucket_by_length(lengths(640), |l| *l, 32, 4);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
