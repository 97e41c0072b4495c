//! Top-N: `ORDER BY ... LIMIT n OFFSET m`, globally or per partition
//! (`ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) <= n`).
//!
//! Every input row is kept in sorted state ([`super::sorted`]); a
//! partition's top rows are the first entries of its prefix: only those are
//! read.
//!
//! Changes are summed during the epoch; at the barrier each touched
//! partition's top list is read twice, from the committed state (what the
//! view shows now) and with the epoch's changes, and the difference is
//! emitted. With `with_rank`, each output row carries its 1-based position
//! (the `ROW_NUMBER()`), so a row whose position moves is retracted and
//! emitted again with the new number.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;
use freshet_storage::codec::decode_rows;
use freshet_storage::TableId;

use super::sorted::SortedRows;
use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::Result;

pub struct TopNOperator {
    /// Append-only input: rows past the first `limit + offset` of a
    /// partition can never enter it again, so they are not kept.
    trim: bool,
    limit: Option<usize>,
    offset: usize,
    with_rank: bool,
    input_types: Vec<DataType>,
    schema: SchemaRef,
    rows: SortedRows,
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
            trim: false,
            limit,
            offset,
            with_rank,
            input_types,
            schema,
            // Top-N reads the first rows of a partition, not all of it.
            rows: SortedRows::new(partition, order, state, false),
        }
    }

    /// Over append-only input, keep at most `limit + offset` rows per
    /// partition (see `trim`).
    pub fn append_only_input(mut self, yes: bool) -> Self {
        self.trim = yes && self.limit.is_some();
        self
    }

    /// Drops the rows of `part` beyond its first `limit + offset` copies,
    /// committed and pending: with append-only input they never return.
    fn trim_partition(&mut self, part: &[u8], ctx: &mut EpochCtx<'_>) -> Result<()> {
        let Some(want) = self.limit.map(|l| (l + self.offset) as i64) else {
            return Ok(());
        };
        let mut total = 0i64;
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        self.rows
            .table
            .scan_group_while(ctx.store, part, true, |rest, c, _| {
                if total >= want {
                    doomed.push(rest.to_vec());
                }
                total += c;
                true
            })?;
        for rest in doomed {
            self.rows.table.remove(ctx.writes, part, &rest);
        }
        Ok(())
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
        let want = self.limit.map(|l| (l + self.offset) as i64);
        // (row bytes, copies) in order.
        let mut merged: Vec<(Vec<u8>, i64)> = Vec::new();
        let mut total = 0i64;
        self.rows
            .table
            .scan_group_while(ctx.store, part, with_pending, |rest, c, sort_len| {
                merged.push((rest.get(sort_len as usize..).unwrap_or(&[]).to_vec(), c));
                total += c;
                want.is_none_or(|w| total < w)
            })?;
        // Positions offset.. offset + limit, counting copies.
        let mut out = Vec::new();
        let mut pos = 0i64;
        let end = want.unwrap_or(i64::MAX);
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

impl Operator for TopNOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        self.rows.add(&batch)?;
        Ok(vec![])
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        let mut out_rows: Vec<(Vec<u8>, u64, i64)> = Vec::new();
        for part in std::mem::take(&mut self.rows.dirty) {
            let before = self.top(&part, false, ctx)?;
            let after = self.top(&part, true, ctx)?;
            if self.trim {
                self.trim_partition(&part, ctx)?;
            }
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
        self.rows.flush(ctx)?;
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
        Ok(vec![ChangeBatch::from_columns(
            self.schema.clone(),
            cols,
            out_rows.into_iter().map(|(_, _, c)| c).collect(),
        )?])
    }
}
