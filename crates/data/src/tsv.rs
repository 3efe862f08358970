//! Labelled text files: one example per line, `label<TAB>text`.

use crate::DataError;
use std::path::Path;

/// The class names of `datasets/mr`, in the order of the model's outputs.
pub const MR_LABELS: [&str; 2] = ["neg", "pos"];

/// One example: the raw text and the index of its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledText {
    pub text: String,
    pub label: usize,
}

/// Reads a `label<TAB>text` file. Blank lines are skipped; every other line
/// must have a tab and a label from `labels` (its index becomes the class).
/// Errors name the file and the 1-based line.
pub fn read_labelled_tsv(path: &Path, labels: &[&str]) -> Result<Vec<LabelledText>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut items = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let err_path = || path.to_path_buf();
        let text = std::str::from_utf8(raw).map_err(|_| DataError::NotUtf8 {
            path: err_path(),
            line,
        })?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.trim().is_empty() {
            continue;
        }
        let (label, body) = text.split_once('\t').ok_or_else(|| DataError::MissingTab {
            path: err_path(),
            line,
        })?;
        let label = labels
            .iter()
            .position(|l| *l == label.trim())
            .ok_or_else(|| DataError::UnknownLabel {
                path: err_path(),
                line,
                label: label.to_string(),
                expected: labels.join(", "),
            })?;
        items.push(LabelledText {
            text: body.to_string(),
            label,
        });
    }
    if items.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(items)
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
