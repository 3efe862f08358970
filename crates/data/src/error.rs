use std::path::PathBuf;

/// Everything that can go wrong reading a dataset or a tokenizer file. Each
/// variant names the file, and the line where there is one, so that a user can
/// go straight to the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is empty: expected lines of `label<TAB>text`")]
    Empty { path: PathBuf },
    #[error("{path}:{line}: not valid UTF-8")]
    NotUtf8 { path: PathBuf, line: usize },
    #[error("{path}:{line}: no tab: expected `label<TAB>text`")]
    MissingTab { path: PathBuf, line: usize },
    #[error("{path}:{line}: no tab: expected `source<TAB>target`")]
    NotAPair { path: PathBuf, line: usize },
    #[error("{path} holds no sentence pair: expected lines of `source<TAB>target`")]
    NoPairs { path: PathBuf },
    #[error("{path}:{line}: unknown label {label:?} (expected one of {expected})")]
    UnknownLabel {
        path: PathBuf,
        line: usize,
        label: String,
        expected: String,
    },
    #[error("characters not in the model's vocabulary: {chars}")]
    UnknownChars { chars: String },
    #[error("the text has {chars} characters; one window of every stream needs at least {needed}")]
    TooShort { chars: usize, needed: usize },
    #[error("{path}:{line}: {message}")]
    WordVectors {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}
