//! Structured pruning on the model's side: how much each embedding
//! dimension and each hidden unit of an LSTM classifier matters
//! ([`TextClassifier::unit_importance`]), and the smaller dense classifier
//! that keeps only some of them ([`TextClassifier::keep_units`]). Removing
//! a whole unit removes its row and column from every matrix that touches
//! it, so the model gets smaller and faster, where magnitude pruning only
//! writes zeros.

use crate::TextClassifier;
use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;

/// What a smaller classifier keeps, as ascending indices into the original's.
#[derive(Debug, Clone, PartialEq)]
pub struct Units {
    /// Embedding dimensions.
    pub embedding: Vec<usize>,
    /// Hidden units of each encoder layer.
    pub hidden: Vec<Vec<usize>>,
}

/// A score per embedding dimension and per hidden unit of each layer:
/// the norm of the weights that write it times the norm of the weights
/// that read it (the product is zero when either side is).
#[derive(Debug, Clone)]
pub struct UnitImportance {
    pub embedding: Vec<f32>,
    pub hidden: Vec<Vec<f32>>,
}

impl UnitImportance {
    /// The `keep` highest-scoring embedding dimensions and `keep_hidden`
    /// highest-scoring units of every layer, each set in ascending order
    /// (ties go to the lower index).
    pub fn top(&self, keep_embedding: usize, keep_hidden: usize) -> Units {
        Units {
            embedding: top(&self.embedding, keep_embedding),
            hidden: self.hidden.iter().map(|s| top(s, keep_hidden)).collect(),
        }
    }
}

fn top(scores: &[f32], keep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept = order[..keep.min(scores.len())].to_vec();
    kept.sort_unstable();
    kept
}

/// `linear` reading only its `inputs` rows and writing only its `outputs` columns.
pub(crate) fn keep_linear<B: Backend>(
    linear: &Linear<B>,
    inputs: &[usize],
    outputs: &[usize],
) -> Linear<B> {
    let weight = linear.weight.val();
    let device = weight.device();
    let weight = weight
        .select(0, indices(inputs, &device))
        .select(1, indices(outputs, &device));
    Linear {
        // Fresh parameters: leaves of the autodiff graph that fine-tuning trains.
        weight: Param::from_tensor(weight.detach()),
        bias: linear.bias.as_ref().map(|bias| {
            Param::from_tensor(bias.val().select(0, indices(outputs, &device)).detach())
        }),
    }
}

fn indices<B: Backend>(at: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let at: Vec<i64> = at.iter().map(|&i| i as i64).collect();
    let n = at.len();
    Tensor::from_data(TensorData::new(at, [n]), device)
}

/// A matrix `[rows, cols]` as values, row-major, and its number of columns.
fn values<B: Backend>(matrix: Tensor<B, 2>) -> (Vec<f32>, usize) {
    let cols = matrix.dims()[1];
    let data = matrix.dequantize().into_data().convert::<f32>();
    (data.to_vec().expect("f32 weights"), cols)
}

/// The sum of squares of each row.
fn row_norms2((w, cols): &(Vec<f32>, usize)) -> Vec<f32> {
    w.chunks(*cols)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect()
}

/// The sum of squares of each column.
fn column_norms2((w, cols): &(Vec<f32>, usize)) -> Vec<f32> {
    let mut norms = vec![0.0; *cols];
    for row in w.chunks(*cols) {
        for (n, v) in norms.iter_mut().zip(row) {
            *n += v * v;
        }
    }
    norms
}

impl<B: Backend> TextClassifier<B> {
    /// The importance of every embedding dimension and hidden unit, or
    /// `None` unless the encoder is forward-only LSTM layers (the structure
    /// [`keep_units`](Self::keep_units) knows how to cut).
    pub fn unit_importance(&self) -> Option<UnitImportance> {
        let lstms = self.encoder.lstm_layers()?;
        if lstms.iter().any(|(_, backward)| backward.is_some()) {
            return None;
        }
        let embedding = values(self.embedding.weight.val());
        let layers: Vec<_> = lstms
            .iter()
            .map(|(lstm, _)| {
                let (input, _, recurrent) = lstm.weights(); // [E, 4H], [H, 4H]
                (values(input), values(recurrent))
            })
            .collect();
        let h = |l: usize| layers[l].1.0.len() / layers[l].1.1;
        // What reads the last layer's units: the attention score and each
        // pooled block's rows of the output layer.
        let last = h(layers.len() - 1);
        let score = row_norms2(&values(self.attention.score.weight.val()));
        let output = row_norms2(&values(self.output.weight.val()));
        let read_last: Vec<f32> = (0..last)
            .map(|k| score[k] + output.iter().skip(k).step_by(last).sum::<f32>())
            .collect();

        let written = column_norms2(&embedding);
        let read = row_norms2(&layers[0].0);
        let embedding = written
            .iter()
            .zip(&read)
            .map(|(w, r)| (w * r).sqrt())
            .collect();
        let hidden = (0..layers.len())
            .map(|l| {
                let h = h(l);
                // Each unit's four gate columns of W and U write it.
                let gates: Vec<f32> = column_norms2(&layers[l].0)
                    .iter()
                    .zip(column_norms2(&layers[l].1))
                    .map(|(w, u)| w + u)
                    .collect();
                let recurrent = row_norms2(&layers[l].1);
                let next = match layers.get(l + 1) {
                    Some((input, _)) => row_norms2(input),
                    None => read_last.clone(),
                };
                (0..h)
                    .map(|k| {
                        let written: f32 = (0..4).map(|g| gates[g * h + k]).sum();
                        ((recurrent[k] + next[k]) * written).sqrt()
                    })
                    .collect()
            })
            .collect();
        Some(UnitImportance { embedding, hidden })
    }

    /// The classifier with only `keep`'s embedding dimensions and hidden
    /// units, and their weights: the model a config with
    /// `d_embed = keep.embedding.len()` and `d_hidden` = the units per
    /// layer describes. Panics unless [`unit_importance`](Self::unit_importance)
    /// is `Some` and every layer keeps as many units.
    pub fn keep_units(&self, keep: &Units) -> TextClassifier<B> {
        let h = keep.hidden.last().expect("at least one layer");
        assert!(
            keep.hidden.iter().all(|units| units.len() == h.len()),
            "every layer keeps as many units"
        );
        let d_hidden = self.attention.score.weight.dims()[0];
        // The output layer reads one block of D per pooled vector (three
        // for concat pooling).
        let blocks = self.output.weight.dims()[0] / d_hidden;
        let output_rows: Vec<usize> = (0..blocks)
            .flat_map(|b| h.iter().map(move |k| b * d_hidden + k))
            .collect();
        let classes: Vec<usize> = (0..self.output.weight.dims()[1]).collect();
        // Every word's row, only the kept columns `[V, E']`.
        let embedding = self.embedding.weight.val();
        let columns = indices(&keep.embedding, &embedding.device());
        TextClassifier {
            embedding: Embedding {
                weight: Param::from_tensor(embedding.select(1, columns).detach()),
            },
            encoder: self.encoder.keep_lstm_units(&keep.embedding, &keep.hidden),
            attention: self.attention.keep(h),
            embedding_dropout: self.embedding_dropout.clone(),
            output_dropout: self.output_dropout.clone(),
            output: keep_linear(&self.output, &output_rows, &classes),
            pooling: self.pooling,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::max_diff;
    use crate::{Pooling, TextClassifierConfig};
    use burn::backend::NdArray;
    use burn::module::{Module, ModuleMapper};

    type B = NdArray;

    fn config(layers: usize, pooling: Pooling) -> TextClassifierConfig {
        TextClassifierConfig::new(30, 3)
            .with_d_embed(6)
            .with_d_hidden(5)
            .with_layers(layers)
            .with_pooling(Some(pooling))
    }

    fn batch() -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>) {
        let tokens = Tensor::<B, 2, Int>::from_ints(
            [[5, 9, 14, 3, 21], [11, 2, 29, 0, 0], [7, 0, 0, 0, 0]],
            &Default::default(),
        );
        let mask = tokens.clone().not_equal_elem(0);
        (tokens, mask)
    }

    /// Zeroes the rows and columns of every matrix that read a removed
    /// embedding dimension or hidden unit, by parameter shape: what a
    /// removed unit writes then reaches nothing.
    struct SilenceRemoved<'a> {
        keep: &'a Units,
        model: Vec<(usize, usize)>,
    }

    impl ModuleMapper<B> for SilenceRemoved<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, value) = (param.id, param.val());
            if D != 2 {
                return Param::initialized(id, value);
            }
            let [rows, cols] = [value.dims()[0], value.dims()[1]];
            let (e, h) = self.model[0];
            let last = self.keep.hidden.last().unwrap();
            let keep_row = |r: usize| -> bool {
                match (rows, cols) {
                    (30, _) => true, // embedding rows are words
                    _ if rows == e && cols == 4 * h => self.keep.embedding.contains(&r),
                    _ if rows == h && cols == 4 * h => last.contains(&r), // U reads h_{t-1}
                    _ if cols == 1 || cols == 3 => last.contains(&(r % h)), // score, output
                    _ => true,
                }
            };
            let keep_col = |c: usize| rows != 30 || self.keep.embedding.contains(&c);
            let data = value.clone().into_data().to_vec::<f32>().unwrap();
            let silenced: Vec<f32> = data
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    if keep_row(i / cols) && keep_col(i % cols) {
                        *v
                    } else {
                        0.0
                    }
                })
                .collect();
            let shape = value.shape();
            let tensor =
                Tensor::<B, D>::from_data(TensorData::new(silenced, shape), &value.device());
            Param::initialized(id, tensor)
        }
    }

    /// The smaller model computes exactly what the original does once every
    /// weight that reads a removed dimension or unit is zero: the removed
    /// units still compute there, but nothing reads them.
    #[test]
    fn the_smaller_model_equals_the_original_with_the_removed_units_silenced() {
        let device = Default::default();
        for pooling in [Pooling::Attention, Pooling::Concat] {
            let config = config(1, pooling);
            let model = config.init::<B>(&device);
            let keep = Units {
                embedding: vec![0, 2, 3, 5],
                hidden: vec![vec![1, 2, 4]],
            };
            let small = model.keep_units(&keep);
            let expected = config.clone().with_d_embed(4).with_d_hidden(3);
            assert_eq!(small.num_params() as f64, expected.num_params());
            let silenced = model.clone().map(&mut SilenceRemoved {
                keep: &keep,
                model: vec![(6, 5)],
            });
            let (tokens, mask) = batch();
            let a = silenced.forward(tokens.clone(), mask.clone());
            let b = small.forward(tokens, mask);
            assert!(max_diff(a.logits, b.logits) < 1e-5, "{pooling}");
            assert!(max_diff(a.attention, b.attention) < 1e-6, "{pooling}");
        }
    }

    /// Keeping every unit changes nothing, with two layers too.
    #[test]
    fn keeping_every_unit_keeps_the_model() {
        let device = Default::default();
        let model = config(2, Pooling::Concat).init::<B>(&device);
        let keep = Units {
            embedding: (0..6).collect(),
            hidden: vec![(0..5).collect(), (0..5).collect()],
        };
        let (tokens, mask) = batch();
        let a = model.forward(tokens.clone(), mask.clone()).logits;
        let b = model.keep_units(&keep).forward(tokens, mask).logits;
        assert!(max_diff(a, b) < 1e-6);
    }

    /// A unit nothing reads scores zero and goes first; so does an
    /// embedding dimension that is zero in every word.
    #[test]
    fn a_unit_nothing_reads_is_the_least_important() {
        let device = Default::default();
        let model = config(1, Pooling::Concat).init::<B>(&device);
        let keep_all = Units {
            embedding: (0..6).collect(),
            hidden: vec![(0..5).collect()],
        };
        let mut without = keep_all.clone();
        without.embedding.retain(|&j| j != 4);
        without.hidden[0].retain(|&k| k != 2);
        let silenced = model.map(&mut SilenceRemoved {
            keep: &without,
            model: vec![(6, 5)],
        });
        let importance = silenced.unit_importance().unwrap();
        assert_eq!(importance.hidden[0][2], 0.0);
        assert!(
            importance.hidden[0]
                .iter()
                .enumerate()
                .all(|(k, s)| k == 2 || *s > 0.0)
        );
        assert_eq!(importance.embedding[4], 0.0);
        assert_eq!(importance.top(5, 4), without);
    }

    #[test]
    fn only_forward_lstm_encoders_have_units_to_cut() {
        let device = Default::default();
        let bidirectional = config(1, Pooling::Concat).with_bidirectional(true);
        assert!(bidirectional.init::<B>(&device).unit_importance().is_none());
        let gru = config(1, Pooling::Concat).with_cell(crate::CellKind::Gru);
        assert!(gru.init::<B>(&device).unit_importance().is_none());
    }
}
