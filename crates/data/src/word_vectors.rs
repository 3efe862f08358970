//! Pretrained word vectors in the text format of GloVe and word2vec: one word
//! per line, then its values, separated by spaces (`the 0.418 0.24968 …`).
//! word2vec's first line, the count of words and their width (`400000 100`),
//! is accepted and checked. `train --embeddings` starts the classifier's word
//! embedding from them.

use crate::DataError;
use std::collections::HashMap;
use std::path::Path;

/// Word vectors, all of one width.
#[derive(Debug, Clone)]
pub struct WordVectors {
    dim: usize,
    index: HashMap<String, usize>,
    /// `[words, dim]`, row-major, in the file's order.
    values: Vec<f32>,
}

impl WordVectors {
    /// Reads a GloVe or word2vec text file.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a file `path` names (for the errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, DataError> {
        let error = |line: usize, message: String| DataError::WordVectors {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut vectors = WordVectors {
            dim: 0,
            index: HashMap::new(),
            values: Vec::new(),
        };
        let mut declared: Option<(usize, usize)> = None;
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let text = std::str::from_utf8(raw)
                .map_err(|_| DataError::NotUtf8 {
                    path: path.to_path_buf(),
                    line,
                })?
                .trim_end_matches('\r');
            let mut fields = text.split(' ').filter(|f| !f.is_empty());
            let Some(word) = fields.next() else {
                continue; // a blank line (the last one, usually)
            };
            let values: Vec<&str> = fields.collect();
            if line == 1 && values.len() == 1 {
                // word2vec's header: `<words> <width>`.
                let count = word.parse::<usize>();
                let width = values[0].parse::<usize>();
                if let (Ok(count), Ok(width)) = (count, width) {
                    if width == 0 {
                        return Err(error(line, "the header declares vectors of width 0".into()));
                    }
                    declared = Some((count, width));
                    vectors.dim = width;
                    continue;
                }
            }
            if vectors.dim == 0 {
                if values.is_empty() {
                    return Err(error(line, format!("the word {word:?} has no values")));
                }
                vectors.dim = values.len();
            }
            if values.len() != vectors.dim {
                return Err(error(
                    line,
                    format!(
                        "the word {word:?} has {} values, the vectors before it {}",
                        values.len(),
                        vectors.dim
                    ),
                ));
            }
            for value in values {
                match value.parse::<f32>() {
                    Ok(v) if v.is_finite() => vectors.values.push(v),
                    _ => {
                        return Err(error(
                            line,
                            format!(
                                "the word {word:?} has the value {value:?}, not a finite number"
                            ),
                        ));
                    }
                }
            }
            let row = vectors.index.len();
            if vectors.index.insert(word.to_string(), row).is_some() {
                return Err(error(
                    line,
                    format!("the word {word:?} appears a second time"),
                ));
            }
        }
        if vectors.index.is_empty() {
            return Err(DataError::WordVectors {
                path: path.to_path_buf(),
                line: 1,
                message: "no word vectors: expected lines of `word value value …`".into(),
            });
        }
        if let Some((count, _)) = declared.filter(|&(count, _)| count != vectors.len()) {
            return Err(error(
                1,
                format!(
                    "the header declares {count} words, the file has {}",
                    vectors.len()
                ),
            ));
        }
        Ok(vectors)
    }

    /// Values per word.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The vector of `word`, if the file has one.
    pub fn get(&self, word: &str) -> Option<&[f32]> {
        let row = *self.index.get(word)?;
        Some(&self.values[row * self.dim..(row + 1) * self.dim])
    }

    pub fn contains(&self, word: &str) -> bool {
        self.index.contains_key(word)
    }

    /// The standard deviation of all values: the scale at which a word
    /// without a vector starts, so that it looks like the others.
    pub fn std(&self) -> f32 {
        let n = self.values.len() as f64;
        let mean = self.values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = self
            .values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        var.sqrt() as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WordVectors, DataError> {
        WordVectors::parse(text.as_bytes(), Path::new("vectors.txt"))
    }

    #[test]
    fn reads_glove_and_word2vec_text() {
        let glove = parse("the 0.5 -1\nfilm 2 0.25\n").unwrap();
        assert_eq!((glove.len(), glove.dim()), (2, 2));
        assert_eq!(glove.get("film"), Some(&[2.0f32, 0.25][..]));
        assert_eq!(glove.get("movie"), None);
        let word2vec = parse("2 2\r\nthe 0.5 -1\r\nfilm 2 0.25\r\n").unwrap();
        assert_eq!(word2vec.get("the"), Some(&[0.5f32, -1.0][..]));
        // Values 0.5, -1, 2, 0.25: mean 0.4375.
        let expected =
            ((0.0625f64.powi(2) + 1.4375f64.powi(2) + 1.5625f64.powi(2) + 0.1875f64.powi(2)) / 4.0)
                .sqrt();
        assert!((glove.std() as f64 - expected).abs() < 1e-6);
    }

    #[test]
    fn a_bad_line_is_named() {
        for (text, wanted) in [
            (
                "the 0.5 -1\nfilm 2\n",
                "vectors.txt:2: the word \"film\" has 1 values, the vectors before it 2",
            ),
            (
                "the 0.5 x\n",
                "vectors.txt:1: the word \"the\" has the value \"x\"",
            ),
            ("the 0.5 NaN\n", "not a finite number"),
            (
                "the 1\nthe 2\n",
                "vectors.txt:2: the word \"the\" appears a second time",
            ),
            ("the\n", "vectors.txt:1: the word \"the\" has no values"),
            (
                "3 2\nthe 1 2\n",
                "vectors.txt:1: the header declares 3 words, the file has 1",
            ),
            ("\n\n", "no word vectors"),
        ] {
            let message = parse(text).unwrap_err().to_string();
            assert!(message.contains(wanted), "{text:?}: {message}");
        }
    }
}
