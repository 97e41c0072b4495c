//! The storage error type.

/// Errors raised by the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("type {0} cannot be stored yet")]
    UnsupportedType(String),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("an epoch commit failed: {0}")]
    CommitFailed(String),
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
