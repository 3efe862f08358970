//! The language model as burn-train's Learner sees it: [`LmStep`] runs one
//! window from the state the previous window of the same pass ended with,
//! and keeps the state it ends with, detached (truncated BPTT).

use crate::TrainBackend;
use crate::token_output::TokenOutput;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::Transaction;
use burn::train::metric::Adaptor;
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use data::CharBatch;
use model::{CharLm, LstmBackend, LstmState};
use std::sync::{Arc, Mutex};

/// The state a split's last batch ended with, as plain data: holding it
/// outside the autodiff graph is what detaches it.
#[derive(Debug, Default)]
struct Carried {
    train: Option<Vec<[TensorData; 2]>>,
    valid: Option<Vec<[TensorData; 2]>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Train,
    Valid,
}

/// The language model as the Learner sees it, with the carried state.
#[derive(Module, Debug)]
pub struct LmStep<B: Backend> {
    pub model: CharLm<B>,
    #[module(skip)]
    carried: Arc<Mutex<Carried>>,
}

/// Loss, logits and targets of one window, flattened to characters.
pub type LmOutput<B> = TokenOutput<B>;

impl<B: LstmBackend> LmStep<B> {
    pub fn new(model: CharLm<B>) -> Self {
        Self {
            model,
            carried: Arc::default(),
        }
    }

    /// Runs one window from the state the previous window of `pass` ended
    /// with (zeros at window 0), and keeps the state it ends with.
    pub fn forward_window(&self, batch: CharBatch<B>, pass: Pass) -> LmOutput<B> {
        let device = batch.inputs.device();
        let start = if batch.window == 0 {
            None
        } else {
            self.take_state(pass, &device)
        };
        let out = self.model.forward(batch.inputs, start);
        self.keep_state(pass, out.state);
        let [b, t, v] = out.logits.dims();
        let logits = out.logits.reshape([b * t, v]);
        let targets = batch.targets.reshape([b * t]);
        let loss = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), targets.clone());
        LmOutput {
            loss,
            logits,
            targets,
        }
    }

    /// The state `pass` carries now, if any.
    pub fn take_state(&self, pass: Pass, device: &B::Device) -> Option<Vec<LstmState<B>>> {
        let mut carried = self.carried.lock().unwrap();
        let slot = match pass {
            Pass::Train => &mut carried.train,
            Pass::Valid => &mut carried.valid,
        };
        slot.take().map(|layers| {
            layers
                .into_iter()
                .map(|[hidden, cell]| LstmState {
                    hidden: Tensor::from_data(hidden, device),
                    cell: Tensor::from_data(cell, device),
                })
                .collect()
        })
    }

    fn keep_state(&self, pass: Pass, state: Vec<LstmState<B>>) {
        let layers = state
            .into_iter()
            .map(|s| {
                let [hidden, cell] = Transaction::default()
                    .register(s.hidden)
                    .register(s.cell)
                    .execute()
                    .try_into()
                    .expect("two tensors registered");
                [hidden, cell]
            })
            .collect();
        let mut carried = self.carried.lock().unwrap();
        match pass {
            Pass::Train => carried.train = Some(layers),
            Pass::Valid => carried.valid = Some(layers),
        }
    }
}

impl<B: TrainBackend> TrainStep for LmStep<B> {
    type Input = CharBatch<B>;
    type Output = LmOutput<B>;

    fn step(&self, batch: CharBatch<B>) -> TrainOutput<LmOutput<B>> {
        let output = self.forward_window(batch, Pass::Train);
        crate::watch::check_loss(output.loss.clone().into_scalar().elem::<f64>());
        let grads = output.loss.backward();
        TrainOutput::new(self, grads, output)
    }
}

impl<B: LstmBackend> InferenceStep for LmStep<B> {
    type Input = CharBatch<B>;
    type Output = LmOutput<B>;

    fn step(&self, batch: CharBatch<B>) -> LmOutput<B> {
        self.forward_window(batch, Pass::Valid)
    }
}

impl<B: Backend> Adaptor<super::bits::BitsInput> for LmOutput<B> {
    fn adapt(&self) -> super::bits::BitsInput {
        super::bits::BitsInput {
            nats: self.loss.clone().into_scalar().elem(),
            chars: self.targets.dims()[0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::backend::AutodiffBackend;
    use data::CharStreams;
    use model::CharLmConfig;

    type B = Autodiff<NdArray>;

    fn max_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// The gradient of `loss` for every parameter of `model`, flattened in
    /// visiting order.
    fn all_grads(model: &CharLm<B>, loss: Tensor<B, 1>) -> Vec<f32> {
        struct Collect<'a> {
            grads: &'a <B as AutodiffBackend>::Gradients,
            values: Vec<f32>,
        }
        impl burn::module::ModuleVisitor<B> for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
                let grad = param
                    .val()
                    .grad(self.grads)
                    .expect("every parameter has a gradient");
                self.values.extend(grad.into_data().iter::<f32>());
            }
        }
        let grads = loss.backward();
        let mut collect = Collect {
            grads: &grads,
            values: Vec::new(),
        };
        model.visit(&mut collect);
        collect.values
    }

    #[test]
    fn the_step_carries_the_state_from_window_to_window_and_restarts_at_window_0() {
        let device = Default::default();
        let ids: Vec<u32> = (0..=120).map(|i| (i * 7 % 11) as u32).collect();
        let streams = CharStreams::new(ids, 2, 5).unwrap();
        // Parameters are initialized lazily, so a clone of a fresh model
        // would draw other weights: use the step's own model.
        let step = LmStep::new(
            CharLmConfig::new(11)
                .with_d_embed(4)
                .with_d_hidden(6)
                .with_dropout(0.0)
                .init::<B>(&device),
        );
        let model = &step.model;

        let w0 = streams.batch::<B>(0, &device);
        let w1 = streams.batch::<B>(1, &device);
        let out0 = step.forward_window(w0.clone(), Pass::Train);
        let expected0 = model.forward(w0.inputs.clone(), None);
        // Window 1 through the step equals window 1 from window 0's end state.
        let out1 = step.forward_window(w1.clone(), Pass::Train);
        let expected1 = model.forward(w1.inputs.clone(), Some(expected0.state.clone()));
        let [b, t, v] = expected1.logits.dims();
        assert!(max_diff(out1.logits, expected1.logits.clone().reshape([b * t, v])) < 1e-5);
        // Validation keeps its own state: its window 1 has none carried yet.
        assert!(step.take_state(Pass::Valid, &device).is_none());
        // Back at window 0 the state starts from zeros again.
        let again = step.forward_window(w0.clone(), Pass::Train);
        assert!(max_diff(again.logits, out0.logits) < 1e-6);

        // The carried state holds the values of the state after window 0
        // (the last window run)...
        let carried = step
            .take_state(Pass::Train, &device)
            .expect("a carried state");
        assert_eq!(carried.len(), 2);
        assert!(max_diff(carried[1].cell.clone(), expected0.state[1].cell.clone()) < 1e-6);

        // ...and it is detached: window 1's gradient through the step equals
        // the gradient from a state rebuilt from plain data, and differs from
        // the gradient with window 0's graph still attached (which also
        // flows back into window 0's computation).
        step.forward_window(w0.clone(), Pass::Train);
        let through_step = all_grads(
            model,
            step.forward_window(w1.clone(), Pass::Train).logits.sum(),
        );
        let from_data = expected0
            .state
            .iter()
            .map(|s| LstmState {
                hidden: Tensor::from_data(s.hidden.to_data(), &device),
                cell: Tensor::from_data(s.cell.to_data(), &device),
            })
            .collect();
        let rebuilt = all_grads(
            model,
            model
                .forward(w1.inputs.clone(), Some(from_data))
                .logits
                .sum(),
        );
        let attached = all_grads(
            model,
            model.forward(w1.inputs, Some(expected0.state)).logits.sum(),
        );
        let largest = |a: &[f32], b: &[f32]| {
            assert_eq!(a.len(), b.len());
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        };
        assert!(largest(&through_step, &rebuilt) < 1e-5);
        assert!(largest(&through_step, &attached) > 1e-4);
    }
}
