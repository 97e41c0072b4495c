//! Materialize: keeps a view's rows in storage and forwards its changes.
//!
//! A view with a stream key is stored by it ([`KeyedRows`]): a change is a
//! put or a delete of one key, and a read can look a key up.
//!
//! A view without one is stored as a multiset keyed by the whole row (a
//! [`MultisetTable`] whose groups are rows):
//! `view table | vnode | memcomparable(row) -> count`.
//! Keying by the row handles duplicate rows and views without a natural key
//! alike. Each change is a blind count merge into the epoch's write set
//! (never a read); a row whose count reaches zero reads as absent and is
//! dropped by compaction. Changes are forwarded as they come, to views
//! defined over this one.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use freshet_storage::codec::{decode_rows, encode_rows};
use freshet_storage::keys::pk_of;
use freshet_storage::store::Entry;
use freshet_storage::TableId;

use crate::state::{KeyedRows, MultisetTable};

use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::{Result, RuntimeError};

pub struct MaterializeOperator {
    rows: MultisetTable,
    keyed: Option<KeyedRows>,
    /// The view's watermark (first watermarked column) and change counts.
    time: Option<std::sync::Arc<crate::time::TimeStats>>,
    wm_col: Option<usize>,
}

impl MaterializeOperator {
    pub fn new(_name: String, table: TableId, _schema: SchemaRef, key: Option<Vec<usize>>) -> Self {
        MaterializeOperator {
            rows: MultisetTable::new(table, false),
            keyed: key.map(|k| KeyedRows::new(table, k)),
            time: None,
            wm_col: None,
        }
    }

    pub fn with_time(mut self, time: std::sync::Arc<crate::time::TimeStats>) -> Self {
        self.time = Some(time);
        self
    }
}

pub(crate) fn decode_count(v: &[u8]) -> Result<i64> {
    freshet_storage::count::decode(v)
        .map(|(c, _)| c)
        .map_err(|_| RuntimeError::Internal("bad view row count".into()))
}

impl Operator for MaterializeOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        let mut retracted = 0u64;
        if let Some(k) = &mut self.keyed {
            k.add(&batch)?;
            for w in batch.weights.values() {
                if *w < 0 {
                    retracted += w.unsigned_abs();
                }
            }
            if let Some(t) = &self.time {
                t.retracted(retracted);
            }
            return Ok(vec![batch]);
        }
        let rows = encode_rows(batch.columns(), batch.num_rows())?;
        for (row, w) in rows.into_iter().zip(batch.weights.values().iter()) {
            self.rows.add_blind(ctx.writes, &row, &[], *w);
            if *w < 0 {
                retracted += w.unsigned_abs();
            }
        }
        if let Some(t) = &self.time {
            t.retracted(retracted);
        }
        Ok(vec![batch])
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        self.flush(ctx);
        Ok(vec![])
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
}

impl MaterializeOperator {
    fn flush(&mut self, ctx: &mut EpochCtx<'_>) {
        if let Some(k) = &mut self.keyed {
            k.flush(ctx.writes);
        }
    }
}

/// Decodes stored view entries into a batch: one row per copy (multiset
/// views, `keyed` false) or one row per entry (views stored by key).
pub fn decode_view_rows(entries: &[Entry], schema: &SchemaRef, keyed: bool) -> Result<RecordBatch> {
    if keyed {
        return crate::table::decode_table_values(entries.iter().map(|(_, v)| v.as_ref()), schema);
    }
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
