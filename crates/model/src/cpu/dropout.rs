//! Dropout masks on plain memory (see [`crate::ElementDropout`]).
//!
//! Burn's CPU backends draw a Bernoulli mask one element at a time: a
//! 64-bit float from ChaCha12 through a per-element dispatch on the
//! distribution, on the calling thread. For the language model's two
//! `[32, 64, 512]` masks per step that was about a tenth of the step
//! (`docs/perf/README.md`). Here the backend's generator gives one 64-bit
//! seed, so that `Backend::seed` still fixes every mask, and Xoshiro256++
//! (`rand`'s `SmallRng`, pinned by Cargo.lock) fills the mask in fixed
//! chunks, each from its own stream, on the kernel's threads: the same seed
//! gives the same mask whatever the number of threads.

use super::host::CpuBackend;
use super::threads::pool;
use burn::prelude::{Shape, Tensor};
use burn::tensor::Distribution;
use burn::tensor::ops::FloatTensor;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rayon::prelude::*;

/// Elements per generator stream: large enough that seeding is free, small
/// enough to share a `[32, 64, 256]` mask among threads.
const CHUNK: usize = 1 << 14;

/// A mask of `shape`: each element 1 / `keep` with probability `keep`, else 0.
pub(crate) fn dropout_mask<B: CpuBackend>(
    shape: Shape,
    keep: f64,
    device: &B::Device,
) -> FloatTensor<B> {
    // Four draws of 16 bits each from the backend's generator.
    let draws = Tensor::<B, 1>::random([4], Distribution::Uniform(0.0, 1.0), device);
    let draws = B::into_vec(draws.into_primitive().tensor());
    let seed = draws.iter().fold(0u64, |seed, &u| {
        (seed << 16) | ((u as f64 * 65536.0) as u64 & 0xFFFF)
    });
    let values = mask_values(seed, shape.num_elements(), keep);
    B::from_vec(values, shape, device)
}

/// `len` mask values from `seed`: element k is kept when the k-th 32-bit
/// draw (two per 64-bit output) is below `keep` · 2³².
pub(crate) fn mask_values(seed: u64, len: usize, keep: f64) -> Vec<f32> {
    assert!(
        keep > 0.0 && keep <= 1.0,
        "the probability of keeping a unit must be in (0, 1], got {keep}"
    );
    let scale = (1.0 / keep) as f32;
    // keep = 1 gives 2³², above every draw.
    let threshold = (keep * 4_294_967_296.0) as u64;
    let mut mask = vec![0.0f32; len];
    pool().install(|| {
        mask.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(chunk, values)| {
                // Each chunk its own stream: SplitMix64 expands the seed.
                let stream = seed ^ (chunk as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut rng = SmallRng::seed_from_u64(stream);
                for pair in values.chunks_mut(2) {
                    let bits = rng.next_u64();
                    let draws = [bits & 0xFFFF_FFFF, bits >> 32];
                    for (value, draw) in pair.iter_mut().zip(draws) {
                        if draw < threshold {
                            *value = scale;
                        }
                    }
                }
            })
    });
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_keeps_about_keep_of_the_units_at_one_over_keep() {
        let n = 1 << 20;
        for keep in [0.5, 0.7, 0.9] {
            let mask = mask_values(7, n, keep);
            let kept = mask.iter().filter(|&&v| v != 0.0).count();
            // The binomial's standard deviation is under 0.0005 here.
            let fraction = kept as f64 / n as f64;
            assert!((fraction - keep).abs() < 0.003, "keep {keep}: {fraction}");
            let scale = (1.0 / keep) as f32;
            assert!(mask.iter().all(|&v| v == 0.0 || v == scale));
        }
        assert!(mask_values(7, 1000, 1.0).iter().all(|&v| v == 1.0));
    }

    #[test]
    fn the_seed_fixes_the_mask_and_chunks_do_not_repeat() {
        let n = 3 * CHUNK + 5;
        let a = mask_values(11, n, 0.5);
        assert_eq!(a, mask_values(11, n, 0.5));
        assert_ne!(a, mask_values(12, n, 0.5));
        // A shorter mask is a prefix: chunk k's stream depends on k alone.
        assert_eq!(mask_values(11, CHUNK + 3, 0.5), a[..CHUNK + 3]);
        // Neighbouring chunks are different streams.
        assert_ne!(a[..CHUNK], a[CHUNK..2 * CHUNK]);
        // Adjacent elements are not correlated: about a quarter of the
        // pairs are both kept.
        let both = a
            .chunks_exact(2)
            .filter(|pair| pair[0] != 0.0 && pair[1] != 0.0)
            .count() as f64;
        let fraction = both / (n / 2) as f64;
        assert!((fraction - 0.25).abs() < 0.01, "{fraction}");
    }
}
