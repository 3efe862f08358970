//! Generated datasets for the fundamentals: the points of the 2-3-1 network
//! case study and the adding problem of Hochreiter & Schmidhuber (1997).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` points uniform in the unit square, labelled 1 when x1 + x2 > 1.
/// Seeded: the same seed gives the same points.
pub fn unit_square(n: usize, seed: u64) -> (Vec<[f32; 2]>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let points: Vec<[f32; 2]> = (0..n)
        .map(|_| [rng.random::<f32>(), rng.random::<f32>()])
        .collect();
    let labels = points
        .iter()
        .map(|p| if p[0] + p[1] > 1.0 { 1.0 } else { 0.0 })
        .collect();
    (points, labels)
}

/// A batch of the adding problem, flat and row-major.
#[derive(Debug, Clone)]
pub struct AddingBatch {
    /// `[batch, seq_len, 2]`: (value, marker) at each step.
    pub inputs: Vec<f32>,
    /// `[batch]`: the sum of the two marked values.
    pub targets: Vec<f32>,
    pub batch: usize,
    pub seq_len: usize,
}

/// The adding problem: each step carries a value uniform in [0, 1] and a
/// marker; exactly two markers are 1, the first in the first half of the
/// sequence and the second in the second half (so the model must remember
/// across at least half of it), and the target is the sum of the two marked
/// values. Predicting the mean, 1, gives a mean squared error of 1/6 ≈ 0.167
/// (the variance of a sum of two uniforms).
pub fn adding_batch(batch: usize, seq_len: usize, rng: &mut impl Rng) -> AddingBatch {
    assert!(seq_len >= 2, "the adding problem needs at least two steps");
    let mut inputs = vec![0.0f32; batch * seq_len * 2];
    let mut targets = Vec::with_capacity(batch);
    let half = seq_len / 2;
    for b in 0..batch {
        let row = &mut inputs[b * seq_len * 2..(b + 1) * seq_len * 2];
        for t in 0..seq_len {
            row[2 * t] = rng.random::<f32>();
        }
        let first = rng.random_range(0..half);
        let second = rng.random_range(half..seq_len);
        row[2 * first + 1] = 1.0;
        row[2 * second + 1] = 1.0;
        targets.push(row[2 * first] + row[2 * second]);
    }
    AddingBatch {
        inputs,
        targets,
        batch,
        seq_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_batches_have_two_markers_and_the_right_sum() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for seq_len in [2, 3, 10, 101] {
            let batch = adding_batch(50, seq_len, &mut rng);
            assert_eq!(batch.inputs.len(), 50 * seq_len * 2);
            for b in 0..50 {
                let row = &batch.inputs[b * seq_len * 2..(b + 1) * seq_len * 2];
                let marked: Vec<usize> = (0..seq_len).filter(|&t| row[2 * t + 1] == 1.0).collect();
                assert_eq!(marked.len(), 2, "row {b} of T={seq_len}");
                assert!(marked[0] < seq_len / 2 && marked[1] >= seq_len / 2);
                assert!((0..seq_len).all(|t| row[2 * t + 1] == 0.0 || row[2 * t + 1] == 1.0));
                assert!((0..seq_len).all(|t| (0.0..1.0).contains(&row[2 * t])));
                let sum = row[2 * marked[0]] + row[2 * marked[1]];
                assert_eq!(batch.targets[b], sum);
            }
        }
    }

    #[test]
    fn predicting_one_gives_about_a_sixth() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let batch = adding_batch(20_000, 10, &mut rng);
        let mse: f32 = batch.targets.iter().map(|y| (y - 1.0).powi(2)).sum::<f32>()
            / batch.targets.len() as f32;
        assert!((mse - 1.0 / 6.0).abs() < 0.01, "baseline MSE {mse}");
    }

    #[test]
    fn unit_square_is_seeded_and_labelled_by_the_sum() {
        let (a, la) = unit_square(100, 1);
        let (b, _) = unit_square(100, 1);
        assert_eq!(a, b);
        for (p, l) in a.iter().zip(&la) {
            assert_eq!(*l == 1.0, p[0] + p[1] > 1.0);
        }
        let positives = la.iter().filter(|&&l| l == 1.0).count();
        assert!(
            (30..=70).contains(&positives),
            "{positives} positives of 100"
        );
    }
}
