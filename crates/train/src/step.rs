//! The glue between the classifier and burn-train's Learner.
//!
//! `TrainStep` and `InferenceStep` are burn-train's traits; implementing them
//! on a small module that `train` owns keeps training out of `model`.

use crate::TrainBackend;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use data::TextBatch;
use model::{LstmBackend, TextClassifier};

/// The classifier as the Learner sees it.
#[derive(Module, Debug)]
pub struct ClassifierStep<B: Backend> {
    pub model: TextClassifier<B>,
}

impl<B: LstmBackend> ClassifierStep<B> {
    /// Forward pass and mean cross-entropy over the batch.
    pub fn forward_loss(&self, batch: TextBatch<B>) -> ClassificationOutput<B> {
        let logits = self.model.forward(batch.tokens, batch.mask).logits; // [B, C]
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.labels.clone());
        ClassificationOutput::new(loss, logits, batch.labels)
    }
}

impl<B: TrainBackend> TrainStep for ClassifierStep<B> {
    type Input = TextBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: TextBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let output = self.forward_loss(batch);
        let grads = output.loss.backward();
        TrainOutput::new(self, grads, output)
    }
}

impl<B: LstmBackend> InferenceStep for ClassifierStep<B> {
    type Input = TextBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: TextBatch<B>) -> ClassificationOutput<B> {
        self.forward_loss(batch)
    }
}
