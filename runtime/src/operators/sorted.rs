//! Sorted per-partition row state, shared by top-N and OVER windows.
//!
//! Every input row is kept as `table | vnode(partition) | partition | sort
//! key | row -> count | sort key length`. The sort key is an
//! order-preserving encoding of the `ORDER BY` values (descending columns
//! inverted, NULLs placed first or last as asked) and the row bytes break
//! ties, so the order is total and deterministic. The rows are a
//! [`MultisetTable`] grouped by partition (the sort key length is its
//! extra): changes are summed during the epoch and written at its barrier
//! as blind count merges.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::SortOptions;
use datafusion::physical_expr::PhysicalExpr;
use freshet_storage::codec::encode_rows;
use freshet_storage::TableId;

use super::EpochCtx;
use crate::change::ChangeBatch;
use crate::error::Result;
use crate::state::MultisetTable;

pub struct SortedRows {
    partition: Vec<Arc<dyn PhysicalExpr>>,
    order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    pub state: TableId,
    /// The rows, by partition.
    pub table: MultisetTable,
    /// Encoded partitions touched this epoch.
    pub dirty: BTreeSet<Vec<u8>>,
}

impl SortedRows {
    pub fn new(
        partition: Vec<Arc<dyn PhysicalExpr>>,
        order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
        state: TableId,
        cached: bool,
    ) -> Self {
        SortedRows {
            partition,
            order,
            state,
            table: if cached {
                MultisetTable::cached(state, true)
            } else {
                MultisetTable::new(state, true)
            },
            dirty: BTreeSet::new(),
        }
    }

    /// Adds a batch of changes to this epoch's pending deltas.
    pub fn add(&mut self, batch: &ChangeBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let part_cols = self
            .partition
            .iter()
            .map(|e| e.evaluate(&batch.data)?.into_array(n))
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        let parts = encode_rows(&part_cols, n)?;
        let mut sort_keys: Vec<Vec<u8>> = vec![Vec::new(); n];
        for (e, opts) in &self.order {
            let col = e.evaluate(&batch.data)?.into_array(n)?;
            let enc = encode_rows(std::slice::from_ref(&col), n)?;
            for i in 0..n {
                sort_bytes(&mut sort_keys[i], &enc[i], col.is_null(i), *opts);
            }
        }
        let rows = encode_rows(batch.columns(), n)?;
        let w = batch.weights.values();
        for i in 0..n {
            if w[i] == 0 {
                continue;
            }
            let sort_len = sort_keys[i].len() as u32;
            let mut rest = std::mem::take(&mut sort_keys[i]);
            rest.extend_from_slice(&rows[i]);
            self.table.add(&parts[i], &rest, w[i], sort_len);
            if !self.dirty.contains(&parts[i]) {
                self.dirty.insert(parts[i].clone());
            }
        }
        Ok(())
    }

    /// The types of the partition key columns, over input columns `input`.
    pub fn partition_types(
        &self,
        input: &[datafusion::arrow::datatypes::DataType],
    ) -> Result<Vec<datafusion::arrow::datatypes::DataType>> {
        let schema = super::schema_of(input);
        self.partition
            .iter()
            .map(|e| Ok(e.data_type(&schema)?))
            .collect()
    }

    /// Writes the epoch's deltas into `ctx.writes` and clears them.
    pub fn flush(&mut self, ctx: &mut EpochCtx<'_>) -> Result<()> {
        self.table.flush(ctx.writes);
        Ok(())
    }
}

/// Order-preserving encoding of one sort value.
pub(crate) fn sort_bytes(out: &mut Vec<u8>, datum: &[u8], is_null: bool, opts: SortOptions) {
    // Our own NULL placement byte, then the datum (inverted when descending).
    out.push(match (is_null, opts.nulls_first) {
        (true, true) => 0,
        (false, _) => 1,
        (true, false) => 2,
    });
    // The datum encoding is prefix-free, so inverting it reverses its order.
    if opts.descending {
        out.extend(datum.iter().map(|b| !b));
    } else {
        out.extend_from_slice(datum);
    }
}
