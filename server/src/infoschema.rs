//! `information_schema.columns` with PostgreSQL's type names (`bigint`,
//! `timestamp without time zone`, ...) and `udt_name`s, where DataFusion's
//! own shows Arrow's (`Int64`). Tools such as Grafana pick time and value
//! columns by these names. The dialect points catalog queries at it.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use pgwire::api::Type;

use crate::pgcatalog::{Object, DATABASE, SCHEMA};

/// The table's name under `pg_catalog`, where the dialect sends
/// `information_schema.columns`.
pub const COLUMNS_TABLE: &str = "freshet_information_schema_columns";

/// PostgreSQL's `information_schema` name of a type, and its `udt_name`.
pub fn type_names(t: &DataType) -> (String, String) {
    let Ok(ty) = arrow_pg::datatypes::into_pg_type(t) else {
        return ("USER-DEFINED".into(), t.to_string());
    };
    let name = match ty {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::NUMERIC => "numeric",
        Type::TEXT => "text",
        Type::VARCHAR => "character varying",
        Type::BPCHAR => "character",
        Type::BYTEA => "bytea",
        Type::DATE => "date",
        Type::TIME => "time without time zone",
        Type::TIMETZ => "time with time zone",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::INTERVAL => "interval",
        Type::JSON => "json",
        Type::JSONB => "jsonb",
        Type::UUID => "uuid",
        _ if matches!(ty.kind(), postgres_types::Kind::Array(_)) => "ARRAY",
        _ => "USER-DEFINED",
    };
    (name.to_string(), ty.name().to_string())
}

/// Numeric precision, radix and scale, and datetime precision, as
/// PostgreSQL reports them.
fn precisions(t: &DataType) -> (Option<i32>, Option<i32>, Option<i32>, Option<i32>) {
    match t {
        DataType::Int16 => (Some(16), Some(2), Some(0), None),
        DataType::Int32 => (Some(32), Some(2), Some(0), None),
        DataType::Int64 => (Some(64), Some(2), Some(0), None),
        DataType::Float32 => (Some(24), Some(2), None, None),
        DataType::Float64 => (Some(53), Some(2), None, None),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            (Some(i32::from(*p)), Some(10), Some(i32::from(*s)), None)
        }
        DataType::Date32 | DataType::Date64 => (None, None, None, Some(0)),
        DataType::Timestamp(..) | DataType::Time64(_) | DataType::Time32(_) => {
            (None, None, None, Some(6))
        }
        DataType::Interval(_) => (None, None, None, Some(6)),
        _ => (None, None, None, None),
    }
}

pub fn columns_schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int = |n: &str| Field::new(n, DataType::Int32, true);
    Arc::new(Schema::new(vec![
        text("table_catalog"),
        text("table_schema"),
        text("table_name"),
        text("column_name"),
        int("ordinal_position"),
        text("column_default"),
        text("is_nullable"),
        text("data_type"),
        int("character_maximum_length"),
        int("character_octet_length"),
        int("numeric_precision"),
        int("numeric_precision_radix"),
        int("numeric_scale"),
        int("datetime_precision"),
        text("interval_type"),
        text("collation_name"),
        text("udt_catalog"),
        text("udt_schema"),
        text("udt_name"),
        text("dtd_identifier"),
        text("is_identity"),
        text("is_generated"),
        text("is_updatable"),
    ]))
}

/// One row per column of Freshet's objects.
pub fn columns(objects: &[Object]) -> Result<RecordBatch> {
    let schema = columns_schema();
    let mut texts: Vec<StringBuilder> = (0..schema.fields().len())
        .map(|_| StringBuilder::new())
        .collect();
    let mut ints: Vec<Int32Builder> = (0..schema.fields().len())
        .map(|_| Int32Builder::new())
        .collect();
    for o in objects {
        for (i, f) in o.schema.fields().iter().enumerate() {
            let (data_type, udt) = type_names(f.data_type());
            let (prec, radix, scale, dt_prec) = precisions(f.data_type());
            let octets = matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8)
                .then_some(1_073_741_824);
            let nullable = f.is_nullable() && !o.pk.iter().any(|k| k == f.name());
            let position = Some(i as i32 + 1);
            let row: Vec<(Option<String>, Option<i32>)> = vec![
                (Some(DATABASE.into()), None),
                (Some(SCHEMA.into()), None),
                (Some(o.name.clone()), None),
                (Some(f.name().clone()), None),
                (None, position),
                (None, None),
                (Some(if nullable { "YES" } else { "NO" }.into()), None),
                (Some(data_type), None),
                (None, None),
                (None, octets),
                (None, prec),
                (None, radix),
                (None, scale),
                (None, dt_prec),
                (None, None),
                (None, None),
                (Some(DATABASE.into()), None),
                (Some("pg_catalog".into()), None),
                (Some(udt), None),
                (Some((i + 1).to_string()), None),
                (Some("NO".into()), None),
                (Some("NEVER".into()), None),
                (
                    Some(
                        if matches!(o.kind, crate::pgcatalog::ObjectKind::Table) {
                            "YES"
                        } else {
                            "NO"
                        }
                        .into(),
                    ),
                    None,
                ),
            ];
            for (c, (s, n)) in row.into_iter().enumerate() {
                texts[c].append_option(s);
                ints[c].append_option(n);
            }
        }
    }
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(c, f)| -> ArrayRef {
            if f.data_type() == &DataType::Int32 {
                Arc::new(ints[c].finish())
            } else {
                Arc::new(texts[c].finish())
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema, cols)?)
}
