//! Language-model pretraining of the classifier's embedding and encoder
//! (`train --pretrain-epochs N`), the first stage of Howard & Ruder's
//! ULMFiT (2018): before it learns the labels, the classifier learns to
//! predict every next word of the training split's sentences from the
//! encoder's output at the word before, through a head `[D, V]` that is
//! dropped afterwards.

use crate::TrainBackend;
use crate::adamw::FusedAdamWConfig;
use artifact::Pretraining;
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use data::{EncodedText, TextBatcher};
use model::{LstmBackend, TextClassifier, TextClassifierConfig};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// The classifier with a next-word head on its encoder.
#[derive(Module, Debug)]
struct WordLm<B: Backend> {
    classifier: TextClassifier<B>,
    head: Linear<B>,
}

/// Positions of a padded batch `[B, T]` (flattened row-major) whose next
/// word is real, and the positions of those next words.
fn next_word_positions(lengths: &[usize], t: usize) -> (Vec<i64>, Vec<i64>) {
    let mut from = Vec::new();
    let mut to = Vec::new();
    for (b, &len) in lengths.iter().enumerate() {
        for i in 0..len.saturating_sub(1) {
            from.push((b * t + i) as i64);
            to.push((b * t + i + 1) as i64);
        }
    }
    (from, to)
}

impl<B: LstmBackend> WordLm<B> {
    /// Mean cross-entropy of every real next word of the batch. `[1]`
    fn loss(
        &self,
        texts: &[&[u32]],
        batcher: &TextBatcher,
        device: &B::Device,
    ) -> Option<Tensor<B, 1>> {
        let (tokens, mask, lengths) = batcher.pad::<B>(texts, device);
        let [b, t] = tokens.dims();
        let (from, to) = next_word_positions(&lengths, t);
        if from.is_empty() {
            return None;
        }
        let n = from.len();
        let hidden = self.classifier.encode(tokens.clone(), mask); // [B, T, D]
        let d = hidden.dims()[2];
        let from = Tensor::<B, 1, Int>::from_data(TensorData::new(from, [n]), device);
        let to = Tensor::<B, 1, Int>::from_data(TensorData::new(to, [n]), device);
        let hidden = hidden.reshape([b * t, d]).select(0, from); // [N, D]
        let targets = tokens.reshape([b * t]).select(0, to); // [N]
        let logits = self.head.forward(hidden); // [N, V]
        Some(
            CrossEntropyLossConfig::new()
                .init(device)
                .forward(logits, targets),
        )
    }
}

/// What pretraining reads, and how it batches it.
pub struct PretrainData<'a> {
    pub train: &'a [EncodedText],
    /// Only for the loss printed after each epoch.
    pub valid: &'a [EncodedText],
    pub batch_size: usize,
    pub max_seq_len: usize,
    /// Seeds the order of the batches (a new order each epoch).
    pub seed: u64,
}

/// Trains `classifier`'s embedding and encoder as a language model on the
/// training sentences for `pretraining.epochs` epochs (Adam at
/// `pretraining.lr`), printing the mean loss of each epoch on both splits,
/// and returns the classifier with the trained parts. The last epoch is
/// kept: no epoch is selected.
pub fn pretrain<B: TrainBackend>(
    classifier: TextClassifier<B>,
    config: &TextClassifierConfig,
    data: &PretrainData,
    pretraining: &Pretraining,
    device: &B::Device,
) -> TextClassifier<B> {
    let lm = WordLm {
        classifier,
        head: LinearConfig::new(config.encoder().d_output(), config.vocab_size).init(device),
    };
    train_lm(lm, data, pretraining, device).classifier
}

/// [`pretrain`]'s loop, head included.
fn train_lm<B: TrainBackend>(
    mut lm: WordLm<B>,
    data: &PretrainData,
    pretraining: &Pretraining,
    device: &B::Device,
) -> WordLm<B> {
    let batcher = TextBatcher::new(data.max_seq_len);
    let mut optimizer = FusedAdamWConfig::new(0.0).init::<B, WordLm<B>>();
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    let epochs = pretraining.epochs;
    for epoch in 1..=epochs {
        let started = Instant::now();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            data.seed ^ (PRETRAIN_STREAM + epoch as u64),
        ));
        let mut train_loss = Mean::default();
        for chunk in order.chunks(data.batch_size) {
            let texts: Vec<&[u32]> = chunk
                .iter()
                .map(|&i| data.train[i].ids.as_slice())
                .collect();
            let Some(loss) = lm.loss(&texts, &batcher, device) else {
                continue;
            };
            train_loss.add(loss.clone().into_scalar().elem());
            let grads = GradientsParams::from_grads(loss.backward(), &lm);
            lm = optimizer.step(pretraining.lr, lm, grads);
        }
        let inner = lm.valid();
        let mut valid_loss = Mean::default();
        for chunk in data.valid.chunks(VALID_BATCH) {
            let texts: Vec<&[u32]> = chunk.iter().map(|e| e.ids.as_slice()).collect();
            if let Some(loss) = inner.loss(&texts, &batcher, device) {
                valid_loss.add(loss.into_scalar().elem());
            }
        }
        println!(
            "pretraining epoch {epoch}/{epochs}: next-word loss {:.3} train, {:.3} valid (nats; {:.0} s)",
            train_loss.get(),
            valid_loss.get(),
            started.elapsed().as_secs_f64()
        );
    }
    lm
}

/// Mixed into the seed for the order of pretraining's batches, so that it
/// is not the order of the classifier's epochs.
const PRETRAIN_STREAM: u64 = 0x5eed_0000;

/// Validation batches (no gradients): as in the classifier's training.
const VALID_BATCH: usize = 256;

/// The mean of the batches' losses.
#[derive(Default)]
struct Mean {
    sum: f64,
    count: usize,
}

impl Mean {
    fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
    }

    fn get(&self) -> f64 {
        self.sum / self.count.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::{ModuleVisitor, Param, ParamId};
    use std::collections::HashMap;

    type A = Autodiff<NdArray>;

    #[test]
    fn each_real_word_but_the_last_predicts_the_next_one() {
        // Rows of 3, 1 and 2 real words, padded to 3.
        let (from, to) = next_word_positions(&[3, 1, 2], 3);
        assert_eq!(from, [0, 1, 6]);
        assert_eq!(to, [1, 2, 7]);
    }

    /// Every float parameter's values, by id.
    fn values<B: Backend, M: Module<B>>(module: &M) -> HashMap<ParamId, Vec<f32>> {
        struct Collect(HashMap<ParamId, Vec<f32>>);
        impl<B: Backend> ModuleVisitor<B> for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let data = param.val().into_data().convert::<f32>();
                self.0.insert(param.id, data.to_vec().unwrap());
            }
        }
        let mut collect = Collect(HashMap::new());
        module.visit(&mut collect);
        collect.0
    }

    /// On sentences whose next word always follows from the word before,
    /// pretraining brings the next-word loss far below chance, and changes
    /// the embedding and the encoder only: attention pooling and the output
    /// layer keep their initial weights.
    #[test]
    fn pretraining_learns_the_next_word_and_changes_only_the_embedding_and_encoder() {
        let device = Default::default();
        let config = TextClassifierConfig::new(12, 2)
            .with_d_embed(8)
            .with_d_hidden(8)
            .with_embedding_dropout(0.0)
            .with_pooling(Some(model::Pooling::Concat));
        let classifier = config.init::<A>(&device);
        let sentences: Vec<EncodedText> = (0..40)
            .map(|i| EncodedText {
                ids: if i % 2 == 0 {
                    vec![2, 3, 4, 5, 6]
                } else {
                    vec![7, 8, 9, 10, 11]
                },
                label: i % 2,
            })
            .collect();
        let texts: Vec<&[u32]> = sentences.iter().map(|s| s.ids.as_slice()).collect();
        let batcher = TextBatcher::new(8);
        let lm = WordLm {
            classifier,
            head: LinearConfig::new(8, 12).init(&device),
        };
        let loss = |lm: &WordLm<A>| -> f64 {
            let loss = lm.valid().loss(&texts, &batcher, &device).unwrap();
            loss.into_scalar().elem()
        };
        let chance = 12f64.ln();
        let untrained = loss(&lm);
        let before = values(&lm.classifier);
        let data = PretrainData {
            train: &sentences,
            valid: &sentences,
            batch_size: 8,
            max_seq_len: 8,
            seed: 1,
        };
        let pretraining = Pretraining {
            epochs: 20,
            lr: 1e-2,
            unfreeze: false,
        };
        let lm = train_lm(lm, &data, &pretraining, &device);
        // Every next word follows from the word before it.
        let trained = loss(&lm);
        assert!(untrained > 0.8 * chance, "untrained loss {untrained}");
        assert!(
            trained < 0.2 * chance,
            "trained loss {trained}, chance {chance}"
        );
        let trained = lm.classifier;

        let after = values(&trained);
        let mut pretrained = values(trained.embedding());
        pretrained.extend(values(trained.encoder()));
        assert_eq!(before.len(), after.len());
        for (id, value) in &after {
            let changed = before[id] != *value;
            assert_eq!(changed, pretrained.contains_key(id), "parameter {id}");
        }
    }
}
