//! Inner equi-join: a symmetric hash join whose two sides live in state.
//!
//! Each side is a multiset of rows stored by join key:
//! `side table | vnode(key) | memcomparable(key) | memcomparable(row) ->
//! FORMAT_VERSION | count`, so the rows matching a key are one prefix scan.
//! A change on one side joins against the other side's current contents
//! (committed state plus this epoch's deltas) and is then added to its own
//! side: `Δ(L ⋈ R) = ΔL ⋈ R + L' ⋈ ΔR`, which holds for any interleaving of
//! batches because one thread runs the whole DAG. Deltas are summed in
//! memory during the epoch and written at its barrier; nothing else of the
//! sides is kept in memory, so join state is bounded by RocksDB, not RAM.
//!
//! Rows with a NULL in the key never match (SQL `=`), unless the join
//! compares keys with `IS NOT DISTINCT FROM`; they are not stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;
use freshet_storage::codec::{decode_rows, encode_rows};
use freshet_storage::keys::{group_prefix, grouped_key};
use freshet_storage::TableId;

use super::materialize::{decode_count, encode_count};
use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::Result;

pub struct JoinOperator {
    keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    types: [Vec<DataType>; 2],
    state: [TableId; 2],
    schema: SchemaRef,
    nulls_match: bool,
    /// Per side: full state key -> count delta of this epoch.
    pending: [BTreeMap<Vec<u8>, i64>; 2],
}

impl JoinOperator {
    pub fn new(
        keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
        types: [Vec<DataType>; 2],
        state: [TableId; 2],
        schema: SchemaRef,
        nulls_match: bool,
    ) -> Self {
        JoinOperator {
            keys,
            types,
            state,
            schema,
            nulls_match,
            pending: [BTreeMap::new(), BTreeMap::new()],
        }
    }

    /// Rows of `side` whose key is `key`, with their multiplicities.
    fn lookup(&self, side: usize, key: &[u8], ctx: &EpochCtx<'_>) -> Result<Vec<(Vec<u8>, i64)>> {
        let prefix = group_prefix(self.state[side], key);
        let mut rows: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for (k, v) in ctx.store.scan_prefix(&prefix)? {
            rows.insert(k.to_vec(), decode_count(&v)?);
        }
        for (k, d) in self.pending[side].range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            *rows.entry(k.clone()).or_insert(0) += d;
        }
        Ok(rows
            .into_iter()
            .filter(|(_, c)| *c != 0)
            .map(|(k, c)| (k[prefix.len()..].to_vec(), c))
            .collect())
    }
}

impl Operator for JoinOperator {
    fn process(
        &mut self,
        input: usize,
        batch: ChangeBatch,
        ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        let side = input.min(1);
        let other = 1 - side;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(vec![]);
        }
        let key_cols = self.keys[side]
            .iter()
            .map(|e| e.evaluate(&batch.data)?.into_array(n))
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        let keys = encode_rows(&key_cols, n)?;
        let rows = encode_rows(batch.columns(), n)?;
        let weights = batch.weights.values();
        // Group the batch's rows by key, in first-seen order.
        let mut order: Vec<&[u8]> = Vec::new();
        let mut groups: HashMap<&[u8], Vec<usize>> = HashMap::new();
        for i in 0..n {
            if weights[i] == 0
                || (!self.nulls_match && key_cols.iter().any(|c| c.is_null(i)))
            {
                continue;
            }
            groups
                .entry(keys[i].as_slice())
                .or_insert_with(|| {
                    order.push(keys[i].as_slice());
                    Vec::new()
                })
                .push(i);
        }
        let mut this_idx: Vec<u32> = Vec::new();
        let mut other_rows: Vec<Vec<u8>> = Vec::new();
        let mut out_w: Vec<i64> = Vec::new();
        for key in &order {
            let matches = self.lookup(other, key, ctx)?;
            if matches.is_empty() {
                continue;
            }
            for &i in &groups[key] {
                for (r, c) in &matches {
                    this_idx.push(i as u32);
                    other_rows.push(r.clone());
                    out_w.push(weights[i] * c);
                }
            }
        }
        // This batch now belongs to its side.
        for key in &order {
            for &i in &groups[key] {
                let k = grouped_key(self.state[side], key, &rows[i]);
                *self.pending[side].entry(k).or_insert(0) += weights[i];
            }
        }
        if this_idx.is_empty() {
            return Ok(vec![]);
        }
        let idx = UInt32Array::from(this_idx);
        let mine = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &idx, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let theirs = decode_rows(other_rows.iter().map(|r| r.as_slice()), &self.types[other])?;
        let cols: Vec<ArrayRef> = if side == 0 {
            mine.into_iter().chain(theirs).collect()
        } else {
            theirs.into_iter().chain(mine).collect()
        };
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(out_w.len())),
        )?;
        Ok(vec![ChangeBatch::with_weights(data, out_w)])
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        for side in 0..2 {
            let deltas: Vec<(Vec<u8>, i64)> = std::mem::take(&mut self.pending[side])
                .into_iter()
                .filter(|(_, d)| *d != 0)
                .collect();
            if deltas.is_empty() {
                continue;
            }
            let keys: Vec<Vec<u8>> = deltas.iter().map(|(k, _)| k.clone()).collect();
            let old = ctx.store.multi_get(&keys)?;
            for ((k, d), old) in deltas.into_iter().zip(old) {
                let new = old.as_deref().map(decode_count).transpose()?.unwrap_or(0) + d;
                if new == 0 {
                    ctx.writes.delete(k);
                } else {
                    ctx.writes.put(k, encode_count(new));
                }
            }
        }
        Ok(vec![])
    }
}
