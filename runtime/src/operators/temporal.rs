//! Temporal filter: `WHERE ts > now() - INTERVAL '1 hour'` in a view.
//!
//! A row passes while the processing time is before its expiry (`ts + 1
//! hour` above), so rows leave the view as time passes. Processing time is
//! the wall clock read at each barrier: a row that arrives already expired
//! is dropped; a passing row is kept in state ordered by expiry, and the
//! barrier that finds its expiry passed retracts it.
//!
//! State layout: `table | vnode | memcomparable(expiry µs) |
//! memcomparable(row) -> count` (a [`MultisetTable`] with one, empty, group:
//! one vnode), one ordered range, so expired rows are the entries below the
//! current time.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;
use freshet_storage::codec::{decode_rows, encode_datum, encode_rows};
use freshet_storage::TableId;

use super::expr::eval;
use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::Result;
use crate::state::MultisetTable;

pub struct TemporalFilterOperator {
    expiry: Arc<dyn PhysicalExpr>,
    /// `>=` (visible at the expiry instant itself) rather than `>`.
    inclusive: bool,
    schema: SchemaRef,
    types: Vec<DataType>,
    /// Processing time (µs since the epoch) as of the last barrier.
    now: i64,
    /// The passing rows by expiry.
    rows: MultisetTable,
}

impl TemporalFilterOperator {
    pub fn new(
        expiry: Arc<dyn PhysicalExpr>,
        inclusive: bool,
        table: TableId,
        schema: SchemaRef,
        types: Vec<DataType>,
    ) -> Self {
        TemporalFilterOperator {
            expiry,
            inclusive,
            schema,
            types,
            now: crate::time::now_micros(),
            rows: MultisetTable::new(table, false),
        }
    }

    fn visible(&self, expiry: i64, now: i64) -> bool {
        if self.inclusive {
            expiry >= now
        } else {
            expiry > now
        }
    }

    /// The entry of a row with `expiry` whose encoding is `row`: rows sort
    /// by expiry.
    fn entry(expiry: i64, row: &[u8]) -> Result<Vec<u8>> {
        let mut k = Vec::with_capacity(9 + row.len());
        encode_datum(&mut k, &ScalarValue::Int64(Some(expiry)))?;
        k.extend_from_slice(row);
        Ok(k)
    }

    /// Every entry expired at `now` sorts below this one.
    fn expired_bound(&self, now: i64) -> Result<Vec<u8>> {
        let first_visible = if self.inclusive {
            now
        } else {
            now.saturating_add(1)
        };
        let mut k = Vec::new();
        encode_datum(&mut k, &ScalarValue::Int64(Some(first_visible)))?;
        Ok(k)
    }
}

impl Operator for TemporalFilterOperator {
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
        let exp = eval(&self.expiry, &batch.data)?;
        let exp = datafusion::arrow::compute::cast(
            &exp,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let exp = exp.as_primitive::<TimestampMicrosecondType>();
        let rows = encode_rows(batch.columns(), n)?;
        let w = batch.weights.values();
        let mut keep = Vec::with_capacity(n);
        for i in 0..n {
            let pass = exp.is_valid(i) && self.visible(exp.value(i), self.now);
            keep.push(pass);
            if pass && w[i] != 0 {
                let e = Self::entry(exp.value(i), &rows[i])?;
                self.rows.add(&[], &e, w[i], 0);
            }
        }
        let out = batch.filter(&BooleanArray::from(keep))?;
        Ok(if out.is_empty() { vec![] } else { vec![out] })
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        let now = crate::time::now_micros().max(self.now);
        let bound = self.expired_bound(now)?;
        // Rows whose expiry has passed: committed ones and this epoch's.
        let gone = self.rows.take_below(ctx.store, ctx.writes, &[], &bound)?;
        // The rest of the epoch's changes join the state.
        self.rows.flush(ctx.writes);
        self.now = now;
        if gone.is_empty() {
            return Ok(vec![]);
        }
        let skip = 9; // the encoded Int64 expiry
        let cols = decode_rows(
            gone.iter().map(|(k, _)| k.get(skip..).unwrap_or(&[])),
            &self.types,
        )?;
        Ok(vec![ChangeBatch::from_columns(
            self.schema.clone(),
            cols,
            gone.into_iter().map(|(_, c)| -c).collect(),
        )?])
    }
}
