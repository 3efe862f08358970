//! `train --embeddings`: the classifier's word embedding starts from
//! pretrained word vectors (GloVe: `datasets/glove-mr`), and goes on learning
//! with the rest of the model. Pretrained vectors bring what MR's 8,483
//! training sentences cannot teach: where a word the training split has
//! seen once or twice ("vacuous", "tedium") stands among the others (Kim
//! 2014: +5 points on MR for a CNN; +2.6 here, docs/generalization.md).

use anyhow::{Result, bail};
use burn::prelude::*;
use data::{WordTokenizer, WordVectors};
use model::TextClassifier;
use std::path::Path;

/// Reads `path` and checks its width against `--d-embed`, where one was given.
pub fn read(path: &Path, d_embed: Option<usize>) -> Result<WordVectors> {
    let vectors = WordVectors::read(path).map_err(|e| match e {
        data::DataError::Io { .. } => {
            anyhow::anyhow!("{e} (`cargo xtask data glove-mr` writes the default; --embeddings none trains from a random embedding)")
        }
        e => e.into(),
    })?;
    if let Some(d) = d_embed.filter(|&d| d != vectors.dim()) {
        bail!(
            "--d-embed {d} differs from the {} values per word of --embeddings {} \
             (leave --d-embed out to take the file's width, or give --embeddings none \
             for a random embedding)",
            vectors.dim(),
            path.display()
        );
    }
    Ok(vectors)
}

/// `model` with each word's embedding row set to its pretrained vector.
/// Words without one (and `[PAD]`, `[UNK]`) keep their random start, scaled
/// to the vectors' standard deviation so that they look like the others.
/// Returns the model and the number of words that found a vector.
pub fn start_from<B: Backend>(
    model: TextClassifier<B>,
    tokenizer: &WordTokenizer,
    vectors: &WordVectors,
) -> (TextClassifier<B>, usize) {
    let weight = model.embedding().weight.val(); // [V, E], drawn from N(0, 1)
    let [vocab, dim] = weight.dims();
    assert_eq!(dim, vectors.dim(), "--d-embed is the vectors' width");
    let device = weight.device();
    let mut rows: Vec<f32> = weight.into_data().convert::<f32>().to_vec().unwrap();
    let scale = vectors.std();
    let mut found = 0;
    for (id, row) in rows.chunks_exact_mut(dim).enumerate() {
        match tokenizer.token(id as u32).and_then(|w| vectors.get(&w)) {
            Some(vector) => {
                row.copy_from_slice(vector);
                found += 1;
            }
            None => row.iter_mut().for_each(|x| *x *= scale),
        }
    }
    let weight = Tensor::from_data(TensorData::new(rows, [vocab, dim]), &device);
    (model.with_embedding_weight(weight), found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::optim::GradientsParams;
    use model::TextClassifierConfig;

    type A = Autodiff<NdArray>;

    fn vectors() -> WordVectors {
        let text = "film 1 2 3\ngood -1 0 1\nunused 9 9 9\n";
        WordVectors::parse(text.as_bytes(), Path::new("v.txt")).unwrap()
    }

    #[test]
    fn words_with_a_vector_start_from_it_and_the_others_at_its_scale() {
        let device = Default::default();
        let tokenizer =
            WordTokenizer::train(["good film", "good bad film", "good"].into_iter(), 1, 100)
                .unwrap();
        // [PAD], [UNK], good, film, bad.
        let model = TextClassifierConfig::new(tokenizer.vocab_size(), 2)
            .with_d_embed(3)
            .with_d_hidden(4)
            .init::<A>(&device);
        let before: Vec<f32> = model.embedding().weight.val().into_data().to_vec().unwrap();
        let vectors = vectors();
        let (model, found) = start_from(model, &tokenizer, &vectors);
        assert_eq!(found, 2);
        let after: Vec<f32> = model.embedding().weight.val().into_data().to_vec().unwrap();
        assert_eq!(&after[2 * 3..3 * 3], &[-1.0, 0.0, 1.0]); // good
        assert_eq!(&after[3 * 3..4 * 3], &[1.0, 2.0, 3.0]); // film
        let scale = vectors.std();
        for i in (0..2 * 3).chain(4 * 3..5 * 3) {
            assert!((after[i] - before[i] * scale).abs() < 1e-6, "{i}");
        }

        // The new embedding is a parameter the optimizer sees: it gets a gradient.
        let tokens = Tensor::<A, 2, Int>::from_ints([[2, 3, 4]], &device);
        let mask = tokens.clone().not_equal_elem(0);
        let loss = model.forward(tokens, mask).logits.sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let grad = grads
            .get::<NdArray, 2>(model.embedding().weight.id)
            .expect("the pretrained embedding gets a gradient");
        assert!(grad.abs().sum().into_scalar() > 0.0);
    }
}
