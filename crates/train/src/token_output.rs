//! What a step that predicts tokens hands burn-train's metrics: the mean
//! loss, and the logits and targets of the predicted tokens, flattened
//! (the language model's characters, the translator's target pieces).

use burn::prelude::*;
use burn::tensor::Transaction;
use burn::train::metric::{AccuracyInput, Adaptor, ItemLazy, LossInput};

/// N = tokens predicted in the batch.
pub struct TokenOutput<B: Backend> {
    /// Mean cross-entropy per token, in nats. `[1]`
    pub loss: Tensor<B, 1>,
    /// `[N, V]`
    pub logits: Tensor<B, 2>,
    /// `[N]`
    pub targets: Tensor<B, 1, Int>,
}

/// Metrics run on the CPU copy, as burn-train's own outputs do.
type MetricBackend = burn::backend::NdArray;

impl<B: Backend> ItemLazy for TokenOutput<B> {
    type ItemSync = TokenOutput<MetricBackend>;

    fn sync(self) -> TokenOutput<MetricBackend> {
        let [loss, logits, targets] = Transaction::default()
            .register(self.loss)
            .register(self.logits)
            .register(self.targets)
            .execute()
            .try_into()
            .expect("three tensors registered");
        let device = Default::default();
        TokenOutput {
            loss: Tensor::from_data(loss, &device),
            logits: Tensor::from_data(logits, &device),
            targets: Tensor::from_data(targets.convert::<i64>(), &device),
        }
    }
}

impl<B: Backend> Adaptor<LossInput<B>> for TokenOutput<B> {
    fn adapt(&self) -> LossInput<B> {
        LossInput::new(self.loss.clone())
    }
}

impl<B: Backend> Adaptor<AccuracyInput<B>> for TokenOutput<B> {
    fn adapt(&self) -> AccuracyInput<B> {
        AccuracyInput::new(self.logits.clone(), self.targets.clone())
    }
}
