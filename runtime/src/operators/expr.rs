//! Evaluating DataFusion physical expressions on change batches.
//!
//! A batch is evaluated in one call. Only when that fails (say a division by
//! zero in one row) does evaluation fall back to one row at a time, so that
//! one bad row yields NULL instead of stopping the view; the failures are
//! logged. The fallback is deterministic, so a later retraction of the same
//! row computes the same NULL and cancels exactly.

use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::concat;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;

/// Evaluates `expr` over every row of `batch`.
pub fn eval(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef> {
    let n = batch.num_rows();
    match expr.evaluate(batch).and_then(|v| v.into_array(n)) {
        Ok(a) => Ok(a),
        Err(first) => {
            let ty = expr.data_type(&batch.schema())?;
            let mut parts: Vec<ArrayRef> = Vec::with_capacity(n);
            let mut failed = 0usize;
            for i in 0..n {
                let row = batch.slice(i, 1);
                match expr.evaluate(&row).and_then(|v| v.into_array(1)) {
                    Ok(a) => parts.push(a),
                    Err(_) => {
                        failed += 1;
                        parts.push(new_null_array(&ty, 1));
                    }
                }
            }
            tracing::warn!(expr = %expr, rows = failed, error = %first, "expression failed on some rows; they yield NULL");
            if parts.is_empty() {
                return Ok(new_null_array(&ty, 0));
            }
            let refs: Vec<&dyn datafusion::arrow::array::Array> =
                parts.iter().map(|a| a.as_ref()).collect();
            Ok(concat(&refs)?)
        }
    }
}
