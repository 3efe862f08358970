//! The translator as burn-train's Learner sees it: a teacher-forced pass
//! over a batch of pairs, and the cross-entropy of every real target token.

use crate::TrainBackend;
use crate::token_output::TokenOutput;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use data::PairBatch;
use model::{LstmBackend, Seq2SeqModel};

#[derive(Module, Debug)]
pub struct TranslateStep<B: Backend> {
    pub model: Seq2SeqModel<B>,
}

/// Loss, logits and targets of the real target tokens of one batch (the end
/// tokens included, the padding left out): N = real target tokens.
pub type TranslateOutput<B> = TokenOutput<B>;

impl<B: LstmBackend> TranslateStep<B> {
    pub fn forward_batch(&self, batch: PairBatch<B>) -> TranslateOutput<B> {
        let device = batch.source.device();
        let logits = self
            .model
            .forward(batch.source, batch.source_mask, batch.target_in); // [B, T, V]
        let [b, t, v] = logits.dims();
        // Only the real target tokens: the batcher lists their positions.
        let real = batch.target_positions;
        let logits = logits.reshape([b * t, v]).select(0, real.clone()); // [N, V]
        let targets = batch.target_out.reshape([b * t]).select(0, real); // [N]
        let loss = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), targets.clone());
        TranslateOutput {
            loss,
            logits,
            targets,
        }
    }
}

impl<B: TrainBackend> TrainStep for TranslateStep<B> {
    type Input = PairBatch<B>;
    type Output = TranslateOutput<B>;

    fn step(&self, batch: PairBatch<B>) -> TrainOutput<TranslateOutput<B>> {
        let output = self.forward_batch(batch);
        crate::watch::check_loss(output.loss.clone().into_scalar().elem::<f64>());
        let grads = output.loss.backward();
        TrainOutput::new(self, grads, output)
    }
}

impl<B: LstmBackend> InferenceStep for TranslateStep<B> {
    type Input = PairBatch<B>;
    type Output = TranslateOutput<B>;

    fn step(&self, batch: PairBatch<B>) -> TranslateOutput<B> {
        self.forward_batch(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::data::dataloader::batcher::Batcher;
    use burn::tensor::activation::log_softmax;
    use data::{EncodedPair, PairBatcher};
    use model::{Seq2SeqConfig, TransformerTranslatorConfig, TranslatorConfig};

    type B = NdArray;

    /// The loss is the mean over real target tokens only: padding neither
    /// adds to it nor dilutes it.
    #[test]
    fn the_loss_is_the_mean_over_real_target_tokens() {
        let device = Default::default();
        let lstm = Seq2SeqConfig::Lstm(
            TranslatorConfig::new(20, 15)
                .with_d_embed(6)
                .with_d_hidden(5)
                .with_dropout(0.0),
        );
        let transformer = Seq2SeqConfig::Transformer(
            TransformerTranslatorConfig::new(20, 15)
                .with_d_model(8)
                .with_d_ff(12)
                .with_n_heads(2)
                .with_n_layers(1)
                .with_dropout(0.0),
        );
        for config in [lstm, transformer] {
            the_loss_is_the_mean_over_real_target_tokens_of(TranslateStep {
                model: config.init::<B>(&device),
            });
        }
    }

    fn the_loss_is_the_mean_over_real_target_tokens_of(step: TranslateStep<B>) {
        let device = Default::default();
        let pairs = vec![
            EncodedPair {
                source: vec![5, 6, 7],
                target: vec![8, 9, 10, 11],
            },
            EncodedPair {
                source: vec![12],
                target: vec![13],
            },
        ];
        let batch: PairBatch<B> = PairBatcher::new(10, 10).batch(pairs.clone(), &device);
        let out = step.forward_batch(batch);
        // 4 + 1 target tokens and 2 end tokens.
        assert_eq!(out.targets.dims(), [7]);
        // Each pair alone: the mean over all pairs' tokens is the
        // token-weighted mean of the pairs' means.
        let mut total = 0.0;
        for pair in pairs {
            let alone: PairBatch<B> = PairBatcher::new(10, 10).batch(vec![pair.clone()], &device);
            let logits = step
                .model
                .forward(alone.source, alone.source_mask, alone.target_in);
            let [_, t, v] = logits.dims();
            let lp = log_softmax(logits.reshape([t, v]), 1);
            let nll: f32 = -lp
                .gather(1, alone.target_out.reshape([t, 1]))
                .sum()
                .into_scalar();
            total += nll as f64;
        }
        let loss = out.loss.into_scalar() as f64;
        assert!(
            (loss - total / 7.0).abs() < 1e-5,
            "{loss} vs {}",
            total / 7.0
        );
    }
}
