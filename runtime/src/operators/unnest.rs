//! Unnest: each input row becomes one row per element of its list columns
//! (`unnest(array)`, `generate_series` in a select list), the longest list
//! deciding the count and shorter ones padded with NULLs, as PostgreSQL
//! zips set-returning functions. Every output row keeps its input row's
//! weight, so deletes retract exactly the rows the insert made.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::SchemaRef;

use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::Result;

pub struct UnnestOperator {
    /// For each output column, the input column it comes from and whether
    /// it is that list column's elements.
    pub columns: Vec<(usize, bool)>,
    /// A NULL list gives one row of NULL (DataFusion's `Preserve`); else
    /// none.
    pub keep_nulls: bool,
    pub schema: SchemaRef,
}

/// The elements of list `col` at `row`: (offset into its values, length);
/// length 0 for NULL.
fn span(col: &ArrayRef, row: usize) -> (usize, usize) {
    if col.is_null(row) {
        return (0, 0);
    }
    if let Some(l) = col.as_list_opt::<i32>() {
        let off = l.value_offsets();
        return (off[row] as usize, (off[row + 1] - off[row]) as usize);
    }
    if let Some(l) = col.as_list_opt::<i64>() {
        let off = l.value_offsets();
        return (off[row] as usize, (off[row + 1] - off[row]) as usize);
    }
    (0, 0)
}

fn values(col: &ArrayRef) -> Option<ArrayRef> {
    col.as_list_opt::<i32>()
        .map(|l| l.values().clone())
        .or_else(|| col.as_list_opt::<i64>().map(|l| l.values().clone()))
}

impl UnnestOperator {
    /// The pure part: unnest one batch.
    pub fn unnest(&self, batch: &ChangeBatch) -> Result<ChangeBatch> {
        let input = batch.columns();
        let lists: Vec<usize> = self.columns.iter().filter(|c| c.1).map(|c| c.0).collect();
        let mut rows: Vec<u32> = Vec::new();
        let mut weights: Vec<i64> = Vec::new();
        // Per list column, the index into its values (None: a NULL pad).
        let mut picks: Vec<Vec<Option<u32>>> = vec![Vec::new(); lists.len()];
        for row in 0..batch.num_rows() {
            let spans: Vec<(usize, usize)> = lists.iter().map(|&c| span(&input[c], row)).collect();
            let all_null = lists.iter().all(|&c| input[c].is_null(row));
            let mut n = spans.iter().map(|s| s.1).max().unwrap_or(0);
            if n == 0 && all_null && self.keep_nulls {
                n = 1;
            }
            for j in 0..n {
                rows.push(row as u32);
                weights.push(batch.weights.value(row));
                for (k, (off, len)) in spans.iter().enumerate() {
                    picks[k].push((j < *len).then(|| (off + j) as u32));
                }
            }
        }
        let rows = UInt32Array::from(rows);
        let mut cols = Vec::with_capacity(self.columns.len());
        for (i, (c, is_list)) in self.columns.iter().enumerate() {
            let col = if *is_list {
                let k = lists.iter().position(|x| x == c).unwrap_or(0);
                let idx = UInt32Array::from(picks[k].clone());
                match values(&input[*c]) {
                    Some(v) => take(v.as_ref(), &idx, None)?,
                    None => datafusion::arrow::array::new_null_array(
                        self.schema.field(i).data_type(),
                        idx.len(),
                    ),
                }
            } else {
                take(input[*c].as_ref(), &rows, None)?
            };
            cols.push(col);
        }
        let opts =
            datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
        let data = RecordBatch::try_new_with_options(self.schema.clone(), cols, &opts)?;
        Ok(ChangeBatch::with_weights(data, weights))
    }
}

impl Operator for UnnestOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        Ok(vec![self.unnest(&batch)?])
    }
}
