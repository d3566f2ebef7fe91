//! The storage crate's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot start the thread {name}: {source}")]
    Thread { name: String, source: std::io::Error },
    #[error("span part: {0}")]
    Part(String),
    #[error("metric block: {0}")]
    Block(String),
    #[error("log index: {0}")]
    LogIndex(String),
    #[error("object store: {0}")]
    ObjectStore(String),
    #[error("write-ahead log write failed: {0}")]
    WalWrite(String),
    /// A read stopped at the deadline its caller gave.
    #[error("the read ran past its deadline")]
    Deadline,
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
