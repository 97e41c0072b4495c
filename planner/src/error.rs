//! The planner error type.

use datafusion::error::DataFusionError;

/// Errors raised while planning.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A construct the incremental engine cannot maintain (SQLSTATE 0A000).
    #[error("{0} is not supported in materialized views yet")]
    NotSupported(String),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

pub type Result<T, E = PlanError> = std::result::Result<T, E>;
