//! Labelled text files: one example per line, `label<TAB>text`.
//!
//! Files are read a line at a time ([`TsvRows`]), so that a file of any size
//! can be streamed; a UTF-8 byte-order mark (as spreadsheet programs write
//! one) and CRLF line ends are accepted, blank lines are skipped, and every
//! error names the file and the 1-based line.

use crate::DataError;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The class names of `datasets/mr`, in the order of the model's outputs.
pub const MR_LABELS: [&str; 2] = ["neg", "pos"];

/// One example: the raw text and the index of its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledText {
    pub text: String,
    pub label: usize,
}

/// One line of a file, its label not yet looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsvRow {
    /// 1-based.
    pub line: usize,
    /// Without surrounding whitespace.
    pub label: String,
    pub text: String,
}

/// The rows of a `label<TAB>text` file, one line at a time.
pub struct TsvRows {
    path: PathBuf,
    lines: std::io::Split<BufReader<std::fs::File>>,
    line: usize,
}

impl TsvRows {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let file = std::fs::File::open(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            lines: BufReader::new(file).split(b'\n'),
            line: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parse(&self, raw: &[u8]) -> Result<Option<TsvRow>, DataError> {
        let line = self.line;
        let text = std::str::from_utf8(raw).map_err(|_| DataError::NotUtf8 {
            path: self.path.clone(),
            line,
        })?;
        let text = if line == 1 {
            text.strip_prefix('\u{feff}').unwrap_or(text)
        } else {
            text
        };
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.trim().is_empty() {
            return Ok(None);
        }
        let (label, body) = text.split_once('\t').ok_or_else(|| DataError::MissingTab {
            path: self.path.clone(),
            line,
        })?;
        Ok(Some(TsvRow {
            line,
            label: label.trim().to_string(),
            text: body.to_string(),
        }))
    }
}

impl Iterator for TsvRows {
    type Item = Result<TsvRow, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let raw = match self.lines.next()? {
                Ok(raw) => raw,
                Err(source) => {
                    return Some(Err(DataError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            };
            self.line += 1;
            match self.parse(&raw) {
                Ok(None) => continue,
                Ok(Some(row)) => return Some(Ok(row)),
                Err(err) => return Some(Err(err)),
            }
        }
    }
}

/// Every row of a file; a file without one is an error.
pub fn read_tsv(path: &Path) -> Result<Vec<TsvRow>, DataError> {
    let rows = TsvRows::open(path)?.collect::<Result<Vec<_>, _>>()?;
    if rows.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(rows)
}

/// The classes of a training split: its distinct labels, sorted by code
/// point (so `neg` < `pos`, `0` < `1`, and `10` < `2`): the same data gives
/// the same class order on every machine.
pub fn labels_of(rows: &[TsvRow]) -> Vec<String> {
    let set: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    set.into_iter().map(str::to_string).collect()
}

/// Looks up the label of a row; a label not in `labels` names the file and
/// the line.
pub fn label_row(path: &Path, row: TsvRow, labels: &[&str]) -> Result<LabelledText, DataError> {
    let label =
        labels
            .iter()
            .position(|l| *l == row.label)
            .ok_or_else(|| DataError::UnknownLabel {
                path: path.to_path_buf(),
                line: row.line,
                label: row.label.clone(),
                expected: labels.join(", "),
            })?;
    Ok(LabelledText {
        text: row.text,
        label,
    })
}

/// The examples of a file, one at a time, their labels looked up in
/// `labels` (for reading files of any size in bounded memory).
pub fn labelled_rows<'a>(
    path: &Path,
    labels: &'a [&'a str],
) -> Result<impl Iterator<Item = Result<LabelledText, DataError>> + 'a, DataError> {
    let rows = TsvRows::open(path)?;
    let path = path.to_path_buf();
    Ok(rows.map(move |row| label_row(&path, row?, labels)))
}

/// Reads a `label<TAB>text` file. Blank lines are skipped; every other line
/// must have a tab and a label from `labels` (its index becomes the class).
/// Errors name the file and the 1-based line.
pub fn read_labelled_tsv(path: &Path, labels: &[&str]) -> Result<Vec<LabelledText>, DataError> {
    read_tsv(path)?
        .into_iter()
        .map(|row| label_row(path, row, labels))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(contents: &[u8]) -> Result<Vec<LabelledText>, DataError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("split.tsv");
        std::fs::write(&path, contents).unwrap();
        read_labelled_tsv(&path, &MR_LABELS)
    }

    #[test]
    fn reads_labels_and_text_and_skips_blank_lines() {
        let items = read(b"pos\ta fine film\r\n\nneg\tdull\tand long\n").unwrap();
        assert_eq!(
            items,
            vec![
                LabelledText {
                    text: "a fine film".into(),
                    label: 1
                },
                LabelledText {
                    text: "dull\tand long".into(),
                    label: 0
                },
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_and_crlf_are_read_as_a_spreadsheet_means_them() {
        let items = read(b"\xef\xbb\xbfneg\tdull\r\npos\tfine\r\n").unwrap();
        assert_eq!(items[0].label, 0);
        assert_eq!(items[0].text, "dull");
        assert_eq!(items[1].text, "fine");
        // A mark anywhere but the start of the file is part of the text.
        let msg = read(b"neg\tdull\n\xef\xbb\xbfpos\tfine\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("split.tsv:2: unknown label"), "{msg}");
    }

    #[test]
    fn the_classes_of_a_split_are_its_distinct_labels_in_code_point_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.tsv");
        std::fs::write(
            &path,
            "sports\tgoal\nworld\tvote\n art \tpaint\nsports\trun\n",
        )
        .unwrap();
        let rows = read_tsv(&path).unwrap();
        assert_eq!(labels_of(&rows), ["art", "sports", "world"]);
        assert_eq!(rows[2].line, 3);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let msg = read(b"pos\tok\nno tab here\n").unwrap_err().to_string();
        assert!(
            msg.ends_with("split.tsv:2: no tab: expected `label<TAB>text`"),
            "{msg}"
        );

        let msg = read(b"pos\tok\nneg\tok\nmeh\tso-so\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("split.tsv:3: unknown label \"meh\""), "{msg}");

        let msg = read(b"pos\tok\nneg\t\xff\xfe\n").unwrap_err().to_string();
        assert!(msg.ends_with("split.tsv:2: not valid UTF-8"), "{msg}");

        let msg = read(b"\n\n").unwrap_err().to_string();
        assert!(msg.contains("split.tsv is empty"), "{msg}");

        let missing = read_labelled_tsv(Path::new("/nonexistent/train.tsv"), &MR_LABELS);
        let msg = missing.unwrap_err().to_string();
        assert!(
            msg.starts_with("cannot read /nonexistent/train.tsv"),
            "{msg}"
        );
    }
}
