//! Primary keys as PostgreSQL's catalog shows them: a `<table>_pkey` index
//! (`pg_class` row of kind `i`, `pg_index`, index columns in
//! `pg_attribute`) and a `p` constraint in `pg_constraint`, with the
//! `int2vector` / `oidvector` columns as real arrays so clients can unnest
//! and subscript them. OIDs are derived from the table's OID.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int16Array, Int16Builder, Int32Array, ListBuilder};
use datafusion::arrow::array::{Int32Builder, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;

use crate::pgcatalog::Object;

/// Added to a table's OID: its primary-key index.
pub const INDEX_OID_OFFSET: i64 = 0x2000_0000;
/// Added to a table's OID: its primary-key constraint.
pub const CONSTRAINT_OID_OFFSET: i64 = 0x4000_0000;

/// The name PostgreSQL gives a table's primary key.
pub fn pkey_name(table: &str) -> String {
    format!("{table}_pkey")
}

/// A table with a primary key, as the catalog tables need it.
pub struct Keyed<'a> {
    pub object: &'a Object,
    pub oid: i32,
    pub namespace: i32,
    /// 1-based column numbers of the key.
    pub attnums: Vec<i16>,
}

impl Keyed<'_> {
    pub fn index_oid(&self) -> i32 {
        (i64::from(self.oid) + INDEX_OID_OFFSET) as i32
    }

    pub fn constraint_oid(&self) -> i32 {
        (i64::from(self.oid) + CONSTRAINT_OID_OFFSET) as i32
    }

    /// Default btree operator classes of the key columns.
    fn opclasses(&self) -> Vec<i32> {
        self.attnums
            .iter()
            .map(|a| {
                let f = self.object.schema.field(*a as usize - 1);
                opclass(f.data_type())
            })
            .collect()
    }
}

fn opclass(t: &DataType) -> i32 {
    match t {
        DataType::Int16 => 1979,
        DataType::Int32 => 1978,
        DataType::Int64 => 3124,
        DataType::Float32 => 10012,
        DataType::Float64 => 3123,
        DataType::Decimal128(..) | DataType::Decimal256(..) => 3125,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 3126,
        DataType::Boolean => 10003,
        DataType::Date32 | DataType::Date64 => 3122,
        DataType::Timestamp(_, Some(_)) => 3127,
        DataType::Timestamp(_, None) => 3128,
        DataType::Time64(_) | DataType::Time32(_) => 10038,
        DataType::Interval(_) => 10022,
        DataType::Binary | DataType::LargeBinary => 10006,
        _ => 0,
    }
}

/// The type a vector column of `pg_index` / `pg_constraint` has here.
fn vector_type(table: &str, column: &str) -> Option<DataType> {
    let elem = match (table, column) {
        ("pg_index", "indkey" | "indoption") => DataType::Int16,
        ("pg_index", "indcollation" | "indclass") => DataType::Int32,
        ("pg_constraint", "conkey" | "confkey" | "confdelsetcols") => DataType::Int16,
        ("pg_constraint", "conpfeqop" | "conppeqop" | "conffeqop" | "conexclop") => DataType::Int32,
        _ => return None,
    };
    Some(DataType::List(Arc::new(Field::new("item", elem, true))))
}

/// The library's schema of `table` with its vector columns as arrays.
pub fn schema_with_arrays(table: &str, inner: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = inner
        .fields()
        .iter()
        .map(|f| match vector_type(table, f.name()) {
            Some(t) => Field::new(f.name(), t, true),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn list16(values: &[i16]) -> ScalarValue {
    let mut b = ListBuilder::new(Int16Builder::new());
    b.values().append_slice(values);
    b.append(true);
    let arr: ArrayRef = Arc::new(b.finish());
    ScalarValue::try_from_array(&arr, 0).unwrap_or(ScalarValue::Null)
}

fn list32(values: &[i32]) -> ScalarValue {
    let mut b = ListBuilder::new(Int32Builder::new());
    b.values().append_slice(values);
    b.append(true);
    let arr: ArrayRef = Arc::new(b.finish());
    ScalarValue::try_from_array(&arr, 0).unwrap_or(ScalarValue::Null)
}

fn s(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.to_string()))
}

fn i32v(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}

fn i16v(v: usize) -> ScalarValue {
    ScalarValue::Int16(Some(v as i16))
}

fn b(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}

/// One row per primary key for `pg_index`.
pub fn index_row(schema: &SchemaRef, k: &Keyed) -> Result<RecordBatch> {
    let n = k.attnums.len();
    crate::pgcatalog::row_batch(
        schema,
        &[
            ("indexrelid", i32v(k.index_oid())),
            ("indrelid", i32v(k.oid)),
            ("indnatts", i16v(n)),
            ("indnkeyatts", i16v(n)),
            ("indisunique", b(true)),
            ("indnullsnotdistinct", b(false)),
            ("indisprimary", b(true)),
            ("indisexclusion", b(false)),
            ("indimmediate", b(true)),
            ("indisclustered", b(false)),
            ("indisvalid", b(true)),
            ("indcheckxmin", b(false)),
            ("indisready", b(true)),
            ("indislive", b(true)),
            ("indisreplident", b(false)),
            ("indkey", list16(&k.attnums)),
            ("indcollation", list32(&vec![0; n])),
            ("indclass", list32(&k.opclasses())),
            ("indoption", list16(&vec![0; n])),
        ],
    )
}

/// One row per primary key for `pg_constraint`.
pub fn constraint_row(schema: &SchemaRef, k: &Keyed) -> Result<RecordBatch> {
    crate::pgcatalog::row_batch(
        schema,
        &[
            ("oid", i32v(k.constraint_oid())),
            ("conname", s(&pkey_name(&k.object.name))),
            ("connamespace", i32v(k.namespace)),
            ("contype", s("p")),
            ("condeferrable", b(false)),
            ("condeferred", b(false)),
            ("convalidated", b(true)),
            ("conrelid", i32v(k.oid)),
            ("contypid", i32v(0)),
            ("conindid", i32v(k.index_oid())),
            ("conparentid", i32v(0)),
            ("confrelid", i32v(0)),
            ("confupdtype", s(" ")),
            ("confdeltype", s(" ")),
            ("confmatchtype", s(" ")),
            ("conislocal", b(true)),
            ("coninhcount", i32v(0)),
            ("connoinherit", b(true)),
            ("conkey", list16(&k.attnums)),
        ],
    )
}

/// The `pg_class` row of a primary key's index.
pub fn class_row(schema: &SchemaRef, k: &Keyed) -> Result<RecordBatch> {
    crate::pgcatalog::row_batch(
        schema,
        &[
            ("oid", i32v(k.index_oid())),
            ("relname", s(&pkey_name(&k.object.name))),
            ("relnamespace", i32v(k.namespace)),
            ("reltype", i32v(0)),
            ("relowner", i32v(10)),
            ("relam", i32v(403)),
            ("relfilenode", i32v(k.index_oid())),
            ("relkind", s("i")),
            ("relpersistence", s("p")),
            ("relnatts", i16v(k.attnums.len())),
            ("relhasindex", b(false)),
            ("relisshared", b(false)),
            ("relispopulated", b(true)),
            ("relreplident", s("n")),
        ],
    )
}

/// `pg_get_constraintdef` of a primary key.
pub fn constraint_def(object: &Object) -> Option<String> {
    (!object.pk.is_empty()).then(|| format!("PRIMARY KEY ({})", quoted_list(&object.pk)))
}

/// `pg_get_indexdef(oid, column, pretty)` of a primary key's index.
pub fn index_def(object: &Object, column: i64) -> Option<String> {
    if object.pk.is_empty() {
        return None;
    }
    if column > 0 {
        return object.pk.get(column as usize - 1).map(|c| quote_ident(c));
    }
    Some(format!(
        "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
        quote_ident(&pkey_name(&object.name)),
        crate::pgcatalog::SCHEMA,
        quote_ident(&object.name),
        quoted_list(&object.pk)
    ))
}

fn quoted_list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An identifier quoted only when PostgreSQL would quote it.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Index-column rows for `pg_attribute`: copies of the key columns' rows of
/// `batch` (the table's), renumbered, under the index's OID.
pub fn index_attributes(batch: &RecordBatch, k: &Keyed) -> Result<Option<RecordBatch>> {
    use datafusion::arrow::compute::{cast, take};
    let (relid, attnum) = relid_attnum(batch)?;
    let mut rows = Vec::new();
    for want in &k.attnums {
        if let Some(i) =
            (0..batch.num_rows()).find(|&i| relid.value(i) == k.oid && attnum.value(i) == *want)
        {
            rows.push(i as u32);
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let idx = datafusion::arrow::array::UInt32Array::from(rows.clone());
    let schema = batch.schema();
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (c, f) in batch.columns().iter().zip(schema.fields()) {
        let col: ArrayRef = match f.name().as_str() {
            "attrelid" => cast(
                &(Arc::new(Int32Array::from(vec![k.index_oid(); rows.len()])) as ArrayRef),
                f.data_type(),
            )?,
            "attnum" => cast(
                &(Arc::new(Int16Array::from_iter_values(1..=rows.len() as i16)) as ArrayRef),
                f.data_type(),
            )?,
            _ => take(c.as_ref(), &idx, None)?,
        };
        cols.push(col);
    }
    Ok(Some(RecordBatch::try_new(schema, cols)?))
}

/// `pg_attribute` rows with `attnotnull` set for primary-key columns.
pub fn key_columns_not_null(batch: RecordBatch, keys: &[Keyed]) -> Result<RecordBatch> {
    use datafusion::arrow::array::{Array, BooleanArray};
    let schema = batch.schema();
    let Ok(nn) = schema.index_of("attnotnull") else {
        return Ok(batch);
    };
    let (relid, attnum) = relid_attnum(&batch)?;
    let Some(old) = batch.column(nn).as_any().downcast_ref::<BooleanArray>() else {
        return Ok(batch);
    };
    let fixed: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            let key = keys
                .iter()
                .any(|k| k.oid == relid.value(i) && k.attnums.contains(&attnum.value(i)));
            Some(key || (old.is_valid(i) && old.value(i)))
        })
        .collect();
    let mut cols = batch.columns().to_vec();
    cols[nn] = Arc::new(fixed);
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// A `pg_attribute` batch's `attrelid` and `attnum` columns, as Int32 and
/// Int16 whatever integer types the library uses.
fn relid_attnum(batch: &RecordBatch) -> Result<(Int32Array, Int16Array)> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{Int16Type, Int32Type};
    let col = |name: &str, t: &DataType| -> Result<ArrayRef> {
        let c = batch.column_by_name(name).ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(format!("pg_attribute has no {name}"))
        })?;
        Ok(cast(c, t)?)
    };
    Ok((
        col("attrelid", &DataType::Int32)?
            .as_primitive::<Int32Type>()
            .clone(),
        col("attnum", &DataType::Int16)?
            .as_primitive::<Int16Type>()
            .clone(),
    ))
}
