//! Base tables: row layout, key derivation and reads of their contents.
//!
//! A table row is stored as `table | vnode | memcomparable(key) ->
//! FORMAT_VERSION | memcomparable(row)`. The key is the primary key when the
//! table has one, else a hidden row id (`i64`) handed out by the engine. The
//! encoded key is exposed to DML as the hidden `_rowkey` column, so `UPDATE`
//! and `DELETE` can name exactly the rows they touch.

use std::sync::Arc;

use crate::state::layout::{relation as table_prefix, table_row as row_key};
use datafusion::arrow::array::{ArrayRef, BinaryArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use freshet_storage::codec::{decode_rows, encode_rows, FORMAT_VERSION};
use freshet_storage::keys::pk_of;
use freshet_storage::store::Entry;
use freshet_storage::{Read, Store, TableId};

use crate::error::{Result, RuntimeError};
use crate::operators::decode_view_rows;

/// Name of the hidden column carrying a row's storage key in DML plans.
pub const ROWKEY_COLUMN: &str = "_rowkey";

/// A base table as the runtime sees it.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub id: TableId,
    pub name: String,
    /// Column schema; every field nullable in batches.
    pub schema: SchemaRef,
    /// Column indices of the primary key, if declared.
    pub pk: Option<Vec<usize>>,
    /// Column indices declared `NOT NULL` (primary key columns included).
    pub not_null: Vec<usize>,
    /// The connector feeding the table, for `CREATE TABLE ... WITH (connector = ...)`.
    pub connector: Option<std::sync::Arc<crate::source::SourceSpec>>,
    /// `WATERMARK FOR col AS col - INTERVAL '...'`.
    pub watermark: Option<crate::time::WatermarkDef>,
    /// `APPEND ONLY`: rows are only ever inserted.
    pub append_only: bool,
}

impl TableDef {
    pub fn types(&self) -> Vec<DataType> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    }

    /// The table schema plus the hidden `_rowkey` column.
    pub fn schema_with_rowkey(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(ROWKEY_COLUMN, DataType::Binary, false));
        Arc::new(Schema::new(fields))
    }

    /// Checks `NOT NULL` columns.
    pub fn check_not_null(&self, batch: &RecordBatch) -> Result<()> {
        for &i in &self.not_null {
            if batch.column(i).null_count() > 0 {
                return Err(RuntimeError::NotNullViolation {
                    table: self.name.clone(),
                    column: self.schema.field(i).name().clone(),
                });
            }
        }
        Ok(())
    }

    /// Encodes the primary key of every row (None if the table has no pk).
    pub fn pk_keys(&self, batch: &RecordBatch) -> Result<Option<Vec<Vec<u8>>>> {
        let Some(pk) = &self.pk else { return Ok(None) };
        let cols: Vec<ArrayRef> = pk.iter().map(|i| batch.column(*i).clone()).collect();
        for (c, i) in cols.iter().zip(pk) {
            if c.null_count() > 0 {
                return Err(RuntimeError::NotNullViolation {
                    table: self.name.clone(),
                    column: self.schema.field(*i).name().clone(),
                });
            }
        }
        Ok(Some(encode_rows(&cols, batch.num_rows())?))
    }
}

/// Encodes the stored value of every row.
pub fn encode_values(batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    let rows = encode_rows(batch.columns(), batch.num_rows())?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut v = Vec::with_capacity(r.len() + 1);
            v.push(FORMAT_VERSION);
            v.extend_from_slice(&r);
            v
        })
        .collect())
}

fn strip_version(v: &[u8]) -> Result<&[u8]> {
    match v.split_first() {
        Some((&FORMAT_VERSION, rest)) => Ok(rest),
        _ => Err(RuntimeError::Internal("unknown row format version".into())),
    }
}

/// Decodes stored table values into a batch of `schema`.
pub fn decode_table_values<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let types: Vec<DataType> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let vals = values
        .into_iter()
        .map(strip_version)
        .collect::<Result<Vec<_>>>()?;
    let n = vals.len();
    let cols = decode_rows(vals, &types)?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        cols,
        &RecordBatchOptions::new().with_row_count(Some(n)),
    )?)
}

/// Decodes `(key, value)` table entries into a batch with the `_rowkey` column.
pub fn decode_table_with_rowkey(
    entries: &[(Vec<u8>, Vec<u8>)],
    def: &TableDef,
) -> Result<RecordBatch> {
    let base = decode_table_values(entries.iter().map(|(_, v)| v.as_slice()), &def.schema)?;
    let keys = BinaryArray::from_iter_values(entries.iter().map(|(k, _)| pk_of(k)));
    let mut cols = base.columns().to_vec();
    cols.push(Arc::new(keys));
    Ok(RecordBatch::try_new_with_options(
        def.schema_with_rowkey(),
        cols,
        &RecordBatchOptions::new().with_row_count(Some(entries.len())),
    )?)
}

/// What a committed read should return.
#[derive(Debug, Clone)]
pub enum ReadTarget {
    /// A table; `keys` limits the read to these encoded primary keys.
    Table {
        id: TableId,
        schema: SchemaRef,
        keys: Option<Vec<Vec<u8>>>,
    },
    View {
        id: TableId,
        schema: SchemaRef,
        /// Stored by key (see [`crate::state::KeyedRows`]), not as a multiset.
        keyed: bool,
        /// With `keyed`: only the rows of these encoded keys.
        keys: Option<Vec<Vec<u8>>>,
    },
}

/// Reads the committed contents of several tables and views from one
/// snapshot, so they all come from the same epoch.
pub fn read_committed(store: &Store, targets: &[ReadTarget]) -> Result<Vec<RecordBatch>> {
    let reads: Vec<Read> = targets
        .iter()
        .map(|t| match t {
            ReadTarget::Table {
                id,
                keys: Some(keys),
                ..
            }
            | ReadTarget::View {
                id,
                keyed: true,
                keys: Some(keys),
                ..
            } => Read::Keys(keys.iter().map(|k| row_key(*id, k)).collect()),
            ReadTarget::Table { id, .. } | ReadTarget::View { id, .. } => {
                Read::Prefix(table_prefix(*id))
            }
        })
        .collect();
    let scans = store.snapshot_read(&reads)?;
    targets
        .iter()
        .zip(scans)
        .map(|(t, entries)| decode_target(t, &entries))
        .collect()
}

/// Decodes committed entries of one target.
pub fn decode_target(t: &ReadTarget, entries: &[Entry]) -> Result<RecordBatch> {
    match t {
        ReadTarget::Table { schema, .. } => {
            decode_table_values(entries.iter().map(|(_, v)| v.as_ref()), schema)
        }
        ReadTarget::View { schema, keyed, .. } => decode_view_rows(entries, schema, *keyed),
    }
}
