//! The training data loader: each epoch's order and each epoch's random
//! stream are functions of the seed and the epoch number alone.
//!
//! burn's own loader keeps one shuffling RNG for the whole run and the
//! backend's RNG (dropout) runs on from the model's initialization, so epoch
//! 5 of a run depends on everything drawn in epochs 1–4: a run resumed at
//! epoch 5 would see another order and other dropout masks. Here epoch `e`
//! shuffles with `ChaCha8(seed ⊕ e)` and reseeds the backend with the same
//! derived seed when its first batch is drawn, so a resumed run continues
//! exactly as the uninterrupted one would have.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::tensor::backend::Backend;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Items in batches of `batch_size`, shuffled per epoch or in order.
pub struct EpochLoader<B: Backend, I, O> {
    items: Arc<Vec<I>>,
    batcher: Arc<dyn Batcher<B, I, O>>,
    batch_size: usize,
    /// Shuffle every epoch (else the order of `items`).
    shuffle: bool,
    seed: u64,
    device: B::Device,
    /// Epochs started so far; the next `iter` is epoch `epochs + 1`.
    epochs: Arc<AtomicUsize>,
}

impl<B: Backend, I, O> EpochLoader<B, I, O>
where
    I: Clone + Send + Sync + 'static,
    O: 'static,
{
    /// A loader whose next epoch is `done + 1` (0 for a new run).
    pub fn new(
        items: Vec<I>,
        batcher: impl Batcher<B, I, O> + 'static,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
        done: usize,
        device: &B::Device,
    ) -> Self {
        Self {
            items: Arc::new(items),
            batcher: Arc::new(batcher),
            batch_size: batch_size.max(1),
            shuffle,
            seed,
            device: device.clone(),
            epochs: Arc::new(AtomicUsize::new(done)),
        }
    }

    fn with_device(&self, device: &B::Device) -> Self {
        Self {
            items: self.items.clone(),
            batcher: self.batcher.clone(),
            batch_size: self.batch_size,
            shuffle: self.shuffle,
            seed: self.seed,
            device: device.clone(),
            epochs: self.epochs.clone(),
        }
    }
}

/// The seed of epoch `epoch` (1-based) of a run seeded with `seed`: a
/// SplitMix64 step, so that nearby seeds and epochs give unrelated streams.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<B: Backend, I, O> DataLoader<B, O> for EpochLoader<B, I, O>
where
    I: Clone + Send + Sync + 'static,
    O: 'static,
{
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<O> + 'a> {
        let epoch = self.epochs.fetch_add(1, Ordering::SeqCst) + 1;
        let seed = epoch_seed(self.seed, epoch);
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        if self.shuffle {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
        // Dropout and every other random draw of this epoch.
        B::seed(&self.device, seed);
        Box::new(EpochIter {
            loader: self,
            order,
            next: 0,
        })
    }

    fn num_items(&self) -> usize {
        self.items.len()
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, O>> {
        Arc::new(self.with_device(device))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, O>> {
        let mut part = self.with_device(&self.device);
        part.items = Arc::new(self.items[start..end.min(self.items.len())].to_vec());
        part.epochs = Arc::new(AtomicUsize::new(self.epochs.load(Ordering::SeqCst)));
        Arc::new(part)
    }
}

struct EpochIter<'a, B: Backend, I, O> {
    loader: &'a EpochLoader<B, I, O>,
    order: Vec<usize>,
    next: usize,
}

impl<B: Backend, I: Clone, O> Iterator for EpochIter<'_, B, I, O> {
    type Item = O;

    fn next(&mut self) -> Option<O> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.loader.batch_size).min(self.order.len());
        let items = self.order[self.next..end]
            .iter()
            .map(|&i| self.loader.items[i].clone())
            .collect();
        self.next = end;
        Some(self.loader.batcher.batch(items, &self.loader.device))
    }
}

impl<B: Backend, I: Clone, O> DataLoaderIterator<O> for EpochIter<'_, B, I, O> {
    fn progress(&self) -> Progress {
        Progress::new(self.next, self.order.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[derive(Clone)]
    struct Ids;
    impl Batcher<NdArray, usize, Vec<usize>> for Ids {
        fn batch(&self, items: Vec<usize>, _: &burn::tensor::Device<NdArray>) -> Vec<usize> {
            items
        }
    }

    /// The batches of `count` epochs of a run that had done `done` epochs.
    fn epochs(done: usize, count: usize) -> Vec<Vec<Vec<usize>>> {
        let device = Default::default();
        let loader = EpochLoader::new((0..10).collect(), Ids, 4, true, 7, done, &device);
        // As burn-train uses it: moved to the device first.
        let loader = loader.to_device(&device);
        (0..count).map(|_| loader.iter().collect()).collect()
    }

    #[test]
    fn an_epoch_is_the_same_whether_or_not_the_run_was_resumed_before_it() {
        let straight = epochs(0, 3);
        let resumed = epochs(2, 1);
        assert_eq!(straight[2], resumed[0]);
        // Every item once per epoch, in batches of 4, and another order next epoch.
        let mut seen: Vec<usize> = straight[0].concat();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(
            straight[0].iter().map(Vec::len).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        assert_ne!(straight[0], straight[1]);
    }
}
