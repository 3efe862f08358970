//! `train compress prune`: magnitude pruning of the weight matrices to a
//! target sparsity (per layer or global, at once or in rounds on Zhu &
//! Gupta's cubic schedule), each round fine-tuned through the classifier's
//! training loop with the masks re-applied after every optimizer step
//! ([`Masked`]), so that pruned weights stay exactly zero.

use super::{Source, SourceAndTarget};
use crate::TrainBackend;
use crate::adamw::FusedAdamWConfig;
use crate::classifier::fit_classifier;
use crate::cli::FitArgs;
use crate::fit::{RunInfo, Start, log_dir};
use crate::step::{ClassifierStep, Distillation};
use anyhow::{Result, bail, ensure};
use artifact::args::{positive_f64, positive_usize, unit_interval};
use artifact::weights::load_weights;
use artifact::{ArtifactWriter, Classifier, CompressionSettings, Scope};
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, MultiGradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use model::{ParamCounts, TextClassifier};
use std::collections::HashMap;

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    #[command(flatten)]
    pub paths: SourceAndTarget,
    /// The fraction of weights set to zero, in [0, 1).
    #[arg(long, default_value_t = 0.8, value_parser = artifact::args::dropout)]
    pub sparsity: f64,
    /// Prune each weight matrix to the sparsity, or rank all of them together.
    #[arg(long, value_enum, default_value_t = Scope::Layer)]
    pub scope: Scope,
    /// Gradual pruning: reach the sparsity in this many rounds (the cubic
    /// schedule of Zhu & Gupta 2017), fine-tuning after each; 1 prunes at once.
    #[arg(long, default_value_t = 1, value_parser = positive_usize)]
    pub rounds: usize,
    /// Fine-tuning epochs after each round of pruning (0 = none). At 80%
    /// on MR, 20 epochs at 1e-3 keep more validation accuracy than 10, with
    /// either pooling (3 seeds each; docs/compression.md).
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// The fine-tuning learning rate (AdamW).
    #[arg(long, default_value_t = 1e-3, value_parser = positive_f64)]
    pub lr: f64,
    /// Fine-tune on the unpruned model's softened outputs as well as the
    /// labels (Hinton et al. 2015): the weight of its soft targets, the
    /// labels getting 1 − this (0 = the labels alone).
    #[arg(long, default_value_t = 0.0, value_parser = unit_interval)]
    pub distill_alpha: f64,
    /// The temperature of --distill-alpha.
    #[arg(long, default_value_t = 4.0, value_parser = positive_f64)]
    pub temperature: f64,
    #[command(flatten)]
    pub fit: FitArgs,
}

pub fn run<B: TrainBackend>(args: &PruneArgs, device: &B::Device, backend: &str) -> Result<()> {
    let plan = args.fit.plan(args.epochs, args.lr);
    if args.epochs > 0 {
        plan.check()?;
    }
    let source = Source::<B::InnerBackend>::load(&args.paths, args.fit.limit, device)?;
    let config = source.classifier.config.clone();
    let tokenizer = source.classifier.tokenizer.clone();
    let (mut train, valid) = source.train_and_valid_items()?;
    // The unpruned model as the fine-tuning's teacher.
    let distillation = (args.distill_alpha > 0.0 && args.epochs > 0).then_some(Distillation {
        temperature: args.temperature,
        alpha: args.distill_alpha,
    });
    if distillation.is_some() {
        for (item, logits) in train.iter_mut().zip(source.train_logits()?) {
            item.teacher_logits = Some(logits);
        }
    }
    // The same weights, on the training backend.
    let mut model = load_weights(&args.paths.from, config.model.init::<B>(device), device)?;
    if args.fit.resume && args.rounds > 1 {
        bail!(
            "--resume continues a pruning run of one round only (--rounds 1); this one has {}",
            args.rounds
        );
    }
    let writer = ArtifactWriter::create_or_resume(
        &args.paths.artifact_dir,
        "classifier",
        &[&args.paths.from, &args.paths.data_dir],
        args.fit.resume,
    )?;
    // What a resume must repeat.
    let options = serde_json::json!({
        "from": &args.paths.from,
        "sparsity": args.sparsity,
        "scope": format!("{:?}", args.scope),
        "rounds": args.rounds,
        "epochs": args.epochs,
        "lr": args.lr,
        "distill_alpha": args.distill_alpha,
        "temperature": args.temperature,
        "lr_schedule": args.fit.lr_schedule,
        "batch_size": args.fit.batch_size,
        "seed": args.fit.seed,
        "select": args.fit.select,
        "patience": args.fit.patience,
        "average": args.fit.average,
        "limit": args.fit.limit,
    });
    let mut masks = None;
    let mut before_fine_tuning = Vec::new();
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        // Zhu & Gupta (2017): the sparsity rises fast, then levels off at the target.
        let progress = round as f64 / args.rounds as f64;
        let target = args.sparsity * (1.0 - (1.0 - progress).powi(3));
        // Weights pruned in earlier rounds are zero, the smallest of all, so
        // each round's mask contains the previous one.
        let round_masks = PruningMasks::new(&model, target, args.scope);
        model = model.map(&mut round_masks.mapper::<B>(device));
        let counts = ParamCounts::of(&model);
        let accuracy = Classifier::new(model.valid(), tokenizer.clone(), config.clone(), device)
            .evaluate(&source.splits.valid, 256)?
            .accuracy;
        println!(
            "round {round} of {}: pruned {} of {} weights in {} matrices ({} scope), {} of {} parameters are zero; validation accuracy {:.2}% (before pruning: {:.2}%)",
            args.rounds,
            round_masks.pruned(),
            round_masks.prunable(),
            round_masks.masks.len(),
            match args.scope {
                Scope::Layer => "per-layer",
                Scope::Global => "global",
                Scope::Lamp => "LAMP",
            },
            counts.total - counts.nonzero,
            counts.total,
            100.0 * accuracy,
            100.0 * source.metrics.valid_accuracy
        );
        before_fine_tuning.push(accuracy);
        if args.epochs > 0 {
            B::seed(device, args.fit.seed);
            let optimizer = Masked {
                inner: FusedAdamWConfig::new(0.0).init(),
                masks: round_masks.mapper::<B>(device),
            };
            let log_dir = if args.rounds == 1 {
                log_dir(writer.dir())
            } else {
                log_dir(writer.dir()).join(format!("round-{round}"))
            };
            let start = Start::prepare(&log_dir, &options, args.fit.resume)?;
            let mut step = ClassifierStep::new(model);
            step.distillation = distillation;
            let fitted = fit_classifier(
                step,
                optimizer,
                &plan,
                &args.fit.batching(false, config.max_seq_len),
                train.clone(),
                valid.clone(),
                &start,
                device,
            )?;
            // Back on the training backend, with every parameter tracked
            // again (`from_inner` alone leaves them untracked, and the next
            // round would not train).
            model = TextClassifier::<B>::from_inner(fitted.model).map(&mut RequireGrad);
            runs.push(fitted.run);
        }
        masks = Some(round_masks);
    }
    let masks = masks.expect("at least one round");
    let model = model.valid();
    ensure!(
        masks.zeros_kept(&model),
        "a pruned weight is no longer zero after fine-tuning: the mask was not kept"
    );
    let run = match runs.pop() {
        None => RunInfo::of(&source.metrics),
        Some(last) => {
            // The rounds' epochs, one after another; the kept epoch is the
            // last round's choice.
            let mut run = RunInfo {
                best_epoch: 0,
                averaged_from: 0,
                epochs_run: 0,
                train_seconds: 0.0,
                selected_by: last.selected_by.clone(),
                history: Default::default(),
            };
            for round in runs.iter().chain([&last]) {
                run.epochs_run += round.epochs_run;
                run.train_seconds += round.train_seconds;
                let (from, to) = (&round.history, &mut run.history);
                to.train_loss.extend(&from.train_loss);
                to.valid_loss.extend(&from.valid_loss);
                to.train_accuracy.extend(&from.train_accuracy);
                to.valid_accuracy.extend(&from.valid_accuracy);
            }
            run.best_epoch = run.epochs_run - last.epochs_run + last.best_epoch;
            run.averaged_from = run.best_epoch - (last.best_epoch - last.averaged_from);
            run
        }
    };
    let settings = CompressionSettings::Prune {
        target_sparsity: args.sparsity,
        scope: args.scope,
        rounds: args.rounds,
        epochs: args.epochs,
        lr: args.lr,
        lr_schedule: args.fit.lr_schedule,
        weight_matrix_sparsity: masks.pruned() as f64 / masks.prunable() as f64,
        valid_accuracy_before_fine_tuning: before_fine_tuning,
        distillation: distillation.map(|d| (d.temperature, d.alpha)),
    };
    source.write(
        writer,
        model,
        config,
        run,
        ("prune", settings),
        &args.paths.from,
        backend,
        device,
    )
}

/// Which weights magnitude pruning removes: a 0/1 mask per weight matrix
/// (every parameter of two or more dimensions: the embedding, the recurrent
/// layers' W and U, attention and output weights; biases are kept).
#[derive(Debug, Clone)]
pub struct PruningMasks {
    /// Flattened 0/1 masks, by parameter.
    pub masks: HashMap<ParamId, Vec<f32>>,
}

impl PruningMasks {
    /// Zeroes the `sparsity` fraction of smallest-magnitude weights of each
    /// matrix (`Scope::Layer`), or of all matrices ranked together by
    /// magnitude (`Scope::Global`) or by LAMP score (`Scope::Lamp`, see
    /// [`lamp_scores`]). Exactly ⌊sparsity · n⌋ weights go in each scope;
    /// ties at the threshold go by position.
    pub fn new<B: Backend, M: Module<B>>(module: &M, sparsity: f64, scope: Scope) -> Self {
        let mut collect = CollectMatrices::default();
        module.visit(&mut collect);
        let groups: Vec<Vec<usize>> = match scope {
            Scope::Layer => (0..collect.matrices.len()).map(|i| vec![i]).collect(),
            Scope::Global | Scope::Lamp => vec![(0..collect.matrices.len()).collect()],
        };
        // What each weight is ranked by, smallest pruned first.
        let scores: Vec<Vec<f32>> = collect
            .matrices
            .iter()
            .map(|(_, values)| match scope {
                Scope::Layer | Scope::Global => values.iter().map(|w| w.abs()).collect(),
                Scope::Lamp => lamp_scores(values),
            })
            .collect();
        let mut masks: HashMap<ParamId, Vec<f32>> = collect
            .matrices
            .iter()
            .map(|(id, values)| (*id, vec![1.0; values.len()]))
            .collect();
        for group in groups {
            // (score, matrix, position) of every weight of the group.
            let mut weights: Vec<(f32, usize, usize)> = group
                .iter()
                .flat_map(|&m| scores[m].iter().enumerate().map(move |(i, s)| (*s, m, i)))
                .collect();
            let k = (sparsity * weights.len() as f64).floor() as usize;
            if k == 0 {
                continue;
            }
            weights.select_nth_unstable_by(k - 1, |a, b| a.partial_cmp(b).expect("finite weights"));
            for &(_, m, i) in &weights[..k] {
                let id = collect.matrices[m].0;
                masks.get_mut(&id).expect("every matrix has a mask")[i] = 0.0;
            }
        }
        Self { masks }
    }

    /// Weights that pruning may remove.
    pub fn prunable(&self) -> usize {
        self.masks.values().map(Vec::len).sum()
    }

    /// Weights that pruning removed.
    pub fn pruned(&self) -> usize {
        self.masks
            .values()
            .map(|m| m.iter().filter(|v| **v == 0.0).count())
            .sum()
    }

    /// A mapper that multiplies each pruned matrix by its mask.
    pub fn mapper<B: Backend>(&self, device: &B::Device) -> ApplyMasks<B> {
        ApplyMasks {
            masks: self
                .masks
                .iter()
                .map(|(id, mask)| (*id, Tensor::from_floats(mask.as_slice(), device)))
                .collect(),
        }
    }

    /// Whether every weight the masks removed is still exactly zero in `module`.
    pub fn zeros_kept<B: Backend, M: Module<B>>(&self, module: &M) -> bool {
        let mut collect = CollectMatrices::default();
        module.visit(&mut collect);
        collect.matrices.iter().all(|(id, values)| {
            self.masks
                .get(id)
                .is_some_and(|mask| mask.iter().zip(values).all(|(m, w)| *m != 0.0 || *w == 0.0))
        })
    }
}

/// The LAMP score of each weight of one matrix (Lee et al. 2021): w_u² over
/// the sum of w_v² for every weight v at least as large as u (u included,
/// ties by position). Within the matrix it orders weights as |w| does; the
/// largest scores 1, so no matrix is emptied, and a matrix's scores do not
/// change when all its weights are scaled, so one ranking across matrices
/// of different scales prunes each by how much of its own mass it would lose.
fn lamp_scores(values: &[f32]) -> Vec<f32> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| {
        values[a]
            .abs()
            .partial_cmp(&values[b].abs())
            .expect("finite weights")
    });
    let mut scores = vec![0.0; values.len()];
    let mut larger = 0.0f64; // Σ w² of this weight and every larger one
    for &i in order.iter().rev() {
        let square = f64::from(values[i]) * f64::from(values[i]);
        larger += square;
        scores[i] = if larger > 0.0 {
            (square / larger) as f32
        } else {
            0.0
        };
    }
    scores
}

/// The id and values of every parameter of two or more dimensions.
#[derive(Default)]
struct CollectMatrices {
    matrices: Vec<(ParamId, Vec<f32>)>,
}

impl<B: Backend> ModuleVisitor<B> for CollectMatrices {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if D >= 2 {
            let values = param.val().dequantize().into_data().convert::<f32>();
            self.matrices
                .push((param.id, values.to_vec::<f32>().expect("converted to f32")));
        }
    }
}

/// Multiplies the pruned matrices by their masks, leaving each a fresh
/// parameter (detached, and tracked again if it was).
#[derive(Debug, Clone)]
pub struct ApplyMasks<B: Backend> {
    masks: HashMap<ParamId, Tensor<B, 1>>,
}

impl<B: Backend> ModuleMapper<B> for ApplyMasks<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(mask) = self.masks.get(&param.id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let tracked = tensor.is_require_grad();
        let dims = tensor.dims();
        let mut masked = (tensor * mask.clone().reshape(dims)).detach();
        if tracked {
            masked = masked.require_grad();
        }
        Param::from_mapped_value(id, masked, mapper)
    }
}

/// Makes every float parameter a tracked leaf of the autodiff graph again
/// (`AutodiffModule::from_inner` leaves them untracked).
struct RequireGrad;

impl<B: AutodiffBackend> ModuleMapper<B> for RequireGrad {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.detach().require_grad(), mapper)
    }
}

/// An optimizer that re-applies the pruning masks after every step, so that
/// the weights pruning removed stay exactly zero while the others train.
#[derive(Clone)]
pub struct Masked<O, B: Backend> {
    pub inner: O,
    pub masks: ApplyMasks<B>,
}

impl<M, B, O> Optimizer<M, B> for Masked<O, B>
where
    M: AutodiffModule<B>,
    B: AutodiffBackend,
    O: Optimizer<M, B>,
{
    type Record = O::Record;

    fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        self.inner.step(lr, module, grads).map(&mut self.masks)
    }

    fn step_multi(&mut self, lr: f64, module: M, grads: MultiGradientsParams) -> M {
        self.inner
            .step_multi(lr, module, grads)
            .map(&mut self.masks)
    }

    fn to_record(&self) -> Self::Record {
        self.inner.to_record()
    }

    fn load_record(self, record: Self::Record) -> Self {
        Self {
            inner: self.inner.load_record(record),
            masks: self.masks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::test_batch as batch;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::loss::CrossEntropyLossConfig;
    use model::TextClassifierConfig;

    type A = Autodiff<NdArray>;

    /// After pruning and a fine-tuning step, the pruned weights are still
    /// exactly zero, each matrix has the sparsity asked for, and the other
    /// weights did train. Without the mask, the same step revives pruned weights.
    #[test]
    fn pruned_weights_stay_zero_through_fine_tuning() {
        let device = Default::default();
        A::seed(&device, 5);
        let model = TextClassifierConfig::new(50, 2)
            .with_d_embed(8)
            .with_d_hidden(8)
            .init::<A>(&device);
        let masks = PruningMasks::new(&model, 0.8, Scope::Layer);
        let mut collect = CollectMatrices::default();
        model.visit(&mut collect);
        for (id, values) in &collect.matrices {
            let zeros = masks.masks[id].iter().filter(|m| **m == 0.0).count();
            assert_eq!(zeros, (0.8 * values.len() as f64).floor() as usize);
        }
        let pruned = model.map(&mut masks.mapper::<A>(&device));
        assert!(masks.zeros_kept(&pruned));

        let step = |model: TextClassifier<A>, masked: bool| {
            let (tokens, mask) = batch::<A>(&device);
            let labels = Tensor::<A, 1, Int>::from_ints([0, 1, 1], &device);
            let logits = model.forward(tokens, mask).logits;
            let loss = CrossEntropyLossConfig::new()
                .init(&device)
                .forward(logits, labels);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let adam = burn::optim::AdamWConfig::new().init::<A, TextClassifier<A>>();
            if masked {
                let mut optimizer = Masked {
                    inner: adam,
                    masks: masks.mapper::<A>(&device),
                };
                optimizer.step(1e-2, model, grads)
            } else {
                let mut optimizer = adam;
                optimizer.step(1e-2, model, grads)
            }
        };
        let tuned = step(pruned.clone(), true);
        assert!(masks.zeros_kept(&tuned), "a pruned weight came back");
        let counts = ParamCounts::of(&tuned);
        let before = ParamCounts::of(&pruned);
        assert_eq!(counts.nonzero, before.nonzero);
        // The kept weights moved.
        let mut moved = CollectMatrices::default();
        tuned.visit(&mut moved);
        let mut start = CollectMatrices::default();
        pruned.visit(&mut start);
        assert!(
            moved
                .matrices
                .iter()
                .zip(&start.matrices)
                .any(|(a, b)| a.1 != b.1)
        );
        // The plain optimizer does not keep them at zero.
        assert!(!masks.zeros_kept(&step(pruned, false)));
    }

    #[test]
    fn global_pruning_removes_the_smallest_weights_anywhere() {
        let device = Default::default();
        let model = TextClassifierConfig::new(30, 2)
            .with_d_embed(4)
            .with_d_hidden(4)
            .init::<NdArray>(&device);
        let masks = PruningMasks::new(&model, 0.5, Scope::Global);
        assert_eq!(masks.pruned(), masks.prunable() / 2);
        // Every kept weight is at least as large as every pruned one.
        let mut collect = CollectMatrices::default();
        model.visit(&mut collect);
        let (mut largest_pruned, mut smallest_kept) = (0.0f32, f32::INFINITY);
        for (id, values) in &collect.matrices {
            for (m, w) in masks.masks[id].iter().zip(values) {
                if *m == 0.0 {
                    largest_pruned = largest_pruned.max(w.abs());
                } else {
                    smallest_kept = smallest_kept.min(w.abs());
                }
            }
        }
        assert!(largest_pruned <= smallest_kept);
    }

    #[test]
    fn lamp_scores_follow_the_definition_and_ignore_scale() {
        // Sorted by |w|: 1, 2, 3 (squares 1, 4, 9): 1/14, 4/13, 9/9.
        let scores = lamp_scores(&[3.0, -1.0, 2.0]);
        let expected = [1.0, 1.0 / 14.0, 4.0 / 13.0];
        for (s, e) in scores.iter().zip(expected) {
            assert!((s - e).abs() < 1e-6, "{scores:?}");
        }
        // Scaling a matrix leaves its scores as they were.
        let scaled = lamp_scores(&[300.0, -100.0, 200.0]);
        for (s, e) in scaled.iter().zip(&scores) {
            assert!((s - e).abs() < 1e-6);
        }
        assert_eq!(lamp_scores(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn lamp_pruning_ranks_matrices_of_different_scales_together_without_emptying_one() {
        let device = Default::default();
        let model = TextClassifierConfig::new(30, 2)
            .with_d_embed(4)
            .with_d_hidden(4)
            .init::<NdArray>(&device);
        let mut collect = CollectMatrices::default();
        model.visit(&mut collect);
        let masks = PruningMasks::new(&model, 0.9, Scope::Lamp);
        assert_eq!(
            masks.pruned(),
            (0.9 * masks.prunable() as f64).floor() as usize
        );
        let mut fractions = Vec::new();
        for (id, values) in &collect.matrices {
            let mask = &masks.masks[id];
            // Each matrix keeps its largest weight...
            let largest = values
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().partial_cmp(&b.1.abs()).unwrap())
                .unwrap()
                .0;
            assert_eq!(mask[largest], 1.0);
            // ...and within a matrix, a kept weight is never smaller than a pruned one.
            let kept_min = values
                .iter()
                .zip(mask)
                .filter(|(_, m)| **m == 1.0)
                .map(|(w, _)| w.abs())
                .fold(f32::INFINITY, f32::min);
            let pruned_max = values
                .iter()
                .zip(mask)
                .filter(|(_, m)| **m == 0.0)
                .map(|(w, _)| w.abs())
                .fold(0.0, f32::max);
            assert!(pruned_max <= kept_min);
            fractions.push(mask.iter().filter(|m| **m == 0.0).count() as f64 / mask.len() as f64);
        }
        // Unlike per-layer pruning, the matrices end at different sparsities.
        let spread = fractions.iter().cloned().fold(0.0, f64::max)
            - fractions.iter().cloned().fold(1.0, f64::min);
        assert!(spread > 0.05, "{fractions:?}");
    }
}
