//! Top-N: `ORDER BY ... LIMIT n OFFSET m`, globally or per partition
//! (`ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) <= n`).
//!
//! Every input row is kept in state, sorted: `table | vnode(partition) |
//! partition | sort key | row -> count | sort key length`, where the sort key is an
//! order-preserving encoding of the `ORDER BY` values (descending columns
//! inverted, NULLs placed first or last as asked) and the row bytes break
//! ties, so the order is total and deterministic. A partition's top rows are
//! the first entries of its prefix: only those are read.
//!
//! Changes are summed during the epoch; at the barrier each touched
//! partition's top list is read twice, from the committed state (what the
//! view shows now) and with the epoch's changes, and the difference is
//! emitted. With `with_rank`, each output row carries its 1-based position
//! (the `ROW_NUMBER()`), so a row whose position moves is retracted and
//! emitted again with the new number.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, UInt64Array};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;
use freshet_storage::codec::{decode_rows, encode_rows};
use freshet_storage::keys::group_prefix;
use freshet_storage::TableId;

use super::materialize::{decode_count, encode_count};
use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::Result;

pub struct TopNOperator {
    partition: Vec<Arc<dyn PhysicalExpr>>,
    order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    limit: Option<usize>,
    offset: usize,
    with_rank: bool,
    input_types: Vec<DataType>,
    state: TableId,
    schema: SchemaRef,
    /// Full state key -> (count delta of this epoch, sort key length).
    pending: BTreeMap<Vec<u8>, (i64, u32)>,
    /// Encoded partitions touched this epoch.
    dirty: BTreeSet<Vec<u8>>,
}

impl TopNOperator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        partition: Vec<Arc<dyn PhysicalExpr>>,
        order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
        limit: Option<usize>,
        offset: usize,
        with_rank: bool,
        input_types: Vec<DataType>,
        state: TableId,
        schema: SchemaRef,
    ) -> Self {
        TopNOperator {
            partition,
            order,
            limit,
            offset,
            with_rank,
            input_types,
            state,
            schema,
            pending: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// Rows at positions `offset .. offset + limit` of a partition, as
    /// (row bytes, copies), read from committed state plus (if
    /// `with_pending`) this epoch's changes.
    fn top(
        &self,
        part: &[u8],
        with_pending: bool,
        ctx: &EpochCtx<'_>,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        let prefix = group_prefix(self.state, part);
        let want = self.limit.map(|l| l + self.offset);
        let pend: Vec<(&Vec<u8>, i64, u32)> = if with_pending {
            self.pending
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, (d, l))| (k, *d, *l))
                .collect()
        } else {
            Vec::new()
        };
        // (row bytes, copies) in order.
        let mut merged: Vec<(Vec<u8>, i64)> = Vec::new();
        let mut total = 0i64;
        let mut pi = 0usize;
        let full = |total: i64| want.is_some_and(|w| total >= w as i64);
        let plen = prefix.len();
        let push =
            |k: &[u8], c: i64, sort_len: u32, merged: &mut Vec<(Vec<u8>, i64)>, total: &mut i64| {
                if c > 0 {
                    let start = (plen + sort_len as usize).min(k.len());
                    merged.push((k[start..].to_vec(), c));
                    *total += c;
                }
            };
        ctx.store.scan_prefix_while(&prefix, |k, v| {
            while pi < pend.len() && pend[pi].0.as_slice() < k {
                if full(total) {
                    return Ok(false);
                }
                push(pend[pi].0, pend[pi].1, pend[pi].2, &mut merged, &mut total);
                pi += 1;
            }
            if full(total) {
                return Ok(false);
            }
            let (mut c, sort_len) = decode_value(v)?;
            if pi < pend.len() && pend[pi].0.as_slice() == k {
                c += pend[pi].1;
                pi += 1;
            }
            push(k, c, sort_len, &mut merged, &mut total);
            Ok(true)
        })?;
        while pi < pend.len() && !full(total) {
            push(pend[pi].0, pend[pi].1, pend[pi].2, &mut merged, &mut total);
            pi += 1;
        }
        // Positions offset.. offset + limit, counting copies.
        let mut out = Vec::new();
        let mut pos = 0i64;
        let end = want.map(|w| w as i64).unwrap_or(i64::MAX);
        for (k, c) in merged {
            let lo = pos.max(self.offset as i64);
            let hi = (pos + c).min(end);
            if hi > lo {
                out.push((k, hi - lo));
            }
            pos += c;
            if pos >= end {
                break;
            }
        }
        Ok(out)
    }
}

fn encode_value(count: i64, sort_len: u32) -> Vec<u8> {
    let mut v = encode_count(count);
    v.extend_from_slice(&sort_len.to_be_bytes());
    v
}

fn decode_value(v: &[u8]) -> freshet_storage::Result<(i64, u32)> {
    let bad = || freshet_storage::StorageError::Corrupt("bad top-N state value".into());
    if v.len() != 13 {
        return Err(bad());
    }
    let c = decode_count(&v[..9]).map_err(|_| bad())?;
    let mut b = [0u8; 4];
    b.copy_from_slice(&v[9..13]);
    Ok((c, u32::from_be_bytes(b)))
}

/// Order-preserving encoding of one sort value.
fn sort_bytes(out: &mut Vec<u8>, datum: &[u8], is_null: bool, opts: SortOptions) {
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

impl Operator for TopNOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(vec![]);
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
            let mut k = group_prefix(self.state, &parts[i]);
            k.extend_from_slice(&sort_keys[i]);
            k.extend_from_slice(&rows[i]);
            let e = self
                .pending
                .entry(k)
                .or_insert((0, sort_keys[i].len() as u32));
            e.0 += w[i];
            self.dirty.insert(parts[i].clone());
        }
        Ok(vec![])
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        let mut out_rows: Vec<(Vec<u8>, u64, i64)> = Vec::new();
        for part in std::mem::take(&mut self.dirty) {
            let before = self.top(&part, false, ctx)?;
            let after = self.top(&part, true, ctx)?;
            let expand = |list: &[(Vec<u8>, i64)]| -> BTreeMap<(Vec<u8>, u64), i64> {
                let mut m = BTreeMap::new();
                let mut pos = 0u64;
                for (row, c) in list {
                    let row = row.clone();
                    if self.with_rank {
                        for _ in 0..*c {
                            pos += 1;
                            *m.entry((row.clone(), pos)).or_insert(0) += 1;
                        }
                    } else {
                        *m.entry((row, 0)).or_insert(0) += c;
                    }
                }
                m
            };
            let mut diff = expand(&after);
            for (k, c) in expand(&before) {
                *diff.entry(k).or_insert(0) -= c;
            }
            for ((row, rank), c) in diff {
                if c != 0 {
                    out_rows.push((row, rank, c));
                }
            }
        }
        // Write the epoch's changes.
        let deltas: Vec<(Vec<u8>, (i64, u32))> = std::mem::take(&mut self.pending)
            .into_iter()
            .filter(|(_, (d, _))| *d != 0)
            .collect();
        if !deltas.is_empty() {
            let keys: Vec<Vec<u8>> = deltas.iter().map(|(k, _)| k.clone()).collect();
            let old = ctx.store.multi_get(&keys)?;
            for ((k, (d, sort_len)), old) in deltas.into_iter().zip(old) {
                let before = match old {
                    Some(v) => decode_value(&v)?.0,
                    None => 0,
                };
                let new = before + d;
                if new == 0 {
                    ctx.writes.delete(k);
                } else {
                    ctx.writes.put(k, encode_value(new, sort_len));
                }
            }
        }
        if out_rows.is_empty() {
            return Ok(vec![]);
        }
        let mut cols = decode_rows(
            out_rows.iter().map(|(r, _, _)| r.as_slice()),
            &self.input_types,
        )?;
        if self.with_rank {
            cols.push(Arc::new(UInt64Array::from_iter_values(
                out_rows.iter().map(|(_, r, _)| *r),
            )));
        }
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(out_rows.len())),
        )?;
        Ok(vec![ChangeBatch::with_weights(
            data,
            out_rows.into_iter().map(|(_, _, c)| c).collect(),
        )])
    }
}
