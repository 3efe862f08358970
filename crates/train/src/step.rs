//! The glue between the classifier and burn-train's Learner.
//!
//! `TrainStep` and `InferenceStep` are burn-train's traits; implementing them
//! on a small module that `train` owns keeps training out of `model`.
//!
//! The same step trains a classifier on labels and, given a teacher's logits
//! for each training example, distils the teacher into it (Hinton et al.
//! 2015): [`distillation_loss`].

use crate::TrainBackend;
use burn::data::dataloader::batcher::Batcher;
use burn::module::{ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use data::{EncodedText, TextBatch, TextBatcher};
use model::{LstmBackend, TextClassifier};

/// How a student learns from its teacher's outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distillation {
    /// Softens both distributions: T > 1 brings out the teacher's ranking
    /// of the wrong classes.
    pub temperature: f64,
    /// The weight of the teacher's term; 1 − alpha goes to the true labels.
    pub alpha: f64,
}

/// The classifier as the Learner sees it.
#[derive(Module, Debug)]
pub struct ClassifierStep<B: Backend> {
    pub model: TextClassifier<B>,
    /// Set when distilling: training batches then carry the teacher's logits.
    #[module(skip)]
    pub distillation: Option<Distillation>,
    /// Label smoothing of the training loss (Szegedy et al. 2016): the
    /// target puts 1 − ε on the label plus ε spread evenly over the classes
    /// (0 = off). Validation loss is plain cross-entropy whatever it is.
    #[module(skip)]
    pub label_smoothing: f32,
    /// Gradual unfreezing (Howard & Ruder 2018) of a pretrained embedding
    /// and encoder: set, the first epoch trains the pooling and output
    /// layer alone, the second adds the encoder, the third the embedding.
    #[module(skip)]
    pub unfreezing: Option<Unfreezing>,
}

/// Counts the training steps, to tell the epoch a step belongs to; the
/// training loop sets both once it knows its batches.
#[derive(Debug, Clone, Default)]
pub struct Unfreezing {
    pub steps_per_epoch: usize,
    /// Steps taken, those of the epochs a resumed run has done included.
    pub steps: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Unfreezing {
    /// The 0-based epoch of the step about to be taken, counting it.
    fn next_epoch(&self) -> usize {
        let step = self
            .steps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        step / self.steps_per_epoch.max(1)
    }
}

/// Drops the gradients of the parameters it visits: the optimizer leaves
/// a parameter without a gradient as it is.
struct Freeze<'a>(&'a mut GradientsParams);

impl<B: AutodiffBackend> ModuleVisitor<B> for Freeze<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.remove::<B::InnerBackend, D>(param.id);
    }
}

/// A training example, with the teacher's logits for it when distilling.
#[derive(Debug, Clone)]
pub struct TrainItem {
    pub text: EncodedText,
    pub teacher_logits: Option<Vec<f32>>,
}

impl From<EncodedText> for TrainItem {
    fn from(text: EncodedText) -> Self {
        Self {
            text,
            teacher_logits: None,
        }
    }
}

/// A padded batch, with the teacher's logits `[B, C]` when every example has them.
#[derive(Debug, Clone)]
pub struct TrainBatch<B: Backend> {
    pub text: TextBatch<B>,
    pub teacher_logits: Option<Tensor<B, 2>>,
}

/// Pads the texts like [`TextBatcher`] and stacks the teacher's logits.
#[derive(Debug, Clone)]
pub struct TrainBatcher {
    pub text: TextBatcher,
}

impl<B: Backend> Batcher<B, TrainItem, TrainBatch<B>> for TrainBatcher {
    fn batch(&self, items: Vec<TrainItem>, device: &B::Device) -> TrainBatch<B> {
        let teacher: Option<Vec<Vec<f32>>> = items
            .iter()
            .map(|item| item.teacher_logits.clone())
            .collect();
        let teacher_logits = teacher.filter(|rows| !rows.is_empty()).map(|rows| {
            let classes = rows[0].len();
            let flat: Vec<f32> = rows.concat();
            Tensor::from_data(TensorData::new(flat, [rows.len(), classes]), device)
        });
        let texts = items.into_iter().map(|item| item.text).collect();
        TrainBatch {
            text: self.text.batch(texts, device),
            teacher_logits,
        }
    }
}

/// Hinton et al. (2015): α T² KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) CE(s, y),
/// averaged over the batch, for student logits `s` and teacher logits `t`
/// `[B, C]` and labels `y` `[B]`. The T² keeps the soft term's gradients on
/// the same scale as the hard one's whatever the temperature.
pub fn distillation_loss<B: Backend>(
    student: Tensor<B, 2>,
    teacher: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    distillation: Distillation,
) -> Tensor<B, 1> {
    let t = distillation.temperature;
    let hard = CrossEntropyLossConfig::new()
        .init(&student.device())
        .forward(student.clone(), labels);
    let teacher_log_p = log_softmax(teacher / t, 1);
    let student_log_p = log_softmax(student / t, 1);
    let kl = (teacher_log_p.clone().exp() * (teacher_log_p - student_log_p))
        .sum_dim(1)
        .mean(); // [1]
    kl * (distillation.alpha * t * t) + hard * (1.0 - distillation.alpha)
}

impl<B: LstmBackend> ClassifierStep<B> {
    pub fn new(model: TextClassifier<B>) -> Self {
        Self {
            model,
            distillation: None,
            label_smoothing: 0.0,
            unfreezing: None,
        }
    }

    /// Forward pass and the loss: mean cross-entropy (label-smoothed in a
    /// `training` step when asked), or the distillation loss when
    /// distilling and the batch has the teacher's logits (training batches
    /// do, validation batches do not, so validation loss is always plain
    /// cross-entropy).
    pub fn forward_loss(&self, batch: TrainBatch<B>, training: bool) -> ClassificationOutput<B> {
        let text = batch.text;
        let logits = self.model.forward(text.tokens, text.mask).logits; // [B, C]
        let smoothing = (training && self.label_smoothing > 0.0).then_some(self.label_smoothing);
        let loss = match (self.distillation, batch.teacher_logits) {
            (Some(distillation), Some(teacher)) => {
                distillation_loss(logits.clone(), teacher, text.labels.clone(), distillation)
            }
            _ => CrossEntropyLossConfig::new()
                .with_smoothing(smoothing)
                .init(&logits.device())
                .forward(logits.clone(), text.labels.clone()),
        };
        ClassificationOutput::new(loss, logits, text.labels)
    }
}

impl<B: TrainBackend> TrainStep for ClassifierStep<B> {
    type Input = TrainBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: TrainBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let output = self.forward_loss(batch, true);
        crate::watch::check_loss(output.loss.clone().into_scalar().elem::<f64>());
        let mut grads = GradientsParams::from_grads(output.loss.backward(), self);
        if let Some(unfreezing) = &self.unfreezing {
            let epoch = unfreezing.next_epoch();
            if epoch < 2 {
                self.model.embedding().visit(&mut Freeze(&mut grads));
            }
            if epoch < 1 {
                self.model.encoder().visit(&mut Freeze(&mut grads));
            }
        }
        TrainOutput {
            grads,
            item: output,
        }
    }
}

impl<B: LstmBackend> InferenceStep for ClassifierStep<B> {
    type Input = TrainBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: TrainBatch<B>) -> ClassificationOutput<B> {
        self.forward_loss(batch, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    /// How many of the parameters `module` visits have a gradient in `grads`.
    fn with_gradient<M: Module<A>>(module: &M, grads: &GradientsParams) -> (usize, usize) {
        struct Count<'a>(&'a GradientsParams, usize, usize);
        impl ModuleVisitor<A> for Count<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
                self.1 += usize::from(self.0.get::<NdArray, D>(param.id).is_some());
                self.2 += 1;
            }
        }
        let mut count = Count(grads, 0, 0);
        module.visit(&mut count);
        (count.1, count.2)
    }

    type A = burn::backend::Autodiff<NdArray>;

    /// Gradual unfreezing, with two steps per epoch: epoch 1 updates the
    /// pooling and output layer alone, epoch 2 adds the encoder, epoch 3 the
    /// embedding. A parameter without a gradient is one the optimizer leaves.
    #[test]
    fn gradual_unfreezing_adds_the_encoder_then_the_embedding() {
        let device = Default::default();
        let model = model::TextClassifierConfig::new(12, 2)
            .with_d_embed(4)
            .with_d_hidden(4)
            .init::<A>(&device);
        let mut step = ClassifierStep::new(model);
        step.unfreezing = Some(Unfreezing {
            steps_per_epoch: 2,
            ..Unfreezing::default()
        });
        let batcher = TrainBatcher {
            text: TextBatcher::new(8),
        };
        let items = vec![
            TrainItem::from(EncodedText {
                ids: vec![2, 3, 4],
                label: 0,
            }),
            TrainItem::from(EncodedText {
                ids: vec![5, 6],
                label: 1,
            }),
        ];
        let (_, embedding) = with_gradient(step.model.embedding(), &GradientsParams::new());
        let (_, encoder) = with_gradient(step.model.encoder(), &GradientsParams::new());
        let (_, all) = with_gradient(&step.model, &GradientsParams::new());
        // (embedding, encoder, all) parameters with a gradient, step by step.
        let expected = [
            (0, 0, all - embedding - encoder),
            (0, 0, all - embedding - encoder),
            (0, encoder, all - embedding),
            (0, encoder, all - embedding),
            (embedding, encoder, all),
            (embedding, encoder, all),
        ];
        for (i, expected) in expected.into_iter().enumerate() {
            let grads = TrainStep::step(&step, batcher.batch(items.clone(), &device)).grads;
            let got = (
                with_gradient(step.model.embedding(), &grads).0,
                with_gradient(step.model.encoder(), &grads).0,
                with_gradient(&step.model, &grads).0,
            );
            assert_eq!(got, expected, "step {i}");
        }
    }

    /// Worked out by hand: teacher logits (2 ln 3, 0) at T = 2 give
    /// p = (3/4, 1/4); student logits (0, 0) give q = (1/2, 1/2).
    /// KL(p ‖ q) = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.1308120;
    /// × T² = 0.5232481. Cross-entropy with label 0 is ln 2 = 0.6931472.
    /// With α = 0.25: 0.25 × 0.5232481 + 0.75 × 0.6931472 = 0.6506724.
    #[test]
    fn distillation_loss_matches_a_hand_computed_value() {
        let device = Default::default();
        let student = Tensor::<NdArray, 2>::from_floats([[0.0, 0.0]], &device);
        let teacher = Tensor::<NdArray, 2>::from_floats([[2.0 * 3f32.ln(), 0.0]], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0], &device);
        let distillation = Distillation {
            temperature: 2.0,
            alpha: 0.25,
        };
        let loss: f32 = distillation_loss(student, teacher, labels, distillation).into_scalar();
        assert!((loss - 0.6506724).abs() < 1e-6, "{loss}");
    }

    /// A student that already matches its teacher has no soft loss left.
    #[test]
    fn the_soft_term_vanishes_when_the_student_matches_the_teacher() {
        let device = Default::default();
        let logits = Tensor::<NdArray, 2>::from_floats([[1.5, -0.5], [0.2, 0.9]], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 1], &device);
        let distillation = Distillation {
            temperature: 3.0,
            alpha: 1.0,
        };
        let loss: f32 =
            distillation_loss(logits.clone(), logits, labels, distillation).into_scalar();
        assert!(loss.abs() < 1e-6, "{loss}");
    }

    /// Label smoothing: with ε = 0.2 over 2 classes the target of label 0 is
    /// (0.9, 0.1); logits (ln 3, 0) give p = (3/4, 1/4), so the training loss
    /// is −(0.9 ln 3/4 + 0.1 ln 1/4) = 0.3975433, while validation keeps
    /// plain cross-entropy, −ln 3/4 = 0.2876821.
    #[test]
    fn label_smoothing_changes_the_training_loss_only() {
        let device = Default::default();
        let config = model::TextClassifierConfig::new(10, 2)
            .with_d_embed(4)
            .with_d_hidden(4);
        let mut step = ClassifierStep::new(config.init::<NdArray>(&device));
        step.label_smoothing = 0.2;
        let logits = Tensor::<NdArray, 2>::from_floats([[3f32.ln(), 0.0]], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0], &device);
        let loss = |smoothing: Option<f32>| -> f32 {
            CrossEntropyLossConfig::new()
                .with_smoothing(smoothing)
                .init(&device)
                .forward(logits.clone(), labels.clone())
                .into_scalar()
        };
        assert!((loss(Some(0.2)) - 0.3975433).abs() < 1e-6);
        assert!((loss(None) - 0.2876821).abs() < 1e-6);

        // Through the step: training smooths, validation does not.
        let batcher = TrainBatcher {
            text: TextBatcher::new(8),
        };
        let items: Vec<TrainItem> = vec![
            EncodedText {
                ids: vec![2, 3, 4],
                label: 0,
            }
            .into(),
            EncodedText {
                ids: vec![5, 6],
                label: 1,
            }
            .into(),
        ];
        let batch: TrainBatch<NdArray> = batcher.batch(items, &device);
        let text = batch.text.clone();
        let logits = step.model.forward(text.tokens, text.mask).logits;
        let expected = |smoothing: Option<f32>| -> f32 {
            CrossEntropyLossConfig::new()
                .with_smoothing(smoothing)
                .init(&device)
                .forward(logits.clone(), text.labels.clone())
                .into_scalar()
        };
        let training: f32 = step.forward_loss(batch.clone(), true).loss.into_scalar();
        let validation: f32 = step.forward_loss(batch, false).loss.into_scalar();
        assert_eq!(training, expected(Some(0.2)));
        assert_eq!(validation, expected(None));
        assert_ne!(training, validation);
    }
}
