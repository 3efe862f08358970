//! Generating text with a trained character language model.
//!
//! Generation primes the state with the prompt, then repeats: sample the next
//! character from the model's distribution (sharpened or flattened by the
//! temperature, cut to the k most likely), feed it back in.

use anyhow::{Result, bail};
use artifact::LanguageModel;
use burn::prelude::*;
use model::{LstmBackend, LstmState};
use rand::Rng;
use std::ops::ControlFlow;
use std::path::Path;

/// How the next character is drawn from the model's scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Divides the scores before the softmax: below 1 sharpens the
    /// distribution, above 1 flattens it; 0 always takes the most likely.
    pub temperature: f32,
    /// Only the k most likely characters can be drawn (`None`: all).
    pub top_k: Option<usize>,
}

/// Draws an index from unnormalized `scores`.
pub fn sample(scores: &[f32], sampling: Sampling, rng: &mut impl Rng) -> usize {
    assert!(!scores.is_empty(), "nothing to sample from");
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Most likely first; ties keep the lower index first.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    if sampling.temperature <= 0.0 {
        return order[0];
    }
    let k = sampling
        .top_k
        .unwrap_or(scores.len())
        .clamp(1, scores.len());
    let candidates = &order[..k];
    let best = scores[order[0]];
    // exp((s - max) / T): the largest weight is 1, so nothing overflows, and
    // a tiny temperature leaves all the weight on the most likely.
    let weights: Vec<f64> = candidates
        .iter()
        .map(|&i| (((scores[i] - best) / sampling.temperature) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut draw = rng.random::<f64>() * total;
    for (&i, w) in candidates.iter().zip(&weights) {
        if draw < *w {
            return i;
        }
        draw -= w;
    }
    candidates[k - 1]
}

/// A loaded language model, ready to generate.
pub struct Generator<B: Backend> {
    pub lm: LanguageModel<B>,
    device: B::Device,
}

impl<B: LstmBackend> Generator<B> {
    /// Loads a language-model artifact directory.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        Ok(Self {
            lm: LanguageModel::load(dir, device)?,
            device: device.clone(),
        })
    }

    /// Primes the state with `prompt` (which must not be empty), then
    /// generates `length` characters, handing each to `emit` as soon as it is
    /// drawn; `emit` returning `Break` stops early (a reader that has gone, a
    /// deadline). Returns the generated text (without the prompt).
    pub fn generate(
        &self,
        prompt: &[u32],
        length: usize,
        sampling: Sampling,
        rng: &mut impl Rng,
        mut emit: impl FnMut(char) -> ControlFlow<()>,
    ) -> Result<String> {
        if prompt.is_empty() {
            bail!("the prompt is empty: generation needs at least one character to start from");
        }
        let mut state: Option<Vec<LstmState<B>>> = None;
        let mut input = prompt.to_vec();
        let mut text = String::with_capacity(length);
        for _ in 0..length {
            let n = input.len();
            let ids: Vec<i64> = input.iter().map(|&i| i64::from(i)).collect();
            let chars = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), &self.device);
            let out = self.lm.model.forward(chars, state.take());
            state = Some(out.state);
            let [_, _, vocab] = out.logits.dims();
            let last = out
                .logits
                .slice([0..1, n - 1..n, 0..vocab])
                .reshape([vocab]);
            let scores: Vec<f32> = last.into_data().convert::<f32>().to_vec().unwrap();
            let next = sample(&scores, sampling, rng) as u32;
            let c = self.lm.vocab.chars()[next as usize];
            text.push(c);
            if emit(c).is_break() {
                break;
            }
            input = vec![next];
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SCORES: [f32; 6] = [0.5, 2.0, -1.0, 1.9, 0.0, 1.0];

    #[test]
    fn temperature_near_zero_takes_the_most_likely() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for temperature in [0.0, 1e-3] {
            let sampling = Sampling {
                temperature,
                top_k: None,
            };
            for _ in 0..200 {
                assert_eq!(sample(&SCORES, sampling, &mut rng), 1);
            }
        }
    }

    #[test]
    fn top_k_never_draws_outside_the_k_most_likely() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        // A high temperature makes the distribution nearly flat, so draws
        // outside the top k would show up if they were possible.
        let sampling = Sampling {
            temperature: 50.0,
            top_k: Some(3),
        };
        let mut seen = [0usize; 6];
        for _ in 0..3000 {
            seen[sample(&SCORES, sampling, &mut rng)] += 1;
        }
        assert_eq!([seen[0], seen[2], seen[4]], [0, 0, 0], "{seen:?}");
        assert!(seen[1] > 800 && seen[3] > 800 && seen[5] > 800, "{seen:?}");
    }

    #[test]
    fn temperature_one_follows_the_softmax() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let sampling = Sampling {
            temperature: 1.0,
            top_k: None,
        };
        let n = 60_000;
        let mut seen = [0usize; 6];
        for _ in 0..n {
            seen[sample(&SCORES, sampling, &mut rng)] += 1;
        }
        let total: f32 = SCORES.iter().map(|s| s.exp()).sum();
        for (i, count) in seen.iter().enumerate() {
            let expected = SCORES[i].exp() / total;
            let got = *count as f32 / n as f32;
            assert!(
                (got - expected).abs() < 0.01,
                "index {i}: {got} vs {expected}"
            );
        }
    }
}
