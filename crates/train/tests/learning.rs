//! The classifier can learn: on a small fixed batch of real MR sentences,
//! Adam drives training accuracy to at least 95% within a bounded number of
//! steps. (A model that cannot fit 32 sentences cannot fit 8,000.)

use burn::backend::{Autodiff, NdArray};
use burn::data::dataloader::batcher::Batcher;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use data::{MR_LABELS, TextBatcher, WordTokenizer, encode_all, read_labelled_tsv};
use model::TextClassifierConfig;
use std::path::Path;
use train::step::{ClassifierStep, TrainBatch};

type B = Autodiff<NdArray>;

#[test]
fn overfits_a_small_fixed_batch() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mr/train.tsv");
    let mut items = read_labelled_tsv(&path, &MR_LABELS).unwrap();
    items.truncate(32);
    let tokenizer = WordTokenizer::train(items.iter().map(|t| t.text.as_str()), 1, 10_000).unwrap();
    let device = Default::default();
    B::seed(&device, 7);
    let config = TextClassifierConfig::new(tokenizer.vocab_size(), 2)
        .with_d_embed(32)
        .with_d_hidden(32)
        .with_embedding_dropout(0.0)
        .with_output_dropout(0.0);
    let mut step = ClassifierStep::new(config.init::<B>(&device));
    let mut optim = AdamConfig::new().init::<B, ClassifierStep<B>>();
    let batch = TrainBatch {
        text: TextBatcher::new(64).batch(encode_all(&tokenizer, &items).unwrap(), &device),
        teacher_logits: None,
    };

    let mut accuracy = 0.0;
    let mut steps = 0;
    while steps < 150 {
        let output = step.forward_loss(batch.clone(), true);
        let predicted = output.output.clone().argmax(1).reshape([items.len()]);
        let correct: i64 = predicted
            .equal(output.targets.clone())
            .int()
            .sum()
            .into_scalar()
            .elem();
        accuracy = correct as f64 / items.len() as f64;
        if accuracy >= 0.95 {
            break;
        }
        let grads = GradientsParams::from_grads(output.loss.backward(), &step);
        step = optim.step(1e-2, step, grads);
        steps += 1;
    }
    println!("accuracy {:.1}% after {steps} steps", 100.0 * accuracy);
    assert!(
        accuracy >= 0.95,
        "only {:.1}% after {steps} steps",
        100.0 * accuracy
    );
    assert!(
        steps > 0,
        "an untrained model should not already fit the batch"
    );
}
