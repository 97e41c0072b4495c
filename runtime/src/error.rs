//! The runtime error type.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use freshet_storage::StorageError;

/// Errors raised while running dataflows and applying changes.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// A unique constraint would be violated (SQLSTATE 23505).
    #[error("duplicate key value violates unique constraint \"{table}_pkey\"")]
    UniqueViolation { table: String },
    /// A NOT NULL column got a NULL (SQLSTATE 23502).
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )]
    NotNullViolation { table: String, column: String },
    /// UPDATE or DELETE on an `APPEND ONLY` table (SQLSTATE 0A000).
    #[error("table \"{0}\" is APPEND ONLY: only INSERT is allowed")]
    AppendOnly(String),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error("unknown object {0}")]
    UnknownObject(String),
    #[error("incompatible stored state for \"{0}\": {1}")]
    Incompatible(String, String),
    /// A view failed at run time and no longer changes (SQLSTATE 55000).
    #[error("materialized view \"{view}\" has failed ({why}); drop it and create it again")]
    ViewFailed { view: String, why: String },
    #[error("the dataflow engine has stopped")]
    EngineStopped,
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
