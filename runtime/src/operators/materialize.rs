//! Materialize: keeps a view's rows in storage and forwards its changes.
//!
//! A view is stored as a multiset keyed by the whole row:
//! `view table | vnode | memcomparable(row) -> FORMAT_VERSION | count (i64 BE)`.
//! Keying by the row handles duplicate rows and views without a natural key
//! alike; a row whose count drops to zero is deleted. Deltas are summed in
//! memory during the epoch and written once at its barrier. Changes are
//! forwarded as they come, to views defined over this one.

use std::collections::HashMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use freshet_storage::codec::{decode_rows, encode_rows, FORMAT_VERSION};
use freshet_storage::keys::{pk_of, row_key};
use freshet_storage::store::Entry;
use freshet_storage::TableId;

use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::{Result, RuntimeError};

pub struct MaterializeOperator {
    name: String,
    table: TableId,
    pending: HashMap<Vec<u8>, i64>,
    /// The view's watermark (first watermarked column) and change counts.
    time: Option<std::sync::Arc<crate::time::TimeStats>>,
    wm_col: Option<usize>,
}

impl MaterializeOperator {
    pub fn new(name: String, table: TableId, _schema: SchemaRef) -> Self {
        MaterializeOperator {
            name,
            table,
            pending: HashMap::new(),
            time: None,
            wm_col: None,
        }
    }

    pub fn with_time(mut self, time: std::sync::Arc<crate::time::TimeStats>) -> Self {
        self.time = Some(time);
        self
    }
}

pub(crate) fn encode_count(c: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(FORMAT_VERSION);
    v.extend_from_slice(&c.to_be_bytes());
    v
}

pub(crate) fn decode_count(v: &[u8]) -> Result<i64> {
    match v {
        [FORMAT_VERSION, rest @ ..] if rest.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(rest);
            Ok(i64::from_be_bytes(b))
        }
        _ => Err(RuntimeError::Internal("bad view row count".into())),
    }
}

impl Operator for MaterializeOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        let rows = encode_rows(batch.columns(), batch.num_rows())?;
        let mut retracted = 0u64;
        for (row, w) in rows.into_iter().zip(batch.weights.values().iter()) {
            if *w != 0 {
                *self.pending.entry(row).or_insert(0) += *w;
            }
            if *w < 0 {
                retracted += w.unsigned_abs();
            }
        }
        if let Some(t) = &self.time {
            t.retracted(retracted);
        }
        Ok(vec![batch])
    }

    fn on_watermark(
        &mut self,
        _input: usize,
        wm: crate::time::Watermark,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<super::WatermarkOut> {
        if *self.wm_col.get_or_insert(wm.col) == wm.col {
            if let Some(t) = &self.time {
                t.set_watermark(&wm.value);
            }
        }
        Ok((Vec::new(), vec![wm]))
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        let deltas: Vec<(Vec<u8>, i64)> = self
            .pending
            .drain()
            .filter(|(_, d)| *d != 0)
            .map(|(r, d)| (row_key(self.table, &r), d))
            .collect();
        if deltas.is_empty() {
            return Ok(vec![]);
        }
        let keys: Vec<Vec<u8>> = deltas.iter().map(|(k, _)| k.clone()).collect();
        let committed = ctx.store.multi_get(&keys)?;
        for ((key, delta), old) in deltas.into_iter().zip(committed) {
            let old = match ctx.writes.pending(&key) {
                Some(Some(v)) => decode_count(v)?,
                Some(None) => 0,
                None => old.as_deref().map(decode_count).transpose()?.unwrap_or(0),
            };
            let new = old + delta;
            if new < 0 {
                tracing::error!(view = %self.name, "negative row count {new}; view state is inconsistent");
            }
            if new <= 0 {
                ctx.writes.delete(key);
            } else {
                ctx.writes.put(key, encode_count(new));
            }
        }
        Ok(vec![])
    }
}

/// Decodes stored view entries into a batch, one row per copy.
pub fn decode_view_rows(entries: &[Entry], schema: &SchemaRef) -> Result<RecordBatch> {
    let types: Vec<DataType> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let mut rows: Vec<&[u8]> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let n = decode_count(v)?;
        for _ in 0..n.max(0) {
            rows.push(pk_of(k));
        }
    }
    let cols = decode_rows(rows.iter().copied(), &types)?;
    let opts = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        cols,
        &opts,
    )?)
}
